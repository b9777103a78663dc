"""The rules of a run, with no Ray and no asyncio: what to lease to whom, what a record, a lost
actor or an expired lease changes, and when the next wake is due.

The scheduler joins the ledger (where each container is), the budget (how much may be in
flight), the breaker (which domains to spare or give up) and the roster (which actors
exist). Time is passed in, so tests drive whole runs — crashes, expiries, give-ups — in
microseconds, and the Coordinator actor is a thin shell that runs tasks and deadlines.

Three rules the shell relies on:

- **The budget counts what may still be running.** A lease that expires goes back to
  pending at once (its containers are retried elsewhere), but its budget stays *held*
  until its actor answers or is gone: an actor that is merely slow must not push real
  concurrency over the limit. Its late answer is dropped as a duplicate.
- **Every lease has a deadline derived from what may queue before it**: the containers
  already leased to the actor plus this batch, over its pages, times the container
  timeout, plus a margin. An actor that misses it is *condemned*: no more work, and the
  shell kills and replaces it.
- **A wake is due only when time alone can change something**: a retry's backoff ends,
  a domain's token refills, a lease's deadline passes, a breaker's cooldown ends, an
  actor start's backoff ends. When only an answer can help, there is no timer at all
  (``WakeCause.EVENT``): the shell waits for the next answer, discovery chunk, verdict
  or control call.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from landmark.config.job import JobSpec, OpenMode
from landmark.config.records import ROBOTS_REFUSAL, Container, Phase, Record, Status, domain_of
from landmark.coordinator.breaker import CircuitBreaker
from landmark.coordinator.budget import Budget
from landmark.coordinator.ledger import Lease, Ledger, Outcome
from landmark.coordinator.roster import ActorEntry, ActorPhase, Roster


class WakeCause(StrEnum):
    RETRY = "retry"  # a backed-off container becomes ready
    TOKEN = "token"  # a domain's token bucket refills
    BREAKER = "breaker"  # an open breaker lets a probe through
    LEASE = "lease"  # a lease's deadline passes
    START = "start"  # an actor start's backoff ends
    EVENT = "event"  # only an answer, a new actor or a control call can help: no timer


@dataclass(frozen=True, slots=True)
class Wake:
    at: float | None
    cause: WakeCause

    def timeout(self, now: float) -> float | None:
        """Seconds to wait from ``now`` (None: wait for an event only)."""
        return None if self.at is None else max(0.0, self.at - now)


@dataclass(frozen=True, slots=True)
class Assignment:
    """A batch to send: ``actor.extract(lease.containers)``, answered by ``lease.deadline``."""

    actor: str
    lease: Lease


@dataclass(slots=True)
class Tick:
    """What time alone changed: records to write, actors to kill, actors to start."""

    records: list[Record] = field(default_factory=list)
    hung: list[str] = field(default_factory=list)  # missed a deadline: kill, then actor_gone
    start: list[str] = field(default_factory=list)  # create and start these


@dataclass(slots=True)
class _Held:
    """Budget of an expired lease, kept until its actor answers or is gone."""

    actor: str
    domains: list[str]


class Scheduler:
    def __init__(self, job: JobSpec, rng: random.Random | None = None) -> None:
        self.job = job
        self.ledger = Ledger(job.retries, rng=rng or random.Random(0))
        self.budget = Budget.from_spec(job.budget)
        self.breaker = CircuitBreaker.from_spec(job.retries)
        if job.budget.actors is None:
            raise ValueError("budget.actors is auto: resolve it first (preflight.resolve_actors)")
        self.roster = Roster(
            job.budget.actors,
            job.budget.pages_per_actor,
            job.budget.batch_size,
            first_pages=job.budget.first_pages,
            start_failures=job.retries.actor_start_failures,
            backoff_s=max(1.0, job.retries.backoff.total_seconds()),
            backoff_max_s=job.retries.backoff_max.total_seconds(),
        )
        self.paused = False
        self.cancelled = False  # no more work; pending containers failed
        self.stopping = False  # no more work; pending containers left for a resume
        self.expired_leases = 0
        self._held: dict[int, _Held] = {}
        self._container_s = job.timeouts.container.total_seconds()
        self._margin_s = job.timeouts.lease_margin.total_seconds()
        self._fixed_lease_s = job.timeouts.lease.total_seconds() if job.timeouts.lease else None

    # -- discovery -----------------------------------------------------------------------
    def add(self, containers: Iterable[Container]) -> list[Record]:
        """Track discovered containers; those of a domain given up on fail at once."""
        if not self.breaker.given_up_count:  # the usual case, and a hot one: no check each
            for container in containers:
                self.ledger.add(container)
            return []
        failed: list[Record] = []
        for container in containers:
            domain = domain_of(container.target)
            if self.breaker.given_up(domain) and self.ledger.state_of(container.id) is None:
                record = Record.failure(
                    container, Phase.DISPATCH, self.breaker.why(domain), retryable=False
                )
                record.attempts = 0
                self.ledger.add_finished(container.id, Status.FAILED)
                failed.append(record)
            else:
                self.ledger.add(container)
        return failed

    def source_failed(self, source: str, reason: str) -> list[Record]:
        """A source that yields no containers still gets a record, so it is not silently lost."""
        container = Container(id=f"source:{source}", source=source, position=-1, open="self")
        if not self.ledger.add_finished(container.id, Status.FAILED):
            return []
        record = Record.failure(container, Phase.DISCOVER, reason, retryable=False)
        return [record]

    # -- actors --------------------------------------------------------------------------
    def actor_ready(self, name: str, node: str | None = None) -> bool:
        """``start()`` answered (on ``node``): the actor takes work, under its node's verdict.
        False if it was given up meanwhile."""
        if not self.roster.started(name):
            return False
        self.budget.register_actor(name, self.roster.entries[name].slots, node)
        return True

    def place_actor(self, name: str, pages: int) -> None:
        """``name`` opens ``pages`` pages (sized to its node): its slots and leases follow."""
        self.roster.place(name, pages)

    def share_pool(self, actors: int, pages: int) -> None:
        """On ``landmark serve``'s pool: this job has ``actors`` actors with ``pages`` pages
        each for it. Its slots are its pages alone (no batch queued behind them: a queued
        container would hold a page another job was given). Slots shrink for new leases
        only; what is in flight finishes."""
        roster = self.roster
        roster.wanted = max(1, actors)
        roster.extra_slots = 0
        roster.pages = roster.first = roster.slots = max(1, pages)
        for entry in roster.in_phase(ActorPhase.STARTING, ActorPhase.READY):
            roster.place(entry.name, roster.pages)
            self.budget.resize_actor(entry.name, entry.slots)

    def work_pages(self, name: str, pages: int) -> int | None:
        """``name`` works ``pages`` pages (clamped, see ``Roster.work``): its slots follow.
        The count when it changed, else None."""
        entry = self.roster.entries.get(name)
        before = entry.pages if entry else None
        now_pages = self.roster.work(name, pages)
        if now_pages is None or now_pages == before:
            return None
        self.budget.resize_actor(name, self.roster.entries[name].slots)
        return now_pages

    def start_failed(self, name: str, now: float, reason: str) -> None:
        self.roster.start_failed(name, now, reason)

    def actor_gone(self, name: str, now: float, reason: str) -> list[Record]:
        """The actor died or was killed: its leases go back, its held budget is freed."""
        self.roster.gone(name, now, reason)
        records: list[Record] = []
        for lease_id in self.ledger.leases_of(name):
            records += self._release(lease_id, now, reason)
        for lease_id in [lid for lid, held in self._held.items() if held.actor == name]:
            self._free_held(lease_id, now)
        self.budget.unregister_actor(name)
        return records

    def discovery_actor(self) -> str | None:
        """The ready actor with the fewest galleries open, to scroll the next source."""
        ready = self.roster.ready()
        if not ready:
            return None
        return min(ready, key=lambda entry: (len(entry.galleries), entry.name)).name

    def gallery_opened(self, actor: str, source: str) -> None:
        entry = self.roster.entries.get(actor)
        if entry is not None:
            entry.galleries.add(source)

    # -- dispatch ------------------------------------------------------------------------
    def assign(self, now: float) -> list[Assignment]:
        """Lease batches round-robin, emptiest actor first, until the budget or the queue is
        spent: under a small global limit every actor still gets work."""
        if self.paused or self.cancelled or self.stopping:
            return []
        batch_size = self.job.budget.batch_size
        accept = self._accept(now)
        out: list[Assignment] = []
        leased = True
        while leased:
            leased = False
            ready = self.roster.ready()
            for entry in sorted(ready, key=lambda e: -self.budget.free_slots(e.name)):
                room = min(self.budget.allowance(entry.name, now), batch_size)
                if room <= 0:
                    continue
                deadline = now + self.lease_seconds(entry.name, room)
                lease = self.ledger.lease(
                    entry.name, room, now, deadline, accept=accept, prefer=_prefers(entry)
                )
                if lease is None:
                    return out  # nothing ready that the budget accepts, for anyone
                leased = True
                self.budget.start(entry.name, len(lease.containers))
                entry.galleries.update(
                    c.source for c in lease.containers if c.open == OpenMode.CLICK
                )
                out.append(Assignment(entry.name, lease))
        return out

    def lease_seconds(self, actor: str, batch: int) -> float:
        """How long a batch may take: what is queued on the actor's pages before its last
        container, each bounded by the container timeout, plus the margin."""
        if self._fixed_lease_s is not None:
            return self._fixed_lease_s
        queued = self.budget.used(actor) + batch
        entry = self.roster.entries.get(actor)
        rounds = math.ceil(queued / (entry.pages if entry else self.roster.pages))
        return rounds * self._container_s + self._margin_s

    def _accept(self, now: float):
        domains, breaker = self.budget.domains, self.breaker

        def accept(container: Container) -> bool:
            # The domain first: a half-open breaker's probe must not be spent on a refusal.
            domain = domain_of(container.target)
            if not domains.can_start(domain, now) or not breaker.allow(domain, now):
                return False
            domains.start(domain, now)
            return True

        return accept

    # -- answers -------------------------------------------------------------------------
    def complete(self, lease_id: int, records: list[Record], now: float) -> list[Record]:
        """An actor's answer to a batch; returns the records to write."""
        if lease_id in self._held:  # answered after its deadline: already requeued
            self._free_held(lease_id, now)
            self.ledger.duplicates_dropped += len(records)
            return []
        lease = self.ledger.get_lease(lease_id)
        if lease is None:
            self.ledger.duplicates_dropped += len(records)
            return []
        targets = {c.id: c for c in lease.containers}
        open_ids = self.ledger.open_ids(lease_id)
        out: list[Record] = []
        for record in records:
            container = targets.get(record.id)
            if container is None or record.id not in open_ids:
                self.ledger.duplicates_dropped += 1
                continue
            out += self._merge(lease, container, record, now)
        out += self._release(lease_id, now, "the actor answered without this container")
        return out

    def _merge(self, lease: Lease, container: Container, record: Record, now: float):
        domain = domain_of(container.target)
        ok = record.status != Status.FAILED
        reason = record.errors[0].reason if record.errors and not ok else None
        # robots.txt said no: the host answered, so neither a failure nor a sign of health
        policy = not ok and not record.retryable and (reason or "").startswith(ROBOTS_REFUSAL)
        gave_up = not policy and self.breaker.record(domain, ok, reason, now)
        completion = self.ledger.complete(
            lease.id, record, now, retry=not self.breaker.given_up(domain)
        )
        latency = record.timings.get("total")
        self.budget.finish(lease.actor, domain, now, latency / 1000 if ok and latency else None)
        out = [record] if completion.outcome is Outcome.FINAL else []
        if gave_up:
            out += self.ledger.fail_lane(domain, self.breaker.why(domain))
        return out

    def batch_failed(self, lease_id: int, now: float, reason: str) -> list[Record]:
        """The batch call failed without the actor dying (it raised): retry its containers."""
        if lease_id in self._held:
            self._free_held(lease_id, now)
            return []
        return self._release(lease_id, now, reason)

    def _release(self, lease_id: int, now: float, reason: str, retry: bool = True):
        lease = self.ledger.get_lease(lease_id)
        if lease is None:
            return []
        open_ids = self.ledger.open_ids(lease_id)
        for container in lease.containers:
            if container.id in open_ids:
                self.budget.finish(lease.actor, domain_of(container.target), now)
        return self.ledger.release(lease_id, now, reason, retry=self._may_retry if retry else False)

    def _may_retry(self, container: Container) -> bool:
        return not self.breaker.given_up(domain_of(container.target))

    def _free_held(self, lease_id: int, now: float) -> None:
        held = self._held.pop(lease_id)
        for domain in held.domains:
            self.budget.finish(held.actor, domain, now)

    # -- time ----------------------------------------------------------------------------
    def tick(self, now: float) -> Tick:
        """Apply what time alone changed: expired leases, actor starts due."""
        tick = Tick()
        for lease_id in self.ledger.expired(now):
            lease = self.ledger.get_lease(lease_id)
            if lease is None:
                continue
            self.expired_leases += 1
            open_ids = self.ledger.open_ids(lease_id)
            self._held[lease_id] = _Held(
                lease.actor,
                [domain_of(c.target) for c in lease.containers if c.id in open_ids],
            )
            reason = (
                f"lease expired: {lease.actor} did not answer within "
                f"{self.lease_seconds(lease.actor, 0):.0f}s; it is killed and replaced"
            )
            tick.records += self.ledger.release(lease_id, now, reason, retry=self._may_retry)
            if self.roster.condemn(lease.actor):
                tick.hung.append(lease.actor)
        if not (self.cancelled or self.stopping):
            tick.start = self.roster.to_start(now)
        return tick

    def next_wake(self, now: float) -> Wake:
        """The earliest moment time alone can change something; see the module docstring."""
        wakes: list[Wake] = []
        deadline = self.ledger.next_deadline()
        if deadline is not None:
            wakes.append(Wake(deadline, WakeCause.LEASE))
        if not (self.cancelled or self.stopping):
            start = self.roster.next_start_at(now)
            if start is not None:
                wakes.append(Wake(start, WakeCause.START))
        if self._can_lease_more():
            wakes += self._pending_wakes(now)
        return min(wakes, key=lambda wake: wake.at or 0.0, default=Wake(None, WakeCause.EVENT))

    def _can_lease_more(self) -> bool:
        if self.paused or self.cancelled or self.stopping:
            return False
        return any(self.budget.allowance(entry.name, 0.0) > 0 for entry in self.roster.ready())

    def _pending_wakes(self, now: float) -> list[Wake]:
        wakes = []
        delayed = self.ledger.next_delayed_at()
        if delayed is not None:
            wakes.append(Wake(delayed, WakeCause.RETRY))
        for domain in self.ledger.ready_lanes():
            token_at = now + self.budget.domains.wait_time(domain, now)
            probe_at = self.breaker.next_allowed_at(domain, now)
            at = max(token_at, probe_at)
            if math.isfinite(at):
                cause = WakeCause.TOKEN if token_at >= probe_at else WakeCause.BREAKER
                wakes.append(Wake(at, cause))
        return wakes

    # -- control -------------------------------------------------------------------------
    def set_verdict(self, verdict: str, now: float, node: str | None = None) -> None:
        """``node``'s MetricsActor said ``verdict``: it limits that node's actors (and the
        global limit only when every node is under pressure; see ``budget.py``)."""
        self.budget.verdict(verdict, now, node)

    def cancel(self) -> list[Record]:
        """No more work: pending containers fail (keeping their last real error); leases in
        flight may still answer, and :meth:`release_all` ends what does not."""
        self.cancelled = True
        return self.ledger.fail_pending("cancelled before it was tried again")

    def stop(self) -> None:
        """No more work, but nothing is failed: what is pending is left for a resume."""
        self.stopping = True

    def release_all(self, now: float, reason: str, *, retry: bool) -> list[Record]:
        """End every lease still open (a cancel or stop that waited long enough)."""
        records: list[Record] = []
        for lease_id in self.ledger.open_leases():
            records += self._release(lease_id, now, reason, retry=retry)
        for lease_id in list(self._held):
            self._free_held(lease_id, now)
        return records

    # -- views -----------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.ledger.is_finished

    @property
    def in_flight(self) -> int:
        """Containers the budget counts: open leases plus expired ones still held."""
        return self.budget.in_flight

    def held_count(self) -> int:
        return sum(len(held.domains) for held in self._held.values())

    def live_actors(self) -> list[str]:
        return [entry.name for entry in self.roster.ready()]


def _prefers(entry: ActorEntry):
    """Click mode: an actor whose page has a gallery open takes that gallery's cards first."""
    if not entry.galleries:
        return None
    galleries = entry.galleries
    return lambda container: container.source in galleries
