"""The Ray side of the run's actors: create, start within a deadline, kill, and ask for
their last word — every remote call bounded.

The :class:`~coordinator.roster.Roster` (pure) decides which actors should exist; the
crew holds their handles and does what Ray needs. Worker actors take one CPU each. Each goes
to the node :mod:`~coordinator.placement` chose (soft node affinity: if that node is gone,
Ray places it elsewhere), with its pages sized to that node; before anything is known about
the nodes, Ray spreads them (``SPREAD``). Each node that hosts a worker gets its own
MetricsActor: no CPU, pinned to that node (memory is a node's own, so only a monitor there
can measure it), named per job and node (:func:`~actors.metrics_actor.metrics_actor_name`).
It is created when the first worker is placed on the node, so that both boot at once, and
dropped if that worker does not start there after all; a worker Ray put on a node nobody
chose gets one once it has started. Workers register with their own node's monitor. When a
monitor dies the crew starts another for that node and registers the node's workers with
it again: it is an advisor, and the node goes on without shedding meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import ray
from ray.exceptions import RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from landmark.actors.metrics_actor import (
    check_settings,
    create_metrics_actor,
    metrics_actor_name,
)
from landmark.config.job import JobSpec
from landmark.coordinator.placement import Occupant, Placement
from landmark.coordinator.ray_setup import NAMESPACE, NICENESS_ENV, WORKER_NICENESS

logger = logging.getLogger("landmark.coordinator")

FINAL_CALL_S = 5.0  # stats and close at the end of a run, per call


class StartFailed(Exception):
    """An actor did not start; the message is the reason (no traceback needed)."""


class Crew:
    def __init__(
        self,
        actor_class: Any,
        job: JobSpec,
        out_dir: str,
        allowed_hosts: list[str],
        *,
        metrics: bool = True,
        shared_monitors: str | None = None,
    ) -> None:
        """``shared_monitors``: the owner whose MetricsActors to use (``landmark serve``'s
        pool: the service creates one per node and registers its actors); None: this run
        creates, registers and stops its own."""
        self.actor_class = actor_class
        self.job = job
        self.out_dir = out_dir
        self.allowed_hosts = allowed_hosts
        self.handles: dict[str, Any] = {}
        self.pids: dict[str, tuple[int, str | None]] = {}
        self.node_of: dict[str, str | None] = {}  # every actor that started, dead ones too
        self.placed: dict[str, Placement] = {}  # live and starting actors: where, how many pages
        self.monitors: dict[str, Any] = {}  # node id -> its MetricsActor
        self.metrics_restarts = 0
        self._monitor_born: dict[str, float] = {}  # node id -> monotonic time of creation
        self._lost: set[str] = set()  # nodes whose monitor died and is not replaced yet
        self._want_metrics = metrics
        self._shared_monitors = shared_monitors
        self._metrics_started = False
        self._metrics_stopped = False
        self._warned_nice = False

    # -- workers ---------------------------------------------------------------------------
    async def start(
        self, name: str, learner_snapshot: dict[str, Any] | None, placement: Placement
    ) -> dict[str, float]:
        """Create ``name`` where ``placement`` says and wait for its ``start()`` within
        ``timeouts.actor_start``; return how long its start's parts took (seconds)."""
        strategy: Any = "SPREAD"
        if placement.node is not None:
            strategy = NodeAffinitySchedulingStrategy(placement.node, soft=True)
        job = self.job
        if placement.pages != job.budget.pages_per_actor and not self._shared_monitors:
            # A pool's actor keeps the job's pages open: its share may grow later.
            budget = job.budget.model_copy(update={"pages_per_actor": placement.pages})
            job = job.model_copy(update={"budget": budget})
        asked = time.time()
        try:
            handle = self.actor_class.options(num_cpus=1, scheduling_strategy=strategy).remote(
                job, name, self.out_dir, learner_snapshot, self.allowed_hosts
            )
        except (RayError, RuntimeError) as error:  # e.g. a shared pool with no live member
            raise StartFailed(f"{name} could not be created: {short_error(error)}") from None
        self.handles[name] = handle  # ``placed`` holds it already: the placement reserved it
        if placement.node is not None:
            # The node's monitor boots beside the actor, on a core the actor's own boot leaves
            # idle; created once the actor is up, its boot fell on discovery's first chunk.
            self._ensure_monitor(placement.node)
        deadline = self.job.timeouts.actor_start.total_seconds()
        try:
            info = await asyncio.wait_for(handle.start.remote(), deadline)
        except TimeoutError:
            self.kill(name)
            self._drop_unneeded_monitor(placement.node)
            raise StartFailed(
                f"{name} did not start within {deadline:g}s (no CPU free to place it, "
                "or its browser hung while launching)"
            ) from None
        except RayError as error:
            self.kill(name)
            self._drop_unneeded_monitor(placement.node)
            raise StartFailed(f"{name} could not start: {short_error(error)}") from None
        node = info.get("node_id") or ray.get_runtime_context().get_node_id()
        self._warn_if_niced(name, info.get("nice"))
        self.pids[name] = (int(info["pid"]), node)
        self.node_of[name] = node
        self.placed[name] = Placement(node, placement.pages)  # where Ray put it in the end
        if node in self.monitors:
            self._register(name)
        else:
            self._ensure_monitor(node)  # registers the node's workers, this one included
        if node != placement.node:
            self._drop_unneeded_monitor(placement.node)  # Ray put it elsewhere after all
        return start_parts(asked, info)

    def _warn_if_niced(self, name: str, nice: int | None) -> None:
        """Once per run: a worker at a lowered priority (a cluster started with Ray's default
        worker niceness, 15) loses the CPU to its own Chromium, which raises its own."""
        if nice is None or nice <= WORKER_NICENESS or self._warned_nice:
            return
        self._warned_nice = True
        logger.warning(
            "%s runs at nice %d: the Ray cluster was started with Ray's default worker "
            "niceness, and on a busy node its browser's pages wait for it; start Ray with "
            "%s=%d (the scripts in cluster/ do)",
            name, nice, NICENESS_ENV, WORKER_NICENESS,
        )  # fmt: skip

    def placement(self, records_by_actor: dict[str, int]) -> dict[str, dict[str, int]]:
        """Per node (its id): the actors started there and the records they extracted."""
        nodes: dict[str, dict[str, int]] = {}
        for name, node in self.node_of.items():
            entry = nodes.setdefault(node or "unknown", {"actors": 0, "records": 0})
            entry["actors"] += 1
            entry["records"] += records_by_actor.get(name, 0)
        return nodes

    def occupants(
        self, verdicts: dict[str, dict[str, Any]], opened: dict[str, int] | None = None
    ) -> list[Occupant]:
        """This run's live and starting actors by node, with the memory their node's monitor
        last saw them use (None until it has weighed them). A weighed actor counts the pages
        it holds open (``opened``), which its memory is the cost of; one not weighed yet
        counts all it may open, so the room it may grow into stays reserved."""
        out = []
        for name, placement in self.placed.items():
            if placement.node is None:
                continue
            rss = ((verdicts.get(placement.node) or {}).get("actors_rss") or {}).get(name)
            pages = (opened or {}).get(name, placement.pages) if rss else placement.pages
            out.append(Occupant(placement.node, pages, rss or None))
        return out

    def actors_on(self, node: str) -> list[str]:
        """Live and starting actors placed on ``node``."""
        return [name for name, placement in self.placed.items() if placement.node == node]

    def handle(self, name: str) -> Any:
        return self.handles[name]

    def kill(self, name: str) -> None:
        """Kill a worker now; its calls in flight end with ActorDiedError."""
        handle = self.handles.pop(name, None)
        self.pids.pop(name, None)
        self.placed.pop(name, None)
        if handle is not None and hasattr(handle, "release"):
            handle.release()  # a shared actor (``pool_view``): only this job's session goes
            return
        if handle is not None:
            with contextlib.suppress(RayError, ValueError):
                ray.kill(handle, no_restart=True)
        monitor = self.monitors.get(self.node_of.get(name) or "")
        if monitor is not None:
            monitor.unregister.remote(name)

    async def last_word(self, names: list[str]) -> list[dict[str, Any]]:
        """Each live worker's stats, then close it (both bounded), then kill it."""
        calls = [self._bounded(self.handles[n].stats.remote()) for n in names if n in self.handles]
        answers = await asyncio.gather(*calls, return_exceptions=True)
        closes = [self._bounded(self.handles[n].close.remote()) for n in names if n in self.handles]
        await asyncio.gather(*closes, return_exceptions=True)
        for name in list(self.handles):
            self.kill(name)
        return [answer for answer in answers if isinstance(answer, dict)]

    @staticmethod
    async def _bounded(ref: Any) -> Any:
        return await asyncio.wait_for(ref, FINAL_CALL_S)

    # -- the MetricsActors, one per node ----------------------------------------------------
    def start_metrics(self) -> dict[str, Any]:
        """A monitor for every node with live workers (a no-op without ``metrics``);
        returns them by node. Called at the start of a run and before each reading, so a
        monitor that could not be created (its name still held by a dying predecessor) is
        tried again."""
        if not self._want_metrics or self._metrics_stopped:
            return {}
        if not self._metrics_started and not self._shared_monitors:
            check_settings(self.job.budget)  # bad limits fail the run here, not per node
            self._metrics_started = True
        for node in self.wanted_nodes():
            self._ensure_monitor(node)
        return dict(self.monitors)

    def wanted_nodes(self) -> set[str]:
        """Nodes that host a live worker: each should have a monitor."""
        return {node for _, node in self.pids.values() if node is not None}

    @property
    def monitor_down(self) -> bool:
        """Wanted and missing on some node (not started yet, dead, or between a death and its
        replacement); not merely stopped at the end of the run."""
        if not self._want_metrics or self._metrics_stopped:
            return False
        return not self._metrics_started or any(
            node not in self.monitors for node in self.wanted_nodes()
        )

    def monitor_young(self, node: str, grace_s: float) -> bool:
        """Created less than ``grace_s`` ago: a slow first answer is a start, not a hang."""
        born = self._monitor_born.get(node)
        return born is not None and time.monotonic() - born < grace_s

    def restart_metrics(self, node: str, reason: str) -> None:
        """Replace ``node``'s MetricsActor that died; that node goes on without shedding
        meanwhile, the others are untouched. A node with no live worker left (it may be
        gone itself) gets none: there is nothing there to protect."""
        handle = self.monitors.pop(node, None)
        self._monitor_born.pop(node, None)
        if self._shared_monitors:
            return  # the service's to replace; the next reading looks it up again
        if handle is not None:
            with contextlib.suppress(RayError, ValueError):
                ray.kill(handle, no_restart=True)
        self._lost.add(node)  # its next monitor, now or when a worker returns, is a restart
        if node not in self.wanted_nodes():
            logger.debug("the MetricsActor of node %s is gone (%s)", node[:8], reason)
            return
        logger.warning("the MetricsActor of node %s is gone (%s); starting another",
                       node[:8], reason)  # fmt: skip
        self._ensure_monitor(node)

    def _drop_unneeded_monitor(self, node: str | None) -> None:
        """The monitor created for a worker placed on ``node`` (see :meth:`start`), when no
        worker went there after all: it would watch nothing, and a verdict about a node
        with none of the run's workers is noise. Stopped, not lost: no restart is counted."""
        if node is None or self._shared_monitors or self.actors_on(node):
            return
        if node in self.wanted_nodes():
            return
        handle = self.monitors.pop(node, None)
        self._monitor_born.pop(node, None)
        if handle is not None:
            with contextlib.suppress(RayError, ValueError):
                ray.kill(handle, no_restart=True)

    def _ensure_monitor(self, node: str) -> None:
        if not self._want_metrics or self._metrics_stopped or node in self.monitors:
            return
        if self._shared_monitors:
            self._adopt_monitor(node)
            return
        name = metrics_actor_name(self.job.name, node)
        try:  # the settings were checked by start_metrics: a ValueError is the name in use
            handle = create_metrics_actor(self.job.budget, name=name, node_id=node)
        except (ValueError, RayError) as error:  # freed when the old one is gone; next reading
            logger.debug("no MetricsActor on node %s yet: %s", node[:8], short_error(error))
            return
        self.monitors[node] = handle
        self._monitor_born[node] = time.monotonic()
        if node in self._lost:
            self._lost.discard(node)
            self.metrics_restarts += 1
        for worker, (_, worker_node) in self.pids.items():
            if worker_node == node:
                self._register(worker)

    def _adopt_monitor(self, node: str) -> None:
        """The service's MetricsActor on ``node``, if it has one yet."""
        name = metrics_actor_name(self._shared_monitors or "", node)
        try:
            self.monitors[node] = ray.get_actor(name, namespace=NAMESPACE)
        except ValueError:
            return
        self._monitor_born[node] = time.monotonic()

    def _register(self, name: str) -> None:
        if self._shared_monitors:
            return  # the service registered the pool's actors itself
        pid, node = self.pids.get(name, (0, None))
        monitor = self.monitors.get(node or "")
        if monitor is not None:
            monitor.register.remote(name, [pid], node)

    async def stop_metrics(self) -> dict[str, dict[str, Any]]:
        """Every node's last verdict (peak memory, events), then stop the monitors; all
        asked at once, each bounded."""
        self._metrics_stopped = True
        monitors, self.monitors = self.monitors, {}
        nodes = list(monitors)
        calls = [self._bounded(monitors[node].verdict.remote()) for node in nodes]
        answers = await asyncio.gather(*calls, return_exceptions=True)
        for handle in [] if self._shared_monitors else monitors.values():
            with contextlib.suppress(RayError, ValueError):
                ray.kill(handle, no_restart=True)
        return {
            node: answer
            for node, answer in zip(nodes, answers, strict=True)
            if isinstance(answer, dict)
        }


def start_parts(asked: float, info: dict[str, Any]) -> dict[str, float]:
    """An actor's start in parts: ``actor_process`` from the ask to its ``__init__`` (Ray
    placing it, a new worker process, imports; wall clocks, so across nodes only as good as
    their sync), then its session's Playwright, browser and pages."""
    parts = {f"actor_{part}": seconds for part, seconds in (info.get("start_s") or {}).items()}
    if info.get("init_at") is not None:
        parts = {"actor_process": round(info["init_at"] - asked, 3), **parts}
    return parts


def short_error(error: BaseException) -> str:
    """One readable line: the remote exception's own message, not Ray's coloured header."""
    import re

    cause = getattr(error, "cause", None) or error
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(cause)).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0][:300] if lines else type(cause).__name__
