"""The browser side of a worker: one browser, one long-lived context, a few pages (slots).

A slot is a page plus what it has open. Containers acquire a slot, use it, release it.
Between containers the session does its maintenance, never under a page in use:

- **relaunch** when the browser died (a crash, the OOM killer, a kill trial);
- **recycle** the context after ``browser.recycle_after`` containers or when the tree's
  PSS outgrows ``browser.recycle_rss`` (or half again what a fresh context needed, see
  ``recycle_bound``): memory grows inside a long-lived context;
- **replace a page** that missed a deadline: its renderer may still be spinning in a
  script, and the next container must not inherit it.

Hostile pages are fenced here too: dialogs are answered at once (``beforeunload`` is
accepted, or the next navigation of the page would be cancelled), popups are closed as
they open (a page that spawns windows would otherwise grow the context without bound),
and a navigation of a page's main frame to a host outside the job — a server redirect or
a script's ``location =`` — is remembered on its slot, so the container fails with that
reason rather than with the browser's "name not resolved".

Behind a proxy (``browser.proxy``) the browser does not resolve the pages' hosts itself, so
the resolver rules of ``launch_browser`` fence nothing: the context then refuses requests
to other hosts by routing (aborted as "name not resolved", so they are counted and named
just the same). Routing sends each request through the driver and turns the HTTP cache
off: a cost only proxied jobs pay.

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
from functools import partial
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import Browser, BrowserContext, Page, Playwright, async_playwright
from playwright.async_api import Error as PlaywrightError

from landmark.actors.browser import (
    FoundBrowser,
    StorageStateMissing,
    context_options,
    find_browser,
    launch_browser,
    proxy_host,
    running_playwright_chromium,
)
from landmark.actors.extraction import LANDMARKS_JS
from landmark.actors.process_tree import pss_of, tree_pids
from landmark.actors.recycle_bound import RecycleBound
from landmark.actors.robots import RobotsTxt, fetch_rules
from landmark.actors.session_errors import BrowserGone, OffSiteError, SessionBroken
from landmark.config.job import JobSpec
from landmark.config.records import domain_of
from landmark.config.settings import Settings

GALLERY_JS = resources.files("landmark.actors").joinpath("gallery.js").read_text(encoding="utf-8")
RSS_CHECK_EVERY = 50
CLOSE_DEADLINE_S = 5.0  # closing a page, a context or a browser; past it, relaunch
CLOSE_REISSUE_S = 1.0  # a page not closed this long after asking is asked again (CDP)
RELAUNCH_FAILURES = 2  # relaunches in a row that fail before the session gives up
BLOCKED_HOSTS_KEPT = 20  # hosts named per container; more are only counted


@dataclass(slots=True, eq=False)
class Slot:
    """One page, and the gallery it has open (click mode keeps it open between containers)."""

    page: Page
    gallery: str | None = None
    poisoned: bool = False  # missed a deadline: replace the page before it is used again
    left_for: str | None = None  # why the page left the job's hosts since its last goto
    navigations: int = 0  # documents the page's main frame has committed, ever
    blocked: set[str] = field(default_factory=set)  # hosts refused since the container began

    def navigated(self, frame) -> None:
        if frame.parent_frame is None:
            self.navigations += 1


@dataclass(slots=True)
class SessionCounters:
    since_recycle: int = 0
    recycles: int = 0
    relaunches: int = 0
    pages_replaced: int = 0
    blocked_requests: int = 0
    dialogs_dismissed: int = 0
    popups_closed: int = 0
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
        self.recycle_bound = RecycleBound(job.browser.recycle_rss)
        self._found = found
        self._settings = Settings.from_env()
        self._allowed_hosts = {h for h in allowed_hosts if h} | set(job.browser.allow_domains)
        self._schemes = set(job.sources.allow_schemes)
        self._observe = learner_observe or (lambda *args: None)
        self._deadline_s = job.timeouts.navigation.total_seconds()
        obey = job.politeness.robots_txt == "obey"
        self.robots = RobotsTxt(job.browser.user_agent) if obey else None
        # Starting Chromium and a context of pages is not a page's navigation: on a busy
        # machine it takes seconds, so it has the actor's start deadline.
        self._launch_s = job.timeouts.actor_start.total_seconds()
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._launched_at = 0.0  # monotonic, when the browser last came up
        self.start_s: dict[str, float] = {}  # how long start()'s parts took (seconds)
        self._context: BrowserContext | None = None
        self._slots: list[Slot] = []
        self._free: list[Slot] = []
        self._in_flight = 0
        self._pages = job.budget.first_pages  # pages worked at once (set_pages moves it)
        self._maintenance: str | None = None
        self._relaunch_failures = 0
        self._cond = asyncio.Condition()
        self._background: set[asyncio.Future] = set()
        self._closing: set[Page] = set()  # popups being closed
        self._open_pages: set[Page] = set()  # every page of the context, popups included

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Playwright, Chromium, then a context and its pages; ``start_s`` says how long each
        took, for the run's start-up breakdown."""
        began = time.monotonic()
        async with asyncio.timeout(self._launch_s):
            self._playwright = await async_playwright().start()
            driver_up = time.monotonic()
            if self._found is None:
                explicit = self.job.browser.executable or self._settings.browser
                bundled = partial(running_playwright_chromium, self._playwright)
                self._found = find_browser(explicit, bundled=bundled)
            await self._open_browser()
        self.start_s = {
            "playwright": round(driver_up - began, 3),
            "browser": round(self._launched_at - driver_up, 3),
            "pages": round(time.monotonic() - self._launched_at, 3),
        }

    async def _launch(self) -> None:
        """A new browser in place of a dead one, within the actor's start deadline."""
        async with asyncio.timeout(self._launch_s):
            await self._open_browser()

    async def _new_context(self) -> None:
        """A new context in place of a recycled one, within the actor's start deadline."""
        async with asyncio.timeout(self._launch_s):
            await self._open_context()

    async def _open_browser(self) -> None:
        if self._playwright is None or self._found is None:
            raise SessionBroken("the session was not started")
        headless = self.job.browser.headless
        headless = self._settings.headless if headless is None else headless
        # The proxy's own host must resolve, or no request gets anywhere through it.
        proxy = proxy_host(self.job.browser)
        resolvable = self._allowed_hosts | ({proxy} if proxy else set())
        self._browser = await launch_browser(
            self._playwright,
            self._found,
            headless=headless,
            only_hosts=resolvable,
            load_images=self.job.browser.load_images,
        )
        self._launched_at = time.monotonic()
        await self._open_context()

    async def _open_context(self) -> None:
        """A context with the job's identity (``context_options``): discovery, items and
        robots.txt all go through it, so every request comes from the same visitor."""
        if self._browser is None:
            raise BrowserGone("no browser to open a context in")
        try:
            options = context_options(self.job.browser)
        except StorageStateMissing as error:
            raise SessionBroken(str(error)) from None
        self._open_pages = set()  # the old context's, if it died without saying so
        context = await self._browser.new_context(**options)
        context.set_default_timeout(self._deadline_s * 1000)
        await context.add_init_script(script=LANDMARKS_JS)
        await context.add_init_script(script=GALLERY_JS)
        context.on("requestfailed", self._count_blocked)
        context.on("page", self._on_page)
        if self.job.browser.proxy is not None:  # the resolver rules do not apply
            await context.route(self._off_site, self._refuse)
        self._context = context
        self._slots = list(await asyncio.gather(*(self._new_slot() for _ in range(self._pages))))
        self._free = list(self._slots)

    async def set_pages(self, pages: int) -> int:
        """Work ``pages`` pages at once (within 1 and ``pages_per_actor``); returns the count.

        More: the missing pages open now, holding the lock as every page of ours is made
        (the stray sweep must never see one half-created); a recycle opens them all.
        Fewer: the extra pages stay open but get no new container, so a container in
        flight finishes where it is and the pages are there if the count comes back.
        """
        pages = max(1, min(pages, self.job.budget.pages_per_actor))
        async with self._cond:
            with contextlib.suppress(PlaywrightError, TimeoutError):  # retried on a relaunch
                async with asyncio.timeout(self._deadline_s):
                    while len(self._slots) < pages and self._context and not self._maintenance:
                        slot = await self._new_slot()
                        self._slots.append(slot)
                        self._free.append(slot)
            self._pages = pages
            self._cond.notify_all()
        return pages

    async def _new_slot(self) -> Slot:
        assert self._context is not None
        page = await self._context.new_page()
        slot = Slot(page)
        page.on("dialog", self._dismiss_dialog)
        page.on("framenavigated", lambda frame: slot.navigated(frame))
        return slot

    def _count_blocked(self, request) -> None:
        """Requests to hosts outside the job fail to resolve (see launch_browser): count them,
        name the host on the slot whose page asked, and remember a slot whose main frame was
        sent off the job's hosts."""
        if "ERR_NAME_NOT_RESOLVED" not in (request.failure or ""):
            return
        self.counters.blocked_requests += 1
        host = urlsplit(request.url).hostname
        slot, frame = self._slot_of(request)
        if slot is None or not host or self.allowed(request.url):
            return  # a popup's, or a real DNS failure of an allowed host
        if len(slot.blocked) < BLOCKED_HOSTS_KEPT:
            slot.blocked.add(host)
        main = frame == slot.page.main_frame  # a frame inside the page does not count
        if main and request.is_navigation_request() and slot.left_for is None:
            how = "was redirected" if request.redirected_from else "navigated"
            slot.left_for = f"the page {how} off the job's hosts, to {request.url}"

    def _off_site(self, url: str) -> bool:
        return not self.allowed(url)

    @staticmethod
    async def _refuse(route) -> None:
        with contextlib.suppress(PlaywrightError):  # the page went away meanwhile
            await route.abort("namenotresolved")

    def _slot_of(self, request) -> tuple[Slot | None, Any]:
        """The slot whose page (any frame of it) made ``request``, and that frame; no slot
        for a popup's request or a service worker's (it has no frame)."""
        try:
            frame = request.frame
            page = frame.page
        except PlaywrightError:
            return None, None
        return next((slot for slot in self._slots if slot.page == page), None), frame

    async def cookie_header(self, url: str) -> str:
        """The context's cookies for ``url`` as a Cookie header, for a request made outside
        the browser (a download) that must still be the logged-in visitor."""
        if self._context is None:
            return ""
        cookies = await self._context.cookies(url)
        return "; ".join(f"{cookie['name']}={cookie['value']}" for cookie in cookies)

    def allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme not in {"http", "https"} or parts.hostname in self._allowed_hosts

    def check_scheme(self, url: str) -> None:
        """A link found on a page is opened only with a scheme the job allows: a card whose
        href is ``file:///etc/passwd`` or ``javascript:…`` fails its container instead."""
        scheme = urlsplit(url).scheme.lower()
        if scheme not in self._schemes:
            raise OffSiteError(
                f"{scheme or 'no scheme'}: links are not opened ({url[:80]!r}); allowed: "
                f"{', '.join(sorted(self._schemes))} (sources.allow_schemes)"
            )

    def check_on_site(self, slot: Slot) -> None:
        """Raise OffSiteError if the slot's page went (or was sent) off the job's hosts."""
        if slot.left_for is not None:
            raise OffSiteError(f"{slot.left_for} (not a source's host nor in allow_domains)")
        if not self.allowed(slot.page.url):
            raise OffSiteError(f"the page left the job's hosts for {slot.page.url}")

    def _dismiss_dialog(self, dialog) -> None:
        """alert/confirm/prompt would block the page until answered: dismiss at once. A
        ``beforeunload`` is accepted instead: dismissing it means "stay on this page", which
        cancels the navigation that asked, i.e. the next container's ``goto``."""
        self.counters.dialogs_dismissed += 1
        answer = dialog.accept() if dialog.type == "beforeunload" else dialog.dismiss()
        self._in_background(answer)

    def _on_page(self, page: Page) -> None:
        """Every page opened in the context is counted until it closes; a popup (it has an
        opener, our own pages have none) is closed at once."""
        self._open_pages.add(page)
        page.once("close", self._page_closed)
        self._in_background(self._close_popup(page))

    def _page_closed(self, page: Page) -> None:
        self._open_pages.discard(page)

    async def _close_popup(self, page: Page) -> None:
        # No opener: one of ours, or a popup whose opener closed first; the sweep at the
        # next release takes the latter.
        if await page.opener() is not None:
            await self._close_stray(page)

    def _sweep_strays(self) -> None:
        """Close every page of the context that is not a slot's. Called holding the lock,
        where no page of ours can be half-created."""
        if self._context is None:
            return
        own = {slot.page for slot in self._slots}
        for page in self._context.pages:
            if page not in own and page not in self._closing:
                self._in_background(self._close_stray(page))

    async def _close_stray(self, page: Page) -> None:
        if page in self._closing or page.is_closed():
            return
        self._closing.add(page)
        self.counters.popups_closed += 1
        try:
            with contextlib.suppress(PlaywrightError, TimeoutError):
                async with asyncio.timeout(CLOSE_DEADLINE_S):
                    await self._close_page(page)
        finally:
            self._closing.discard(page)

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
        self.recycle_bound.restart()
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
            if not self._maintenance and self._free and self._in_flight < self._pages:
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
                await self._close_page(slot.page)
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

    async def _close_page(self, page: Page) -> None:
        """``page.close()``, asked again through CDP while the page stays open: Chromium
        acknowledges a close that races the commit of the page's own navigation and then
        drops it (crbug.com/536385539), so a page that navigates itself — the very kind a
        deadline poisons — would otherwise never close. The caller bounds it all."""
        closing = asyncio.ensure_future(page.close(run_before_unload=False))
        try:
            while not (await asyncio.wait({closing}, timeout=CLOSE_REISSUE_S))[0]:
                await self._close_target(page)
            closing.result()
        finally:
            closing.cancel()  # the caller's deadline passed: stop waiting for it

    async def _close_target(self, page: Page) -> None:
        if self._context is None or self._browser is None:
            return
        with contextlib.suppress(PlaywrightError):
            page_session = await self._context.new_cdp_session(page)
            target = (await page_session.send("Target.getTargetInfo"))["targetInfo"]["targetId"]
            browser_session = await self._browser.new_browser_cdp_session()
            await browser_session.send("Target.closeTarget", {"targetId": target})

    async def release(self, slot: Slot) -> None:
        async with self._cond:
            self._in_flight -= 1
            if slot in self._slots:  # a slot from before a recycle is simply dropped
                self._free.append(slot)
            self._sweep_strays()
            self._check_recycle()
            self._cond.notify_all()

    def _check_recycle(self) -> None:
        """After N containers, or when the browser tree outgrows its PSS bound (checked every
        RSS_CHECK_EVERY containers: a process-tree walk costs about a millisecond; the bound
        grows with what a fresh context needs, see recycle_bound)."""
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
        context = self._context
        used = await asyncio.to_thread(self.browser_tree_pss)
        if context is not self._context or self._maintenance:
            return  # read across a recycle: it weighs neither context
        reason = self.recycle_bound.over(used)
        if reason:
            self._maintenance = f"recycle: {reason}"

    @property
    def in_flight(self) -> int:
        return self._in_flight

    # -- navigation ----------------------------------------------------------------------
    async def goto(self, slot: Slot, url: str):
        """Load ``url`` in ``slot`` if robots.txt allows it (RobotsDisallowed if not); the
        learner hears how long the navigation took."""
        slot.left_for = None
        self.check_scheme(url)
        await self.check_robots(url)
        started = time.monotonic()
        try:
            response = await slot.page.goto(
                url, wait_until="domcontentloaded", timeout=self._deadline_s * 1000
            )
        except PlaywrightError:
            if not self.browser_alive():
                raise BrowserGone("the browser disconnected during navigation") from None
            self.check_on_site(slot)  # a redirect off-site: say so, not "name not resolved"
            raise
        self.check_on_site(slot)
        self._observe(domain_of(url), "navigate", time.monotonic() - started)
        return response

    async def check_robots(self, url: str) -> None:
        """Raise RobotsDisallowed if the job obeys robots.txt and it disallows ``url``. Only
        hosts the job may visit are asked: the browser refuses any other before a byte is
        sent, and so must the robots.txt fetch (it does not go through that rule)."""
        parts = urlsplit(url)
        if self.robots is None or parts.scheme not in {"http", "https"} or not self.allowed(url):
            return
        context = self._context
        if context is None:
            raise BrowserGone("no browser context to read robots.txt with")
        deadline_s = self._deadline_s

        async def fetch(origin: str):
            rules = await fetch_rules(context.request, origin, deadline_s, self.allowed)
            if rules.unreachable and not self.browser_alive():
                # Not the site's failure: nothing is kept for the origin, and the container
                # fails as the browser's (retryable), like any other page the death cut short.
                raise BrowserGone(f"the browser died while reading robots.txt of {origin}")
            return rules

        await self.robots.check(url, fetch)

    async def next_document(self, slot: Slot, seen: int) -> None:
        """After the page navigated away under a call: wait until a document after the
        ``seen``-th has committed and parsed (bounded by the navigation deadline)."""
        timeout = self._deadline_s * 1000
        if slot.navigations == seen:  # no await since the check: the event cannot slip by
            await slot.page.wait_for_event(
                "framenavigated", predicate=lambda frame: frame.parent_frame is None,
                timeout=timeout,
            )  # fmt: skip
        await slot.page.wait_for_load_state("domcontentloaded", timeout=timeout)

    def stats(self) -> dict[str, Any]:
        counters = self.counters
        return {
            "recycles": counters.recycles,
            "recycle_bound": self.recycle_bound.bound,
            "relaunches": counters.relaunches,
            "pages_replaced": counters.pages_replaced,
            "blocked_requests": counters.blocked_requests,
            "dialogs_dismissed": counters.dialogs_dismissed,
            "popups_closed": counters.popups_closed,
            "pages_open": len(self._open_pages),
            "pages": self._pages,
            "in_flight": self._in_flight,
            **({"robots": self.robots.stats()} if self.robots is not None else {}),
        }
