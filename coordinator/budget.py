"""How many containers may be in flight: token buckets, per-domain caps, and the adaptive limit.

Everything here takes ``now`` (``time.monotonic()`` seconds) as an argument, so the
coordinator's loop drives it and tests drive time by hand; nothing sleeps.

The control law (one place: :class:`AdaptiveLimit`)
---------------------------------------------------

The global in-flight limit ``L`` lives in ``[floor, ceiling]`` and moves on two inputs:
container latency samples (``observe``) and the MetricsActor's verdict (``update``).

Latency is tracked twice, as exponentially weighted moving averages:

- ``baseline``: long window, ``BASELINE_ALPHA = 0.005`` (~200 samples of memory) — what
  a container normally takes on this site;
- ``current``: short window, ``CURRENT_ALPHA = 0.1`` (~10 samples) — what it takes now.

Both start as a running mean (alpha = max(alpha, 1/n)) so the first samples count fully,
and no latency decision is taken before ``WARMUP_SAMPLES = 10``. The gradient is
``g = baseline / current`` (1 when steady, < 1 when containers slow down). Then, in
priority order:

1. verdict ``shed`` → ``L <- L * 0.5``, at most once per ``shed_cooldown_s`` (2 s): the
   machine is near its memory limit; halve now, halve again if it persists.
2. verdict ``throttle`` → hold: no growth, no cut (and :class:`Budget` stops new dispatch
   above the floor).
3. ``g < RISING = 2/3`` (current > 1.5 * baseline) → ``L <- L * 0.85``, at most once per
   ``max(1 s, current latency)``: samples that finish within one latency of a cut were
   started before it and say nothing about the new limit.
4. ``g ≥ STEADY = 0.9`` on a latency sample → grow, TCP-style: below ``ssthresh``
   (slow start) ``+1`` per sample, which doubles ``L`` every window of ``L`` samples;
   above it (congestion avoidance) ``+1/L`` per sample, i.e. ``+1`` per window. Every cut
   sets ``ssthresh`` to the new ``L``. ``ssthresh`` starts at the ceiling, so a fresh run
   goes floor → ceiling (2 → 64) in about 62 steady samples.
5. ``RISING ≤ g < STEADY`` → hold: latency is drifting up; don't push.

The baseline drifts too, on purpose: when latency doubles and stays, current/baseline
peaks near 1.7 and stays above 1.5 for some 70 samples (one cut per cooldown meanwhile)
before the baseline catches up. The limit backs off from congestion it caused, but a site that
simply gets slower (older items, a busier server) does not ratchet it down to the floor.
(A 2x threshold would never fire on a doubling for the same reason: the baseline moves
before the short average gets there.)

Samples taken while the limit is not in use (``in_flight < L / 2``) never grow it: a limit
that was never tested says nothing (RFC 7661's congestion-window validation).

Where this comes from. Scrapy's AutoThrottle adjusts a per-slot delay toward
``latency / target_concurrency`` — latency as the signal, smoothed. Netflix's
concurrency-limits Gradient2 compares a long-window latency average against a short one
and scales the limit by their ratio with a tolerance, which is our gradient; its AIMD
limiter is the additive-increase / multiplicative-decrease shape we keep for robustness.
Crawlee's AutoscaledPool grows concurrency by 5 % every 10 s while the system is idle
enough; from 2 to 64 that is ln(32)/ln(1.05) ≈ 71 steps ≈ 12 minutes, longer than most
of our runs, so most of a run would be spent under-used. Per-sample slow start reaches
the ceiling as fast as the site answers and lets latency and memory verdicts stop it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from landmark.config.job import BudgetSpec

BASELINE_ALPHA = 0.005
CURRENT_ALPHA = 0.1
WARMUP_SAMPLES = 10
STEADY = 0.9
RISING = 2 / 3
SHED_FACTOR = 0.5
LATENCY_FACTOR = 0.85
SHED_COOLDOWN_S = 2.0
LATENCY_COOLDOWN_S = 1.0
TOKEN_EPSILON = 1e-9  # refills are float sums: 0.9999999999999964 tokens is one token


class Verdict(StrEnum):
    """The MetricsActor's word on the machine (plain strings compare equal)."""

    OK = "ok"
    THROTTLE = "throttle"
    SHED = "shed"


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; starts full."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"need rate > 0 and burst >= 1, got rate={rate}, burst={burst}")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last: float | None = None

    def _refill(self, now: float) -> None:
        if self._last is not None and now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        if self._last is None or now > self._last:
            self._last = now

    def tokens(self, now: float) -> float:
        self._refill(now)
        return self._tokens

    def try_take(self, now: float, n: float = 1) -> bool:
        self._refill(now)
        if self._tokens < n - TOKEN_EPSILON:
            return False
        self._tokens -= n
        return True

    def take(self, now: float, n: float = 1) -> None:
        """Take even into debt: the average rate still holds, the next takes wait longer."""
        self._refill(now)
        self._tokens -= n

    def wait_time(self, now: float, n: float = 1) -> float:
        """Seconds until ``n`` tokens are there; ``inf`` if ``n`` exceeds the burst."""
        if n > self.burst:
            return math.inf
        self._refill(now)
        short = n - self._tokens
        return 0.0 if short <= TOKEN_EPSILON else short / self.rate


