"""The Coordinator actor: the shell that runs what the scheduler decides.

``scheduler.py`` holds the rules (pure, tested by randomized histories); this module runs
them: it sends batches and waits for answers, each with a deadline; it starts, kills and
replaces actors (``crew.py``) where the nodes have room (``node_keeper.py``), or runs on
a share of ``landmark serve``'s pool (``pool_view.py``); it discovers sources; it writes
records to the store and serves cached ones; it reads every node's MetricsActor and
applies each verdict to that node (``self.verdict`` is the cluster's view: the worst
node). The dispatch loop waits on one ``asyncio.Event`` with the timeout the scheduler's
:meth:`~Scheduler.next_wake` gives — none at all when only an answer can help — so it
wakes only when something happens.

Whatever dies — an actor, a browser, the MetricsActor, the node's memory, this actor —
the ledger takes the lease back, the store remembers what was done, and every container
still ends with exactly one record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import Counter
from typing import Any

import ray
from ray.exceptions import OutOfMemoryError, RayActorError, RayError

from landmark.actors.browser_actor import BrowserActor
from landmark.config.job import JobSpec, OpenMode
from landmark.config.records import Container, Record, hosts_of
from landmark.coordinator.crew import Crew, StartFailed, short_error
from landmark.coordinator.discovering import DiscoveryRunner
from landmark.coordinator.node_keeper import NodeKeeper
from landmark.coordinator.output import RunOutput
from landmark.coordinator.page_governor import PageGovernor
from landmark.coordinator.placement import Placement
from landmark.coordinator.pool_view import Member, PoolShare
from landmark.coordinator.run_stats import RunStats
from landmark.coordinator.scheduler import Assignment, Scheduler
from landmark.coordinator.store import JobIdentity, StoreError
from landmark.coordinator.store_config import StoreConfig
from landmark.coordinator.summary import cluster_view
from landmark.logs import configure_worker_logging

logger = logging.getLogger("landmark.coordinator")

VERDICT_INTERVAL_S = 0.5
FLUSH_INTERVAL_S = 1.0
SNAPSHOT_INTERVAL_S = 10.0
KILL_GRACE_S = 10.0  # after its deadline and a kill, a batch call is given up for good
MAX_UNFLUSHED = 20_000  # writes the store may owe before dispatch pauses for it
SERVICE_OWNER = "service"  # ``landmark serve``'s MetricsActors: metrics:service:<node>


class Coordinator:
    """Created through the driver; ``run()`` returns the summary."""

    def __init__(
        self,
        job: JobSpec,
        sources: list[str],
        store: StoreConfig,
        actor_class: Any = None,
        metrics: bool = True,
        pool: PoolShare | None = None,
    ) -> None:
        """``actor_class`` is a Ray actor class implementing ``actors.protocol.WorkerActor``
        (benchmarks pass a no-op one to measure the coordinator alone). ``pool``: the job
        runs on ``landmark serve``'s shared actors instead (their placement, their
        MetricsActors, the pages per actor the service gives it, see :meth:`set_pool`)."""
        configure_worker_logging()
        self.job = job
        self.sources = sources
        self.store_config = store
        self.scheduler = Scheduler(job)
        hosts = sorted(hosts_of(sources))
        out = str(store.out_dir)
        self.pool = pool
        owner = None if pool is None else SERVICE_OWNER
        actors = pool or actor_class or BrowserActor
        self.crew = Crew(actors, job, out, hosts, metrics=metrics, shared_monitors=owner)
        if pool is not None:
            self.scheduler.share_pool(len(pool.members), pool.pages)
        # A pool's pages are the service's to share out; a fixed count has nothing to govern.
        adaptive = pool is None and job.budget.adaptive_pages
        self.page_governor = PageGovernor() if adaptive else None
        self.stats = RunStats()
        self.output = RunOutput(job, store, self.stats)
        self.store = self.output.store
        self.node_verdicts: dict[str, dict[str, Any]] = {}  # node id -> its latest verdict
        self.verdict: dict[str, Any] = cluster_view({})  # the worst node, and counts per state
        self.snapshot: dict[str, Any] | None = None
        self.final_actor_stats: list[dict[str, Any]] = []
        self.failure: str | None = None
        self.wakes: Counter[str] = Counter()
        self._wake = asyncio.Event()
        self._ended = asyncio.Event()
        self._paused_by: set[str] = set()
        self._batches: dict[asyncio.Task, str] = {}  # task -> actor name
        self._tasks: set[asyncio.Task] = set()  # starts and housekeeping
        self.discovery = DiscoveryRunner(self)
        self.node_keeper = NodeKeeper(self)

    # -- control (the driver, ``landmark control``) ----------------------------------------
    async def pause(self) -> None:
        self._set_paused("user", True)

    async def resume(self) -> None:
        self._set_paused("user", False)

    async def cancel(self) -> None:
        """Stop for good: pending containers fail (with their last error), in flight finish."""
        self.discovery.cancel()
        self.write_all(self.scheduler.cancel())
        self._wake.set()

    async def stop(self) -> None:
        """Stop to resume later (Ctrl-C): batches in flight finish, pending stays pending."""
        self._halt()

    async def abort(self) -> None:
        """A second Ctrl-C: make everything merged so far durable now; the driver then exits."""
        self._halt()
        with contextlib.suppress(StoreError):  # a store that refuses: the stop says why later
            self.output.flush()

    def _halt(self) -> None:
        self.discovery.cancel()
        self.scheduler.stop()
        self._wake.set()

    def wake(self) -> None:
        """Something changed that the dispatch loop should look at."""
        self._wake.set()

    async def set_pool(self, members: list[Member], pages: int) -> None:
        """The service's pool changed (an actor replaced) or this job's share of it did
        (another job came or went): ``pages`` per actor from now on; batches in flight
        finish where they are."""
        if self.pool is None:
            raise RuntimeError("set_pool: this job runs on its own actors, not a pool")
        self.pool.set_members(members)
        self.scheduler.share_pool(len(members), pages)
        self.scheduler.roster.capacity_grew()  # a replaced member may take a start now
        self._wake.set()

    def _set_paused(self, reason: str, on: bool) -> None:
        (self._paused_by.add if on else self._paused_by.discard)(reason)
        self.scheduler.paused = bool(self._paused_by)
        self._wake.set()

    async def progress(self) -> dict[str, Any]:
        counts = self.scheduler.ledger.counts()
        return {
            "done": counts["done"],
            "failed": counts["failed"],
            "pending": counts["pending"],
            "leased": counts["leased"],
            "known": sum(counts.values()),
            "resumed": self.stats.resumed,
            "cached": self.stats.cached,
            "discovering": self.discovery.running,
            "rate": self.stats.rate(),
            "latency_ms": self.stats.latency_ms(),
            "limit": self.scheduler.budget.global_limit,
            "verdict": self.verdict.get("verdict", "ok"),
            "memory_fraction": self.verdict.get("memory_fraction"),
            "nodes": dict(self.verdict.get("nodes", {})),
            "paused": sorted(self._paused_by),
            "actors": len(self.scheduler.live_actors()),
            "given_up": self.scheduler.breaker.given_up_domains(),
            "failed_sources": len(self.stats.failed_sources),
            "discovery_cuts": self.stats.discovery_cuts,
            "store": self.output.trouble,
            "monitor": "load monitor down" if self.crew.monitor_down else None,
            "pid": os.getpid(),
        }

    # -- the run -----------------------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        try:
            self._resume(await self._open_store())
            self.stats.mark("store_open")
            self.crew.start_metrics()
            self._background(self._housekeeping())
            if self.pool is None:  # a pool's actors are placed by the service
                await self.node_keeper.read()  # the first actors are placed knowing the nodes
                self._background(self.node_keeper.watch(self._ended))
            self._begin_work()
            await self._loop()
        finally:
            await self._finish()
        return self.summary()

    async def _open_store(self):
        """Take the run over from the store, waiting (bounded) while an earlier Coordinator
        that is dying still holds it."""
        identity = JobIdentity.of(self.job, self.sources)
        deadline = self.job.timeouts.store_outage.total_seconds()
        try:
            return await asyncio.wait_for(asyncio.to_thread(self.output.open, identity), deadline)
        except TimeoutError:
            raise StoreError(
                f"{self.store_config.description} is still held by another coordinator of "
                f"job {self.job.name!r} after {deadline:g}s; is a run of it still going?"
            ) from None

    def _resume(self, resumed) -> None:
        ledger = self.scheduler.ledger
        for cid, status in resumed.finished.items():
            ledger.add_finished(cid, status)
        self.stats.resumed_with(resumed.by_status())
        for container, attempts in resumed.pending:
            ledger.add(container, attempts=attempts)
        self.snapshot = resumed.learner
        skip = set(resumed.sources_done)
        skip |= {s for s in self.sources if f"source:{s}" in resumed.finished}
        self.discovery.skip = skip
        if resumed.finished:
            logger.info("resuming: %d records already written, %d pending",
                        len(resumed.finished), len(resumed.pending))  # fmt: skip

    def _begin_work(self) -> None:
        if self.job.containers.open is OpenMode.SELF:
            id_of = self.job.containers.id_from_value
            self.add([Container.for_page(s, i, id_of(s)) for i, s in enumerate(self.sources)])
        else:
            self.discovery.start(self.sources)

    async def _loop(self) -> None:
        scheduler = self.scheduler
        while True:
            now = time.monotonic()
            tick = scheduler.tick(now)
            self.write_all(tick.records)
            for name in tick.hung:
                logger.warning("%s missed its deadline; killing and replacing it", name)
                self.crew.kill(name)  # its batch calls now end, and release what they held
            for name in tick.start:
                self._background(self._start_actor(name, self.node_keeper.place(name)))
            if tick.start:
                self.node_keeper.replan()
            if self._ended_now():
                return
            stalled = scheduler.roster.stalled()
            if stalled is not None and self.failure is None:
                self.failure = stalled  # the run stops; what is pending stays resumable
                self._halt()
                continue
            for assignment in scheduler.assign(now):
                self._send(assignment)
            wake = scheduler.next_wake(now)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), wake.timeout(now))
                self.wakes["event"] += 1  # an answer, a chunk, a verdict, a control call
            except TimeoutError:
                self.wakes[f"timer:{wake.cause}"] += 1  # time alone changed something

    def _ended_now(self) -> bool:
        scheduler = self.scheduler
        if scheduler.cancelled or scheduler.stopping:
            if self._batches or scheduler.ledger.open_leases():
                return False  # in flight: let it answer (every call has its deadline)
            retry = not scheduler.cancelled  # a stop leaves them pending, for a resume
            self.write_all(scheduler.release_all(time.monotonic(), "stopped", retry=retry))
            return True
        return scheduler.finished and self.discovery.running == 0

    # -- batches -----------------------------------------------------------------------------
    def _send(self, assignment: Assignment) -> None:
        lease = assignment.lease
        self.stats.mark("batch_sent")
        self.store.leased(lease.containers, lease.attempts)
        task = asyncio.create_task(self._run_batch(assignment.actor, lease))
        self._batches[task] = assignment.actor
        task.add_done_callback(self._batches.pop)

    async def _run_batch(self, actor: str, lease) -> None:
        scheduler = self.scheduler
        timeout = max(0.0, lease.deadline - time.monotonic()) + KILL_GRACE_S
        try:
            handle = self.crew.handle(actor)
            records = await asyncio.wait_for(handle.extract.remote(lease.containers), timeout)
        except KeyError:
            self.actor_lost(actor, "killed before its batch was sent")
        except TimeoutError:
            self.actor_lost(actor, f"no answer {KILL_GRACE_S:g}s after its deadline and a kill")
        except OutOfMemoryError as error:
            self.stats.oom_kills += 1
            self.actor_lost(actor, f"Ray OOM killer: {short_error(error)}")
        except RayActorError as error:
            self.actor_lost(actor, f"died: {short_error(error)}", died=True)
        except RayError as error:
            reason = f"{actor} failed the batch: {short_error(error)}"
            self.write_all(scheduler.batch_failed(lease.id, time.monotonic(), reason))
        else:
            self.write_all(scheduler.complete(lease.id, records, time.monotonic()))
        finally:
            self._wake.set()

    def actor_lost(self, name: str, reason: str, *, died: bool = False) -> None:
        """An actor died or was given up: its leases go back, a replacement comes. When the
        last of the run's actors on a node dies, the node may be going: none is placed there
        for a while."""
        if self.scheduler.roster.is_ready(name):
            logger.warning("%s lost (%s); replacing it", name, reason)
        node = self.crew.node_of.get(name)
        self.crew.kill(name)
        if died and node is not None and not self.crew.actors_on(node):
            self.node_keeper.suspect(node)
        self.write_all(self.scheduler.actor_gone(name, time.monotonic(), reason))
        self.discovery.notify()
        self._wake.set()

    async def _start_actor(self, name: str, placement: Placement) -> None:
        try:
            parts = await self.crew.start(name, self.snapshot, placement)
        except StartFailed as error:
            logger.warning("%s", error)
            self.scheduler.start_failed(name, time.monotonic(), str(error))
            self.node_keeper.suspect(placement.node)  # it did not take the actor
        else:
            node = self.crew.node_of.get(name)
            if not self.scheduler.actor_ready(name, node):
                self.crew.kill(name)
                return
            self.stats.mark("actor_ready")
            if not self.stats.actor_start:  # the first actor's start is the run's
                self.stats.actor_start = parts
            if (after := self.node_keeper.actor_started(node)) is not None:
                logger.info("%s started on node %s, %.1fs after it joined",
                            name, (node or "?")[:8], after)  # fmt: skip
        finally:
            self.node_keeper.replan()
            self.discovery.notify()
            self._wake.set()

    # -- containers in, records out --------------------------------------------------------
    def add(self, containers: list[Container]) -> None:
        """Discovered containers: served from the cache where it has them, else queued."""
        ledger = self.scheduler.ledger
        fresh = list({c.id: c for c in containers if ledger.state_of(c.id) is None}.values())
        ledger.duplicates_discovered += len(containers) - len(fresh)
        if containers:
            self.stats.mark("containers_found")
        fresh = self._serve_cached(fresh)
        self.store.added(fresh)
        self.write_all(self.scheduler.add(fresh))
        self._wake.set()

    def _serve_cached(self, containers: list[Container]) -> list[Container]:
        hits, rest = self.output.cached(containers)
        for record in hits:
            self.scheduler.ledger.add_finished(record.id, record.status)
            self.output.write(record)
        return rest

    def write_all(self, records: list[Record]) -> None:
        for record in records:
            self._write(record)

    def _write(self, record: Record) -> None:
        for host in self.stats.note_blocked(record):
            # Once per host and run: a page that looks broken because its images or data
            # come from another host can only be fixed by naming that host.
            logger.warning(
                "requests to %s were blocked (not a source's host); if the pages "
                "need it, add it to browser.allow_domains",
                host,
            )
        self.output.write(record)
        if self.stats.records == 1:  # the first at once: whoever tails the log sees work start
            self._flush_or_pause()

    # -- housekeeping: verdict, flushes, learner snapshots -----------------------------------
    def _background(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_say_if_crashed)

    async def _housekeeping(self) -> None:
        last_flush = last_snapshot = time.monotonic()
        while not self._ended.is_set():
            await self._read_verdicts()
            now = time.monotonic()
            if now - last_flush >= FLUSH_INTERVAL_S:
                last_flush = now
                self._flush_or_pause()
            if now - last_snapshot >= SNAPSHOT_INTERVAL_S:
                last_snapshot = now
                await self._refresh_snapshot()
            with contextlib.suppress(TimeoutError):  # time for the next reading
                await asyncio.wait_for(self._ended.wait(), VERDICT_INTERVAL_S)

    def _flush_or_pause(self) -> None:
        """Flush; while the store is away its writes wait, dispatch pauses if they pile up,
        and after ``timeouts.store_outage`` the run stops (resumable)."""
        if self.output.flush():
            if "store" in self._paused_by:
                logger.warning("the store is back; the run goes on")
            self._set_paused("store", False)
            return
        if self.output.pending_writes() > MAX_UNFLUSHED:
            self._set_paused("store", True)
        if self.output.outage_s() > self.job.timeouts.store_outage.total_seconds():
            self.failure = f"the store did not come back: {self.output.trouble}"
            self._halt()

    async def _read_verdicts(self) -> None:
        """Every node's verdict, asked at once (each call bounded), applied node by node."""
        monitors = self.crew.start_metrics()  # also replaces one that could not be created
        if not monitors:
            return
        nodes = list(monitors)
        answers = await asyncio.gather(*(self._read_node(n, monitors[n]) for n in nodes))
        now = time.monotonic()
        changed = False
        for node, verdict in zip(nodes, answers, strict=True):
            if verdict is not None:
                changed |= self._apply_verdict(node, verdict, now)
        self.verdict = cluster_view(self.node_verdicts)
        self._govern_pages(now)
        self.node_keeper.replan()  # memory moved: a node may take an actor now, or no longer
        if changed:
            self._wake.set()

    async def _read_node(self, node: str, monitor: Any) -> dict[str, Any] | None:
        """One node's verdict; None when there is nothing new to apply. A monitor that died
        or hangs is replaced, and its node is ``ok`` until the new one answers."""
        try:
            return await asyncio.wait_for(monitor.verdict.remote(), 2 * VERDICT_INTERVAL_S + 5)
        except TimeoutError:
            if self.crew.monitor_young(node, self.job.timeouts.actor_start.total_seconds()):
                return None  # still being placed or taking its first sample
            self.crew.restart_metrics(node, "no answer")
        except RayActorError as error:
            self.crew.restart_metrics(node, short_error(error))
        except RayError:
            return None
        last = self.node_verdicts.get(node, {})  # its figures so far stay in the summary
        return {**last, "verdict": "ok", "reason": "load monitor restarting", "heaviest": None}

    def _apply_verdict(self, node: str, verdict: dict[str, Any], now: float) -> bool:
        """Apply ``node``'s verdict to its actors; on entry into shed, recycle its heaviest
        actor. True when the node's verdict changed (dispatch may change)."""
        before = self.node_verdicts.get(node, {}).get("verdict")
        self.node_verdicts[node] = verdict
        self.scheduler.set_verdict(verdict["verdict"], now, node)
        if verdict["verdict"] == "shed" and before != "shed":
            self.stats.shed_requests += 1
            heaviest = verdict.get("heaviest")  # its monitor weighs only its node's actors
            if heaviest and self.scheduler.roster.is_ready(heaviest):
                self.crew.handle(heaviest).recycle.remote(verdict.get("reason", "shed"))
        return verdict["verdict"] != before

    def _govern_pages(self, now: float) -> None:
        """More or fewer pages for the actors of each node whose CPU window is complete
        (:mod:`~coordinator.page_governor`): the slots here at once, the pages there soon."""
        if self.page_governor is None:
            return
        roster = self.scheduler.roster
        for node, verdict in self.node_verdicts.items():
            names = [name for name in self.crew.actors_on(node) if roster.is_ready(name)]
            step = self._pages_step(node, verdict, names, now)
            for name in names if step else []:
                moved = self.scheduler.work_pages(name, roster.entries[name].pages + step)
                if moved is not None:
                    self.stats.pages_moved(name, moved)
                    self._background(self._tell_pages(name, moved))
                    self._wake.set()

    def _pages_step(self, node: str, verdict: dict[str, Any], names: list[str], now: float) -> int:
        governor, roster = self.page_governor, self.scheduler.roster
        assert governor is not None
        governor.reading(node, verdict.get("cpu_percent"), verdict.get("samples"), now)
        working = sum(roster.entries[name].pages for name in names)
        taken = self.scheduler.budget.node_in_flight(node) >= working
        waiting = self.scheduler.ledger.pending > 0 or taken
        pages = working // len(names) if names else 0
        ok = verdict.get("verdict", "ok")
        return governor.step(node, now, pages=pages, waiting=waiting, verdict=ok)

    async def _tell_pages(self, name: str, pages: int) -> None:
        """The actor opens or idles pages; if it is gone meanwhile, its replacement starts
        on ``pages_at_start`` like any other."""
        with contextlib.suppress(RayError, TimeoutError, KeyError):
            call = self.crew.handle(name).set_pages.remote(pages)
            await asyncio.wait_for(call, self.job.timeouts.actor_start.total_seconds())

    async def _refresh_snapshot(self) -> None:
        live = self.scheduler.live_actors()
        if not live:
            return
        with contextlib.suppress(RayError, TimeoutError, KeyError):
            ref = self.crew.handle(live[0]).learner_snapshot.remote()
            self.snapshot = await asyncio.wait_for(ref, 5.0)
            self.store.save_learner(self.snapshot)

    # -- the end -------------------------------------------------------------------------
    async def _finish(self) -> None:
        self._ended.set()
        for task in [*self._batches, *self._tasks, *self.discovery.tasks]:
            task.cancel()
        self.stats.finish()
        self.final_actor_stats = await self.crew.last_word(self.scheduler.live_actors())
        self.node_verdicts.update(await self.crew.stop_metrics())
        self.verdict = cluster_view(self.node_verdicts)
        completed = self.scheduler.finished and self.failure is None
        try:
            await self.output.finish(completed or self.scheduler.cancelled)
        except Exception as error:  # the summary still goes out; the store says why
            self.failure = self.failure or f"the store could not be flushed: {error}"
        finally:
            self.output.close()

    def summary(self) -> dict[str, Any]:
        from landmark.coordinator.summary import build_summary

        return build_summary(self)


def _say_if_crashed(task: asyncio.Task) -> None:
    """A background task that raised is a bug: say so at once, by name. (Unsaid, a crashed
    housekeeping loop would leave the run without verdicts or flushes, and nobody would
    know until the task was garbage-collected.)"""
    if not task.cancelled() and task.exception() is not None:
        name = getattr(task.get_coro(), "__qualname__", task.get_name())
        logger.error("coordinator task %s crashed", name, exc_info=task.exception())


RemoteCoordinator = ray.remote(num_cpus=0, max_restarts=0, max_concurrency=1000)(Coordinator)
