"""A circuit breaker per domain: stop sending work to a site that keeps failing.

closed ──N consecutive failures──▶ open ──cooldown──▶ half-open (one probe)
  ▲                                  ▲                      │
  └────────── probe succeeds ────────┼──── probe fails ─────┘

A site that is down would otherwise eat every container's retries in a few seconds and
turn a recoverable outage into a run of failed records. While open, the coordinator
keeps the domain's containers pending (or fails them with :meth:`CircuitBreaker.why` as
the reason when it gives up). Results of containers started before the breaker opened
may arrive while it is open; they are kept as reasons but change nothing, since only
the probe tests the domain's present.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from config.job import RetrySpec

REASONS_KEPT = 3


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass(slots=True)
class _Domain:
    state: BreakerState = BreakerState.CLOSED
    consecutive: int = 0
    opened_at: float = 0.0
    probe_at: float | None = None  # when the half-open probe was let through
    reasons: deque[str] = field(default_factory=lambda: deque(maxlen=REASONS_KEPT))


class CircuitBreaker:
    """Per-domain breaker: ``failures`` consecutive failures open it for ``cooldown_s``."""

    def __init__(self, failures: int, cooldown_s: float) -> None:
        if failures < 1 or cooldown_s < 0:
            raise ValueError(f"need failures >= 1 and cooldown >= 0, got {failures}, {cooldown_s}")
        self.failures = failures
        self.cooldown_s = cooldown_s
        self.opened_count = 0
        self._domains: dict[str, _Domain] = {}

    @classmethod
    def from_spec(cls, retry: RetrySpec) -> CircuitBreaker:
        return cls(retry.breaker_failures, retry.breaker_cooldown.total_seconds())

    def _get(self, domain: str) -> _Domain:
        entry = self._domains.get(domain)
        if entry is None:
            entry = self._domains[domain] = _Domain()
        return entry

    def allow(self, domain: str, now: float) -> bool:
        """May a container of ``domain`` start now? Lets exactly one probe through when
        half-open (another if the probe never reports within a cooldown)."""
        entry = self._domains.get(domain)
        if entry is None or entry.state is BreakerState.CLOSED:
            return True
        if entry.state is BreakerState.OPEN:
            if now - entry.opened_at < self.cooldown_s:
                return False
            entry.state = BreakerState.HALF_OPEN
        if entry.probe_at is not None and now - entry.probe_at < self.cooldown_s:
            return False
        entry.probe_at = now
        return True

    def record(self, domain: str, ok: bool, reason: str | None, now: float) -> None:
        """The outcome of one container of ``domain`` (a final or retryable failure)."""
        entry = self._get(domain)
        if ok:
            if entry.state is not BreakerState.OPEN:
                entry.state = BreakerState.CLOSED
                entry.consecutive = 0
                entry.probe_at = None
            return
        entry.consecutive += 1
        entry.reasons.append(reason or "unknown failure")
        if entry.state is BreakerState.HALF_OPEN or (
            entry.state is BreakerState.CLOSED and entry.consecutive >= self.failures
        ):
            self._open(entry, now)

    def _open(self, entry: _Domain, now: float) -> None:
        entry.state = BreakerState.OPEN
        entry.opened_at = now
        entry.probe_at = None
        self.opened_count += 1

    def state(self, domain: str) -> BreakerState:
        """The stored state; open turns half-open only when :meth:`allow` is asked."""
        entry = self._domains.get(domain)
        return entry.state if entry else BreakerState.CLOSED

    def why(self, domain: str, now: float | None = None) -> str:
        """One sentence for a record or a log line: the state and the last reasons."""
        entry = self._domains.get(domain)
        if entry is None or entry.state is BreakerState.CLOSED:
            return f"circuit for {domain} is closed"
        last = "; ".join(entry.reasons) or "no reason recorded"
        sentence = (
            f"circuit for {domain} is {entry.state} after {entry.consecutive} "
            f"consecutive failures (last: {last})"
        )
        if entry.state is BreakerState.OPEN and now is not None:
            left = max(0.0, entry.opened_at + self.cooldown_s - now)
            sentence += f"; next probe in {left:.1f} s"
        return sentence

    def open_domains(self) -> list[str]:
        return [d for d, e in self._domains.items() if e.state is not BreakerState.CLOSED]