@dataclass(slots=True)
class _Domain:
    bucket: TokenBucket
    in_flight: int = 0


class DomainBudget:
    """Per-host politeness: a request rate (token bucket) and a concurrency cap.

    The burst is ``min(rate, concurrency)`` (at least 1): a run may start up to its
    concurrency at once on a fast domain, but a 1/s domain really sees 1/s.
    """

    def __init__(self, rate: float, concurrency: int, burst: float | None = None) -> None:
        if concurrency < 1:
            raise ValueError(f"domain concurrency must be >= 1, got {concurrency}")
        self.rate = rate
        self.concurrency = concurrency
        self.burst = burst if burst is not None else max(1.0, min(rate, float(concurrency)))
        self._domains: dict[str, _Domain] = {}

    def _get(self, domain: str) -> _Domain:
        entry = self._domains.get(domain)
        if entry is None:
            entry = self._domains[domain] = _Domain(TokenBucket(self.rate, self.burst))
        return entry

    def can_start(self, domain: str, now: float) -> bool:
        entry = self._get(domain)
        return entry.in_flight < self.concurrency and entry.bucket.tokens(now) >= 1 - TOKEN_EPSILON

    def start(self, domain: str, now: float) -> None:
        """Count one container started (takes a token, into debt if need be)."""
        entry = self._get(domain)
        entry.bucket.take(now)
        entry.in_flight += 1

    def try_start(self, domain: str, now: float) -> bool:
        """``can_start`` then ``start``: fit as a ledger ``accept`` that reserves."""
        if not self.can_start(domain, now):
            return False
        self.start(domain, now)
        return True

    def finish(self, domain: str) -> None:
        entry = self._domains.get(domain)
        if entry is None or entry.in_flight == 0:
            raise ValueError(f"finish({domain!r}) without a matching start")
        entry.in_flight -= 1

    def in_flight(self, domain: str) -> int:
        entry = self._domains.get(domain)
        return entry.in_flight if entry else 0

    def wait_time(self, domain: str, now: float) -> float:
        """Seconds until a token frees; ``inf`` while the cap is full (that waits on a finish)."""
        entry = self._get(domain)
        if entry.in_flight >= self.concurrency:
            return math.inf
        return entry.bucket.wait_time(now)

    def domains(self) -> list[str]:
        return list(self._domains)


class AdaptiveLimit:
    """The global in-flight limit; its control law is in this module's docstring."""

    def __init__(
        self,
        floor: int,
        ceiling: int,
        initial: int | None = None,
        *,
        shed_cooldown_s: float = SHED_COOLDOWN_S,
        latency_cooldown_s: float = LATENCY_COOLDOWN_S,
    ) -> None:
        if not 1 <= floor <= ceiling:
            raise ValueError(f"need 1 <= floor <= ceiling, got floor={floor}, ceiling={ceiling}")
        self.floor = floor
        self.ceiling = ceiling
        self._limit = float(min(max(initial if initial is not None else floor, floor), ceiling))
        self._ssthresh = float(ceiling)
        self.shed_cooldown_s = shed_cooldown_s
        self.latency_cooldown_s = latency_cooldown_s
        self.verdict = Verdict.OK
        self.baseline: float | None = None
        self.current: float | None = None
        self.samples = 0
        self.increases = 0
        self.decreases = 0
        self.reason = "initial"
        self._last_shed = -math.inf
        self._last_latency_cut = -math.inf

    @property
    def value(self) -> int:
        return int(self._limit)

    @property
    def gradient(self) -> float:
        """baseline / current latency; 1.0 until warmed up."""
        if self.samples < WARMUP_SAMPLES or not self.current or self.baseline is None:
            return 1.0
        return self.baseline / self.current

    def set_ceiling(self, ceiling: int) -> None:
        """Follow the capacity actually there (e.g. total actor slots), never below the floor."""
        self.ceiling = max(self.floor, ceiling)
        self._limit = min(self._limit, float(self.ceiling))
        self._ssthresh = min(self._ssthresh, float(self.ceiling))

    def observe(self, latency_s: float, now: float, in_flight: int | None = None) -> None:
        """One container finished in ``latency_s``; ``in_flight`` (if given) gates growth."""
        self.samples += 1
        n = self.samples
        self.baseline = _ewma(self.baseline, latency_s, max(BASELINE_ALPHA, 1 / n))
        self.current = _ewma(self.current, latency_s, max(CURRENT_ALPHA, 1 / n))
        if self._pressure(now):
            return
        gradient = self.gradient
        if gradient < RISING:
            cooldown = max(self.latency_cooldown_s, self.current)
            if now - self._last_latency_cut >= cooldown:
                self._last_latency_cut = now
                self._cut(LATENCY_FACTOR, f"latency {gradient:.2f} of baseline")
            return
        used = in_flight is None or in_flight >= self._limit / 2
        if gradient >= STEADY and used:
            self._grow()

    def update(self, verdict: str, now: float) -> None:
        """The MetricsActor's latest verdict: ``ok``, ``throttle`` or ``shed``."""
        self.verdict = Verdict(verdict)
        self._pressure(now)

    def _pressure(self, now: float) -> bool:
        """Apply shed/throttle; True when they rule out any latency-driven change."""
        if self.verdict is Verdict.SHED:
            if now - self._last_shed >= self.shed_cooldown_s:
                self._last_shed = now
                self._cut(SHED_FACTOR, "shed: machine under memory pressure")
            return True
        return self.verdict is Verdict.THROTTLE

    def _grow(self) -> None:
        before = self.value
        step = 1.0 if self._limit < self._ssthresh else 1.0 / self._limit
        self._limit = min(float(self.ceiling), self._limit + step)
        if self.value > before:
            self.increases += 1
            phase = "slow start" if self._limit <= self._ssthresh else "steady growth"
            self.reason = f"{phase}: latency steady"

    def _cut(self, factor: float, reason: str) -> None:
        before = self.value
        self._limit = max(float(self.floor), math.floor(self._limit * factor))
        self._ssthresh = self._limit
        if self.value < before:
            self.decreases += 1
            self.reason = reason


