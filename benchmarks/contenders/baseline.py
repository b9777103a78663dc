"""The seeds' baseline: how the systems this project replaces spent their time.

Written from the seeds' own account of their extractor
(/work/shared/seeds/004_*.txt, "Current System Analysis"), not from their
code: strictly sequential; a fresh page per item; a fixed 2-3 s wait after
every navigation and click; network-idle detection with a 3 s timeout;
2-3 s of "post-scroll stabilisation" after every scroll, with the
non-functional ``window.scrollBy`` tried before ``container.scrollTop``;
and a four-strategy fallback chain per field whose last strategy retries up
to three times with a wait in between.

The fixed sleeps are the point of this contender (they are what is measured)
and belong here only; actors/ and coordinator/ never sleep. Every delay is
multiplied by ``RunSpec.delay_scale``: 1.0 is the seeds' own setting, 0.1 a
shortened one that shows what the structure costs once the sleeps shrink.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from playwright.async_api import Error as PlaywrightError

from landmark.benchmarks.contenders.fields import convert, field_specs
from landmark.benchmarks.contenders.spec import ItemResult, Outcome, RunSpec, first_record_s

# Strategy 1's selectors: the class names of an older build; hashed names never match them.
LEGACY_SELECTORS = {
    "created": ".metadata-panel .creation-time",
    "prompt": ".metadata-panel .prompt-text",
    "model": ".metadata-panel .model-name",
    "seed": ".metadata-panel .seed-value",
    "dimensions": ".metadata-panel .dimensions",
    "image": ".download-button",
}
SCROLL_STEPS_MAX = 400
FIND_SCROLLER_JS = """() => {
  let best = null;
  for (const el of document.querySelectorAll('*')) {
    const style = getComputedStyle(el);
    if (!/(auto|scroll)/.test(style.overflowY) || el.scrollHeight <= el.clientHeight) continue;
    if (!best || el.clientHeight * el.clientWidth > best.clientHeight * best.clientWidth) best = el;
  }
  if (best) best.setAttribute('data-baseline-scroller', '');
  return !!best;
}"""


@dataclass(frozen=True, slots=True)
class SeedDelays:
    """The seeds' fixed waits, in seconds, before scaling."""

    post_navigation: float = 3.0  # "Fixed Delays: 30+ instances of 2-3 second waits"
    post_click: float = 2.0
    network_idle_timeout: float = 3.0  # "Network Idle Detection: 3-second timeouts"
    post_scroll: float = 2.5  # "Post-Scroll Stabilization: 2-3 second forced delays"
    retry_wait: float = 2.0  # "Wasted Time: 2-3 seconds per failed attempt"
    strategy4_retries: int = 3  # "Reduce retry attempts from 3 to 1 for Strategy 4"

    def ms(self, name: str, scale: float) -> float:
        return getattr(self, name) * scale * 1000


async def run_baseline(spec: RunSpec) -> Outcome:
    from playwright.async_api import async_playwright

    from landmark.actors.browser import find_browser, launch_browser
    from landmark.config.settings import Settings

    if len(spec.sources) != 1:
        raise ValueError("the baseline takes one source")
    positions = spec.positions if spec.positions is not None else list(range(spec.items))
    seeds = _Seeds(spec, SeedDelays())
    found = find_browser(Settings.from_env().browser)
    async with async_playwright() as playwright:
        started = time.monotonic()
        browser = await launch_browser(playwright, found)
        try:
            seeds.context = await browser.new_context()
            if spec.mode == "click":
                records = [await seeds.click_item(position) for position in positions]
            else:
                records = await seeds.link_items(positions)
            wall = time.monotonic() - started
        finally:
            await browser.close()
    return Outcome(
        label=spec.label,
        kind=spec.kind,
        records=records,
        wall_s=wall,
        first_record_s=first_record_s(records, started),
        extra={"positions": positions, "delay_scale": spec.delay_scale},
    )


