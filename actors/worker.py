"""BrowserWorker: one browser, one long-lived context, a few pages — containers in, records out.

This is the BrowserActor without Ray, so it can be tested with Chromium alone
and wrapped as a Ray actor in ``browser_actor.py``. Everything here runs on one
event loop: Playwright objects belong to the loop that made them.

Per container the hot path is two page calls in click mode (open+settle+resolve
in one evaluate, the panel closed at the start of the next) and a navigation
plus one evaluate in link mode. Every wait is a condition with a deadline from
the PerformanceLearner; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import Browser, BrowserContext, Page, Playwright, async_playwright
from playwright.async_api import Error as PlaywrightError

from actors.browser import FoundBrowser, find_browser, launch_browser
from actors.dom_cache import DomCache
from actors.downloads import download_to_file
from actors.extraction import (
    LANDMARKS_JS,
    Settled,
    field_plan,
    finish_value,
    parse_settled,
    settle_and_resolve,
)
from actors.learner import PerformanceLearner
from actors.process_tree import pss_of, tree_pids
from config.job import IdSource, JobSpec, OpenMode
from config.records import Container, Phase, Problem, Record, Status, domain_of
from config.settings import Settings

GALLERY_JS = resources.files("actors").joinpath("gallery.js").read_text(encoding="utf-8")
ERROR_SELECTOR = "[role=alert]"
SEEK_MAX_STEPS = 10_000
SETTLE_QUIET_MS = 100  # a panel with a field missing is read once the DOM is quiet this long

# Click mode's hot path: open the card's panel and read it in one round trip.
OPEN_AND_SETTLE = """async ([opening, spec, timeoutMs, quietMs, errorSelector]) => {
  const opened = await window.__landmarkGallery.open(opening);
  if (!opened.ok) return {opened};
  const settled = await window.__landmark.settle(spec, timeoutMs, quietMs, errorSelector);
  return {...settled, opened};
}"""
RSS_CHECK_EVERY = 50


class OffSiteError(Exception):
    """A navigation ended on a host the job does not allow (the resolver rules should have
    stopped it; this is the check that does not depend on them)."""


class BrowserGone(Exception):
    """The browser crashed or disconnected under a container; retry it elsewhere."""


@dataclass(slots=True, eq=False)
class Slot:
    """One page, and the gallery it has open (click mode keeps it open between containers)."""

    page: Page
    gallery: str | None = None
    panel_open: bool = False


@dataclass(slots=True)
class Counters:
    containers: int = 0
    ok: int = 0
    partial: int = 0
    failed: int = 0
    since_recycle: int = 0
    recycles: int = 0
    relaunches: int = 0
    blocked_requests: int = 0
    dialogs_dismissed: int = 0
    discovered: int = 0
    recycle_reasons: list[str] = field(default_factory=list)


class BrowserWorker:
    def __init__(
        self,
        job: JobSpec,
        name: str = "worker",
        *,
        out_dir: Path | None = None,
        learner: PerformanceLearner | None = None,
        found: FoundBrowser | None = None,
    ) -> None:
        self.job = job
        self.name = name
        self.learner = learner or PerformanceLearner()
        self.cache = DomCache()
        self.counters = Counters()
        self._out_dir = out_dir or job.output.dir
        self._found = found
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._context: BrowserContext | None = None
        self._slots: list[Slot] = []
        self._free: list[Slot] = []
        self._in_flight = 0
        self._maintenance: str | None = None
        self._cond = asyncio.Condition()
        self._background: set[asyncio.Future] = set()
        self._allowed_hosts: set[str] = set()
        self._settings = Settings.from_env()

    # -- lifecycle -----------------------------------------------------------
    async def start(self) -> None:
        if self._found is None:
            explicit = self.job.browser.executable or self._settings.browser
            self._found = await asyncio.to_thread(find_browser, explicit)
        self._playwright = await async_playwright().start()
        for url in self.job.sources.urls:
            self._allowed_hosts.add(urlsplit(url).hostname or "")
        self._allowed_hosts.update(self.job.browser.allow_domains)
        await self._launch()

    async def _launch(self) -> None:
        assert self._playwright is not None and self._found is not None
        headless = self.job.browser.headless
        headless = self._settings.headless if headless is None else headless
        self._browser = await launch_browser(
            self._playwright, self._found, headless=headless, only_hosts=self._allowed_hosts
        )
        await self._new_context()

    async def _new_context(self) -> None:
        assert self._browser is not None
        width, height = self.job.browser.viewport
        context = await self._browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(self.job.timeouts.navigation.total_seconds() * 1000)
        await context.add_init_script(script=LANDMARKS_JS)
        await context.add_init_script(script=GALLERY_JS)
        context.on("requestfailed", self._count_blocked)
        self._context = context
        pages = [await context.new_page() for _ in range(self.job.budget.pages_per_actor)]
        for page in pages:
            page.on("dialog", self._dismiss_dialog)
        self._slots = [Slot(page) for page in pages]
        self._free = list(self._slots)

    def _count_blocked(self, request) -> None:
        """Requests to hosts outside the job fail to resolve (see launch_browser): count them."""
        if "ERR_NAME_NOT_RESOLVED" in (request.failure or ""):
            self.counters.blocked_requests += 1

    def _allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme not in {"http", "https"} or parts.hostname in self._allowed_hosts

    def _dismiss_dialog(self, dialog) -> None:
        """alert/confirm/prompt would block the page until answered: dismiss at once."""
        self.counters.dialogs_dismissed += 1
        task = asyncio.ensure_future(dialog.dismiss())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _browser_alive(self) -> bool:
        return self._browser is not None and self._browser.is_connected()

    async def close(self) -> None:
        """Shut Playwright down cleanly; safe to call twice."""
        if self._browser is not None:
            with contextlib.suppress(PlaywrightError):
                await self._browser.close()
            self._browser = None
        if self._playwright is not None:
            await self._playwright.stop()
            self._playwright = None

    def browser_tree_pss(self) -> int:
        """PSS of this process and its children: the Playwright driver and the browser."""
        return pss_of(tree_pids(os.getpid()))

    def request_recycle(self, reason: str) -> None:
        """Recreate the context once the slots in use come back (the MetricsActor asks this)."""
        self._maintenance = self._maintenance or f"recycle: {reason}"

    async def _maintain(self) -> None:
        """Relaunch a dead browser or recycle the context; called with no container in flight."""
        reason = self._maintenance or ""
        self._maintenance = None
        if not self._browser_alive():
            self.counters.relaunches += 1
            await self._discard_browser()
            await self._launch()
            return
        self.counters.recycles += 1
        self.counters.recycle_reasons.append(reason)
        self.counters.since_recycle = 0
        assert self._context is not None
        await self._context.close()
        await self._new_context()

    async def _discard_browser(self) -> None:
        if self._browser is not None:
            with contextlib.suppress(PlaywrightError):
                await self._browser.close()
        self._browser = None
        self._context = None

    # -- slots ---------------------------------------------------------------
    async def _acquire(self, gallery: str | None) -> Slot:
        async with self._cond:
            while True:
                if not self._browser_alive() and self._maintenance is None:
                    self._maintenance = "relaunch: browser gone"
                if self._maintenance and self._in_flight == 0:
                    await self._maintain()
                if not self._maintenance and self._free:
                    slot = self._pick(gallery)
                    self._in_flight += 1
                    return slot
                await self._cond.wait()

    def _pick(self, gallery: str | None) -> Slot:
        """Prefer a page that already has this gallery open: no reload, no re-scroll."""
        for index, slot in enumerate(self._free):
            if gallery is not None and slot.gallery == gallery:
                return self._free.pop(index)
        return self._free.pop()

    async def _release(self, slot: Slot) -> None:
        async with self._cond:
            self._in_flight -= 1
            if slot in self._slots:  # a slot from before a recycle is simply dropped
                self._free.append(slot)
            self._check_recycle()
            self._cond.notify_all()

    def _check_recycle(self) -> None:
        """After N containers, or when the browser tree outgrows its RSS bound (checked every
        RSS_CHECK_EVERY containers: a process-tree walk costs about a millisecond)."""
        if self._maintenance:
            return
        since = self.counters.since_recycle
        if since >= self.job.browser.recycle_after:
            self._maintenance = f"recycle: {since} containers"
        elif since and since % RSS_CHECK_EVERY == 0:
            task = asyncio.ensure_future(self._check_memory())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _check_memory(self) -> None:
        """PSS, not RSS: summed RSS counts Chromium's shared pages once per process (3× here).
        Measured in a thread: a page-table walk must not stall the pages on this loop."""
        used = await asyncio.to_thread(self.browser_tree_pss)
        if used > self.job.browser.recycle_rss and not self._maintenance:
            self._maintenance = f"recycle: tree PSS {used >> 20} MiB over the bound"

    # -- deadlines -----------------------------------------------------------
    def _deadline(self, domain: str, operation: str, default: timedelta | None = None) -> timedelta:
        timeouts = self.job.timeouts
        return self.learner.deadline(
            domain,
            operation,
            default=default or timeouts.wait,
            low=timeouts.wait_min,
            high=timeouts.wait_max,
            margin=timeouts.margin,
        )

    # -- discovery -----------------------------------------------------------
    async def discover(self, source: str) -> AsyncIterator[list[Container]]:
        """Scroll ``source``'s gallery and yield new containers in chunks as they appear."""
        spec = self.job.containers
        if spec.open is OpenMode.SELF:
            yield [self.self_container(source, 0)]
            return
        slot = await self._acquire(source)
        domain = domain_of(source)
        try:
            if slot.gallery != source:
                await self._goto(slot, source)
                slot.gallery = source
            await self._wait_for_cards(slot, domain)
            seen: set[str] = set()
            limit = spec.limit
            while True:
                idle = self._deadline(domain, "discover_idle", self.job.timeouts.discovery_idle)
                step = await slot.page.evaluate(
                    "(a) => window.__landmarkGallery.step(a)", self._gallery_args(idle, domain)
                )
                if step["grewAfterMs"] is not None:
                    self.learner.observe(domain, "discover_idle", step["grewAfterMs"] / 1000)
                fresh = self._new_containers(source, step["cards"], seen, limit)
                if fresh:
                    self.counters.discovered += len(fresh)
                    yield fresh
                if step["exhausted"] or (limit is not None and len(seen) >= limit):
                    self.cache.remember_layout(
                        DomCache.key(domain, "gallery", None), step["scroller"], spec.selector
                    )
                    return
        except (PlaywrightError, OffSiteError) as error:
            if not self._browser_alive():
                raise BrowserGone(f"the browser died discovering {source}") from None
            raise RuntimeError(f"discovery of {source} failed: {_first_line(error)}") from None
        finally:
            await self._release(slot)

    async def _wait_for_cards(self, slot: Slot, domain: str) -> None:
        """The first card, before the scroll container is chosen: it is found from a card."""
        timeout = self._deadline(domain, "first_card")
        started = time.monotonic()
        found = await slot.page.evaluate(
            "(a) => window.__landmarkGallery.ready(a)",
            {
                "cardSelector": self.job.containers.selector,
                "readyMs": timeout.total_seconds() * 1000,
            },
        )
        if not found:
            raise RuntimeError(
                f"no container matching {self.job.containers.selector!r} appeared on "
                f"{slot.page.url} within {timeout.total_seconds():g}s"
            )
        self.learner.observe(domain, "first_card", time.monotonic() - started)

    def _gallery_args(self, idle: timedelta, domain: str) -> dict[str, Any]:
        """Arguments for gallery.js; the scroll container is the job's, else the one discovery
        settled on for this domain (DomCache), else gallery.js finds it again."""
        spec = self.job.containers
        layout = self.cache.layout(DomCache.key(domain, "gallery", None))
        return {
            "cardSelector": spec.selector,
            "scrollContainer": spec.scroll_container or (layout and layout.scroll_container),
            "linkSelector": spec.link_selector,
            "idAttr": spec.id_attr if spec.id_from is IdSource.ATTR else None,
            "wantText": spec.id_from is IdSource.TEXT_HASH,
            "idleMs": idle.total_seconds() * 1000,
        }

    def _new_containers(
        self, source: str, cards: list[dict], seen: set[str], limit: int | None
    ) -> list[Container]:
        spec = self.job.containers
        fresh = []
        for card in cards:
            if limit is not None and len(seen) >= limit:
                break
            if spec.id_from is IdSource.ATTR:
                identity = card["attr"]
            elif spec.id_from is IdSource.LINK:
                identity = card["href"]
            else:
                identity = _text_hash(card["text"] or "")
            if not identity or identity in seen:
                continue
            seen.add(identity)
            fresh.append(
                Container(
                    id=identity,
                    source=source,
                    position=len(seen) - 1,
                    open=spec.open.value,
                    url=card["href"],
                )
            )
        return fresh

    @staticmethod
    def self_container(url: str, position: int) -> Container:
        return Container(id=_text_hash(url), source=url, position=position, open="self", url=url)

    # -- extraction ----------------------------------------------------------
    async def extract(self, batch: list[Container]) -> list[Record]:
        """One record per container, in batch order; a container's failure never raises."""
        return list(await asyncio.gather(*(self._extract_one(c) for c in batch)))

    async def _extract_one(self, container: Container) -> Record:
        started = time.monotonic()
        gallery = container.source if container.open == OpenMode.CLICK else None
        slot = await self._acquire(gallery)
        progress = _Progress()
        try:
            async with asyncio.timeout(self.job.timeouts.container.total_seconds()):
                record = await self._open_and_read(slot, container, progress)
        except TimeoutError:
            slot.gallery = None  # the page is in an unknown state: reload it next time
            record = self._failure(container, progress.phase, "container deadline exceeded")
        except BrowserGone as gone:
            slot.gallery = None
            record = self._failure(container, progress.phase, f"browser gone: {gone}")
        except OffSiteError as off_site:
            slot.gallery = None
            record = self._failure(container, progress.phase, str(off_site), retryable=False)
        except PlaywrightError as error:
            slot.gallery = None
            reason = _first_line(error)
            if not self._browser_alive():
                reason = f"browser gone: {reason}"
            record = self._failure(container, progress.phase, reason)
        finally:
            self.counters.containers += 1
            self.counters.since_recycle += 1
            await self._release(slot)
        record.timings.update(progress.timings)
        record.timings["total"] = round((time.monotonic() - started) * 1000, 2)
        record.actor = self.name
        setattr(self.counters, record.status, getattr(self.counters, record.status) + 1)
        return record

    def _failure(self, container: Container, phase: str, reason: str, retryable=True) -> Record:
        return Record.failure(container, phase, reason, retryable=retryable, actor=self.name)

    async def _open_and_read(self, slot: Slot, container: Container, progress: _Progress) -> Record:
        domain = domain_of(container.target)
        spec = self.job.containers
        cache_key = DomCache.key(domain, container.open, spec.panel_selector)
        plan = self._plan(domain, cache_key)
        settle = [
            {
                "root": spec.panel_selector if container.open == OpenMode.CLICK else None,
                "fields": plan,
            },
            self._deadline(domain, "settle").total_seconds() * 1000,
            SETTLE_QUIET_MS,
            ERROR_SELECTOR,
        ]
        if container.open == OpenMode.CLICK:
            settled = await self._click_and_settle(slot, container, settle, progress)
        else:
            settled = await self._navigate_and_settle(slot, container, settle, progress)
        if isinstance(settled, Record):
            return settled
        progress.mark("wait")
        return await self._record_from(
            container, settled, slot.page.url, domain, cache_key, plan, progress
        )

    async def _click_and_settle(self, slot, container, settle, progress) -> Settled | Record:
        """Click the card and read its panel in ONE page call: open, wait and resolve."""
        progress.phase = Phase.OPEN
        if slot.gallery != container.source:
            await self._goto(slot, container.source)
            slot.gallery = container.source
        domain = domain_of(container.source)
        idle = self._deadline(domain, "discover_idle", self.job.timeouts.discovery_idle)
        spec = self.job.containers
        opening = self._gallery_args(idle, domain) | {
            "id": container.id,
            "href": container.url,
            "panelSelector": spec.panel_selector,
            "closeSelector": spec.close_selector,
            "timeoutMs": self._deadline(domain, "close").total_seconds() * 1000,
            "readyMs": self._deadline(domain, "first_card").total_seconds() * 1000,
            "maxSteps": SEEK_MAX_STEPS,
        }
        grace = self.job.timeouts.navigation.total_seconds() + settle[1] / 1000
        async with asyncio.timeout(grace):
            answer = await slot.page.evaluate(OPEN_AND_SETTLE, [opening, *settle])
        opened = answer["opened"]
        for part in ("closeMs", "seekMs", "clickMs"):
            if part in opened:
                progress.timings[part[:-2]] = round(opened[part], 2)
        if not opened["ok"]:
            progress.mark("open")
            return self._failure(container, Phase.OPEN, opened["reason"])
        progress.phase = Phase.WAIT
        return parse_settled(answer)

    async def _navigate_and_settle(self, slot, container, settle, progress) -> Settled | Record:
        failure = await self._open_by_link(slot, container, progress)
        if failure is not None:
            return failure
        progress.phase = Phase.WAIT
        root, plan = settle[0]["root"], settle[0]["fields"]
        return await settle_and_resolve(
            slot.page,
            root,
            plan,
            timeout=timedelta(milliseconds=settle[1]),
            quiet=timedelta(milliseconds=SETTLE_QUIET_MS),
            error_selector=ERROR_SELECTOR,
        )

    async def _open_by_link(self, slot: Slot, container: Container, progress: _Progress):
        progress.phase = Phase.OPEN
        slot.gallery = None
        url = container.url or container.source
        response = await self._goto(slot, url)
        progress.mark("open")
        if response is not None and response.status >= 400:
            status = response.status
            retryable = status >= 500 or status == 429
            return self._failure(container, Phase.OPEN, f"HTTP {status} for {url}", retryable)
        return None

    async def _goto(self, slot: Slot, url: str):
        started = time.monotonic()
        try:
            response = await slot.page.goto(
                url,
                wait_until="domcontentloaded",
                timeout=self.job.timeouts.navigation.total_seconds() * 1000,
            )
        except PlaywrightError:
            if not self._browser_alive():
                raise BrowserGone("the browser disconnected during navigation") from None
            raise
        if not self._allowed(slot.page.url):
            raise OffSiteError(f"the page left the job's hosts for {slot.page.url}")
        self.learner.observe(domain_of(url), "navigate", time.monotonic() - started)
        return response

    def _plan(self, domain: str, cache_key: str) -> list[dict]:
        """The DomCache's verified path first (spatial locality), then the learner's chain."""
        orders = {f.name: ["cached", *self.learner.order(domain, f.name)] for f in self.job.fields}
        return field_plan(self.job.fields, orders, self.cache.field_paths(cache_key))

    async def _record_from(
        self, container, settled, page_url, domain, cache_key, plan, progress
    ) -> Record:
        if settled.state == "error":
            return self._failure(container, Phase.WAIT, f"page reported: {settled.error_text}")
        if settled.state == "timeout" and not any(
            raw.get("value") is not None for raw in settled.fields.values()
        ):
            # The wait we gave up on is a sample too, so the next deadline grows with it.
            self.learner.observe(domain, "settle", settled.waited_ms / 1000)
            return self._failure(container, Phase.WAIT, "no landmark appeared before the deadline")
        self.learner.observe(domain, "settle", settled.waited_ms / 1000)
        progress.phase = Phase.EXTRACT
        record = Record(
            id=container.id, source=container.source, position=container.position, status=Status.OK
        )
        offered = set(self.cache.field_paths(cache_key))
        orders = {entry["name"]: entry["order"] for entry in plan}
        strategies: dict[str, str | None] = {}
        paths: dict[str, list[int] | None] = {}
        for spec in self.job.fields:
            raw = settled.fields.get(spec.name, {})
            strategy = raw.get("strategy")
            strategies[spec.name] = strategy
            paths[spec.name] = raw.get("path")
            value, error = None, raw.get("error") or "not found"
            if raw.get("value") is not None:
                value, error = finish_value(spec, raw["value"], page_url)
            # A value that fails its pattern or type is no win for the strategy that found it.
            order = orders[spec.name]
            tried = order[: order.index(strategy) + 1] if strategy in order else order
            self.learner.record_strategy(
                domain, spec.name, tried, strategy if error is None else None
            )
            record.fields[spec.name] = value
            if strategy:
                record.strategies[spec.name] = strategy
            if error is not None:
                record.errors.append(Problem(phase=Phase.EXTRACT, reason=error, field=spec.name))
                if spec.required:
                    record.status = Status.PARTIAL
        self.cache.record_fields(cache_key, strategies, paths, offered)
        if self.job.download is not None:
            progress.phase = Phase.DOWNLOAD
            await self._download(record, slot_page_url=page_url)
            progress.mark("download")
        return record

    async def _download(self, record: Record, slot_page_url: str) -> None:
        spec = self.job.download
        assert spec is not None
        url = record.fields.get(spec.field)
        if not url:
            record.errors.append(Problem(phase=Phase.DOWNLOAD, reason="nothing to download"))
            return
        target_dir = self._out_dir / spec.dir
        try:
            record.download = await download_to_file(url, target_dir, record.id, spec.max_bytes)
        except OSError as error:
            record.errors.append(Problem(phase=Phase.DOWNLOAD, reason=str(error)))
            record.status = Status.PARTIAL

    # -- stats ---------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        counters = self.counters
        return {
            "name": self.name,
            "pid": os.getpid(),
            "containers": counters.containers,
            "ok": counters.ok,
            "partial": counters.partial,
            "failed": counters.failed,
            "discovered": counters.discovered,
            "recycles": counters.recycles,
            "relaunches": counters.relaunches,
            "blocked_requests": counters.blocked_requests,
            "dialogs_dismissed": counters.dialogs_dismissed,
            "in_flight": self._in_flight,
            "cache": self.cache.stats(),
            "learner": self.learner.summary(),
        }


class _Progress:
    """Which phase a container is in, and how long each finished phase took (ms)."""

    __slots__ = ("_last", "phase", "timings")

    def __init__(self) -> None:
        self.phase: str = Phase.OPEN
        self.timings: dict[str, float] = {}
        self._last = time.monotonic()

    def mark(self, name: str) -> None:
        now = time.monotonic()
        self.timings[name] = round((now - self._last) * 1000, 2)
        self._last = now


def _text_hash(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).encode()).hexdigest()[:16]


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