def _ewma(previous: float | None, sample: float, alpha: float) -> float:
    return sample if previous is None else previous + alpha * (sample - previous)


class Budget:
    """Global limit * per-actor slots * per-domain politeness: who may get work now.

    Usage by the coordinator, per lease: ``n = budget.allowance(actor, now)``; lease up to
    ``n`` from the ledger with ``accept`` calling ``try_start_domain`` (which reserves);
    ``budget.start(actor, len(lease.containers))``. Per container that ends (record,
    requeue or release): ``budget.finish(actor, domain, now, latency_s)``.

    Under a ``throttle`` or ``shed`` verdict new dispatch stops, except to keep ``floor``
    containers in flight so a run never stalls on a machine that stays busy.
    """

    def __init__(self, limit: AdaptiveLimit, domains: DomainBudget, max_in_flight: int) -> None:
        self.limit = limit
        self.domains = domains
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self._slots: dict[str, int] = {}
        self._used: dict[str, int] = {}

    @classmethod
    def from_spec(cls, spec: BudgetSpec) -> Budget:
        limit = AdaptiveLimit(spec.min_in_flight, spec.max_in_flight)
        domains = DomainBudget(spec.domain_rate, spec.domain_concurrency)
        return cls(limit, domains, spec.max_in_flight)

    # actors ---------------------------------------------------------------------------
    def register_actor(self, actor: str, slots: int) -> None:
        if slots < 1:
            raise ValueError(f"actor {actor!r} needs at least one slot, got {slots}")
        self._slots[actor] = slots
        self._used.setdefault(actor, 0)
        self._follow_capacity()

    def unregister_actor(self, actor: str) -> None:
        """Forget a dead actor; its containers still ``finish`` (global and domain counts)."""
        self._slots.pop(actor, None)
        self._used.pop(actor, None)
        self._follow_capacity()

    def _follow_capacity(self) -> None:
        slots = sum(self._slots.values())
        self.limit.set_ceiling(min(self.max_in_flight, slots) if slots else self.max_in_flight)

    def free_slots(self, actor: str) -> int:
        return max(0, self._slots.get(actor, 0) - self._used.get(actor, 0))

    # the decision ---------------------------------------------------------------------
    @property
    def global_limit(self) -> int:
        """The in-flight limit now in force (the floor under throttle/shed)."""
        if self.limit.verdict is not Verdict.OK:
            return self.limit.floor
        return min(self.limit.value, self.max_in_flight)

    def allowance(self, actor: str, now: float) -> int:
        """How many containers may be leased to ``actor`` now (before domain checks)."""
        del now  # the global and slot budgets are counts; time enters through domains
        return max(0, min(self.free_slots(actor), self.global_limit - self.in_flight))

    def try_start_domain(self, domain: str, now: float) -> bool:
        return self.domains.try_start(domain, now)

    def start(self, actor: str, n: int = 1) -> None:
        """``n`` containers were leased to ``actor`` (their domains already reserved)."""
        self.in_flight += n
        if actor in self._used:
            self._used[actor] += n

    def finish(self, actor: str, domain: str, now: float, latency_s: float | None = None) -> None:
        """One container ended; a latency sample (successful extractions) feeds the limit."""
        self.in_flight = max(0, self.in_flight - 1)
        if self._used.get(actor, 0) > 0:
            self._used[actor] -= 1
        self.domains.finish(domain)
        if latency_s is not None:
            self.limit.observe(latency_s, now, in_flight=self.in_flight + 1)

    def verdict(self, verdict: str, now: float) -> None:
        self.limit.update(verdict, now)

    def used(self, actor: str) -> int:
        """Containers leased to ``actor`` and not yet ended."""
        return self._used.get(actor, 0)
