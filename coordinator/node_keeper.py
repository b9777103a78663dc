"""The Coordinator's view of the cluster's nodes: where the next actor goes, how many more
fit, and what a node that joins or leaves changes.

:mod:`~coordinator.node_watch` keeps the readings (who is alive, who joined or left, which
nodes are under suspicion) and :mod:`~coordinator.placement` the rule (which node takes an
actor, with how many pages); both are pure. This module joins them to the run: it reads
``ray.nodes()`` in a thread, bounded, every ``WATCH_INTERVAL_S``; it tells the roster how
many more actors the nodes have room for; and it gives a lost node's actors up at once,
without waiting for each of their calls to fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from landmark.coordinator.crew import short_error
from landmark.coordinator.node_watch import (
    READ_DEADLINE_S,
    WATCH_INTERVAL_S,
    NodeWatch,
    read_alive_nodes,
)
from landmark.coordinator.placement import Placement, Plan

if TYPE_CHECKING:
    from landmark.coordinator.actor import Coordinator

logger = logging.getLogger("landmark.coordinator")


class NodeKeeper:
    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator
        self.watch_state = NodeWatch()

    def _run_s(self) -> float:
        return time.monotonic() - self.coordinator.stats.started

    # -- placement -------------------------------------------------------------------------
    def plan(self) -> Plan | None:
        """The nodes as the next placement sees them (None before the first reading)."""
        watch, run = self.watch_state, self.coordinator
        if not watch.known:
            return None
        occupants = run.crew.occupants(run.node_verdicts, run.scheduler.roster.opened())
        throttle = run.job.budget.memory_throttle
        avoid = watch.avoided(self._run_s())
        return Plan.of(watch.nodes, occupants, run.node_verdicts, throttle, avoid)

    def replan(self) -> None:
        """How many more actors the nodes can take now; the roster starts no more."""
        plan = self.plan()
        room = None if plan is None else plan.capacity()
        roster = self.coordinator.scheduler.roster
        if room != roster.room:
            roster.room = room
            self.coordinator.wake()  # a start may be due, or no longer

    def place(self, name: str) -> Placement:
        """The node and pages for ``name``, reserved at once (the next choice counts it).
        With no node known, or none with room, Ray chooses and the pages are the roster's."""
        run = self.coordinator
        plan = self.plan()
        most = run.scheduler.roster.pages
        placement = (plan.place(most) if plan else None) or Placement(None, most)
        run.scheduler.place_actor(name, placement.pages)
        run.crew.placed[name] = placement
        return placement

    # -- suspicion ---------------------------------------------------------------------------
    def suspect(self, node: str | None) -> None:
        """``node`` just lost its last actor of the run, or did not take one: leave it alone
        for a while (Ray lists a killed node as alive for some seconds)."""
        if node is not None:
            self.watch_state.suspect(node, self._run_s())

    def actor_started(self, node: str | None) -> float | None:
        """Seconds from ``node``'s join to its first actor of the run (None if not the first)."""
        return self.watch_state.actor_started(node, self._run_s())

    # -- readings ------------------------------------------------------------------------------
    async def watch(self, ended: asyncio.Event) -> None:
        while not ended.is_set():
            await self.read()
            with contextlib.suppress(TimeoutError):  # time for the next reading
                await asyncio.wait_for(ended.wait(), WATCH_INTERVAL_S)

    async def read(self) -> None:
        """A node that joined ends any start backoff (actors go there now); a node that left
        gives its actors up at once."""
        try:
            reading = asyncio.to_thread(read_alive_nodes)  # a GCS call: it blocks
            alive = await asyncio.wait_for(reading, READ_DEADLINE_S)
        except Exception as error:  # an advisor: placement goes on from the last reading
            logger.debug("could not read the cluster's nodes: %s", short_error(error))
            return
        run = self.coordinator
        changes = self.watch_state.update(alive, self._run_s())
        for node in changes.joined:
            logger.info("node %s joined the cluster (%g CPUs)", node.id[:8], node.cpus)
            run.scheduler.roster.capacity_grew()
        for node_id in changes.left:
            lost = run.crew.actors_on(node_id)
            logger.warning("node %s left the cluster; %d actor(s) there are lost",
                           node_id[:8], len(lost))  # fmt: skip
            for name in lost:
                run.actor_lost(name, f"its node {node_id[:8]} left the cluster")
        self.replan()
        if changes:
            run.wake()
