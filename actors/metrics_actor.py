"""The MetricsActor: the one place on a node that decides "too much".

It samples on its own asyncio task every ``sample_interval`` (0.5 s by
default) and keeps the latest verdict ready, so ``verdict()`` is a dictionary
copy, never a measurement: the coordinator can ask before every dispatch.

What it measures, each sample:

* node memory exactly as Ray's OOM killer does (``process_tree.read_node_memory``),
  so our 75% / 85% mean the same thing as Ray's 95%;
* node CPU (``psutil.cpu_percent``: all cores, since the previous sample);
* the summed RSS of each registered actor's process tree (its worker process
  and its browser; Chromium's renderers are descendants);
* ``tree_rss``: the union of every registered tree and of Ray's own processes
  on this node (raylet, GCS, dashboard and agents, every ``ray::`` worker and
  their descendants). The driver is not included unless it registers itself.
  ``peak_tree_rss`` is the largest ``tree_rss`` seen. Summed RSS errs high on
  shared pages (Chromium's, Ray's object store), so every ``PSS_EVERY``-th
  sample also sums PSS over the same processes: ``peak_tree_pss`` is what the
  tree really cost, and what run summaries report.

The decision itself is ``load_monitor.LoadMonitor`` (pure, documented there).
Each sample also sets Ray gauges named ``landmark_*`` (re-set every sample,
since Ray drops a gauge that is not set for a while).

The actor measures its own node only, so a run has one per node that hosts
BrowserActors (the Coordinator's crew creates them, named by
:func:`metrics_actor_name`). It is pinned to its node; actors on other nodes
that register with their ``node_id`` are listed but not walked (a pid means
nothing on another machine). Every gauge carries a ``node`` tag (the node id's
first ``NODE_TAG_CHARS`` characters, as the end table prints it), so a
dashboard can tell the nodes apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import psutil

from landmark.actors.load_monitor import Limits, LoadMonitor, Reading, Verdict
from landmark.actors.process_tree import MemoryReading, ProcessScanner, pss_of, read_node_memory
from landmark.logs import configure_worker_logging

if TYPE_CHECKING:
    from ray.actor import ActorHandle

    from landmark.config.job import BudgetSpec

logger = logging.getLogger(__name__)

# verdict() waits this long for the very first sample; after that it never waits.
FIRST_SAMPLE_DEADLINE = timedelta(seconds=10)
PSS_EVERY = 10  # PSS walks page tables: every 10th sample (~5 s) is enough for a peak
NODE_TAG_CHARS = 8


def metrics_actor_name(job_name: str, node_id: str) -> str:
    """The MetricsActor of ``job_name`` on ``node_id`` (one per node, in the run's namespace):
    a name lets an operator or a test find a node's monitor and, say, ``set_limits`` on it."""
    return f"metrics:{job_name}:{node_id}"


def node_tag(node_id: str | None) -> str:
    return node_id[:NODE_TAG_CHARS] if node_id else "unknown"


@dataclass(slots=True)
class _Registration:
    pids: list[int]
    node_id: str | None


@dataclass(slots=True)
class _Heartbeat:
    stats: dict[str, Any]
    at: float


@dataclass(frozen=True, slots=True)
class _Measurement:
    memory: MemoryReading
    cpu_percent: float
    actors_rss: dict[str, int]
    tree_rss: int
    tree_pss: int | None  # measured every PSS_EVERY samples only
    took: float


@dataclass(slots=True)
class _Gauges:
    """Ray metrics; created in the actor so they are exported from its node."""

    memory_fraction: Any
    memory_used: Any
    cpu_percent: Any
    verdict: Any
    actor_rss: Any
    tree_rss: Any
    shed_events: Any
    throttle_events: Any

    @classmethod
    def create(cls, node: str) -> _Gauges:
        """Every metric is tagged with ``node`` (a default tag: each ``set`` carries it)."""
        from ray.util.metrics import Counter, Gauge

        tags = ("node",)
        gauges = cls(
            memory_fraction=Gauge(
                "landmark_memory_used_fraction",
                "Node memory used/total, as Ray's OOM killer.",
                tag_keys=tags,
            ),
            memory_used=Gauge("landmark_memory_used_bytes", "Node memory used, bytes.", tags),
            cpu_percent=Gauge("landmark_cpu_percent", "Node CPU percent, all cores.", tags),
            verdict=Gauge("landmark_verdict", "Load verdict: 0 ok, 1 throttle, 2 shed.", tags),
            actor_rss=Gauge(
                "landmark_actor_rss_bytes",
                "Summed RSS of a registered actor's process tree.",
                tag_keys=("actor", "node"),
            ),
            tree_rss=Gauge(
                "landmark_tree_rss_bytes",
                "Summed RSS of registered trees and Ray processes.",
                tag_keys=tags,
            ),
            shed_events=Counter("landmark_shed_events", "Entries into shed.", tag_keys=tags),
            throttle_events=Counter(
                "landmark_throttle_events", "Entries into throttle.", tag_keys=tags
            ),
        )
        for metric in (
            gauges.memory_fraction, gauges.memory_used, gauges.cpu_percent, gauges.verdict,
            gauges.actor_rss, gauges.tree_rss, gauges.shed_events, gauges.throttle_events,
        ):  # fmt: skip
            metric.set_default_tags({"node": node})
        return gauges


class MetricsActor:
    """Samples its node, decides ok/throttle/shed, answers ``verdict()`` from the latest sample.

    Create it with ``create_metrics_actor``; the class is plain so the options
    (no CPU, pinned to a node) are set in one place.
    """

    def __init__(
        self,
        budget: BudgetSpec,
        node_id: str | None = None,
        sample_interval: timedelta = timedelta(milliseconds=500),
        hysteresis: float = 0.05,
        hold: timedelta = timedelta(seconds=2),
        window: timedelta = timedelta(seconds=5),
    ) -> None:
        configure_worker_logging()
        self._node_id = node_id
        self._interval = sample_interval.total_seconds()
        self._registered: dict[str, _Registration] = {}
        self._heartbeats: dict[str, _Heartbeat] = {}
        self._memory_total = read_node_memory().total
        limits = Limits.from_budget(budget, self._memory_total)
        self._monitor = LoadMonitor(limits, hysteresis=hysteresis, hold=hold, window=window)
        self._gauges = _Gauges.create(node_tag(node_id))
        self._counted = (0, 0)  # shed, throttle events already added to the counters
        self._peak_tree_rss = 0
        self._peak_tree_pss = 0
        self._tree_pss: int | None = None
        self._scanner = ProcessScanner()
        self._samples = 0
        self._sample_error: str | None = None
        self._latest: dict[str, Any] = {}
        self._latest_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._first_sample: asyncio.Event | None = None
        self._stopping = False
        psutil.cpu_percent(interval=None)  # primes the counter: the first call returns 0.0

    async def start(self) -> None:
        """Start sampling (idempotent; every other method also starts it)."""
        self._ensure_started()

    async def register(self, actor_name: str, pids: list[int], node_id: str | None = None) -> None:
        """Watch these trees as ``actor_name`` (its own pid and its browser's); replaces any
        earlier registration, so call it again after a browser relaunch."""
        self._ensure_started()
        if not all(isinstance(pid, int) and pid > 0 for pid in pids):
            raise ValueError(f"pids must be positive integers, got {pids!r}")
        self._registered[actor_name] = _Registration(list(pids), node_id)

    async def unregister(self, actor_name: str) -> None:
        self._ensure_started()
        self._registered.pop(actor_name, None)
        self._heartbeats.pop(actor_name, None)

    async def heartbeat(self, actor_name: str, stats: dict[str, Any]) -> None:
        """Record an actor's latest self-reported stats (containers done, recycles, ...)."""
        self._ensure_started()
        self._heartbeats[actor_name] = _Heartbeat(dict(stats), time.monotonic())

    async def heartbeats(self) -> dict[str, dict[str, Any]]:
        """``{actor: {"stats": ..., "age_s": seconds since its last heartbeat}}``."""
        now = time.monotonic()
        return {
            name: {"stats": beat.stats, "age_s": now - beat.at}
            for name, beat in self._heartbeats.items()
        }

    async def verdict(self) -> dict[str, Any]:
        """The latest decision and what it was based on; never measures inline.

        Keys: verdict ("ok" | "throttle" | "shed"), reason, memory_used,
        memory_total, memory_fraction, memory_source ("cgroup" | "host"),
        cpu_percent, cpu_overload (share of the CPU window above the limit),
        actors_rss {name: bytes}, heaviest (name or None), shed_events,
        throttle_events, tree_rss, peak_tree_rss, time_in_state {verdict: s},
        samples, sample_age_s, sample_error (last sampling failure or None),
        running.
        """
        self._ensure_started()
        if not self._latest:
            await self._await_first_sample()
        answer = dict(self._latest)
        answer["sample_age_s"] = time.monotonic() - self._latest_at
        answer["running"] = self._task is not None and not self._task.done()
        return answer

    async def set_limits(self, budget: BudgetSpec) -> dict[str, float]:
        """Replace the limits (state and counters are kept); the next sample is taken at once."""
        self._ensure_started()
        limits = Limits.from_budget(budget, self._memory_total)
        self._monitor.limits = limits
        self._wake_loop()
        return {
            "memory_throttle": limits.memory_throttle,
            "memory_shed": limits.memory_shed,
            "cpu_throttle_percent": limits.cpu_throttle_percent,
        }

    async def stop(self) -> None:
        """End the sampling loop; verdict() keeps answering with the last state."""
        self._stopping = True
        self._wake_loop()
        if self._task is not None:
            await self._task

    def _ensure_started(self) -> None:
        if self._task is not None or self._stopping:
            return
        self._wake = asyncio.Event()
        self._first_sample = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    def _wake_loop(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _await_first_sample(self) -> None:
        assert self._first_sample is not None
        try:
            await asyncio.wait_for(self._first_sample.wait(), FIRST_SAMPLE_DEADLINE.total_seconds())
        except TimeoutError:
            raise RuntimeError(
                f"the MetricsActor took no sample within {FIRST_SAMPLE_DEADLINE}: "
                f"{self._sample_error or 'sampling is stuck'}"
            ) from None

    async def _run(self) -> None:
        assert self._wake is not None and self._first_sample is not None
        while not self._stopping:
            await self._sample_once()
            self._first_sample.set()
            with contextlib.suppress(TimeoutError):  # the interval passed: sample again
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()

    async def _sample_once(self) -> None:
        registered = {name: list(entry.pids) for name, entry in self._local_registrations()}
        try:
            with_pss = self._samples % PSS_EVERY == 0
            measurement = await asyncio.to_thread(_measure, self._scanner, registered, with_pss)
            self._sample_error = None
            self._apply(measurement, time.monotonic())
        except Exception as error:  # a failed sample must not end the loop
            logger.exception("MetricsActor sample failed")
            self._sample_error = f"{type(error).__name__}: {error}"
            self._latest["sample_error"] = self._sample_error

    def _local_registrations(self) -> list[tuple[str, _Registration]]:
        return [
            (name, entry)
            for name, entry in self._registered.items()
            if entry.node_id is None or self._node_id is None or entry.node_id == self._node_id
        ]

    def _apply(self, measurement: _Measurement, now: float) -> None:
        memory = measurement.memory
        reading = Reading(memory.used, memory.total, measurement.cpu_percent)
        verdict = self._monitor.observe(reading, now)
        self._samples += 1
        self._peak_tree_rss = max(self._peak_tree_rss, measurement.tree_rss)
        if measurement.tree_pss is not None:
            self._tree_pss = measurement.tree_pss
            self._peak_tree_pss = max(self._peak_tree_pss, measurement.tree_pss)
        actors_rss = measurement.actors_rss
        heaviest = max(actors_rss, key=actors_rss.__getitem__, default=None)
        if heaviest is not None and actors_rss[heaviest] == 0:
            heaviest = None
        self._latest = {
            "verdict": str(verdict),
            "reason": self._monitor.reason,
            "memory_used": memory.used,
            "memory_total": memory.total,
            "memory_fraction": memory.fraction,
            "memory_source": memory.source,
            "cpu_percent": measurement.cpu_percent,
            "cpu_overload": self._monitor.cpu_overload(now),
            "actors_rss": actors_rss,
            "heaviest": heaviest,
            "shed_events": self._monitor.shed_events,
            "throttle_events": self._monitor.throttle_events,
            "tree_rss": measurement.tree_rss,
            "peak_tree_rss": self._peak_tree_rss,
            "tree_pss": self._tree_pss,
            "peak_tree_pss": self._peak_tree_pss,
            "time_in_state": {str(k): v for k, v in self._monitor.time_in_state.items()},
            "samples": self._samples,
            "sample_took_s": measurement.took,
            "sample_error": self._sample_error,
        }
        self._latest_at = now
        self._export(measurement, verdict)

    def _export(self, measurement: _Measurement, verdict: Verdict) -> None:
        gauges = self._gauges
        gauges.memory_fraction.set(measurement.memory.fraction)
        gauges.memory_used.set(measurement.memory.used)
        gauges.cpu_percent.set(measurement.cpu_percent)
        gauges.verdict.set(verdict.level)
        gauges.tree_rss.set(measurement.tree_rss)
        for name, rss in measurement.actors_rss.items():
            gauges.actor_rss.set(rss, tags={"actor": name})
        shed, throttle = self._monitor.shed_events, self._monitor.throttle_events
        if shed > self._counted[0]:
            gauges.shed_events.inc(shed - self._counted[0])
        if throttle > self._counted[1]:
            gauges.throttle_events.inc(throttle - self._counted[1])
        self._counted = (shed, throttle)


def _measure(
    scanner: ProcessScanner, registered: dict[str, list[int]], with_pss: bool
) -> _Measurement:
    """One sample; runs in a worker thread because even one pass over /proc takes milliseconds."""
    started = time.perf_counter()
    memory = read_node_memory()
    cpu = psutil.cpu_percent(interval=None)
    table = scanner.scan()
    actors_rss = {name: table.rss_of(table.trees(pids)) for name, pids in registered.items()}
    everything = table.trees([pid for pids in registered.values() for pid in pids] + [*table.ray])
    return _Measurement(
        memory=memory,
        cpu_percent=cpu,
        actors_rss=actors_rss,
        tree_rss=table.rss_of(everything),
        tree_pss=pss_of(everything) if with_pss else None,
        took=time.perf_counter() - started,
    )


def check_settings(
    budget: BudgetSpec,
    sample_interval: timedelta = timedelta(milliseconds=500),
    *,
    hysteresis: float = 0.05,
    hold: timedelta = timedelta(seconds=2),
    window: timedelta = timedelta(seconds=5),
) -> None:
    """Build what the actor will build, so bad settings fail in the caller with their own
    message (a ValueError) rather than inside an actor."""
    if sample_interval <= timedelta(0):
        raise ValueError("sample_interval must be longer than zero")
    Limits.from_budget(budget, read_node_memory().total)
    LoadMonitor(Limits(0, 0, 100.0), hysteresis=hysteresis, hold=hold, window=window)


def create_metrics_actor(
    budget: BudgetSpec,
    name: str | None = None,
    sample_interval: timedelta = timedelta(milliseconds=500),
    *,
    hysteresis: float = 0.05,
    hold: timedelta = timedelta(seconds=2),
    window: timedelta = timedelta(seconds=5),
    node_id: str | None = None,
) -> ActorHandle:
    """Start a MetricsActor on ``node_id`` (default: the caller's node) and return its handle.

    It takes no CPU slot (it must run even when every slot is busy) and is
    pinned to its node, since it measures the machine it runs on. The limits
    are checked here, so a budget whose absolute throttle exceeds its shed
    fails in the caller with a ValueError rather than inside the actor.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    check_settings(budget, sample_interval, hysteresis=hysteresis, hold=hold, window=window)
    node_id = node_id or ray.get_runtime_context().get_node_id()
    options: dict[str, Any] = {
        "num_cpus": 0,
        "scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=node_id, soft=False),
    }
    if name is not None:
        options["name"] = name
    handle = (
        ray.remote(MetricsActor)
        .options(**options)
        .remote(budget, node_id, sample_interval, hysteresis, hold, window)
    )
    handle.start.remote()
    return handle
