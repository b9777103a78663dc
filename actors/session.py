"""The browser side of a worker: one browser, one long-lived context, a few pages (slots).

A slot is a page plus what it has open. Containers acquire a slot, use it, release it.
Between containers the session does its maintenance, never under a page in use:

- **relaunch** when the browser died (a crash, the OOM killer, a kill trial);
- **recycle** the context after ``browser.recycle_after`` containers or when the tree's
  PSS outgrows ``browser.recycle_rss``: memory grows inside a long-lived context;
- **replace a page** that missed a deadline: its renderer may still be spinning in a
  script, and the next container must not inherit it.

Every Playwright call here has a deadline: a browser that dies while launching leaves
``new_page()`` waiting for ever, and a hung renderer can hold ``page.close()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import Browser, BrowserContext, Page, Playwright, async_playwright
from playwright.async_api import Error as PlaywrightError

from actors.browser import FoundBrowser, find_browser, launch_browser
from actors.extraction import LANDMARKS_JS
from actors.process_tree import pss_of, tree_pids
from config.job import JobSpec
from config.records import domain_of
from config.settings import Settings

GALLERY_JS = resources.files("actors").joinpath("gallery.js").read_text(encoding="utf-8")
RSS_CHECK_EVERY = 50
CLOSE_DEADLINE_S = 5.0  # closing a page, a context or a browser; past it, relaunch
RELAUNCH_FAILURES = 2  # relaunches in a row that fail before the session gives up


class OffSiteError(Exception):
    """A navigation ended on a host the job does not allow (the resolver rules should have
    stopped it; this is the check that does not depend on them)."""


class BrowserGone(Exception):
    """The browser crashed or disconnected under a container; retry it elsewhere."""


class SessionBroken(Exception):
    """The browser cannot be brought back: the actor should be replaced."""


@dataclass(slots=True, eq=False)
class Slot:
    """One page, and the gallery it has open (click mode keeps it open between containers)."""

    page: Page
    gallery: str | None = None
    poisoned: bool = False  # missed a deadline: replace the page before it is used again


@dataclass(slots=True)
class SessionCounters:
    since_recycle: int = 0
    recycles: int = 0
    relaunches: int = 0
    pages_replaced: int = 0
    blocked_requests: int = 0
    dialogs_dismissed: int = 0
    recycle_reasons: list[str] = field(default_factory=list)


class BrowserSession:
    def __init__(
        self,
        job: JobSpec,
        *,
        found: FoundBrowser | None = None,
        allowed_hosts: Iterable[str] = (),
        learner_observe=None,
    ) -> None:
        self.job = job
        self.counters = SessionCounters()
        self._found = found
        self._settings = Settings.from_env()
        self._allowed_hosts = {h for h in allowed_hosts if h} | set(job.browser.allow_domains)
        self._observe = learner_observe or (lambda *args: None)
        self._deadline_s = job.timeouts.navigation.total_seconds()
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._context: BrowserContext | None = None
        self._slots: list[Slot] = []
        self._free: list[Slot] = []
        self._in_flight = 0
        self._maintenance: str | None = None
        self._relaunch_failures = 0
        self._cond = asyncio.Condition()
        self._background: set[asyncio.Future] = set()

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        if self._found is None:
            explicit = self.job.browser.executable or self._settings.browser
            self._found = await asyncio.to_thread(find_browser, explicit)
        async with asyncio.timeout(self._deadline_s):
            self._playwright = await async_playwright().start()
        await self._launch()

    async def _launch(self) -> None:
        if self._playwright is None or self._found is None:
            raise SessionBroken("the session was not started")
        headless = self.job.browser.headless
        headless = self._settings.headless if headless is None else headless
        async with asyncio.timeout(self._deadline_s):
            self._browser = await launch_browser(
                self._playwright, self._found, headless=headless, only_hosts=self._allowed_hosts
            )
        await self._new_context()

    async def _new_context(self) -> None:
        if self._browser is None:
            raise BrowserGone("no browser to open a context in")
        width, height = self.job.browser.viewport
        async with asyncio.timeout(self._deadline_s):
            context = await self._browser.new_context(viewport={"width": width, "height": height})
            context.set_default_timeout(self._deadline_s * 1000)
            await context.add_init_script(script=LANDMARKS_JS)
            await context.add_init_script(script=GALLERY_JS)
            context.on("requestfailed", self._count_blocked)
            self._context = context
            self._slots = [await self._new_slot() for _ in range(self.job.budget.pages_per_actor)]
        self._free = list(self._slots)

    async def _new_slot(self) -> Slot:
        assert self._context is not None
        page = await self._context.new_page()
        page.on("dialog", self._dismiss_dialog)
        return Slot(page)

    def _count_blocked(self, request) -> None:
        """Requests to hosts outside the job fail to resolve (see launch_browser): count them."""
        if "ERR_NAME_NOT_RESOLVED" in (request.failure or ""):
            self.counters.blocked_requests += 1

    def allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme not in {"http", "https"} or parts.hostname in self._allowed_hosts

    def _dismiss_dialog(self, dialog) -> None:
        """alert/confirm/prompt would block the page until answered: dismiss at once."""
        self.counters.dialogs_dismissed += 1
        self._in_background(dialog.dismiss())

    def _in_background(self, coroutine) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def browser_alive(self) -> bool:
        return self._browser is not None and self._browser.is_connected()

    async def close(self) -> None:
        """Shut Playwright down cleanly; safe to call twice, bounded."""
        await self._discard_browser()
        if self._playwright is not None:
            with contextlib.suppress(PlaywrightError, TimeoutError):
                async with asyncio.timeout(CLOSE_DEADLINE_S):
                    await self._playwright.stop()
            self._playwright = None

    def browser_tree_pss(self) -> int:
        """PSS of this process and its children: the Playwright driver and the browser."""
        return pss_of(tree_pids(os.getpid()))

    def request_recycle(self, reason: str) -> None:
        """Recreate the context once the slots in use come back (the coordinator asks this)."""
        self._maintenance = self._maintenance or f"recycle: {reason}"

    async def _maintain(self) -> None:
        """Relaunch a dead browser or recycle the context; called with no container in flight."""
        reason = self._maintenance or ""
        self._maintenance = None
        try:
            if not self.browser_alive():
                self.counters.relaunches += 1
                await self._discard_browser()
                await self._launch()
            else:
                self.counters.recycles += 1
                self.counters.recycle_reasons.append(reason)
                self.counters.since_recycle = 0
                await self._close_bounded(self._context)
                await self._new_context()
        except (PlaywrightError, TimeoutError, BrowserGone) as error:
            self._relaunch_failures += 1
            await self._discard_browser()  # the next acquire tries a relaunch
            if self._relaunch_failures >= RELAUNCH_FAILURES:
                raise SessionBroken(f"the browser could not be brought back: {error}") from None
            raise BrowserGone(f"relaunching the browser failed: {error}") from None
        self._relaunch_failures = 0

    async def _discard_browser(self) -> None:
        browser, self._browser, self._context = self._browser, None, None
        self._slots, self._free = [], []
        await self._close_bounded(browser)

    @staticmethod
    async def _close_bounded(closable: Any) -> None:
        if closable is None:
            return
        with contextlib.suppress(PlaywrightError, TimeoutError):
            async with asyncio.timeout(CLOSE_DEADLINE_S):
                await closable.close()

    # -- slots ---------------------------------------------------------------------------
    async def acquire(self, gallery: str | None) -> Slot:
        """A free page, after any maintenance due (the caller bounds the wait)."""
        async with self._cond:
            try:
                return await self._acquire_locked(gallery)
            except BaseException:
                self._cond.notify_all()  # the others may now try the maintenance themselves
                raise

    async def _acquire_locked(self, gallery: str | None) -> Slot:
        while True:
            if not self.browser_alive() and self._maintenance is None:
                self._maintenance = "relaunch: browser gone"
            if self._maintenance and self._in_flight == 0:
                await self._maintain()
            if not self._maintenance and self._free:
                slot = self._pick(gallery)
                self._in_flight += 1
                if slot.poisoned:
                    slot = await self._replace_page(slot)
                return slot
            await self._cond.wait()

    def _pick(self, gallery: str | None) -> Slot:
        """Prefer a page that already has this gallery open: no reload, no re-scroll."""
        for index, slot in enumerate(self._free):
            if gallery is not None and slot.gallery == gallery:
                return self._free.pop(index)
        return self._free.pop()

    async def _replace_page(self, slot: Slot) -> Slot:
        """Close a page that missed a deadline and open a fresh one in its place. If the page
        will not close (a renderer stuck in a script), recycle the whole context instead."""
        self.counters.pages_replaced += 1
        try:
            async with asyncio.timeout(CLOSE_DEADLINE_S):
                await slot.page.close(run_before_unload=False)
            async with asyncio.timeout(self._deadline_s):
                fresh = await self._new_slot()
        except (PlaywrightError, TimeoutError) as error:
            self._in_flight -= 1
            self._maintenance = f"recycle: a page would not close ({error})"
            raise BrowserGone("a page missed its deadline and would not close") from None
        index = self._slots.index(slot) if slot in self._slots else -1
        if index >= 0:
            self._slots[index] = fresh
        return fresh

    async def release(self, slot: Slot) -> None:
        async with self._cond:
            self._in_flight -= 1
            if slot in self._slots:  # a slot from before a recycle is simply dropped
                self._free.append(slot)
            self._check_recycle()
            self._cond.notify_all()

    def _check_recycle(self) -> None:
        """After N containers, or when the browser tree outgrows its PSS bound (checked every
        RSS_CHECK_EVERY containers: a process-tree walk costs about a millisecond)."""
        if self._maintenance:
            return
        since = self.counters.since_recycle
        if since >= self.job.browser.recycle_after:
            self._maintenance = f"recycle: {since} containers"
        elif since and since % RSS_CHECK_EVERY == 0:
            self._in_background(self._check_memory())

    async def _check_memory(self) -> None:
        """PSS, not RSS: summed RSS counts Chromium's shared pages once per process (3× here).
        Measured in a thread: a page-table walk must not stall the pages on this loop."""
        used = await asyncio.to_thread(self.browser_tree_pss)
        if used > self.job.browser.recycle_rss and not self._maintenance:
            self._maintenance = f"recycle: tree PSS {used >> 20} MiB over the bound"

    @property
    def in_flight(self) -> int:
        return self._in_flight

    # -- navigation ----------------------------------------------------------------------
    async def goto(self, slot: Slot, url: str):
        """Load ``url`` in ``slot``; the learner hears how long it took."""
        started = time.monotonic()
        try:
            response = await slot.page.goto(
                url, wait_until="domcontentloaded", timeout=self._deadline_s * 1000
            )
        except PlaywrightError:
            if not self.browser_alive():
                raise BrowserGone("the browser disconnected during navigation") from None
            raise
        if not self.allowed(slot.page.url):
            raise OffSiteError(f"the page left the job's hosts for {slot.page.url}")
        self._observe(domain_of(url), "navigate", time.monotonic() - started)
        return response

    def stats(self) -> dict[str, Any]:
        counters = self.counters
        return {
            "recycles": counters.recycles,
            "relaunches": counters.relaunches,
            "pages_replaced": counters.pages_replaced,
            "blocked_requests": counters.blocked_requests,
            "dialogs_dismissed": counters.dialogs_dismissed,
            "in_flight": self._in_flight,
        }