class _Seeds:
    def __init__(self, spec: RunSpec, delays: SeedDelays) -> None:
        self.spec = spec
        self.delays = delays
        self.context: Any = None

    def _ms(self, name: str) -> float:
        return self.delays.ms(name, self.spec.delay_scale)

    # -- navigation, the seeds' way ---------------------------------------------------
    async def _open(self, url: str):
        page = await self.context.new_page()  # a fresh page for every item
        await page.goto(url)
        # The seeds logged a network-idle timeout and carried on.
        with contextlib.suppress(PlaywrightError):
            await page.wait_for_load_state("networkidle", timeout=self._ms("network_idle_timeout"))
        await page.wait_for_timeout(self._ms("post_navigation"))
        return page

    async def _scroll_until(self, page, count: int) -> list:
        """Scroll until at least ``count`` cards exist: scrollBy first, then scrollTop."""
        await page.evaluate(FIND_SCROLLER_JS)
        cards = await page.query_selector_all("a[data-id]")
        for _ in range(SCROLL_STEPS_MAX):
            if len(cards) >= count:
                break
            before = len(cards)
            for method in (
                "() => window.scrollBy(0, window.innerHeight)",
                "() => { const s = document.querySelector('[data-baseline-scroller]');"
                " if (s) s.scrollTop = s.scrollHeight; }",
            ):
                await page.evaluate(method)
                await page.wait_for_timeout(self._ms("post_scroll"))
                cards = await page.query_selector_all("a[data-id]")
                if len(cards) > before:
                    break
            else:
                break  # nothing more loads: the end of the gallery
        return cards

    async def click_item(self, position: int) -> ItemResult:
        began = time.monotonic()
        page = await self._open(self.spec.sources[0])
        try:
            cards = await self._scroll_until(page, position + 1)
            if len(cards) <= position:
                return _failed(f"position-{position}", began, "card never appeared")
            cid = await cards[position].get_attribute("data-id") or f"position-{position}"
            await cards[position].click()
            await page.wait_for_timeout(self._ms("post_click"))
            fields = await self._extract(page, "[role=dialog] ")
            return ItemResult(cid, fields, (time.monotonic() - began) * 1000)
        finally:
            await page.close()

    async def link_items(self, positions: list[int]) -> list[ItemResult]:
        gallery = await self._open(self.spec.sources[0])
        try:
            cards = await self._scroll_until(gallery, max(positions) + 1)
            links = [
                (await cards[p].get_attribute("data-id"), await cards[p].get_attribute("href"))
                for p in positions
                if p < len(cards)
            ]
        finally:
            await gallery.close()
        records = []
        for cid, href in links:
            began = time.monotonic()
            page = await self._open(urljoin(self.spec.sources[0], href or ""))
            try:
                fields = await self._extract(page, "")
                records.append(ItemResult(cid or "?", fields, (time.monotonic() - began) * 1000))
            finally:
                await page.close()
        return records

    # -- the four-strategy fallback chain --------------------------------------------
    async def _extract(self, page, scope: str) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for name, labels, kind in field_specs():
            raw = await self._strategy_chain(page, scope, name, labels, kind)
            fields[name] = convert(raw, kind) if kind != "url" else _absolute(page.url, raw)
        return fields

    async def _strategy_chain(self, page, scope, name, labels, kind) -> str | None:
        attr = "href" if kind == "url" else None
        root = page.locator(scope.strip() or "body").first
        legacy = root.locator(LEGACY_SELECTORS.get(name, f".{name}"))  # 1: class names
        if await legacy.count():
            return await _read(legacy.first, attr)
        exact = await _shown(root.get_by_text(labels[0], exact=True))  # 2: the exact label
        if exact is not None:
            return await _beside(exact, attr)
        for label in labels:  # 3: every known label, case-insensitive, trailing ':' allowed
            pattern = re.compile(r"^\s*" + re.escape(label) + r"\s*:?\s*$", re.IGNORECASE)
            loose = await _shown(root.get_by_text(pattern))
            if loose is not None:
                return await _beside(loose, attr)
        return await self._full_text(page, scope, labels, attr)  # 4: the panel's text

    async def _full_text(self, page, scope, labels, attr) -> str | None:
        if attr:
            return None
        for attempt in range(self.delays.strategy4_retries):
            if attempt:
                await page.wait_for_timeout(self._ms("retry_wait"))
            text = await page.locator(scope.strip() or "body").first.inner_text()
            for label in labels:
                match = re.search(rf"(?im)^\s*{re.escape(label)}\s*:?\s*\n\s*(.+)$", text)
                if match:
                    return match.group(1).strip()
        return None


async def _shown(locator):
    """The first match outside a hidden row (a ``hidden`` attribute or ``aria-hidden``)."""
    for handle in await locator.element_handles():
        if await handle.evaluate("el => !el.closest('[hidden],[aria-hidden=true]')"):
            return handle
    return None


async def _read(locator, attr: str | None) -> str | None:
    return await locator.get_attribute(attr) if attr else await locator.text_content()


async def _beside(label, attr: str | None) -> str | None:
    """The value next to a label (or the labelled element's own attribute)."""
    if attr:
        return await label.get_attribute(attr)
    return await label.evaluate("el => el.nextElementSibling && el.nextElementSibling.textContent")


def _absolute(base: str, href: str | None) -> str | None:
    return urljoin(base, href) if href else None


def _failed(cid: str, began: float, reason: str) -> ItemResult:
    return ItemResult(cid, {}, (time.monotonic() - began) * 1000, ok=False, error=reason)
