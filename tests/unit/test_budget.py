"""The concurrency budget: token buckets, domain caps, the adaptive limit and their sum."""

from __future__ import annotations

import math
import random

import pytest

from landmark.config.job import BudgetSpec
from landmark.config.records import domain_of
from landmark.coordinator.budget import (
    AdaptiveLimit,
    Budget,
    DomainBudget,
    TokenBucket,
    Verdict,
)


def test_bucket_starts_full_then_refills_at_rate() -> None:
    bucket = TokenBucket(rate=10, burst=5)
    assert [bucket.try_take(0.0) for _ in range(6)] == [True] * 5 + [False]
    assert bucket.wait_time(0.0) == pytest.approx(0.1)
    assert not bucket.try_take(0.05)
    assert bucket.try_take(0.1)
    assert bucket.wait_time(0.1, n=3) == pytest.approx(0.3)


def test_bucket_burst_caps_savings_and_rate_holds_over_time() -> None:
    bucket = TokenBucket(rate=10, burst=5)
    assert sum(bucket.try_take(100.0) for _ in range(20)) == 5  # idle 100 s saves only 5
    taken = sum(bucket.try_take(100.0 + step / 1000) for step in range(1, 10_001))
    assert taken == 100  # 10 s at 10/s, polled every millisecond
    assert bucket.wait_time(200.0, n=6) == math.inf


def test_bucket_debt_delays_later_takes() -> None:
    bucket = TokenBucket(rate=1, burst=1)
    bucket.take(0.0)
    bucket.take(0.0)  # forced: into debt
    assert bucket.wait_time(0.0) == pytest.approx(2.0)


def test_bucket_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="rate > 0"):
        TokenBucket(rate=0, burst=1)


def test_domain_of_is_lower_case_host_with_its_port() -> None:
    assert domain_of("https://Gallery.Example.com:8443/a?b") == "gallery.example.com:8443"
    assert domain_of("http://127.0.0.1:9000/") == "127.0.0.1:9000"
    assert domain_of("http://Example.com/x") == "example.com"


def test_domain_concurrency_cap_and_finish() -> None:
    domains = DomainBudget(rate=1000, concurrency=2)
    assert domains.try_start("a.test", 0.0) and domains.try_start("a.test", 0.0)
    assert not domains.can_start("a.test", 0.0)
    assert domains.wait_time("a.test", 0.0) == math.inf  # only a finish helps
    assert domains.try_start("b.test", 0.0)  # another domain is independent
    assert not domains.can_start("a.test", 5.0)  # tokens back, the cap still full
    domains.finish("a.test")
    assert domains.in_flight("a.test") == 1 and domains.can_start("a.test", 5.0)
    domains.finish("a.test")
    with pytest.raises(ValueError, match="without a matching start"):
        domains.finish("a.test")


def test_domain_rate_limits_starts() -> None:
    domains = DomainBudget(rate=2, concurrency=100)  # burst min(rate, cap) = 2
    started = [domains.try_start("a.test", 0.0) for _ in range(3)]
    assert started == [True, True, False]
    assert domains.wait_time("a.test", 0.0) == pytest.approx(0.5)
    assert domains.try_start("a.test", 0.5)


def steady(limit: AdaptiveLimit, samples: int, latency: float, now: float, dt: float) -> float:
    for _ in range(samples):
        now += dt
        limit.observe(latency, now)
    return now


def test_limit_grows_floor_to_ceiling_under_steady_latency() -> None:
    limit = AdaptiveLimit(floor=2, ceiling=64)
    assert limit.value == 2
    samples, now = 0, 0.0
    while limit.value < 64:
        now += 0.01
        limit.observe(0.5, now)
        samples += 1
        assert samples <= 80, "slow start should reach the ceiling in ~62 samples"
    assert limit.increases == 62 and limit.decreases == 0
    assert "slow start" in limit.reason
    steady(limit, 100, 0.5, now, 0.01)
    assert limit.value == 64  # clamped


def test_limit_does_not_grow_when_not_in_use() -> None:
    limit = AdaptiveLimit(floor=2, ceiling=64, initial=10)
    for step in range(50):
        limit.observe(0.5, step * 0.1, in_flight=3)
    assert limit.value == 10
    limit.observe(0.5, 6.0, in_flight=10)
    assert limit.value == 11


def test_shed_halves_at_most_once_per_cooldown() -> None:
    limit = AdaptiveLimit(floor=2, ceiling=64, initial=64, shed_cooldown_s=2.0)
    limit.update(Verdict.SHED, 10.0)
    assert limit.value == 32 and limit.reason.startswith("shed")
    limit.update("shed", 11.0)
    limit.observe(0.5, 11.5)  # no growth while shedding
    assert limit.value == 32
    limit.update("shed", 12.0)
    assert limit.value == 16 and limit.decreases == 2
    for t in range(14, 40, 2):
        limit.update("shed", float(t))
    assert limit.value == 2  # the floor holds


