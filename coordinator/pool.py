"""The service's pool: warm PoolActors kept alive between jobs, and one MetricsActor per
node they run on.

The pool starts its actors (one CPU each, spread over the nodes), registers each with its
node's MetricsActor, and every check asks each what it holds (``jobs``, in the ``control``
group: it answers while every page is busy); that answer is both its sign of life and what
``/stats`` shows. A member that died or stopped answering is replaced by a new
one under a new name; :attr:`Pool.version` moves, and the service pushes the new members to
every running job. All calls are bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import ray
from ray.exceptions import RayError

from landmark.actors.metrics_actor import create_metrics_actor, metrics_actor_name
from landmark.actors.pool_actor import PoolActor
from landmark.config.job import BudgetSpec
from landmark.coordinator.actor import SERVICE_OWNER
from landmark.coordinator.crew import short_error
from landmark.coordinator.pool_view import Member

logger = logging.getLogger("landmark.serve")

START_DEADLINE_S = 60.0
CHECK_DEADLINE_S = 10.0  # a member that does not answer a control call in this is replaced


class PoolError(RuntimeError):
    """The pool could not start a single actor; the message says why."""


class Pool:
    def __init__(self, actors: int, budget: BudgetSpec) -> None:
        self.size = actors
        self.budget = budget  # the MetricsActors' limits
        self.members: list[Member] = []
        self.version = 0  # moves whenever the members change
        self.replaced = 0
        self.monitors: dict[str, Any] = {}  # node id -> MetricsActor
        self._spawned = 0

    async def start(self) -> None:
        started = await asyncio.gather(*(self._new_member() for _ in range(self.size)))
        self.members = [member for member in started if member is not None]
        if not self.members:
            raise PoolError(
                "no pool actor could start (see the warnings above); check `landmark doctor`"
            )
        self.version += 1

    async def _new_member(self) -> Member | None:
        name = f"pool-{self._spawned}"
        self._spawned += 1
        handle = PoolActor.options(num_cpus=1, scheduling_strategy="SPREAD").remote(name)
        try:
            info = await asyncio.wait_for(handle.jobs.remote(), START_DEADLINE_S)
        except (TimeoutError, RayError) as error:
            reason = "no answer" if isinstance(error, TimeoutError) else short_error(error)
            logger.warning("pool actor %s did not start: %s", name, reason)
            with contextlib.suppress(RayError, ValueError):
                ray.kill(handle, no_restart=True)
            return None
        member = Member(name, handle, info.get("node_id"))
        self._watch(member, int(info["pid"]))
        return member

    def _watch(self, member: Member, pid: int) -> None:
        """Register the member with its node's MetricsActor (created on first use)."""
        node = member.node
        if node is None:
            return
        monitor = self.monitors.get(node)
        if monitor is None:
            name = metrics_actor_name(SERVICE_OWNER, node)
            try:
                monitor = create_metrics_actor(self.budget, name=name, node_id=node)
            except (ValueError, RayError) as error:
                logger.warning("no MetricsActor on node %s: %s", node[:8], short_error(error))
                return
            self.monitors[node] = monitor
        monitor.register.remote(member.name, [pid], node)

    async def check(self) -> list[dict[str, Any]]:
        """Ask every member what it holds (one control call each); replace those that died
        or did not answer. Returns what the live ones said, for ``/stats``."""
        answers = await asyncio.gather(*(self._describe(m) for m in self.members))
        dead = [m for m, answer in zip(self.members, answers, strict=True) if answer is None]
        if dead:
            await self._replace(dead)
        return [answer for answer in answers if answer is not None]

    async def _replace(self, dead: list[Member]) -> None:
        for member in dead:
            logger.warning("pool actor %s is gone; starting another", member.name)
            with contextlib.suppress(RayError, ValueError):
                ray.kill(member.handle, no_restart=True)
            monitor = self.monitors.get(member.node or "")
            if monitor is not None:
                monitor.unregister.remote(member.name)
        fresh = await asyncio.gather(*(self._new_member() for _ in dead))
        self.members = [m for m in self.members if m not in dead]
        self.members += [m for m in fresh if m is not None]
        self.replaced += len(dead)
        self.version += 1

    @staticmethod
    async def _describe(member: Member) -> dict[str, Any] | None:
        """Its name, node, jobs and what is in flight; None when it is dead or hangs."""
        try:
            info = await asyncio.wait_for(member.handle.jobs.remote(), CHECK_DEADLINE_S)
        except (TimeoutError, RayError):
            return None
        return {**info, "node": member.node, "state": "ok"}

    async def verdicts(self) -> dict[str, dict[str, Any]]:
        """Every node's latest verdict (memory, CPU), asked at once, each bounded."""
        nodes = list(self.monitors)

        async def one(node: str) -> dict[str, Any] | None:
            try:
                return await asyncio.wait_for(self.monitors[node].verdict.remote(), 5.0)
            except (TimeoutError, RayError):
                return None

        answers = await asyncio.gather(*(one(n) for n in nodes))
        return {n: a for n, a in zip(nodes, answers, strict=True) if a is not None}

    def stop(self) -> None:
        for handle in [m.handle for m in self.members] + list(self.monitors.values()):
            with contextlib.suppress(RayError, ValueError):
                ray.kill(handle, no_restart=True)
        self.members, self.monitors = [], {}
