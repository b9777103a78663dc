"""Crawlee for Python's ``PlaywrightCrawler``, used the way its users would.

A router with two handlers: the gallery page scrolls its scroller and
enqueues the cards' links as they appear; each item page is read with the
same site-specific field reader as bare Playwright. It gets the same
browser executable and launch flags as everything else (images off, as landmark's
default ``browser.load_images``), headless, and a
fixed concurrency (min = desired = max) so the comparison is at equal
concurrency rather than at whatever its autoscaler picks. Crawlee is the
optional ``peers`` extra; without it this contender reports "unavailable".
"""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from typing import Any
from urllib.parse import urljoin

from landmark.benchmarks.contenders.bare import CARD_IDS_JS, STEP_TIMEOUT_MS
from landmark.benchmarks.contenders.fields import READ_ROWS_JS, fields_from_rows
from landmark.benchmarks.contenders.spec import ItemResult, Outcome, RunSpec, first_record_s

ITEM_LABEL = "item"


def crawlee_unavailable() -> str | None:
    """Why Crawlee cannot run here, or None when it can."""
    try:
        import crawlee.crawlers  # noqa: F401
    except ImportError as error:
        return f"unavailable: crawlee[playwright] is not installed ({error.name})"
    return None


async def run_crawlee(spec: RunSpec) -> Outcome:
    if (reason := crawlee_unavailable()) is not None:
        return Outcome(label=spec.label, kind=spec.kind, unavailable=reason)
    if spec.mode != "link" or len(spec.sources) != 1:
        return Outcome(
            label=spec.label,
            kind=spec.kind,
            unavailable="unavailable: Crawlee opens item pages by link, one source",
        )
    with tempfile.TemporaryDirectory(prefix="crawlee-") as storage:
        return await _crawl(spec, storage)


async def _crawl(spec: RunSpec, storage: str) -> Outcome:
    from crawlee import ConcurrencySettings, Request
    from crawlee.configuration import Configuration
    from crawlee.crawlers import PlaywrightCrawler, PlaywrightCrawlingContext
    from crawlee.storage_clients import MemoryStorageClient
    from crawlee.storages import RequestQueue

    from landmark.actors.browser import find_browser, launch_args
    from landmark.config.browser_spec import BrowserSpec
    from landmark.config.settings import Settings

    for name in ("crawlee", "httpx", "playwright"):
        logging.getLogger(name).setLevel(logging.WARNING)
    found = find_browser(Settings.from_env().browser)  # the same one bare and landmark use
    n = spec.pages
    storage_client = MemoryStorageClient()
    configuration = Configuration(storage_dir=storage, purge_on_start=True)
    # A queue of its own per run: a second run in this process must not find the gallery and
    # item URLs already handled by the first one.
    queue = await RequestQueue.open(
        alias=f"run-{uuid.uuid4().hex}", configuration=configuration, storage_client=storage_client
    )
    crawler = PlaywrightCrawler(
        browser_type="chromium",
        browser_launch_options={
            "executable_path": str(found.path),
            "args": launch_args(load_images=BrowserSpec().load_images),  # landmark's default
        },
        headless=True,
        concurrency_settings=ConcurrencySettings(
            min_concurrency=n, desired_concurrency=n, max_concurrency=n
        ),
        configuration=configuration,
        storage_client=storage_client,
        request_manager=queue,
        max_request_retries=2,
        configure_logging=False,
    )
    records: list[ItemResult] = []
    begun: dict[str, float] = {}

    @crawler.pre_navigation_hook
    async def stamp(context: Any) -> None:
        begun.setdefault(context.request.url, time.monotonic())

    @crawler.router.default_handler
    async def gallery(context: PlaywrightCrawlingContext) -> None:
        found_ids = 0
        while found_ids < spec.items:
            ids = await context.page.evaluate(CARD_IDS_JS, [found_ids, STEP_TIMEOUT_MS])
            if not ids:
                break
            ids = ids[: spec.items - found_ids]
            found_ids += len(ids)
            await context.add_requests(
                [
                    Request.from_url(urljoin(context.request.url, f"/item/{cid}"), label=ITEM_LABEL)
                    for cid in ids
                ]
            )

    @crawler.router.handler(ITEM_LABEL)
    async def item(context: PlaywrightCrawlingContext) -> None:
        rows = await context.page.evaluate(READ_ROWS_JS, None)
        cid = context.request.url.rstrip("/").rsplit("/", 1)[-1]
        began = begun.get(context.request.url, time.monotonic())
        records.append(ItemResult(cid, fields_from_rows(rows), (time.monotonic() - began) * 1000))

    started = time.monotonic()
    await crawler.run([spec.sources[0]])
    wall = time.monotonic() - started
    await queue.drop()
    first = first_record_s(records, started)
    return Outcome(
        label=spec.label, kind=spec.kind, records=records, wall_s=wall, first_record_s=first
    )