def test_throttle_holds() -> None:
    limit = AdaptiveLimit(floor=2, ceiling=64, initial=10)
    limit.update("throttle", 0.0)
    steady(limit, 100, 0.5, 0.0, 0.01)
    assert limit.value == 10 and limit.increases == limit.decreases == 0
    limit.update("ok", 2.0)
    steady(limit, 5, 0.5, 2.0, 0.01)
    assert limit.value > 10


def test_limit_decreases_when_latency_doubles_then_settles() -> None:
    limit = AdaptiveLimit(floor=2, ceiling=64)
    now = steady(limit, 300, 0.5, 0.0, 0.02)
    assert limit.value == 64
    now = steady(limit, 40, 1.0, now, 0.05)
    assert limit.decreases >= 1 and limit.value < 64
    assert limit.reason.startswith("latency")
    now = steady(limit, 400, 1.0, now, 0.05)
    cut_to, after_cuts = limit.value, limit.decreases
    assert cut_to > 16  # a few cuts while it lasted, not a ratchet to the floor
    steady(limit, 400, 1.0, now, 0.05)  # the new latency is the baseline now
    assert limit.decreases == after_cuts and limit.value > cut_to


def test_latency_cut_waits_for_its_cooldown() -> None:
    limit = AdaptiveLimit(floor=2, ceiling=64, initial=64)
    now = steady(limit, 50, 0.2, 0.0, 0.01)
    now = steady(limit, 30, 2.0, now, 0.001)  # 30 slow samples inside 30 ms: one cut
    assert limit.decreases == 1 and limit.value == math.floor(64 * 0.85)


def test_limit_never_leaves_its_bounds() -> None:
    rng = random.Random(3)
    limit = AdaptiveLimit(floor=3, ceiling=20)
    now = 0.0
    for _ in range(5000):
        now += rng.random() * 0.2
        if rng.random() < 0.1:
            limit.update(rng.choice(list(Verdict)), now)
        else:
            limit.observe(rng.lognormvariate(0, 1) * rng.choice([1, 1, 1, 5]), now)
        assert 3 <= limit.value <= 20
    assert limit.increases > 0 and limit.decreases > 0


def test_limit_rejects_inverted_bounds() -> None:
    with pytest.raises(ValueError, match="floor <= ceiling"):
        AdaptiveLimit(floor=5, ceiling=2)


def test_budget_combines_slots_global_limit_and_domains() -> None:
    budget = Budget.from_spec(BudgetSpec(max_in_flight=64, min_in_flight=2, domain_concurrency=3))
    budget.register_actor("a1", 4)
    budget.register_actor("a2", 4)
    assert budget.limit.ceiling == 8  # capacity that exists, not the 64 asked for
    assert budget.allowance("a1", 0.0) == 2  # the limit starts at the floor
    assert budget.try_start_domain("x.test", 0.0) and budget.try_start_domain("x.test", 0.0)
    budget.start("a1", 2)
    assert budget.allowance("a1", 0.0) == budget.allowance("a2", 0.0) == 0
    budget.finish("a1", "x.test", 1.0, latency_s=0.3)
    assert budget.in_flight == 1 and budget.free_slots("a1") == 3
    assert budget.limit.value == 3  # one steady sample while in use: +1
    assert budget.allowance("a2", 1.0) == 2


def test_budget_domain_cap_and_wait_time() -> None:
    budget = Budget.from_spec(BudgetSpec(domain_rate=1.0, domain_concurrency=5))
    assert budget.domains.wait_time("x.test", 0.0) == 0.0  # a new domain: nothing to wait for
    assert budget.try_start_domain("x.test", 0.0)
    assert not budget.try_start_domain("x.test", 0.0)  # rate 1/s, burst 1
    assert budget.domains.wait_time("x.test", 0.25) == pytest.approx(0.75)


def test_budget_pressure_stops_dispatch_above_the_floor() -> None:
    budget = Budget.from_spec(BudgetSpec(min_in_flight=2, max_in_flight=16))
    budget.register_actor("a1", 16)
    budget.limit = AdaptiveLimit(2, 16, initial=12)
    budget.verdict("throttle", 0.0)
    assert budget.allowance("a1", 0.0) == 2
    budget.start("a1", 2)
    assert budget.allowance("a1", 0.0) == 0
    budget.verdict("ok", 1.0)
    assert budget.allowance("a1", 1.0) == 10


def test_dead_actor_frees_capacity() -> None:
    budget = Budget.from_spec(BudgetSpec(max_in_flight=64))
    budget.register_actor("a1", 4)
    budget.register_actor("a2", 4)
    budget.start("a1", 1)
    budget.try_start_domain("x.test", 0.0)
    budget.unregister_actor("a1")
    assert budget.limit.ceiling == 4 and budget.free_slots("a1") == 0
    budget.finish("a1", "x.test", 1.0)  # its container still ends
    assert budget.in_flight == 0 and budget.domains.in_flight("x.test") == 0
    with pytest.raises(ValueError, match="at least one slot"):
        budget.register_actor("a3", 0)


