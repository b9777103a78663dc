"""The ledger: where every container is — pending, leased, done or failed — and nothing else.

Invariant: every container is in exactly one state, and each reaches exactly one terminal
state, so the coordinator writes exactly one record per container whatever dies. All
state changes go through :meth:`Ledger._move` and the transition table ``_ALLOWED``.

Per-container cost is O(1) amortised (O(log) for heaps), so one coordinator moves
thousands of containers a second: pending containers wait in ``pending.PendingQueue``
(per-domain lanes merged in FIFO order, a backoff heap), leases are indexed by id and by
actor with a heap of deadlines, and finished containers keep only their id, in a set.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import NamedTuple

from landmark.config.job import RetrySpec
from landmark.config.records import Container, Phase, Problem, Record, Status, domain_of
from landmark.coordinator.pending import Accept, PendingQueue

PREFER_WINDOW = 64  # queue entries ``prefer`` looks at per lease call, across lanes


class LedgerError(RuntimeError):
    """A bookkeeping bug: an illegal state change or an unknown lease."""


class State(StrEnum):
    PENDING = "pending"
    LEASED = "leased"
    DONE = "done"
    FAILED = "failed"


TERMINAL = frozenset({State.DONE, State.FAILED})

_ALLOWED: frozenset[tuple[State | None, State]] = frozenset(
    {
        (None, State.PENDING),  # discovered
        (None, State.DONE),  # written by an earlier run of the job, or served from the cache
        (None, State.FAILED),  # failed in an earlier run of the job
        (State.PENDING, State.LEASED),  # handed to an actor
        (State.PENDING, State.FAILED),  # given up on before trying (cancel, open breaker)
        (State.LEASED, State.PENDING),  # retry or lease taken back
        (State.LEASED, State.DONE),  # ok / partial record
        (State.LEASED, State.FAILED),  # final failure
    }
)


class Outcome(Enum):
    FINAL = "final"  # terminal: write ``Completion.record``
    RETRY = "retry"  # back to pending with a backoff
    DUPLICATE = "duplicate"  # not leased under that lease any more: drop the record


class Completion(NamedTuple):
    outcome: Outcome
    record: Record | None  # the record to write when ``outcome`` is FINAL


@dataclass(slots=True)
class Lease:
    """A batch handed to one actor; ``attempts[i]`` is the try number of ``containers[i]``."""

    id: int
    actor: str
    containers: list[Container]
    deadline: float
    attempts: list[int]


@dataclass(slots=True)
class _Open:
    lease: Lease
    ids: set[str] = field(default_factory=set)


class Ledger:
    """Tracks every container from discovery to its one terminal record.

    ``accept(c)`` returning True means ``c`` is taken, so ``accept`` may reserve budget
    (e.g. ``DomainBudget.try_start``). The first rejection in a lane closes that lane for
    the call: lanes are domains, and a domain's no is a no for its other containers too.
    """

    def __init__(
        self,
        retry: RetrySpec,
        rng: random.Random | None = None,
        lane: Callable[[Container], str] | None = None,
        prefer_window: int = PREFER_WINDOW,
    ) -> None:
        self.max_attempts = retry.max_attempts
        self.backoff_s = retry.backoff.total_seconds()
        self.backoff_max_s = retry.backoff_max.total_seconds()
        self._rng = rng or random.Random()
        self._lane_fn = lane or (lambda container: domain_of(container.target))
        self._lease_ids = itertools.count(1)
        # state of every container
        self._state: dict[str, State] = {}
        self._containers: dict[str, Container] = {}
        self._attempts: dict[str, int] = {}
        self._lane: dict[str, str] = {}
        self._last_errors: dict[str, list[Problem]] = {}  # why a pending container was retried
        self._done: set[str] = set()
        self._failed: set[str] = set()
        self._counts = dict.fromkeys(State, 0)
        self._pending = PendingQueue(self._lane, self._containers, prefer_window)
        # leased
        self._leased_by: dict[str, int] = {}
        self._open: dict[int, _Open] = {}
        self._by_actor: dict[str, set[int]] = {}
        self._deadlines: list[tuple[float, int]] = []
        # counters
        self.retries = 0
        self.duplicates_discovered = 0
        self.duplicates_dropped = 0

    # ---------------------------------------------------------------- the one transition
    def _move(self, cid: str, to: State) -> None:
        frm = self.state_of(cid)
        if (frm, to) not in _ALLOWED:
            raise LedgerError(f"container {cid!r}: illegal move {frm} -> {to}")
        if frm is not None:
            self._counts[frm] -= 1
        self._counts[to] += 1
        if to in TERMINAL:
            if frm is not None:
                del self._state[cid], self._containers[cid], self._attempts[cid], self._lane[cid]
                self._last_errors.pop(cid, None)
            (self._done if to is State.DONE else self._failed).add(cid)
        else:
            self._state[cid] = to

    def state_of(self, cid: str) -> State | None:
        state = self._state.get(cid)
        if state is not None:
            return state
        if cid in self._done:
            return State.DONE
        if cid in self._failed:
            return State.FAILED
        return None

    # ---------------------------------------------------------------- discovery
    def add(
        self, container: Container, attempts: int = 0, last_errors: list[Problem] | None = None
    ) -> bool:
        """Track a discovered container; False (and counted) if its id was seen before.

        ``attempts`` and ``last_errors`` carry a resumed container's history, so its tries
        are counted across runs and a final failure still names its real cause."""
        cid = container.id
        if self.state_of(cid) is not None:
            self.duplicates_discovered += 1
            return False
        self._move(cid, State.PENDING)
        self._containers[cid] = container
        self._attempts[cid] = attempts
        self._lane[cid] = self._lane_fn(container)
        if last_errors:
            self._last_errors[cid] = list(last_errors)
        self._pending.push(cid)
        return True

    def add_finished(self, cid: str, status: str = Status.OK) -> bool:
        """Count ``cid`` as finished without running it: its record was written by an earlier
        run, or served from the cache. False if the id is already known."""
        if self.state_of(cid) is not None:
            return False
        self._move(cid, State.FAILED if status == Status.FAILED else State.DONE)
        return True

    def lease(
        self,
        actor: str,
        limit: int,
        now: float,
        deadline: float,
        accept: Accept | None = None,
        prefer: Accept | None = None,
    ) -> Lease | None:
        """Lease up to ``limit`` ready containers to ``actor``, oldest first.

        ``prefer`` first picks favoured containers among the first ``prefer_window`` queue
        entries (lanes in FIFO order); the rest is filled in FIFO order.
        """
        if limit <= 0:
            return None
        taken = self._pending.take(limit, now, accept, prefer)
        if not taken:
            return None
        return self._open_lease(actor, taken, deadline)

    def _open_lease(self, actor: str, ids: list[str], deadline: float) -> Lease:
        lease_id = next(self._lease_ids)
        attempts = self._attempts
        tries: list[int] = []
        for cid in ids:
            self._move(cid, State.LEASED)
            attempts[cid] += 1
            tries.append(attempts[cid])
            self._leased_by[cid] = lease_id
        lease = Lease(lease_id, actor, [self._containers[cid] for cid in ids], deadline, tries)
        self._open[lease_id] = _Open(lease, set(ids))
        self._by_actor.setdefault(actor, set()).add(lease_id)
        heapq.heappush(self._deadlines, (deadline, lease_id))
        return lease

    # ---------------------------------------------------------------- results
    def complete(
        self, lease_id: int, record: Record, now: float, *, retry: bool = True
    ) -> Completion:
        """Apply the record for one container of a lease (sets ``record.attempts``).

        ``retry=False`` makes a retryable failure final (its domain was given up)."""
        cid = record.id
        if self._leased_by.get(cid) != lease_id:
            self.duplicates_dropped += 1
            return Completion(Outcome.DUPLICATE, None)
        self._unlease(cid, lease_id)
        attempts = self._attempts[cid]
        record.attempts = attempts
        if record.status in (Status.OK, Status.PARTIAL):
            self._move(cid, State.DONE)
            return Completion(Outcome.FINAL, record)
        if record.status != Status.FAILED:
            raise LedgerError(f"container {cid!r}: unknown record status {record.status!r}")
        if retry and record.retryable and attempts < self.max_attempts:
            self._last_errors[cid] = list(record.errors)
            self._retry(cid, now)
            return Completion(Outcome.RETRY, None)
        self._move(cid, State.FAILED)
        return Completion(Outcome.FINAL, record)

    def release(
        self,
        lease_id: int,
        now: float,
        reason: str,
        phase: str = Phase.DISPATCH,
        *,
        retry: bool | Accept = True,
    ) -> list[Record]:
        """Take back what is still leased under a lease (dead actor, OOM, expiry, a batch
        answered only in part). Each container retries if it has attempts left and
        ``retry`` says so (False for a cancel; a predicate to decide per container);
        otherwise it fails with ``reason``.
        Returns the terminal records created, for the caller to write."""
        entry = self._open.get(lease_id)
        if entry is None:
            return []
        actor = entry.lease.actor
        records: list[Record] = []
        for cid in [c.id for c in entry.lease.containers if c.id in entry.ids]:
            self._unlease(cid, lease_id)
            may = retry(self._containers[cid]) if callable(retry) else retry
            if may and self._attempts[cid] < self.max_attempts:
                self._last_errors[cid] = [Problem(phase=phase, reason=reason)]
                self._retry(cid, now)
            else:
                records.append(self._fail(cid, phase, reason, actor))
        return records

    def _unlease(self, cid: str, lease_id: int) -> None:
        del self._leased_by[cid]
        entry = self._open[lease_id]
        entry.ids.discard(cid)
        if not entry.ids:
            del self._open[lease_id]
            actor_leases = self._by_actor[entry.lease.actor]
            actor_leases.discard(lease_id)
            if not actor_leases:
                del self._by_actor[entry.lease.actor]

    def _retry(self, cid: str, now: float) -> None:
        self._move(cid, State.PENDING)
        self.retries += 1
        self._pending.push_later(cid, now + self.backoff_delay(self._attempts[cid]))

    def _fail(self, cid: str, phase: str, reason: str, actor: str | None = None) -> Record:
        """The final record of a container given up on. A container that failed before keeps
        that real error first; ``reason`` says why it was not tried again."""
        record = Record.failure(self._containers[cid], phase, reason, retryable=False, actor=actor)
        earlier = self._last_errors.get(cid)
        if earlier:
            record.errors = [*earlier, *record.errors]
        record.attempts = self._attempts[cid]
        self._move(cid, State.FAILED)
        return record

    def backoff_delay(self, attempts: int) -> float:
        """Delay before try ``attempts + 1``: exponential, capped, with *equal* jitter.

        The cap ``d = min(backoff_max, backoff * 2^(attempts-1))`` is drawn as
        ``d/2 + uniform(0, d/2)``. Equal rather than full jitter: full jitter spreads
        retries best when many clients contend for one lock, but may retry a struggling
        page almost at once; half the backoff is always waited, so a retry gives the site
        the time the schedule promised, and the spread still decorrelates a batch.
        """
        cap = min(self.backoff_max_s, self.backoff_s * 2.0 ** max(0, attempts - 1))
        return cap / 2 + self._rng.uniform(0, cap / 2)

    # ---------------------------------------------------------------- giving up
    def fail_pending(
        self, reason: str, predicate: Accept | None = None, phase: str = Phase.DISPATCH
    ) -> list[Record]:
        """Fail pending containers (all, or those ``predicate`` picks): a cancelled run or
        a domain whose breaker stays open. O(pending); returns the records to write."""
        ids = self._pending.ids()
        if predicate is not None:
            ids = [cid for cid in ids if predicate(self._containers[cid])]
        return self._fail_pending_ids(ids, reason, phase)

    def fail_lane(self, lane: str, reason: str, phase: str = Phase.DISPATCH) -> list[Record]:
        """Fail every pending container of one lane (a domain given up): O(lane + delayed)."""
        return self._fail_pending_ids(self._pending.lane_ids(lane), reason, phase)

    def _fail_pending_ids(self, ids: list[str], reason: str, phase: str) -> list[Record]:
        records = []
        for cid in ids:
            self._pending.discard(cid)
            records.append(self._fail(cid, phase, reason))
        return records

    # ---------------------------------------------------------------- time
    def expired(self, now: float) -> list[int]:
        """Leases whose deadline has passed, each reported once; ``release`` them."""
        found: list[int] = []
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _, lease_id = heapq.heappop(deadlines)
            if lease_id in self._open:
                found.append(lease_id)
        return found

    def next_deadline(self) -> float | None:
        """The earliest deadline of a lease still open, or None."""
        deadlines = self._deadlines
        while deadlines and deadlines[0][1] not in self._open:
            heapq.heappop(deadlines)
        return deadlines[0][0] if deadlines else None

    def ready_lanes(self) -> list[str]:
        """Lanes with a container ready now: where to look for what holds dispatch back."""
        return self._pending.ready_lanes()

    def next_delayed_at(self) -> float | None:
        """When the first backed-off container becomes ready, or None."""
        return self._pending.next_delayed_at()

    def next_ready_at(self) -> float | None:
        """Earliest time a pending container can be leased: ``-inf`` if one is ready now,
        None when nothing is pending."""
        if self._pending.has_ready():
            return -float("inf")
        return self._pending.next_delayed_at()

    # ---------------------------------------------------------------- views
    def counts(self) -> dict[State, int]:
        return dict(self._counts)

    @property
    def in_flight(self) -> int:
        return len(self._leased_by)

    @property
    def pending(self) -> int:
        return self._counts[State.PENDING]

    @property
    def is_finished(self) -> bool:
        return not self._state

    def get_lease(self, lease_id: int) -> Lease | None:
        entry = self._open.get(lease_id)
        return entry.lease if entry else None

    def open_ids(self, lease_id: int) -> frozenset[str]:
        """Containers still leased under ``lease_id`` (empty once all are answered)."""
        entry = self._open.get(lease_id)
        return frozenset(entry.ids) if entry else frozenset()

    def open_leases(self) -> list[int]:
        """Every lease not yet answered in full: what a cancel takes back."""
        return sorted(self._open)

    def leases_of(self, actor: str) -> list[int]:
        """Open leases held by ``actor``: what to release when it dies."""
        return sorted(self._by_actor.get(actor, ()))

    def check_invariants(self) -> None:
        """O(n) self-check for tests: each id in exactly one state structure, counts agree."""
        active_ids = self._state.keys()
        pending = {cid for cid, state in self._state.items() if state is State.PENDING}
        leased = {cid for cid, state in self._state.items() if state is State.LEASED}
        problems = self._pending.problems(pending)
        _expect(problems, "leased = leased_by", leased == self._leased_by.keys())
        _expect(problems, "last errors of pending only", self._last_errors.keys() <= active_ids)
        _expect(problems, "done ∩ failed", not (self._done & self._failed))
        _expect(
            problems, "active ∩ terminal", not (self._state.keys() & (self._done | self._failed))
        )
        active = self._state.keys()
        _expect(
            problems,
            "per-container maps",
            active == self._containers.keys() == self._attempts.keys() == self._lane.keys(),
        )
        counted = {
            State.PENDING: len(pending),
            State.LEASED: len(leased),
            State.DONE: len(self._done),
            State.FAILED: len(self._failed),
        }
        _expect(problems, f"counts {self._counts} != {counted}", counted == self._counts)
        by_lease = [cid for entry in self._open.values() for cid in entry.ids]
        _expect(problems, "lease members", sorted(by_lease) == sorted(leased))
        _expect(
            problems,
            "lease ids",
            all(
                self._open[lid].ids and cid in self._open[lid].ids
                for cid, lid in self._leased_by.items()
            ),
        )
        if problems:
            raise LedgerError("ledger invariants broken: " + "; ".join(problems))


def _expect(problems: list[str], what: str, ok: bool) -> None:
    if not ok:
        problems.append(what)
