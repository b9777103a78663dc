"""Reading containers: open one (click its card, or load its page), wait for its fields, read
them all in one in-page call, and turn what came back into a record.

Per container the hot path is one page call in click mode (open + settle + resolve in one
evaluate, the previous panel closed inside it) and a navigation plus one evaluate in link
and self mode. Every wait is a condition with a deadline from the PerformanceLearner.

Nothing one container does fails its batch: every error — a slot that never frees, a
browser that will not relaunch, a page that hangs, a download that stalls — ends as that
container's record, with the phase and the reason.

A page may also navigate itself while it is read (a script's ``location =``, a reload
loop). In link and self mode a few such hops are followed — a same-site script redirect
is a legitimate way to reach an item — and past ``SELF_NAVIGATIONS`` the container fails
saying so; in click mode the gallery page going away fails the container at once. A hop
to a host outside the job fails it with that host named, and is not retried.

With ``politeness.robots_txt: obey`` a page robots.txt disallows is not opened (the check is
in ``BrowserSession.goto``, see ``robots.py``): its container fails, not retried, with a
reason that names the rule's origin, the path, the user-agent token and the way out.
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import timedelta

from playwright.async_api import Error as PlaywrightError

from landmark.actors.discovery import Discovery, first_line
from landmark.actors.dom_cache import DomCache
from landmark.actors.downloads import (
    DownloadError,
    Identity,
    Route,
    download_to_file,
    identity_of,
)
from landmark.actors.extraction import (
    Settled,
    call_planned,
    field_plan,
    finish_field,
    parse_settled,
    settle_and_resolve,
)
from landmark.actors.learner import Deadlines, PerformanceLearner
from landmark.actors.robots import RobotsDisallowed
from landmark.actors.session import BrowserGone, BrowserSession, OffSiteError, SessionBroken, Slot
from landmark.config.job import JobSpec, OpenMode
from landmark.config.records import Container, Phase, Problem, Record, Status, domain_of

ERROR_SELECTOR = "[role=alert]"
SEEK_MAX_STEPS = 10_000
SEEK_RESERVE_MS = 1000  # kept back from a seek for the click and Ray's round trip
SETTLE_QUIET_MS = 100  # a panel with a field missing is read once the DOM is quiet this long
DOWNLOAD_RESERVE_S = 1.0  # a download stops this long before its container's deadline
SELF_NAVIGATIONS = 3  # hops a page may make on its own while read before it is given up

# Click mode's hot path: open the card's panel and read it in one round trip (gallery.js).
OPEN_AND_SETTLE = "(a) => window.__landmarkGallery.openAndSettle(...a)"


class Progress:
    """Which phase a container is in, and how long each finished phase took (ms)."""

    __slots__ = ("_last", "deadline_at", "phase", "timings")

    def __init__(self) -> None:
        self.phase: str = Phase.OPEN
        self.timings: dict[str, float] = {}
        self._last = time.monotonic()
        self.deadline_at: float | None = None  # the container's deadline, monotonic seconds

    def mark(self, name: str) -> None:
        now = time.monotonic()
        self.timings[name] = round((now - self._last) * 1000, 2)
        self._last = now


class ContainerReader:
    def __init__(
        self,
        job: JobSpec,
        name: str,
        session: BrowserSession,
        discovery: Discovery,
        learner: PerformanceLearner,
        cache: DomCache,
        out_dir,
    ) -> None:
        self.job = job
        self.name = name
        self.session = session
        self.discovery = discovery
        self.learner = learner
        self.cache = cache
        self.deadlines = Deadlines(learner, job.timeouts)
        self.out_dir = out_dir
        self.counts = {Status.OK: 0, Status.PARTIAL: 0, Status.FAILED: 0}
        self.containers = 0
        budget = job.budget
        pages = budget.first_pages  # the fewest it works at once (the page governor's floor)
        rounds = math.ceil((pages + budget.batch_size) / pages)
        # a slot frees within a container's deadline per round of work queued before ours
        self._acquire_s = rounds * job.timeouts.container.total_seconds() + (
            job.timeouts.navigation.total_seconds()
        )

    async def extract(self, batch: list[Container]) -> list[Record]:
        """One record per container, in batch order; a container's failure never raises
        (only a session that cannot be brought back does: the actor must be replaced)."""
        records = await asyncio.gather(*(self.extract_one(c) for c in batch))
        return list(records)

    async def extract_one(self, container: Container) -> Record:
        started = time.monotonic()
        progress = Progress()
        try:
            record = await self._acquired(container, progress)
        except SessionBroken:
            raise
        except TimeoutError:
            record = self._failure(container, Phase.OPEN, "no page came free in time")
        except BrowserGone as gone:
            record = self._failure(container, progress.phase, f"browser gone: {gone}")
        self.containers += 1
        record.timings.update(progress.timings)
        record.timings["total"] = round((time.monotonic() - started) * 1000, 2)
        record.actor = self.name
        self.counts[Status(record.status)] += 1
        return record

    async def _acquired(self, container: Container, progress: Progress) -> Record:
        gallery = container.source if container.open == OpenMode.CLICK else None
        async with asyncio.timeout(self._acquire_s):
            slot = await self.session.acquire(gallery)
        # A batch can hold more containers than the actor has pages: the wait for one is
        # the pipeline's, not the container's, and the record says which is which.
        progress.mark("queued")
        slot.blocked.clear()
        try:
            record = await self._within_deadline(slot, container, progress)
            record.blocked = sorted(slot.blocked)
            return record
        finally:
            self.session.counters.since_recycle += 1
            await self.session.release(slot)

    async def _within_deadline(self, slot: Slot, container: Container, progress: Progress):
        try:
            container_s = self.job.timeouts.container.total_seconds()
            progress.deadline_at = time.monotonic() + container_s
            async with asyncio.timeout(container_s):
                return await self._open_and_read(slot, container, progress)
        except TimeoutError:
            self._poison(slot)
            return self._failure(container, progress.phase, "container deadline exceeded")
        except OffSiteError as off_site:
            self._poison(slot)
            return self._failure(container, progress.phase, str(off_site), retryable=False)
        except RobotsDisallowed as refused:  # the page was not touched: no need to replace it
            return self._failure(container, progress.phase, str(refused), refused.retryable)
        except PlaywrightError as error:
            self._poison(slot)
            return self._page_error(slot, container, progress.phase, error)

    def _page_error(self, slot: Slot, container: Container, phase: str, error) -> Record:
        """A failed page call as a reason a user can act on: off-site, navigated away, or
        Playwright's own first line."""
        reason = first_line(error)
        if not self.session.browser_alive():
            return self._failure(container, phase, f"browser gone: {reason}")
        try:
            self.session.check_on_site(slot)
        except OffSiteError as off_site:
            return self._failure(container, phase, str(off_site), retryable=False)
        if navigated_away(error):
            reason = f"the page navigated itself away, to {slot.page.url}, while it was read"
        return self._failure(container, phase, reason)

    @staticmethod
    def _poison(slot: Slot) -> None:
        """A page that failed is in an unknown state (a script may still spin in it): it is
        replaced by a fresh one before its next use, which costs a new page, not a browser."""
        slot.poisoned, slot.gallery = True, None

    def _failure(self, container: Container, phase: str, reason: str, retryable=True) -> Record:
        return Record.failure(container, phase, reason, retryable=retryable, actor=self.name)

    async def _open_and_read(self, slot: Slot, container: Container, progress: Progress):
        domain = domain_of(container.target)
        spec = self.job.containers
        root = spec.label_root(OpenMode(container.open))
        cache_key = DomCache.key(domain, container.open, root)
        plan = self._plan(domain, cache_key)
        settle = [
            {"root": root, "fields": plan},
            self.deadlines(domain, "settle").total_seconds() * 1000,
            SETTLE_QUIET_MS,
            ERROR_SELECTOR,
        ]
        if container.open == OpenMode.CLICK:
            settled = await self._click_and_settle(slot, container, settle, progress)
        else:
            settled = await self._navigate_and_settle(slot, container, settle, progress)
        if isinstance(settled, Record):
            return settled
        if settled.state != "ready":  # read nothing useful: perhaps the page went off-site
            self.session.check_on_site(slot)
        progress.mark("wait")
        return await self._record_from(container, settled, slot.page.url, cache_key, plan, progress)

    async def _click_and_settle(self, slot, container, settle, progress) -> Settled | Record:
        """Click the card and read its panel in ONE page call: open, wait and resolve."""
        progress.phase = Phase.OPEN
        if slot.gallery != container.source:
            await self.session.goto(slot, container.source)
            slot.gallery = container.source
        domain = domain_of(container.source)
        idle = self.deadlines(domain, "discover_idle", self.job.timeouts.discovery_idle)
        spec = self.job.containers
        opening = self.discovery.gallery_args(idle, domain)
        # What changes per container goes with every call; the rest is part of the plan.
        each = {
            "id": container.id,
            "href": container.url,
            "idleMs": opening.pop("idleMs"),
            "timeoutMs": self.deadlines(domain, "close").total_seconds() * 1000,
            "readyMs": self.deadlines(domain, "first_card").total_seconds() * 1000,
            "seekMs": self._seek_ms(progress, settle[1]),
        }
        opening |= {
            "panelSelector": spec.panel_selector,
            "closeSelector": spec.close_selector,
            "maxSteps": SEEK_MAX_STEPS,
        }
        plan = settle[0] | {"opening": opening}
        answer = await call_planned(slot.page, OPEN_AND_SETTLE, plan, [each, *settle[1:]])
        opened = answer["opened"]
        for part in ("closeMs", "seekMs", "clickMs"):
            if part in opened:
                progress.timings[part[:-2]] = round(opened[part], 2)
        if not opened["ok"]:
            progress.mark("open")
            return self._failure(container, Phase.OPEN, opened["reason"])
        progress.phase = Phase.WAIT
        return parse_settled(answer, plan["fields"])

    @staticmethod
    def _seek_ms(progress: Progress, settle_ms: float) -> float:
        """What the container's deadline leaves the gallery seek once its panel has had time
        to settle: a seek that stops itself keeps its page and its place (see gallery.js)."""
        if progress.deadline_at is None:  # no deadline set: the gallery's own steps bound it
            return float(SEEK_MAX_STEPS * 1000)
        left_ms = (progress.deadline_at - time.monotonic()) * 1000
        # at least half of what is left, whatever settle may take: each attempt gets further
        return max(left_ms / 2, left_ms - settle_ms - SEEK_RESERVE_MS)

    async def _navigate_and_settle(self, slot, container, settle, progress) -> Settled | Record:
        progress.phase = Phase.OPEN
        slot.gallery = None
        url = container.url or container.source
        response = await self.session.goto(slot, url)
        progress.mark("open")
        if response is not None and response.status >= 400:
            status = response.status
            retryable = status >= 500 or status == 429
            return self._failure(container, Phase.OPEN, f"HTTP {status} for {url}", retryable)
        progress.phase = Phase.WAIT
        return await self._settle_following(slot, container, settle)

    async def _settle_following(self, slot: Slot, container: Container, settle) -> Settled | Record:
        """Settle the loaded page; if it navigates itself meanwhile, settle where it went,
        up to SELF_NAVIGATIONS documents later (the container's deadline bounds it all)."""
        root, plan = settle[0]["root"], settle[0]["fields"]
        loaded = slot.navigations
        while True:
            seen = slot.navigations
            try:
                return await settle_and_resolve(
                    slot.page,
                    root,
                    plan,
                    timeout=timedelta(milliseconds=settle[1]),
                    quiet=timedelta(milliseconds=SETTLE_QUIET_MS),
                    error_selector=ERROR_SELECTOR,
                )
            except PlaywrightError as error:
                if not navigated_away(error):
                    raise
            await self.session.next_document(slot, seen)
            self.session.check_on_site(slot)
            if slot.navigations - loaded >= SELF_NAVIGATIONS:
                break
        reason = (
            f"the page kept navigating itself while it was read ({SELF_NAVIGATIONS} times; "
            f"last to {slot.page.url})"
        )
        self._poison(slot)  # it goes on navigating: the next container gets a fresh page
        return self._failure(container, Phase.WAIT, reason)

    def _plan(self, domain: str, cache_key: str) -> list[dict]:
        """The DomCache's verified path first (spatial locality), then the learner's chain."""
        orders = {f.name: ["cached", *self.learner.order(domain, f.name)] for f in self.job.fields}
        return field_plan(self.job.fields, orders, self.cache.field_paths(cache_key))

    async def _record_from(self, container, settled, page_url, cache_key, plan, progress):
        domain = domain_of(container.target)
        if settled.state == "error":
            return self._failure(container, Phase.WAIT, f"page reported: {settled.error_text}")
        # The wait we gave up on is a sample too, so the next deadline grows with it.
        self.learner.observe(domain, "settle", settled.waited_ms / 1000)
        if settled.state == "timeout" and not any(
            raw.get("value") is not None for raw in settled.fields.values()
        ):
            return self._failure(container, Phase.WAIT, self._nothing_found(page_url, container))
        progress.phase = Phase.EXTRACT
        record = Record(
            id=container.id, source=container.source, position=container.position, status=Status.OK
        )
        self._read_fields(record, settled, page_url, domain, cache_key, plan)
        if self.job.download is not None:
            progress.phase = Phase.DOWNLOAD
            await self._download(record, progress.deadline_at)
            progress.mark("download")
        return record

    @staticmethod
    def _nothing_found(page_url: str, container: Container) -> str:
        """Where the page ended, if not where it was opened: a redirect or a script took it
        elsewhere, and that is what the user needs to see."""
        reason = "no landmark appeared before the deadline"
        opened = container.url or container.source
        if container.open != OpenMode.CLICK and page_url != opened:
            reason += f" (the page ended at {page_url})"
        return reason

    def _read_fields(self, record, settled, page_url, domain, cache_key, plan) -> None:
        offered = set(self.cache.field_paths(cache_key))
        orders = {entry["name"]: entry["order"] for entry in plan}
        strategies: dict[str, str | None] = {}
        paths: dict[str, list[int] | None] = {}
        for spec in self.job.fields:
            raw = settled.fields.get(spec.name, {})
            strategy = raw.get("strategy")
            strategies[spec.name] = strategy
            paths[spec.name] = raw.get("path")
            done = finish_field(spec, raw, page_url)
            # A value that fails its pattern or type is no win for the strategy that found it.
            order = orders[spec.name]
            tried = order[: order.index(strategy) + 1] if strategy in order else order
            self.learner.record_strategy(
                domain, spec.name, tried, strategy if done.error is None else None
            )
            record.fields[spec.name] = done.value
            if strategy:
                record.strategies[spec.name] = strategy
            if done.note is not None:  # a value was kept: said, but the record stays whole
                record.errors.append(Problem(Phase.EXTRACT, done.note, field=spec.name))
            if done.error is not None:
                record.errors.append(Problem(Phase.EXTRACT, done.error, field=spec.name))
                if spec.required:
                    record.status = Status.PARTIAL
        self.cache.record_fields(cache_key, strategies, paths, offered)

    async def _identity_for(self, url: str) -> Identity:
        """The job's browser identity for ``url``: its cookies from the context's jar."""
        return identity_of(self.job.browser, await self.session.cookie_header(url))

    async def _download(self, record: Record, deadline_at: float | None = None) -> None:
        """The field's URL to a file. A download that fails keeps the fields already read:
        the record becomes ``partial`` with the download's error, and no part file stays."""
        spec = self.job.download
        assert spec is not None
        url = record.fields.get(spec.field)
        if not url:
            record.errors.append(Problem(phase=Phase.DOWNLOAD, reason="nothing to download"))
            return
        if not self.session.allowed(str(url)):
            reason = f"download host not allowed: {url} (add it to browser.allow_domains)"
            record.errors.append(Problem(phase=Phase.DOWNLOAD, reason=reason))
            record.status = Status.PARTIAL
            return
        total = spec.timeout.total_seconds()
        if deadline_at is not None:  # what is left of the container's deadline, less a margin
            total = max(0.5, min(total, deadline_at - time.monotonic() - DOWNLOAD_RESERVE_S))
        try:
            record.download = await download_to_file(
                str(url),
                self.out_dir / spec.dir,
                record.id,
                spec.max_bytes,
                idle_s=spec.idle.total_seconds(),
                total_s=total,
                route=Route(self.session.allowed, self._identity_for),
            )
        except DownloadError as error:
            record.errors.append(Problem(phase=Phase.DOWNLOAD, reason=str(error)))
            record.status = Status.PARTIAL


def navigated_away(error: BaseException) -> bool:
    """Playwright's way of saying the document under a page call was replaced."""
    text = str(error)
    return "Execution context was destroyed" in text or "because of a navigation" in text
