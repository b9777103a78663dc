"""A circuit breaker per domain: stop sending work to a site that keeps failing, and give up on
one that stays dead.

closed ──N consecutive failures──▶ open ──cooldown──▶ half-open (one probe)
  ▲                                  ▲                      │
  └────────── probe succeeds ────────┼──── probe fails ─────┤
                                                            │ the probes-th failed probe
                                                            ▼
                                                        given up (for the rest of the run)

A site that is down would otherwise eat every container's retries in a few seconds and
turn a recoverable outage into a run of failed records; one that never comes back would
keep a run open for ever, one probe per cooldown. So the breaker gives a domain
``probes`` chances to recover, then gives it up: the scheduler fails the domain's pending
containers with :meth:`CircuitBreaker.why` (the last errors) as the reason.

Results of containers started before the breaker opened may arrive while it is open; they
are kept as reasons but change nothing, since only the probe tests the domain's present.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from landmark.config.job import RetrySpec

REASONS_KEPT = 3


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"
    GIVEN_UP = "given up"


@dataclass(slots=True)
class _Domain:
    state: BreakerState = BreakerState.CLOSED
    consecutive: int = 0
    failed_probes: int = 0
    opened_at: float = 0.0
    probe_at: float | None = None  # when the half-open probe was let through
    reasons: deque[str] = field(default_factory=lambda: deque(maxlen=REASONS_KEPT))


class CircuitBreaker:
    """Per-domain breaker: ``failures`` consecutive failures open it for ``cooldown_s``;
    ``probes`` failed probes in a row give the domain up."""

    def __init__(self, failures: int, cooldown_s: float, probes: int = 2) -> None:
        if failures < 1 or cooldown_s < 0 or probes < 1:
            raise ValueError(
                f"need failures >= 1, cooldown >= 0 and probes >= 1, "
                f"got {failures}, {cooldown_s}, {probes}"
            )
        self.failures = failures
        self.cooldown_s = cooldown_s
        self.probes = probes
        self.opened_count = 0
        self.given_up_count = 0  # domains given up: while 0, nobody needs to ask per container
        self._domains: dict[str, _Domain] = {}

    @classmethod
    def from_spec(cls, retry: RetrySpec) -> CircuitBreaker:
        return cls(
            retry.breaker_failures, retry.breaker_cooldown.total_seconds(), retry.breaker_probes
        )

    def _get(self, domain: str) -> _Domain:
        entry = self._domains.get(domain)
        if entry is None:
            entry = self._domains[domain] = _Domain()
        return entry

    def allow(self, domain: str, now: float) -> bool:
        """May a container of ``domain`` start now? Lets exactly one probe through when
        half-open (another if the probe never reports within a cooldown). Ask only when the
        container will really start: a yes uses the probe up."""
        entry = self._domains.get(domain)
        if entry is None or entry.state is BreakerState.CLOSED:
            return True
        if self.next_allowed_at(domain, now) > now:
            return False
        entry.state = BreakerState.HALF_OPEN
        entry.probe_at = now
        return True

    def next_allowed_at(self, domain: str, now: float) -> float:
        """When :meth:`allow` could next say yes (``now`` if it would now, ``inf`` never)."""
        entry = self._domains.get(domain)
        if entry is None or entry.state is BreakerState.CLOSED:
            return now
        if entry.state is BreakerState.GIVEN_UP:
            return math.inf
        if entry.state is BreakerState.OPEN:
            return max(now, entry.opened_at + self.cooldown_s)
        if entry.probe_at is None:
            return now
        return max(now, entry.probe_at + self.cooldown_s)

    def record(self, domain: str, ok: bool, reason: str | None, now: float) -> bool:
        """The outcome of one container of ``domain``; True when it made the breaker give the
        domain up (the caller then fails the domain's pending containers)."""
        entry = self._get(domain)
        if entry.state is BreakerState.GIVEN_UP:
            return False
        if ok:
            if entry.state is not BreakerState.OPEN:
                entry.state = BreakerState.CLOSED
                entry.consecutive = 0
                entry.failed_probes = 0
                entry.probe_at = None
            return False
        entry.consecutive += 1
        entry.reasons.append(reason or "unknown failure")
        if entry.state is BreakerState.HALF_OPEN and entry.probe_at is not None:
            entry.failed_probes += 1
            if entry.failed_probes >= self.probes:
                entry.state = BreakerState.GIVEN_UP
                self.given_up_count += 1
                return True
            self._open(entry, now)
        elif entry.state is BreakerState.CLOSED and entry.consecutive >= self.failures:
            self._open(entry, now)
        return False

    def _open(self, entry: _Domain, now: float) -> None:
        entry.state = BreakerState.OPEN
        entry.opened_at = now
        entry.probe_at = None
        self.opened_count += 1

    def state(self, domain: str) -> BreakerState:
        """The stored state; open turns half-open only when :meth:`allow` is asked."""
        entry = self._domains.get(domain)
        return entry.state if entry else BreakerState.CLOSED

    def given_up(self, domain: str) -> bool:
        entry = self._domains.get(domain)
        return entry is not None and entry.state is BreakerState.GIVEN_UP

    def why(self, domain: str, now: float | None = None) -> str:
        """One sentence for a record or a log line: the state and the last reasons."""
        entry = self._domains.get(domain)
        if entry is None or entry.state is BreakerState.CLOSED:
            return f"circuit for {domain} is closed"
        last = "; ".join(entry.reasons) or "no reason recorded"
        if entry.state is BreakerState.GIVEN_UP:
            return (
                f"gave up on {domain}: {entry.consecutive} consecutive failures and "
                f"{entry.failed_probes} failed probe(s) (last: {last})"
            )
        sentence = (
            f"circuit for {domain} is {entry.state} after {entry.consecutive} "
            f"consecutive failures (last: {last})"
        )
        if entry.state is BreakerState.OPEN and now is not None:
            left = max(0.0, entry.opened_at + self.cooldown_s - now)
            sentence += f"; next probe in {left:.1f} s"
        return sentence

    def open_domains(self) -> list[str]:
        """Domains not closed: open, half-open or given up."""
        return [d for d, e in self._domains.items() if e.state is not BreakerState.CLOSED]

    def given_up_domains(self) -> list[str]:
        return [d for d, e in self._domains.items() if e.state is BreakerState.GIVEN_UP]
