"""How many containers may be in flight: token buckets, per-domain caps, and the adaptive limit.

Everything here takes ``now`` (``time.monotonic()`` seconds) as an argument, so the
coordinator's loop drives it and tests drive time by hand; nothing sleeps.

Two control laws: the global limit (:class:`AdaptiveLimit`) watches latency; each node's
memory verdict acts on that node's actors only (:class:`Budget`, "Per node" below).

The global limit
----------------

The global in-flight limit ``L`` lives in ``[floor, ceiling]`` and moves on two inputs:
container latency samples (``observe``) and the *cluster* verdict (``update``): the
mildest verdict among the nodes that host actors. One hot node therefore never cuts ``L``
(it sheds without slowing the others); only when every node is under pressure does ``L``
hold (all throttle) or halve (all shed), exactly as one machine did before.

Latency is tracked twice, as exponentially weighted moving averages:

- ``baseline``: long window, ``BASELINE_ALPHA = 0.005`` (~200 samples of memory) — what
  a container normally takes on this site;
- ``current``: short window, ``CURRENT_ALPHA = 0.1`` (~10 samples) — what it takes now.

Both start as a running mean (alpha = max(alpha, 1/n)) so the first samples count fully,
and no latency decision is taken before ``WARMUP_SAMPLES = 10``. The gradient is
``g = baseline / current`` (1 when steady, < 1 when containers slow down). Then, in
priority order:

1. cluster verdict ``shed`` → ``L <- L * 0.5``, at most once per ``shed_cooldown_s`` (2 s):
   every node is near its memory limit; halve now, halve again if it persists.
2. cluster verdict ``throttle`` → hold: no growth, no cut (and :class:`Budget` stops new
   dispatch above the floor).
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

Per node
--------

Every node that hosts actors has its own MetricsActor and so its own verdict; memory is
a node's own, so its pressure is answered on its own actors. A node ``n`` with slots
``S_n`` (its actors' slots) has a cap ``C_n`` (∞ until it first sheds) and a floor
``F_n = max(1, ceil(floor * S_n / S))``: the global floor shared out by slots, at least one
container, so a node under pressure still makes progress and a one-node run keeps
exactly the old floor. What may be in flight on ``n``:

- ``ok``: ``min(C_n, S_n)``; each latency sample from ``n`` grows ``C_n`` by 1 (a doubling
  per window of ``C_n`` samples, like slow start) until it reaches ``S_n`` and becomes ∞;
- ``throttle``: ``min(C_n, F_n)``: no new dispatch to ``n`` above its floor; ``C_n`` holds;
- ``shed``: the same, and ``C_n <- max(F_n, floor(min(C_n, S_n) * 0.5))`` at most once per
  ``shed_cooldown_s``, so ``n`` comes back at half its rate and grows from there. (The
  Coordinator also recycles the heaviest actor of ``n``: its MetricsActor only weighs
  the actors of its own node.)

Every lease also stays within the global ``L`` and the actor's free slots. When every
node is under pressure, ``L`` is the floor as well, so the cluster never has more in
flight than ``floor`` - as protective as before, whatever the number of nodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
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


SEVERITY = {Verdict.OK: 0, Verdict.THROTTLE: 1, Verdict.SHED: 2}


@dataclass(slots=True)
class NodeState:
    """One node's verdict and its own cap (the "Per node" law in the module docstring)."""

    actors: set[str] = field(default_factory=set)
    verdict: Verdict = Verdict.OK
    cap: float = math.inf  # in-flight cap on this node; infinite until it first sheds
    last_shed: float = -math.inf
    cuts: int = 0  # shed cuts of the cap (at most one per cooldown)

    @property
    def pressed(self) -> bool:
        return self.verdict is not Verdict.OK


