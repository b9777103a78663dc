"""Which nodes the cluster has, and which joined or left since the last look.

Ray's per-node events are not offered to a driver, but its GCS answers ``ray.nodes()`` in a
few milliseconds, so the Coordinator asks every :data:`WATCH_INTERVAL_S` (in a thread, with a
deadline: the call blocks). The diff is pure and tested on its own: a node that appears is
*joined* (actors may be placed there at once, without waiting out a start backoff); a node
that is gone or marked dead is *left* (its actors are given up at once, without waiting for
each of their calls to fail).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WATCH_INTERVAL_S = 2.0
READ_DEADLINE_S = 10.0
# A node whose actors all died, or that did not take an actor placed there, is left alone
# this long: Ray's GCS keeps a dead node "alive" until its health checks fail (about 15 s
# here), and an actor placed there meanwhile only waits out its start deadline.
SUSPECT_S = 30.0


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One live node, as Ray's GCS describes it."""

    id: str
    cpus: float  # the node's CPU resource (what the BrowserActors' one CPU each comes from)
    memory: float  # Ray's "memory" resource in bytes (0 when unknown)


@dataclass(frozen=True, slots=True)
class NodeChanges:
    joined: list[NodeInfo] = field(default_factory=list)
    left: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.joined or self.left)


class NodeWatch:
    """The alive nodes, by id, and what happened to them (for the summary). The first reading
    is the starting point: nothing "joined". Time is passed in (seconds since the run began)."""

    def __init__(self) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self.readings = 0
        self.events: list[dict[str, Any]] = []  # joined / left, in order
        self._waiting: dict[str, dict[str, Any]] = {}  # joined, no actor of ours started yet
        self._suspect: dict[str, float] = {}  # node -> until when no actor is placed there

    def update(self, alive: list[NodeInfo], at_s: float) -> NodeChanges:
        now = {node.id: node for node in alive}
        first = self.readings == 0
        self.readings += 1
        joined = [] if first else [node for nid, node in now.items() if nid not in self.nodes]
        left = [nid for nid in self.nodes if nid not in now]
        self.nodes = now
        for node in joined:
            event = {"event": "joined", "node": node.id, "at_s": round(at_s, 2), "cpus": node.cpus}
            self.events.append(event)
            self._waiting[node.id] = event
        for nid in left:
            self.events.append({"event": "left", "node": nid, "at_s": round(at_s, 2)})
            self._waiting.pop(nid, None)
            self._suspect.pop(nid, None)
        return NodeChanges(joined, left)

    def suspect(self, node: str | None, at_s: float) -> None:
        """Place nothing on ``node`` for :data:`SUSPECT_S` (it may be dying)."""
        if node is not None:
            self._suspect[node] = at_s + SUSPECT_S

    def avoided(self, at_s: float) -> set[str]:
        """Nodes under suspicion now."""
        return {node for node, until in self._suspect.items() if until > at_s}

    def actor_started(self, node: str | None, at_s: float) -> float | None:
        """An actor of this run started on ``node``; for a node that joined during the run
        and had none yet, the seconds from its join to this start (also kept in its event)."""
        self._suspect.pop(node or "", None)  # it works after all
        event = self._waiting.pop(node or "", None)
        if event is None:
            return None
        event["first_actor_after_s"] = round(at_s - event["at_s"], 2)
        return event["first_actor_after_s"]

    @property
    def known(self) -> bool:
        """At least one reading came in (placement may rely on :attr:`nodes`)."""
        return self.readings > 0


def read_alive_nodes() -> list[NodeInfo]:
    """The cluster's alive nodes (blocking: a GCS call; run it in a thread)."""
    import ray

    alive = []
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        resources = node.get("Resources") or {}
        alive.append(
            NodeInfo(
                id=node["NodeID"],
                cpus=float(resources.get("CPU", 0.0)),
                memory=float(resources.get("memory", 0.0)),
            )
        )
    return alive
