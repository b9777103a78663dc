"""The Ray side of the run's actors: create, start within a deadline, kill, and ask for
their last word — every remote call bounded.

The :class:`~coordinator.roster.Roster` (pure) decides which actors should exist; the
crew holds their handles and does what Ray needs. Worker actors take one CPU each and are
spread over the cluster's nodes (Ray's ``SPREAD``: one busy node does not get every
browser while another idles); the MetricsActor takes none and is pinned to the
coordinator's node. When the MetricsActor
dies, the crew starts another and registers the workers with it again: it is an advisor,
and the run goes on without shedding meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import ray
from ray.exceptions import RayError

from landmark.actors.metrics_actor import create_metrics_actor
from landmark.config.job import JobSpec

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
    ) -> None:
        self.actor_class = actor_class
        self.job = job
        self.out_dir = out_dir
        self.allowed_hosts = allowed_hosts
        self.handles: dict[str, Any] = {}
        self.pids: dict[str, tuple[int, str | None]] = {}
        self.node_of: dict[str, str | None] = {}  # every actor that started, dead ones too
        self.metrics: Any = None
        self.metrics_restarts = 0
        self._want_metrics = metrics
        self._metrics_stopped = False

    # -- workers ---------------------------------------------------------------------------
    async def start(self, name: str, learner_snapshot: dict[str, Any] | None) -> None:
        """Create ``name`` and wait for its ``start()`` within ``timeouts.actor_start``."""
        handle = self.actor_class.options(num_cpus=1, scheduling_strategy="SPREAD").remote(
            self.job, name, self.out_dir, learner_snapshot, self.allowed_hosts
        )
        self.handles[name] = handle
        deadline = self.job.timeouts.actor_start.total_seconds()
        try:
            info = await asyncio.wait_for(handle.start.remote(), deadline)
        except TimeoutError:
            self.kill(name)
            raise StartFailed(
                f"{name} did not start within {deadline:g}s (no CPU free to place it, "
                "or its browser hung while launching)"
            ) from None
        except RayError as error:
            self.kill(name)
            raise StartFailed(f"{name} could not start: {short_error(error)}") from None
        self.pids[name] = (int(info["pid"]), info.get("node_id"))
        self.node_of[name] = info.get("node_id")
        self._register(name)

    def placement(self, records_by_actor: dict[str, int]) -> dict[str, dict[str, int]]:
        """Per node (its id): the actors started there and the records they extracted."""
        nodes: dict[str, dict[str, int]] = {}
        for name, node in self.node_of.items():
            entry = nodes.setdefault(node or "unknown", {"actors": 0, "records": 0})
            entry["actors"] += 1
            entry["records"] += records_by_actor.get(name, 0)
        return nodes

    def handle(self, name: str) -> Any:
        return self.handles[name]

    def kill(self, name: str) -> None:
        """Kill a worker now; its calls in flight end with ActorDiedError."""
        handle = self.handles.pop(name, None)
        self.pids.pop(name, None)
        if handle is not None:
            with contextlib.suppress(RayError, ValueError):
                ray.kill(handle, no_restart=True)
        if self.metrics is not None:
            self.metrics.unregister.remote(name)

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

    # -- the MetricsActor -------------------------------------------------------------------
    def start_metrics(self) -> None:
        if not self._want_metrics:
            return
        self.metrics = create_metrics_actor(self.job.budget)
        for name in self.pids:
            self._register(name)

    @property
    def monitor_down(self) -> bool:
        """Wanted and missing (dead, or between a death and its replacement); not merely
        stopped at the end of the run."""
        return self._want_metrics and self.metrics is None and not self._metrics_stopped

    def restart_metrics(self, reason: str) -> None:
        """Replace a MetricsActor that died; the run goes on without shedding meanwhile."""
        logger.warning("the MetricsActor is gone (%s); starting another", reason)
        self.metrics_restarts += 1
        with contextlib.suppress(RayError, ValueError):
            ray.kill(self.metrics, no_restart=True)
        self.metrics = None
        self.start_metrics()

    def _register(self, name: str) -> None:
        if self.metrics is not None and name in self.pids:
            pid, node_id = self.pids[name]
            self.metrics.register.remote(name, [pid], node_id)

    async def stop_metrics(self) -> dict[str, Any] | None:
        """The MetricsActor's last verdict (peak memory, events), then stop it; bounded."""
        self._metrics_stopped = True
        if self.metrics is None:
            return None
        verdict = None
        with contextlib.suppress(RayError, TimeoutError):
            verdict = await asyncio.wait_for(self.metrics.verdict.remote(), FINAL_CALL_S)
        with contextlib.suppress(RayError, ValueError):
            ray.kill(self.metrics, no_restart=True)
        self.metrics = None
        return verdict


def short_error(error: BaseException) -> str:
    """One readable line: the remote exception's own message, not Ray's coloured header."""
    import re

    cause = getattr(error, "cause", None) or error
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(cause)).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0][:300] if lines else type(cause).__name__
