"""The Coordinator actor: every scheduling decision of a run, in one place.

It owns the ledger (where each container is), the budget (how much may be in
flight), the per-domain circuit breaker and the output stream. Workers never
pull from a shared queue: the coordinator leases small batches to actors with
free slots and watches the answers. Whatever dies — an actor, a browser, the
memory of the node — the ledger takes the lease back and the container runs
again elsewhere, so every container ends with exactly one record.

The dispatch loop waits on one ``asyncio.Event`` (``_wake``) with a deadline
equal to the next thing that can change the picture: a retry's not-before
time, a lease's deadline, a token refill, the next verdict. Nothing sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import OutOfMemoryError, RayActorError, RayError

from actors.browser_actor import BrowserActor
from actors.learner import percentile
from config.job import JobSpec, OpenMode
from config.records import Container, Phase, Record, Status, domain_of
from coordinator.breaker import CircuitBreaker
from coordinator.budget import Budget
from coordinator.ledger import Ledger, Outcome
from coordinator.store import JsonlSink

VERDICT_INTERVAL_S = 0.5
SNAPSHOT_INTERVAL_S = 10.0
LATENCY_RESERVOIR = 10_000
RATE_WINDOW_S = 10.0
REPLACEMENTS_PER_ACTOR = 3


@dataclass(slots=True)
class ActorEntry:
    name: str
    handle: Any
    slots: int
    galleries: set[str] = field(default_factory=set)
    alive: bool = True


@dataclass(slots=True)
class RunStats:
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    records: int = 0
    by_status: dict[str, int] = field(default_factory=lambda: dict.fromkeys(Status, 0))
    latencies: list[float] = field(default_factory=list)  # a reservoir sample, ms
    latency_seen: int = 0
    actor_deaths: int = 0
    oom_kills: int = 0
    expired_leases: int = 0
    shed_requests: int = 0
    discovery_failures: int = 0
    done_times: deque[float] = field(default_factory=deque)


class Coordinator:
    """Created through :func:`create_coordinator`; ``run()`` returns the summary."""

    def __init__(
        self,
        job: JobSpec,
        sources: list[str],
        out_dir: str,
        metrics: Any = None,
        actor_class: Any = None,
    ) -> None:
        """``actor_class`` is a Ray actor class with BrowserActor's methods (benchmarks pass a
        no-op one to measure the coordinator alone)."""
        from pathlib import Path

        self.job = job
        self.sources = sources
        self.out_dir = Path(out_dir)
        self.metrics = metrics
        self.actor_class = actor_class or BrowserActor
        self.ledger = Ledger(job.retries, rng=random.Random(0))
        self.budget = Budget.from_spec(job.budget)
        self.breaker = CircuitBreaker.from_spec(job.retries)
        self.sink = JsonlSink(self.out_dir / job.output.results, fresh=True)
        self.stats = RunStats()
        self.actors: dict[str, ActorEntry] = {}
        self.verdict: dict[str, Any] = {"verdict": "ok", "reason": "no reading yet"}
        self.snapshot: dict[str, Any] | None = None
        self.final_actor_stats: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._paused = False
        self._cancelled = False
        self._discovering = 0
        self._batches: set[asyncio.Task] = set()
        self._spawned = 0
        self._starting = 0  # replacements created but not yet started
        self._rng = random.Random(1)

    # -- control (called by the driver) --------------------------------------
    async def pause(self) -> None:
        self._paused = True

    async def resume(self) -> None:
        self._paused = False
        self._wake.set()

    async def cancel(self) -> None:
        self._cancelled = True
        self._wake.set()

    async def progress(self) -> dict[str, Any]:
        counts = self.ledger.counts()
        now = time.monotonic()
        window = self.stats.done_times
        while window and now - window[0] > RATE_WINDOW_S:
            window.popleft()
        span = min(RATE_WINDOW_S, now - self.stats.started) or 1.0
        return {
            "done": counts["done"],
            "failed": counts["failed"],
            "pending": counts["pending"],
            "leased": counts["leased"],
            "known": sum(counts.values()),
            "discovering": self._discovering,
            "rate": len(window) / span,
            "limit": self.budget.global_limit,
            "verdict": self.verdict.get("verdict", "ok"),
            "memory_fraction": self.verdict.get("memory_fraction"),
            "paused": self._paused,
            "actors": sum(1 for entry in self.actors.values() if entry.alive),
        }

    # -- the run -------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        await self._start_actors(self.job.budget.actors)
        if not any(entry.alive for entry in self.actors.values()):
            self.sink.close()
            raise RuntimeError("no BrowserActor could start; see the actor errors above")
        watcher = asyncio.create_task(self._watch_verdict())
        if self.job.containers.open is OpenMode.SELF:
            from actors.worker import BrowserWorker

            self._add([BrowserWorker.self_container(s, i) for i, s in enumerate(self.sources)])
            discoveries = []
        else:
            self._discovering = len(self.sources)
            discoveries = [asyncio.create_task(self._discover(s)) for s in self.sources]
        try:
            await self._dispatch_loop()
        finally:
            self._stop.set()
            for task in discoveries:
                task.cancel()
            watcher.cancel()
            await self._finish()
        return self.summary()

    def _discovery_done(self) -> bool:
        return self._discovering == 0

    async def _dispatch_loop(self) -> None:
        while True:
            now = time.monotonic()
            self._expire_leases(now)
            if self._cancelled:
                await self._drain_for_cancel()
                return
            if self.ledger.is_finished and self._discovery_done() and not self._batches:
                return
            if not self._paused:
                self._dispatch(now)
            if not any(entry.alive for entry in self.actors.values()) and not self._replace_dead():
                self._fail_everything("no live BrowserActor remains")
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):  # a deadline passed: look again
                await asyncio.wait_for(self._wake.wait(), timeout=self._next_wake(now))

    def _next_wake(self, now: float) -> float:
        """Seconds until something may change without an event: a retry, a token, a lease."""
        candidates = [VERDICT_INTERVAL_S]
        ready = self.ledger.next_ready_at()
        if ready is not None and ready > now:
            candidates.append(ready - now)
        elif ready is not None:
            candidates.append(max(0.001, self.budget.wait_time(now)))
        return max(0.001, min(candidates))

    def _dispatch(self, now: float) -> None:
        """Lease batches round-robin, emptiest actor first, until the budget or the queue is
        spent: under a small global limit every actor still gets work."""
        deadline = now + self.job.timeouts.lease.total_seconds()
        batch_size = self.job.budget.batch_size
        accept = self._accept(now)
        leased = True
        while leased:
            leased = False
            live = [entry for entry in self.actors.values() if entry.alive]
            for entry in sorted(live, key=lambda e: -self.budget.free_slots(e.name)):
                room = self.budget.allowance(entry.name, now)
                if room <= 0:
                    continue
                lease = self.ledger.lease(
                    entry.name,
                    min(room, batch_size),
                    now,
                    deadline,
                    accept=accept,
                    prefer=self._prefers(entry),
                )
                if lease is None:
                    return  # nothing ready that the budget accepts, for anyone
                leased = True
                self._start_batch(entry, lease)

    def _start_batch(self, entry: ActorEntry, lease) -> None:
        self.budget.start(entry.name, len(lease.containers))
        entry.galleries.update(c.source for c in lease.containers if c.open == OpenMode.CLICK)
        task = asyncio.create_task(self._run_batch(entry, lease))
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)

    def _accept(self, now: float):
        def accept(container: Container) -> bool:
            domain = domain_of(container.target)
            return self.breaker.allow(domain, now) and self.budget.try_start_domain(domain, now)

        return accept

    @staticmethod
    def _prefers(entry: ActorEntry):
        if not entry.galleries:
            return None
        return lambda container: container.source in entry.galleries

    async def _run_batch(self, entry: ActorEntry, lease) -> None:
        try:
            records: list[Record] = await entry.handle.extract.remote(lease.containers)
        except OutOfMemoryError as error:
            self.stats.oom_kills += 1
            self._lost_lease(entry, lease, f"Ray OOM killer: {_short(error)}")
        except RayActorError as error:
            self._lost_lease(entry, lease, f"actor {entry.name} died: {_short(error)}")
        except RayError as error:
            self._release(lease, f"actor {entry.name} failed the batch: {_short(error)}")
        else:
            self._merge(lease, records)
        finally:
            self._wake.set()

    def _merge(self, lease, records: list[Record]) -> None:
        now = time.monotonic()
        targets = {c.id: c.target for c in lease.containers}
        for record in records:
            domain = domain_of(targets.get(record.id, record.source))
            completion = self.ledger.complete(lease.id, record, now)
            if completion.outcome is Outcome.DUPLICATE:
                continue
            ok = record.status != Status.FAILED
            reason = record.errors[0].reason if record.errors and not ok else None
            self.breaker.record(domain, ok, reason, now)
            latency = record.timings.get("total")
            self.budget.finish(lease.actor, domain, now, latency / 1000 if ok and latency else None)
            if completion.outcome is Outcome.FINAL and completion.record is not None:
                self._write(completion.record)
        self._release(lease, "the actor answered without this container")

    def _lost_lease(self, entry: ActorEntry, lease, reason: str) -> None:
        self._lost_actor(entry, reason)
        self._release(lease, reason)

    def _release(self, lease, reason: str, *, retry: bool = True) -> None:
        """Give back whatever of ``lease`` is still open; write the records that end there."""
        now = time.monotonic()
        open_ids = self.ledger.open_ids(lease.id)
        for container in lease.containers:
            if container.id in open_ids:
                self.budget.finish(lease.actor, domain_of(container.target), now)
        for record in self.ledger.release(lease.id, now, reason, retry=retry):
            self._write(record)

    def _expire_leases(self, now: float) -> None:
        for lease_id in self.ledger.expired(now):
            lease = self.ledger.get_lease(lease_id)
            if lease is not None:
                self.stats.expired_leases += 1
                self._release(lease, "lease expired: the actor did not answer in time")

    def _write(self, record: Record) -> None:
        self.sink.write(record)
        stats = self.stats
        stats.records += 1
        stats.by_status[record.status] = stats.by_status.get(record.status, 0) + 1
        now = time.monotonic()
        stats.done_times.append(now)
        while now - stats.done_times[0] > RATE_WINDOW_S:  # bounded: the last 10 s only
            stats.done_times.popleft()
        latency = record.timings.get("total")
        if latency is not None:
            stats.latency_seen += 1
            if len(stats.latencies) < LATENCY_RESERVOIR:
                stats.latencies.append(latency)
            else:
                slot = self._rng.randrange(stats.latency_seen)
                if slot < LATENCY_RESERVOIR:
                    stats.latencies[slot] = latency

    # -- actors --------------------------------------------------------------
    async def _start_actors(self, count: int) -> None:
        await asyncio.gather(*(self._spawn() for _ in range(count)))

    async def _spawn(self, replacement: bool = False) -> ActorEntry | None:
        try:
            return await self._start_one()
        finally:
            if replacement:
                self._starting -= 1

    async def _start_one(self) -> ActorEntry | None:
        name = f"browser-{self._spawned}"
        self._spawned += 1
        slots = self.job.budget.pages_per_actor + self.job.budget.batch_size
        handle = self.actor_class.options(num_cpus=1).remote(
            self.job, name, str(self.out_dir), self.snapshot, self.metrics
        )
        entry = ActorEntry(name, handle, slots)
        self.actors[name] = entry
        try:
            await handle.start.remote()
        except RayError as error:
            entry.alive = False
            print(f"landmark: {name} could not start: {_short(error)}", flush=True)
            return None
        self.budget.register_actor(name, slots)
        self._wake.set()
        return entry

    def _replace_dead(self) -> bool:
        """Start a replacement for each dead actor while the replacement allowance lasts."""
        allowance = self.job.budget.actors * (1 + REPLACEMENTS_PER_ACTOR)
        live = sum(1 for entry in self.actors.values() if entry.alive)
        missing = self.job.budget.actors - live - self._starting
        started = False
        while missing > 0 and self._spawned < allowance:
            self._starting += 1  # counted now: the task has not run yet when we look again
            task = asyncio.create_task(self._spawn(replacement=True))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)
            missing -= 1
            started = True
        return started or any(not task.done() for task in self._batches)

    # -- discovery -----------------------------------------------------------
    async def _discover(self, source: str) -> None:
        """Feed the ledger while an actor scrolls ``source``; retry on another actor if it dies.

        ``_discovering`` was counted up when the task was made, so the dispatch loop never
        mistakes a discovery that has not started yet for a finished run."""
        reason = "no live actor to discover it"
        try:
            for _attempt in range(self.job.retries.max_attempts):
                entry = self._discovery_actor()
                if entry is None:
                    break
                try:
                    async for ref in entry.handle.discover.remote(source):
                        self._add(await ref)
                    entry.galleries.add(source)
                    return
                except (RayActorError, OutOfMemoryError) as error:
                    reason = _short(error)
                    self._lost_actor(entry, f"discovery: {reason}")
                except RayError as error:  # the page failed (crash, network): try again
                    reason = _short(error)
            self._source_failed(source, reason)
        finally:
            self._discovering -= 1
            self._wake.set()

    def _discovery_actor(self) -> ActorEntry | None:
        live = [entry for entry in self.actors.values() if entry.alive]
        if not live:
            return None
        return min(live, key=lambda entry: (len(entry.galleries), entry.name))

    def _lost_actor(self, entry: ActorEntry, reason: str) -> None:
        """Mark an actor dead once (its other batches report the same death) and replace it."""
        if entry.alive:
            entry.alive = False
            self.stats.actor_deaths += 1
            self.budget.unregister_actor(entry.name)
            print(f"landmark: {entry.name} lost ({reason}); replacing it", flush=True)
        self._replace_dead()

    def _add(self, containers: list[Container]) -> None:
        for container in containers:
            self.ledger.add(container)
        self._wake.set()

    def _source_failed(self, source: str, reason: str) -> None:
        """A source that yields no containers still gets a record, so it is not silently lost."""
        self.stats.discovery_failures += 1
        container = Container(id=f"source:{source}", source=source, position=-1, open="self")
        if self.ledger.add(container):
            for record in self.ledger.fail_pending(
                reason, predicate=lambda c: c.id == container.id, phase=Phase.DISCOVER
            ):
                self._write(record)

    # -- load ----------------------------------------------------------------
    async def _watch_verdict(self) -> None:
        last_snapshot = time.monotonic()
        while not self._stop.is_set():
            if self.metrics is not None:
                await self._read_verdict()
            now = time.monotonic()
            if now - last_snapshot > SNAPSHOT_INTERVAL_S:
                last_snapshot = now
                await self._refresh_snapshot()
            with contextlib.suppress(TimeoutError):  # time for the next reading
                await asyncio.wait_for(self._stop.wait(), timeout=VERDICT_INTERVAL_S)

    async def _read_verdict(self) -> None:
        try:
            verdict = await self.metrics.verdict.remote()
        except RayError:
            return
        before = self.verdict.get("verdict")
        self.verdict = verdict
        self.budget.verdict(verdict["verdict"], time.monotonic())
        if verdict["verdict"] == "shed" and before != "shed":
            self._shed(verdict)
        if verdict["verdict"] != before:
            self._wake.set()

    def _shed(self, verdict: dict[str, Any]) -> None:
        """Ask the heaviest actor to recycle its context; the budget has already cut."""
        self.stats.shed_requests += 1
        entry = self.actors.get(verdict.get("heaviest") or "")
        if entry is not None and entry.alive:
            entry.handle.recycle.remote(verdict.get("reason", "shed"))

    async def _refresh_snapshot(self) -> None:
        live = [entry for entry in self.actors.values() if entry.alive]
        if live:
            with contextlib.suppress(RayError):  # a dying actor: keep the last snapshot
                self.snapshot = await live[0].handle.learner_snapshot.remote()

    # -- the end -------------------------------------------------------------
    async def _drain_for_cancel(self) -> None:
        """Let batches in flight finish (bounded by their leases), then fail what is left."""
        if self._batches:
            await asyncio.wait(
                set(self._batches), timeout=self.job.timeouts.container.total_seconds()
            )
        for lease_id in list(self.ledger.open_leases()):
            lease = self.ledger.get_lease(lease_id)
            if lease is not None:
                self._release(lease, "cancelled", retry=False)
        for record in self.ledger.fail_pending("cancelled before it was tried"):
            self._write(record)

    def _fail_everything(self, reason: str) -> None:
        for lease_id in list(self.ledger.open_leases()):
            lease = self.ledger.get_lease(lease_id)
            if lease is not None:
                self._release(lease, reason, retry=False)
        for record in self.ledger.fail_pending(reason):
            self._write(record)
        self._cancelled = True

    async def _finish(self) -> None:
        self.stats.finished = time.monotonic()
        live = [entry for entry in self.actors.values() if entry.alive]
        results = await asyncio.gather(
            *(entry.handle.stats.remote() for entry in live), return_exceptions=True
        )
        self.final_actor_stats = [r for r in results if isinstance(r, dict)]
        await asyncio.gather(
            *(entry.handle.close.remote() for entry in live), return_exceptions=True
        )
        for entry in live:
            ray.kill(entry.handle)
        if self.metrics is not None:
            with contextlib.suppress(RayError):
                self.verdict = await self.metrics.verdict.remote()
        self.sink.close()

    def summary(self) -> dict[str, Any]:
        stats = self.stats
        wall = (stats.finished or time.monotonic()) - stats.started
        cache_hits = sum(s["cache"]["hits"] for s in self.final_actor_stats)
        cache_misses = sum(s["cache"]["misses"] for s in self.final_actor_stats)
        return {
            "job": self.job.name,
            "completed": not self._cancelled,
            "records": stats.records,
            "by_status": dict(stats.by_status),
            "wall_s": round(wall, 3),
            "per_minute": round(stats.records / wall * 60, 1) if wall > 0 else 0.0,
            "latency_ms": {
                "p50": round(percentile(stats.latencies, 0.5), 1),
                "p95": round(percentile(stats.latencies, 0.95), 1),
            },
            "retries": self.ledger.retries,
            "duplicates_dropped": self.ledger.duplicates_dropped,
            "duplicates_discovered": self.ledger.duplicates_discovered,
            "actor_deaths": stats.actor_deaths,
            "oom_kills": stats.oom_kills,
            "expired_leases": stats.expired_leases,
            "discovery_failures": stats.discovery_failures,
            "dom_cache": {
                "hits": cache_hits,
                "misses": cache_misses,
                "hit_ratio": round(cache_hits / (cache_hits + cache_misses), 4)
                if cache_hits + cache_misses
                else 0.0,
            },
            "shed_events": self.verdict.get("shed_events", 0),
            "throttle_events": self.verdict.get("throttle_events", 0),
            "shed_requests": stats.shed_requests,
            "peak_tree_pss": self.verdict.get("peak_tree_pss"),
            "peak_tree_rss": self.verdict.get("peak_tree_rss"),
            "breaker": {d: self.breaker.why(d) for d in self.breaker.open_domains()},
            "adaptive_limit": self.budget.limit.value,
            "actors": self.final_actor_stats,
            "learner": self.final_actor_stats[0]["learner"] if self.final_actor_stats else {},
        }


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _short(error: BaseException) -> str:
    """One readable line: the remote exception's own message, not Ray's coloured header."""
    cause = getattr(error, "cause", None) or error
    lines = [line for line in _ANSI.sub("", str(cause)).strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else type(cause).__name__


RemoteCoordinator = ray.remote(num_cpus=0, max_restarts=0, max_concurrency=1000)(Coordinator)