# -- per node: a hot node sheds without slowing the others ------------------------------------
def two_nodes(floor: int = 2, limit: int = 16) -> Budget:
    """Actors a1, a2 on node A and b1, b2 on node B, 4 slots each; the global limit at 16."""
    budget = Budget.from_spec(BudgetSpec(min_in_flight=floor, max_in_flight=64))
    for actor, node in [("a1", "A"), ("a2", "A"), ("b1", "B"), ("b2", "B")]:
        budget.register_actor(actor, 4, node)
    budget.limit = AdaptiveLimit(floor, 16, initial=limit)
    return budget


def fill(budget: Budget, actor: str, now: float) -> int:
    """Lease ``actor`` all it may have now (no domain limits here)."""
    n = budget.allowance(actor, now)
    budget.start(actor, n)
    return n


def test_a_shedding_node_gets_its_floor_while_the_other_keeps_its_full_rate() -> None:
    budget = two_nodes()
    budget.verdict("shed", 0.0, "A")
    budget.verdict("ok", 0.0, "B")
    assert budget.node_floor("A") == 1  # the global floor of 2, shared out by slots
    assert fill(budget, "a1", 0.0) + fill(budget, "a2", 0.0) == 1
    assert fill(budget, "b1", 0.0) == 4 and fill(budget, "b2", 0.0) == 4  # all its slots
    assert budget.limit.value == 16 and budget.global_limit == 16  # not cut for A's sake
    assert budget.cluster_verdict() is Verdict.OK


def test_a_throttled_node_holds_and_a_shedding_node_halves_its_own_cap_once_per_cooldown():
    budget = two_nodes()
    budget.verdict("throttle", 0.0, "A")
    assert budget.nodes["A"].cap == math.inf  # throttle holds: no cut
    budget.verdict("shed", 1.0, "A")
    assert budget.nodes["A"].cap == 4  # half its 8 slots
    budget.verdict("shed", 1.5, "A")  # within the 2 s cooldown
    assert budget.nodes["A"].cap == 4
    budget.verdict("shed", 3.0, "A")
    assert budget.nodes["A"].cap == 2
    for now in (5.0, 7.0, 9.0):
        budget.verdict("shed", now, "A")
    assert budget.nodes["A"].cap == 1  # never below the node's floor
    assert budget.nodes["B"].cap == math.inf and budget.limit.decreases == 0


def test_when_every_node_is_under_pressure_the_cluster_is_held_at_the_floor() -> None:
    budget = two_nodes(floor=2, limit=16)
    budget.verdict("shed", 0.0, "A")
    budget.verdict("throttle", 0.0, "B")
    assert budget.cluster_verdict() is Verdict.THROTTLE
    assert budget.global_limit == 2 and budget.limit.value == 16  # held, not cut
    leased = sum(fill(budget, actor, 0.0) for actor in ["a1", "a2", "b1", "b2"])
    assert leased == 2  # as protective as one machine under pressure: the floor, in all
    budget.verdict("shed", 0.5, "B")
    assert budget.cluster_verdict() is Verdict.SHED and budget.limit.value == 8  # now cut


def test_a_node_that_recovers_grows_back_from_its_halved_cap() -> None:
    budget = two_nodes()
    budget.verdict("shed", 0.0, "A")
    assert budget.nodes["A"].cap == 4
    budget.verdict("ok", 1.0, "A")
    assert fill(budget, "a1", 1.0) == 4 and fill(budget, "a2", 1.0) == 0  # at its cap
    for i in range(4):  # each latency sample from A grows its cap by one
        budget.domains.start(f"d{i}.test", 2.0)  # the container's domain, as leased
        budget.finish("a1", f"d{i}.test", 2.0, latency_s=0.3)
    assert budget.nodes["A"].cap == math.inf  # back to its 8 slots: no cap
    assert fill(budget, "a1", 2.0) + fill(budget, "a2", 2.0) == 8


def test_a_throttled_node_does_not_grow_its_cap_and_a_node_without_actors_is_ignored() -> None:
    budget = two_nodes()
    budget.verdict("shed", 0.0, "A")
    budget.verdict("throttle", 1.0, "A")
    budget.start("a1", 1)
    budget.domains.start("x.test", 1.0)
    budget.finish("a1", "x.test", 1.5, latency_s=0.3)
    assert budget.nodes["A"].cap == 4  # throttle holds
    budget.verdict("shed", 2.0, "B")
    assert budget.cluster_verdict() is Verdict.THROTTLE
    budget.unregister_actor("b1")
    budget.unregister_actor("b2")  # B has no actors left: only A counts
    assert budget.cluster_verdict() is Verdict.THROTTLE
    budget.verdict("ok", 3.0, "A")
    assert budget.cluster_verdict() is Verdict.OK  # B's stale shed no longer matters


def test_one_node_without_names_keeps_the_old_law() -> None:
    budget = Budget.from_spec(BudgetSpec(min_in_flight=2, max_in_flight=16))
    budget.register_actor("a1", 16)
    budget.limit = AdaptiveLimit(2, 16, initial=12)
    budget.verdict("shed", 0.0)
    assert budget.node_floor(None) == 2 and budget.allowance("a1", 0.0) == 2
    assert budget.limit.value == 6  # halved, as before: the only node is the cluster
