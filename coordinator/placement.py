"""Where the next BrowserActor goes, and how many pages it opens there.

Ray's ``SPREAD`` weighs CPU alone, and it cannot know that a browser about to start will use
hundreds of megabytes. So the Coordinator chooses the node itself, from what it knows: the
cluster's nodes (:mod:`~coordinator.node_watch`), this run's actors on each (starting ones
included), and each node's last verdict from its MetricsActor. Pure: no Ray, no clock.

- A node can take an actor when it has a CPU this run does not use yet, its verdict is
  ``ok``, its memory headroom holds at least one page, and it is not under suspicion (all
  this run's actors there just died, or it did not take one placed there: see
  :data:`~coordinator.node_watch.SUSPECT_S`).
- The node with the most free CPUs wins, then the one with the most headroom: actors spread
  by CPU first, and memory breaks ties.
- The actor opens as many pages as the headroom holds, between 1 and ``pages_per_actor``.

*Headroom* is the node's throttle line (``budget.memory_throttle``, resolved for that node)
minus the memory in use, minus what actors still starting there will use. A page's cost is
measured: the median, over this run's actors, of a process tree's memory per page. Until the
first measurement, :data:`ASSUMED_PAGE_BYTES` stands in. A node whose memory nobody measured
yet (no monitor there, or ``metrics`` off) gets full-size actors: its CPUs still limit them.

The CPU count is this run's own accounting: other jobs on a shared cluster are not seen.
An actor that Ray cannot place all the same waits out ``timeouts.actor_start`` and is given
up, as before.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from landmark.config.units import ResourceLimit
from landmark.coordinator.node_watch import NodeInfo

ASSUMED_PAGE_BYTES = 200 * 2**20  # a Chromium page of a gallery, until one is measured


@dataclass(frozen=True, slots=True)
class Occupant:
    """One of this run's actors, live or starting."""

    node: str
    pages: int
    rss: int | None = None  # its process tree's memory, as its node's monitor last saw it


@dataclass(frozen=True, slots=True)
class Placement:
    node: str | None  # None: nothing is known about the nodes yet; Ray chooses (SPREAD)
    pages: int


@dataclass(frozen=True, slots=True)
class NodeRoom:
    node: str
    free_cpus: int
    headroom: float | None  # bytes below the throttle line; None when unmeasured

    def pages(self, page_bytes: float, most: int) -> int:
        """Pages an actor placed here may open (0: the node's memory takes none)."""
        if self.headroom is None:
            return most
        return max(0, min(most, int(self.headroom // page_bytes)))


def page_cost(occupants: Iterable[Occupant]) -> float:
    """Bytes per page: the median over measured actors, else the assumption."""
    samples = [o.rss / o.pages for o in occupants if o.rss]
    return statistics.median(samples) if samples else ASSUMED_PAGE_BYTES


def node_rooms(
    nodes: Mapping[str, NodeInfo],
    occupants: list[Occupant],
    verdicts: Mapping[str, dict[str, Any]],
    throttle: ResourceLimit,
    avoid: Collection[str] = (),
) -> list[NodeRoom]:
    """Each node that can take an actor now, with its room (``avoid``: none there)."""
    cost = page_cost(occupants)
    by_node: dict[str, list[Occupant]] = defaultdict(list)
    for occupant in occupants:
        by_node[occupant.node].append(occupant)
    rooms = []
    for node in nodes.values():
        if node.id in avoid:
            continue
        here = by_node.get(node.id, [])
        free = int(node.cpus) - len(here)
        verdict = verdicts.get(node.id) or {}
        if free < 1 or verdict.get("verdict", "ok") != "ok":
            continue
        room = NodeRoom(node.id, free, _headroom(verdict, here, cost, throttle))
        if room.pages(cost, 1):
            rooms.append(room)
    return rooms


def _headroom(
    verdict: dict[str, Any], here: list[Occupant], cost: float, throttle: ResourceLimit
) -> float | None:
    total, used = verdict.get("memory_total"), verdict.get("memory_used")
    if not total or used is None:
        return None
    # Actors its monitor has not weighed yet (starting) will soon use their pages' worth.
    unseen = sum(o.pages for o in here if o.rss is None) * cost
    return throttle.resolve(total) - used - unseen


@dataclass(frozen=True, slots=True)
class Plan:
    """The nodes' room at one moment, and what a page costs."""

    rooms: list[NodeRoom]
    page_bytes: float

    @classmethod
    def of(
        cls,
        nodes: Mapping[str, NodeInfo],
        occupants: list[Occupant],
        verdicts: Mapping[str, dict[str, Any]],
        throttle: ResourceLimit,
        avoid: Collection[str] = (),
    ) -> Plan:
        rooms = node_rooms(nodes, occupants, verdicts, throttle, avoid)
        return cls(rooms, page_cost(occupants))

    def capacity(self) -> int:
        """How many more actors the cluster can take now (each needs a CPU and a page)."""
        # An actor needs at least one page: a node takes as many as its CPUs, or its pages.
        return sum(room.pages(self.page_bytes, room.free_cpus) for room in self.rooms)

    def place(self, most_pages: int) -> Placement | None:
        """The node for the next actor and its pages; None when no node has room."""
        if not self.rooms:
            return None
        best = max(self.rooms, key=lambda r: (r.free_cpus, _or_inf(r.headroom), r.node))
        return Placement(best.node, best.pages(self.page_bytes, most_pages))


def _or_inf(value: float | None) -> float:
    return float("inf") if value is None else value