class Budget:
    """Global limit * per-node verdict * per-actor slots * per-domain politeness: who may get
    work now.

    Usage by the coordinator, per lease: ``n = budget.allowance(actor, now)``; lease up to
    ``n`` from the ledger with ``accept`` calling ``try_start_domain`` (which reserves);
    ``budget.start(actor, len(lease.containers))``. Per container that ends (record,
    requeue or release): ``budget.finish(actor, domain, now, latency_s)``. Per verdict
    read from a node's MetricsActor: ``budget.verdict(verdict, now, node)``.

    Actors registered without a node share the node ``None``, so a one-machine caller that
    never names nodes gets one node and the law it always had.
    """

    def __init__(self, limit: AdaptiveLimit, domains: DomainBudget, max_in_flight: int) -> None:
        self.limit = limit
        self.domains = domains
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self._slots: dict[str, int] = {}
        self._used: dict[str, int] = {}
        self._node_of: dict[str, str | None] = {}
        self._total_slots = 0  # sum of _slots, kept so a node's floor costs O(its actors)
        self.nodes: dict[str | None, NodeState] = {}

    @classmethod
    def from_spec(cls, spec: BudgetSpec) -> Budget:
        limit = AdaptiveLimit(spec.min_in_flight, spec.max_in_flight)
        domains = DomainBudget(spec.domain_rate, spec.domain_concurrency)
        return cls(limit, domains, spec.max_in_flight)

    # actors ---------------------------------------------------------------------------
    def register_actor(self, actor: str, slots: int, node: str | None = None) -> None:
        if slots < 1:
            raise ValueError(f"actor {actor!r} needs at least one slot, got {slots}")
        if actor in self._slots:  # registered again: counted once, on its latest node
            self._total_slots -= self._slots[actor]
            self._node(self._node_of[actor]).actors.discard(actor)
        self._slots[actor] = slots
        self._total_slots += slots
        self._used.setdefault(actor, 0)
        self._node_of[actor] = node
        self._node(node).actors.add(actor)
        self._follow_capacity()

    def resize_actor(self, actor: str, slots: int) -> None:
        """New slots for a registered actor (a service job's share changed); a no-op for
        one not registered yet (it registers with its new size)."""
        if actor in self._slots:
            self.register_actor(actor, slots, self._node_of[actor])

    def unregister_actor(self, actor: str) -> None:
        """Forget a dead actor; its containers still ``finish`` (global and domain counts)."""
        self._total_slots -= self._slots.pop(actor, 0)
        self._used.pop(actor, None)
        node = self._node_of.pop(actor, None)
        if node in self.nodes:
            self.nodes[node].actors.discard(actor)
        self._follow_capacity()

    def _follow_capacity(self) -> None:
        slots = self._total_slots
        self.limit.set_ceiling(min(self.max_in_flight, slots) if slots else self.max_in_flight)
        self.limit.verdict = self.cluster_verdict()  # the set of nodes with actors changed

    def _node(self, node: str | None) -> NodeState:
        state = self.nodes.get(node)
        if state is None:
            state = self.nodes[node] = NodeState()
        return state

    def free_slots(self, actor: str) -> int:
        return max(0, self._slots.get(actor, 0) - self._used.get(actor, 0))

    # nodes ----------------------------------------------------------------------------
    def node_slots(self, node: str | None) -> int:
        return sum(self._slots[a] for a in self._node(node).actors)

    def node_in_flight(self, node: str | None) -> int:
        return sum(self._used.get(a, 0) for a in self._node(node).actors)

    def node_floor(self, node: str | None) -> int:
        """The global floor shared out by slots, at least one: a node under pressure still
        makes progress, and a lone node keeps the whole floor."""
        if not self._total_slots:
            return self.limit.floor
        return max(1, math.ceil(self.limit.floor * self.node_slots(node) / self._total_slots))

    def node_limit(self, node: str | None) -> float:
        """What may be in flight on ``node`` now (see "Per node" in the module docstring)."""
        state = self._node(node)
        if state.pressed:
            return min(state.cap, self.node_floor(node))
        return min(state.cap, self.node_slots(node))

    def cluster_verdict(self) -> Verdict:
        """The mildest verdict among the nodes with actors: the cluster is under pressure
        only when all of them are."""
        verdicts = [state.verdict for state in self.nodes.values() if state.actors]
        return min(verdicts, key=SEVERITY.__getitem__, default=Verdict.OK)

    # the decision ---------------------------------------------------------------------
    @property
    def global_limit(self) -> int:
        """The in-flight limit now in force (the floor while every node is under pressure)."""
        if self.limit.verdict is not Verdict.OK:
            return self.limit.floor
        return min(self.limit.value, self.max_in_flight)

    def allowance(self, actor: str, now: float) -> int:
        """How many containers may be leased to ``actor`` now (before domain checks)."""
        del now  # the global, node and slot budgets are counts; time enters through domains
        node = self._node_of.get(actor)
        node_room = self.node_limit(node) - self.node_in_flight(node)
        room = min(self.free_slots(actor), self.global_limit - self.in_flight, node_room)
        return max(0, int(room))

    def try_start_domain(self, domain: str, now: float) -> bool:
        return self.domains.try_start(domain, now)

    def start(self, actor: str, n: int = 1) -> None:
        """``n`` containers were leased to ``actor`` (their domains already reserved)."""
        self.in_flight += n
        if actor in self._used:
            self._used[actor] += n

    def finish(self, actor: str, domain: str, now: float, latency_s: float | None = None) -> None:
        """One container ended; a latency sample (successful extractions) feeds the global
        limit and regrows its node's cap."""
        self.in_flight = max(0, self.in_flight - 1)
        if self._used.get(actor, 0) > 0:
            self._used[actor] -= 1
        self.domains.finish(domain)
        if latency_s is not None:
            self.limit.observe(latency_s, now, in_flight=self.in_flight + 1)
            if actor in self._node_of:
                self._regrow(self._node_of[actor])

    def verdict(self, verdict: str, now: float, node: str | None = None) -> None:
        """``node``'s MetricsActor said ``verdict``: act on that node, then on the cluster."""
        state = self._node(node)
        state.verdict = Verdict(verdict)
        if state.verdict is Verdict.SHED and now - state.last_shed >= self.limit.shed_cooldown_s:
            state.last_shed = now
            self._cut(node, state)
        self.limit.update(self.cluster_verdict(), now)

    def _cut(self, node: str | None, state: NodeState) -> None:
        cap = min(state.cap, self.node_slots(node))
        state.cap = max(self.node_floor(node), math.floor(cap * SHED_FACTOR))
        state.cuts += 1

    def _regrow(self, node: str | None) -> None:
        state = self._node(node)
        if state.pressed or math.isinf(state.cap):
            return
        state.cap += 1
        if state.cap >= self.node_slots(node):
            state.cap = math.inf

    def used(self, actor: str) -> int:
        """Containers leased to ``actor`` and not yet ended."""
        return self._used.get(actor, 0)
