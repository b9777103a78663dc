"""Bare Playwright: the ceiling of what one browser can do on this site.

A minimal best-practice loop, no framework: one browser, one context, N pages
reused for the whole run, the async API, and one in-page call per container
that opens it, waits on a MutationObserver (never rAF polling, which stalls
on pages that are not in front) and reads every field. Click mode: each page
opens the gallery and takes every N-th card. Link mode: one page scrolls the
gallery for ids while N pages visit ``/item/{id}``.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urljoin

from landmark.benchmarks.contenders.fields import READ_ROWS_JS, fields_from_rows
from landmark.benchmarks.contenders.spec import ItemResult, Outcome, RunSpec, first_record_s

STEP_TIMEOUT_MS = 30_000
LINK_ATTEMPTS = 3

# `until(check, target)`: resolve with check()'s first truthy value, re-checked on every DOM
# mutation under target; reject at the deadline.
_UNTIL_JS = """
const until = (check, target, deadline) => new Promise((resolve, reject) => {
  let observer = null;
  const expire = () => { if (observer) observer.disconnect(); reject(new Error('timeout')); };
  const timer = setTimeout(expire,
                           Math.max(0, deadline - Date.now()));
  const first = check();
  if (first) { clearTimeout(timer); resolve(first); return; }
  observer = new MutationObserver(() => {
    const value = check();
    if (value) { clearTimeout(timer); observer.disconnect(); resolve(value); }
  });
  observer.observe(target,
    { subtree: true, childList: true, attributes: true, characterData: true });
});
const part = (name) => document.querySelector(`[class$="-${name}"]`);
const loadedCards = (grid, scroller, status, index) => {
  const cards = grid.querySelectorAll('a[data-id]');
  if (cards.length > index) return cards;
  if (status.hasAttribute('data-complete')) return 'complete';
  scroller.scrollTop = scroller.scrollHeight;  // the page loads the next page near the end
  return null;
};
"""

# Click the index-th card, wait for its panel to be filled, read it: one round trip.
OPEN_CARD_JS = (
    "async ([index, timeoutMs]) => {"
    + _UNTIL_JS
    + f"const readRows = {READ_ROWS_JS};"
    + """
  const deadline = Date.now() + timeoutMs;
  const [grid, scroller, status, side] = ['grid', 'scroller', 'status', 'side'].map(part);
  const cards = await until(() => loadedCards(grid, scroller, status, index), scroller, deadline);
  if (cards === 'complete') return { done: true };
  const card = cards[index];
  const id = card.dataset.id;
  card.click();
  const panel = await until(() => {
    const open = side.querySelector('[role=dialog]');
    return open && open.dataset.item === id && !open.hasAttribute('aria-busy') ? open : null;
  }, side, deadline);
  const alert = panel.querySelector('[role=alert]');
  if (alert) return { id, error: alert.textContent };
  return { id, rows: readRows(panel) };
}"""
)

# Ids of cards from `start` on, scrolling for more when there are none yet; [] at the end.
CARD_IDS_JS = (
    "async ([start, timeoutMs]) => {"
    + _UNTIL_JS
    + """
  const deadline = Date.now() + timeoutMs;
  const [grid, scroller, status] = ['grid', 'scroller', 'status'].map(part);
  const cards = await until(() => loadedCards(grid, scroller, status, start), scroller, deadline);
  if (cards === 'complete') return [];
  return Array.from(cards).slice(start).map((card) => card.dataset.id);
}"""
)


async def run_bare(spec: RunSpec) -> Outcome:
    from playwright.async_api import async_playwright

    from landmark.actors.browser import find_browser, launch_browser
    from landmark.config.browser_spec import BrowserSpec
    from landmark.config.settings import Settings

    if len(spec.sources) != 1:
        raise ValueError("bare Playwright takes one source")
    found = find_browser(Settings.from_env().browser)
    async with async_playwright() as playwright:
        started = time.monotonic()
        # The browser landmark runs by default (browser.load_images off): the same browser,
        # so the ratio measures the framework, not a setting.
        browser = await launch_browser(playwright, found, load_images=BrowserSpec().load_images)
        try:
            context = await browser.new_context()
            pages = [await context.new_page() for _ in range(spec.pages)]
            if spec.mode == "click":
                records = await _click_mode(pages, spec)
            else:
                records = await _link_mode(context, pages, spec)
            wall = time.monotonic() - started
        finally:
            await browser.close()
    first = first_record_s(records, started)
    return Outcome(
        label=spec.label, kind=spec.kind, records=records, wall_s=wall, first_record_s=first
    )


async def _click_mode(pages, spec: RunSpec) -> list[ItemResult]:
    source = spec.sources[0]
    await asyncio.gather(*(page.goto(source, wait_until="domcontentloaded") for page in pages))
    done = await asyncio.gather(*(_click_slot(page, k, spec) for k, page in enumerate(pages)))
    return [record for slot in done for record in slot]


async def _click_slot(page, slot: int, spec: RunSpec) -> list[ItemResult]:
    records = []
    for index in range(slot, spec.items, spec.pages):
        began = time.monotonic()
        answer = await page.evaluate(OPEN_CARD_JS, [index, STEP_TIMEOUT_MS])
        if answer.get("done"):
            break
        latency = (time.monotonic() - began) * 1000
        if "error" in answer:
            records.append(ItemResult(answer["id"], {}, latency, ok=False, error=answer["error"]))
        else:
            records.append(ItemResult(answer["id"], fields_from_rows(answer["rows"]), latency))
    return records


async def _link_mode(context, pages, spec: RunSpec) -> list[ItemResult]:
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    discovery = await context.new_page()
    await discovery.goto(spec.sources[0], wait_until="domcontentloaded")
    workers = [asyncio.create_task(_link_slot(page, queue, spec)) for page in pages]
    found = 0
    while found < spec.items:
        ids = await discovery.evaluate(CARD_IDS_JS, [found, STEP_TIMEOUT_MS])
        if not ids:
            break
        for cid in ids[: spec.items - found]:
            queue.put_nowait(cid)
        found += len(ids[: spec.items - found])
    await discovery.close()
    for _ in workers:
        queue.put_nowait(None)
    done = await asyncio.gather(*workers)
    return [record for slot in done for record in slot]


async def _link_slot(page, queue: asyncio.Queue[str | None], spec: RunSpec) -> list[ItemResult]:
    records = []
    while (cid := await queue.get()) is not None:
        url = urljoin(spec.sources[0], f"/item/{cid}")
        began = time.monotonic()
        error = "no response"
        for _ in range(LINK_ATTEMPTS):
            response = await page.goto(url, wait_until="domcontentloaded")
            if response is not None and response.ok:
                rows = await page.evaluate(READ_ROWS_JS, None)
                latency = (time.monotonic() - began) * 1000
                records.append(ItemResult(cid, fields_from_rows(rows), latency))
                break
            error = f"HTTP {response.status}" if response is not None else "no response"
        else:
            latency = (time.monotonic() - began) * 1000
            records.append(ItemResult(cid, {}, latency, ok=False, error=error))
    return records
