"""The roster: which BrowserActors a run has, in which phase, and when to start another.

Pure bookkeeping, like the ledger: no Ray, no asyncio, time passed in. The Coordinator
actor does what it says (create, start with a deadline, kill) and reports back.

    starting ──start() answered──▶ ready ──missed a deadline──▶ condemned ──killed──▶ gone
        │                            │                                                ▲
        └──failed or timed out───────┴────────────────died─────────────────────────────┘

The roster keeps ``wanted`` actors ready or starting. A failed start is retried with
exponential backoff; after ``start_failures`` failures in a row with no actor ready or
starting, :meth:`Roster.stalled` says why the run cannot go on, so a run never waits at
rate 0 for an actor that will not come. A start that succeeds resets the count.

``room`` is how many more actors the cluster can take (the Coordinator works it out from
the nodes, see :mod:`~coordinator.placement`; None when unknown). No more than that are
started: an actor with nowhere to go would only wait out its start deadline and count as a
failure. With none ready or starting, one is tried all the same, so a run whose cluster has
no room says so (the start fails, then the run stalls visibly) instead of waiting.
:meth:`Roster.capacity_grew` (a node joined) ends a backoff: the new room is used at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum


class ActorPhase(StrEnum):
    STARTING = "starting"
    READY = "ready"
    CONDEMNED = "condemned"  # missed a deadline: gets no work, is being killed
    GONE = "gone"


@dataclass(slots=True)
class ActorEntry:
    name: str
    slots: int  # containers it may hold: its pages, plus a batch queued behind them
    pages: int  # pages it works at once (the page governor moves it)
    most: int = 0  # pages it may work: pages_per_actor, or fewer as placement sized it
    opened: int = 0  # the most it was asked to work: the pages its browser holds open
    phase: ActorPhase = ActorPhase.STARTING
    started_at: float = 0.0
    galleries: set[str] = field(default_factory=set)  # click-mode galleries its pages have open


class Roster:
    def __init__(
        self,
        wanted: int,
        pages: int,
        extra_slots: int = 0,
        *,
        first_pages: int | None = None,
        start_failures: int = 3,
        backoff_s: float = 1.0,
        backoff_max_s: float = 30.0,
    ) -> None:
        if wanted < 1 or pages < 1 or start_failures < 1:
            raise ValueError(f"need wanted, pages, start_failures >= 1: {wanted}, {pages}")
        self.wanted = wanted
        self.pages = pages  # an actor's most pages, unless placement sizes them to its node
        self.first = min(first_pages or pages, pages)  # pages it works at first
        self.extra_slots = extra_slots  # containers an actor holds beyond its pages (a batch)
        self.slots = self.first + extra_slots
        self.start_failures = start_failures
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.entries: dict[str, ActorEntry] = {}
        self.spawned = 0
        self.deaths = 0
        self.failed_starts = 0
        self._failures_in_a_row = 0
        self._next_start_at = -math.inf
        self.last_error: str | None = None
        self.room: int | None = None

    # -- views -----------------------------------------------------------------------
    def in_phase(self, *phases: ActorPhase) -> list[ActorEntry]:
        return [entry for entry in self.entries.values() if entry.phase in phases]

    def ready(self) -> list[ActorEntry]:
        return self.in_phase(ActorPhase.READY)

    def is_ready(self, name: str) -> bool:
        entry = self.entries.get(name)
        return entry is not None and entry.phase is ActorPhase.READY

    def stalled(self) -> str | None:
        """Why no actor will come (None while one is ready, starting, or may still start)."""
        if self.in_phase(ActorPhase.READY, ActorPhase.STARTING):
            return None
        if self._failures_in_a_row < self.start_failures:
            return None
        return (
            f"no BrowserActor could start after {self._failures_in_a_row} tries in a row "
            f"(last error: {self.last_error or 'unknown'})"
        )

    # -- starting ----------------------------------------------------------------------
    def to_start(self, now: float) -> list[str]:
        """Names of actors to create now, to get back to ``wanted`` (none during a backoff)."""
        missing = self._missing()
        if missing <= 0 or now < self._next_start_at:
            return []
        if self._failures_in_a_row:
            missing = 1  # after a failure, one try at a time until one succeeds
        names = []
        for _ in range(missing):
            name = f"browser-{self.spawned}"
            self.spawned += 1
            self.entries[name] = ActorEntry(
                name, self.slots, self.first, most=self.pages, started_at=now
            )
            names.append(name)
        return names

    def next_start_at(self, now: float) -> float | None:
        """When the next start is due (``now`` if an actor is missing and no backoff holds
        it back; None when none is missing)."""
        if self._missing() <= 0:
            return None
        return max(now, self._next_start_at)

    def _missing(self) -> int:
        """Actors to start now: short of ``wanted``, within ``room`` while one is up."""
        up = len(self.in_phase(ActorPhase.READY, ActorPhase.STARTING))
        missing = self.wanted - up
        if self.room is not None:
            missing = min(missing, self.room if up else max(self.room, 1))
        return missing

    def capacity_grew(self) -> None:
        """A node joined: whatever failed before may fit now, so no backoff holds a start."""
        self._next_start_at = -math.inf

    def place(self, name: str, pages: int) -> None:
        """``name`` may work ``pages`` pages (sized to its node): it starts on at most
        ``first`` of them, and its slots follow."""
        entry = self.entries.get(name)
        if entry is not None:
            entry.most = pages
            self.work(name, min(self.first, pages))

    def work(self, name: str, pages: int) -> int | None:
        """``name`` works ``pages`` pages at once, within ``first`` and its most; the count
        it works now, or None for an actor not on the roster."""
        entry = self.entries.get(name)
        if entry is None:
            return None
        entry.pages = max(min(self.first, entry.most), min(pages, entry.most))
        entry.slots = entry.pages + self.extra_slots
        entry.opened = max(entry.opened, entry.pages)
        return entry.pages

    def opened(self) -> dict[str, int]:
        """Pages each actor holds open (fewer than it may, until the governor asks)."""
        return {name: entry.opened for name, entry in self.entries.items() if entry.opened}

    def started(self, name: str) -> bool:
        """``start()`` answered; False if the actor was given up on meanwhile."""
        entry = self.entries.get(name)
        if entry is None or entry.phase is not ActorPhase.STARTING:
            return False
        entry.phase = ActorPhase.READY
        self._failures_in_a_row = 0
        self._next_start_at = -math.inf
        return True

    def start_failed(self, name: str, now: float, reason: str) -> None:
        entry = self.entries.get(name)
        if entry is None or entry.phase is not ActorPhase.STARTING:
            return
        entry.phase = ActorPhase.GONE
        self.failed_starts += 1
        self._failures_in_a_row += 1
        self.last_error = reason
        delay = min(self.backoff_max_s, self.backoff_s * 2 ** (self._failures_in_a_row - 1))
        self._next_start_at = now + delay

    # -- endings -------------------------------------------------------------------------
    def condemn(self, name: str) -> bool:
        """The actor missed a deadline: no more work for it. True if it was ready."""
        entry = self.entries.get(name)
        if entry is None or entry.phase is not ActorPhase.READY:
            return False
        entry.phase = ActorPhase.CONDEMNED
        return True

    def gone(self, name: str, now: float, reason: str) -> bool:
        """The actor died or was killed; True the first time (its other calls say so too)."""
        entry = self.entries.get(name)
        if entry is None or entry.phase is ActorPhase.GONE:
            return False
        if entry.phase is ActorPhase.STARTING:
            self.start_failed(name, now, reason)
            return True
        entry.phase = ActorPhase.GONE
        self.deaths += 1
        self.last_error = reason
        return True
