"""The scheduler: whole runs driven by hand — crashes, expiries, give-ups — with time passed in.

The randomized histories check, after every step, the invariants the Coordinator relies on:
every container ends in exactly one terminal record; in-flight never exceeds the budget,
counting expired leases until their actor answers or is gone; and no wake is ever due
sooner than needed (nothing changes before the wake the scheduler asked for).
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from landmark.config.job import JobSpec
from landmark.config.records import Container, Record, Status
from landmark.coordinator.scheduler import Scheduler, WakeCause


def make_job(**sections: Any) -> JobSpec:
    data: dict[str, Any] = {
        "name": "sched",
        "sources": {"urls": ["http://a.test/"]},
        "fields": [{"name": "title", "labels": ["Title"]}],
        "budget": {"actors": 2, "pages_per_actor": 2, "batch_size": 2, "min_in_flight": 8},
        "timeouts": {"container": "10s", "lease_margin": "5s"},
        "retries": {"backoff": "1s", "backoff_max": "8s"},
    }
    for section, values in sections.items():
        data[section] = {**data.get(section, {}), **values}
    return JobSpec.model_validate(data)


def container(i: int, host: str = "a.test") -> Container:
    return Container(
        id=f"{host}/{i}", source=f"http://{host}/", position=i, open="link",
        url=f"http://{host}/item/{i}",
    )  # fmt: skip


def answer(c: Container, status: str = Status.OK, retryable: bool = False, reason="boom"):
    record = Record(id=c.id, source=c.source, position=c.position, status=status)
    record.retryable = retryable
    record.timings["total"] = 50.0
    if status == Status.FAILED:
        record.errors.append(_problem(reason))
    return record


def _problem(reason: str):
    from landmark.config.records import Problem

    return Problem(phase="open", reason=reason)


def start_all(scheduler: Scheduler, now: float = 0.0) -> list[str]:
    names = scheduler.tick(now).start
    for name in names:
        assert scheduler.actor_ready(name)
    return names


@dataclass
class Run:
    """A scheduler with the bookkeeping of what it has written."""

    scheduler: Scheduler
    written: dict[str, Record] = field(default_factory=dict)

    def write(self, records: list[Record]) -> None:
        for record in records:
            assert record.id not in self.written, f"second record for {record.id}"
            self.written[record.id] = record


# -- the 1 ms poll and the wake ----------------------------------------------------------
def test_slots_full_means_no_timer_but_the_lease_deadline() -> None:
    scheduler = Scheduler(make_job())
    start_all(scheduler)
    scheduler.add(container(i) for i in range(100))
    assignments = scheduler.assign(0.0)
    assert sum(len(a.lease.containers) for a in assignments) == 8  # 2 actors × 4 slots
    wake = scheduler.next_wake(0.0)
    # 4 leased to each actor over 2 pages: 2 rounds × 10 s + 5 s margin
    assert (wake.cause, wake.at) == (WakeCause.LEASE, 15.0)


def test_nothing_pending_and_nothing_leased_waits_for_an_event_only() -> None:
    scheduler = Scheduler(make_job())
    start_all(scheduler)
    assert scheduler.next_wake(0.0).at is None
    assert scheduler.next_wake(0.0).cause is WakeCause.EVENT


def test_a_token_wait_is_due_when_the_token_is() -> None:
    scheduler = Scheduler(make_job(budget={"domain_rate": 2.0, "domain_concurrency": 100}))
    start_all(scheduler)
    scheduler.add(container(i) for i in range(10))
    leased = sum(len(a.lease.containers) for a in scheduler.assign(0.0))
    assert leased == 2  # burst = min(rate, concurrency) = 2
    wake = scheduler.next_wake(0.0)
    assert wake.cause is WakeCause.TOKEN and wake.at == pytest.approx(0.5)


# -- leases: deadline, expiry, held budget ------------------------------------------------
def test_an_expired_lease_is_retried_but_its_budget_held_until_the_actor_is_gone() -> None:
    scheduler = Scheduler(make_job(budget={"actors": 1, "max_in_flight": 4, "min_in_flight": 4}))
    [actor] = start_all(scheduler)
    scheduler.add(container(i) for i in range(6))
    [first, _second] = scheduler.assign(0.0)
    assert scheduler.in_flight == 4
    tick = scheduler.tick(first.lease.deadline)
    assert tick.hung == [actor] and tick.records == []  # retried, not failed: attempts left
    [replacement] = tick.start  # started at once, while the hung one is being killed
    assert scheduler.in_flight == 4  # held: the actor may still be working
    assert scheduler.assign(first.lease.deadline) == []  # condemned: no new work
    # its late answer is a duplicate and frees the budget
    late = [answer(c) for c in first.lease.containers]
    assert scheduler.complete(first.lease.id, late, first.lease.deadline + 1) == []
    assert scheduler.ledger.duplicates_dropped == 2
    assert scheduler.in_flight == 2
    scheduler.actor_gone(actor, first.lease.deadline + 1, "killed after its deadline")
    assert scheduler.in_flight == 0
    assert scheduler.actor_ready(replacement)
    retried = scheduler.assign(first.lease.deadline + 30)
    assert {c.id for a in retried for c in a.lease.containers} >= {
        c.id for c in first.lease.containers
    }
    assert all(
        t == 2 for a in retried for c, t in zip(a.lease.containers, a.lease.attempts, strict=True)
        if c in first.lease.containers
    )  # fmt: skip


def test_lease_deadline_grows_with_what_is_queued_on_the_actor() -> None:
    scheduler = Scheduler(make_job(budget={"actors": 1, "pages_per_actor": 2, "batch_size": 2}))
    start_all(scheduler)
    scheduler.add(container(i) for i in range(10))
    first, second = scheduler.assign(0.0)
    assert first.lease.deadline == 1 * 10 + 5  # 2 containers on 2 pages
    assert second.lease.deadline == 2 * 10 + 5  # 4 on 2 pages: the second pair waits


def test_a_fixed_lease_wins_over_the_derived_one() -> None:
    scheduler = Scheduler(make_job(timeouts={"lease": "7s"}))
    start_all(scheduler)
    scheduler.add(container(i) for i in range(3))
    assert {a.lease.deadline for a in scheduler.assign(0.0)} == {7.0}


# -- the breaker gives up -------------------------------------------------------------------
def test_a_dead_domain_is_given_up_in_bounded_time_with_its_reason() -> None:
    """300 containers on a host that refuses everything, with the default breaker."""
    job = make_job(budget={"actors": 1, "pages_per_actor": 4, "batch_size": 4}, retries={})
    run = Run(Scheduler(job))
    scheduler = run.scheduler
    start_all(scheduler)
    scheduler.add(container(i, "dead.test") for i in range(300))
    now = 0.0
    for _ in range(10_000):
        if scheduler.finished:
            break
        for assignment in scheduler.assign(now):
            records = [
                answer(c, Status.FAILED, retryable=True, reason="net::ERR_CONNECTION_REFUSED")
                for c in assignment.lease.containers
            ]
            run.write(scheduler.complete(assignment.lease.id, records, now + 0.05))
        wake = scheduler.next_wake(now)
        assert wake.at is not None or scheduler.finished, "waiting on nothing with work pending"
        now = max(now + 0.05, wake.at or now)
        run.write(scheduler.tick(now).records)
    assert scheduler.finished
    assert now < 120, f"took {now:.0f} simulated seconds"
    assert len(run.written) == 300
    assert {r.status for r in run.written.values()} == {Status.FAILED}
    reasons = {r.errors[-1].reason for r in run.written.values()}
    assert any("gave up on dead.test" in r and "ERR_CONNECTION_REFUSED" in r for r in reasons)
    assert scheduler.breaker.given_up_domains() == ["dead.test"]
    # a container found later on the dead domain fails at once
    [late] = scheduler.add([container(999, "dead.test")])
    assert late.status == Status.FAILED and "gave up" in late.errors[0].reason


def test_robots_refusals_neither_give_a_host_up_nor_hide_its_failures() -> None:
    """A page robots.txt disallows fails once, final; the host answered, so 300 of them do
    not open the breaker, and they do not reset a streak of real failures either."""
    job = make_job(budget={"actors": 1, "pages_per_actor": 4, "batch_size": 4}, retries={})
    run = Run(Scheduler(job))
    scheduler = run.scheduler
    start_all(scheduler)
    scheduler.add(container(i, "polite.test") for i in range(300))
    refusal = 'robots.txt of http://polite.test disallows /x for user agent "*"'
    now = 0.0
    while not scheduler.finished and now < 1_000:
        for assignment in scheduler.assign(now):
            records = [
                answer(c, Status.FAILED, False, refusal) for c in assignment.lease.containers
            ]
            run.write(scheduler.complete(assignment.lease.id, records, now + 0.05))
        now += 0.1
        run.write(scheduler.tick(now).records)
    assert len(run.written) == 300 and scheduler.breaker.given_up_domains() == []
    assert {r.errors[-1].reason for r in run.written.values()} == {refusal}
    assert {r.attempts for r in run.written.values()} == {1}

    breaker = scheduler.breaker
    for _ in range(3):
        breaker.record("polite.test", False, "net::ERR_CONNECTION_RESET", now)
    streak = breaker._get("polite.test").consecutive
    late = container(1000, "polite.test")
    assert scheduler.add([late]) == []  # not given up: it is leased like any other
    [assignment] = scheduler.assign(now)
    scheduler.complete(assignment.lease.id, [answer(late, Status.FAILED, False, refusal)], now)
    assert breaker._get("polite.test").consecutive == streak == 3


def test_a_half_open_probe_is_not_spent_when_the_domain_budget_refuses() -> None:
    job = make_job(
        budget={"actors": 1, "domain_concurrency": 1},
        retries={"breaker_failures": 1, "breaker_cooldown": "10s"},
    )
    scheduler = Scheduler(job)
    start_all(scheduler)
    scheduler.add(container(i) for i in range(3))
    [first] = scheduler.assign(0.0)
    [c0] = first.lease.containers
    scheduler.complete(first.lease.id, [answer(c0, Status.FAILED, retryable=True)], 1.0)
    assert scheduler.breaker.state("a.test") == "open"
    # occupy the domain's one slot with a container of another source on the same host
    scheduler.budget.domains.start("a.test", 11.0)
    assert scheduler.assign(11.0) == []  # cooldown over, but the domain is full
    assert scheduler.breaker.state("a.test") == "open"  # the probe was not used up
    scheduler.budget.domains.finish("a.test")
    [probe] = scheduler.assign(11.5)
    assert len(probe.lease.containers) == 1 and scheduler.breaker.state("a.test") == "half-open"


# -- cancel and stop -----------------------------------------------------------------------
def test_cancel_keeps_each_containers_real_last_error() -> None:
    scheduler = Scheduler(make_job(budget={"actors": 1}))
    start_all(scheduler)
    scheduler.add(container(i) for i in range(6))
    [first, _second] = scheduler.assign(0.0)
    failures = [answer(c, Status.FAILED, True, "HTTP 503 for x") for c in first.lease.containers]
    assert scheduler.complete(first.lease.id, failures, 1.0) == []  # retried later
    records = {r.id: r for r in scheduler.cancel()}
    for c in first.lease.containers:
        reasons = [p.reason for p in records[c.id].errors]
        assert reasons[0] == "HTTP 503 for x", reasons
        assert records[c.id].attempts == 1
    untried = [r for r in records.values() if r.attempts == 0]
    assert untried and all("cancelled" in r.errors[0].reason for r in untried)
    assert scheduler.assign(2.0) == []


def test_stop_leaves_pending_work_pending() -> None:
    scheduler = Scheduler(make_job())
    start_all(scheduler)
    scheduler.add(container(i) for i in range(20))
    scheduler.assign(0.0)
    scheduler.stop()
    assert scheduler.assign(1.0) == []
    assert scheduler.release_all(1.0, "stopped", retry=True) == []
    assert scheduler.ledger.pending == 20 and scheduler.in_flight == 0


# -- actors that will not start -------------------------------------------------------------
def test_the_run_stalls_visibly_when_no_actor_can_start() -> None:
    scheduler = Scheduler(make_job(retries={"actor_start_failures": 3}))
    now = 0.0
    failures = 0
    while scheduler.roster.stalled() is None:
        for name in scheduler.tick(now).start:
            scheduler.start_failed(name, now, "The actor died unexpectedly")
            failures += 1
        wake = scheduler.next_wake(now)
        assert wake.cause in {WakeCause.START, WakeCause.EVENT}
        if wake.at is None:
            break
        now = wake.at
    assert "no BrowserActor could start after 3 tries" in (scheduler.roster.stalled() or "")
    assert "died unexpectedly" in scheduler.roster.stalled()
    assert failures == 3  # 2 at once, then one more after a backoff: 3 in a row


# -- randomized histories --------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(40))
def test_random_history_keeps_every_invariant(seed: int) -> None:
    rng = random.Random(seed)
    hosts = ["a.test", "b.test", "dead.test"][: rng.randint(1, 3)]
    job = make_job(
        budget={
            "actors": rng.randint(1, 3),
            "pages_per_actor": rng.randint(1, 3),
            "batch_size": rng.randint(1, 3),
            "max_in_flight": rng.randint(2, 12),
            "min_in_flight": 1,
            "domain_concurrency": rng.randint(1, 6),
            "domain_rate": rng.choice([2.0, 50.0]),
        },
        retries={
            "max_attempts": rng.randint(1, 3),
            "breaker_failures": rng.randint(2, 6),
            "breaker_cooldown": f"{rng.randint(1, 5)}s",
            "breaker_probes": rng.randint(1, 2),
            "actor_start_failures": 50,
        },
    )
    run = Run(Scheduler(job, rng=random.Random(seed)))
    scheduler = run.scheduler
    budget = scheduler.budget
    nodes = ["n1", "n2", "n3"][: rng.randint(1, 3)]  # actors land on these; verdicts per node
    batches: dict[int, tuple[str, list[Container]]] = {}
    added: set[str] = set()
    now = 0.0

    def assign() -> None:
        limit = budget.global_limit
        before = scheduler.in_flight
        node_before = {n: (budget.node_in_flight(n), budget.node_limit(n)) for n in nodes}
        for assignment in scheduler.assign(now):
            batches[assignment.lease.id] = (assignment.actor, list(assignment.lease.containers))
        assert scheduler.in_flight <= max(before, limit)
        for node, (in_flight, node_limit) in node_before.items():
            assert budget.node_in_flight(node) <= max(in_flight, node_limit), node
        for name in scheduler.live_actors():
            assert scheduler.budget.used(name) <= scheduler.roster.slots
        for domain in hosts:
            assert scheduler.budget.domains.in_flight(domain) <= job.budget.domain_concurrency

    def respond(lease_id: int) -> None:
        _actor, containers = batches.pop(lease_id)
        records = []
        for c in containers:
            if rng.random() < 0.1:
                continue  # answered without it
            if c.target.startswith("http://dead.test"):
                records.append(answer(c, Status.FAILED, True, "ERR_CONNECTION_REFUSED"))
            else:
                status = rng.choice([Status.OK, Status.OK, Status.PARTIAL, Status.FAILED])
                records.append(answer(c, status, retryable=rng.random() < 0.7))
        run.write(scheduler.complete(lease_id, records, now))

    def tick() -> None:
        nonlocal batches
        tick = scheduler.tick(now)
        run.write(tick.records)
        for name in tick.start:
            if rng.random() < 0.1:
                scheduler.start_failed(name, now, "no CPU for it")
            else:
                scheduler.actor_ready(name, rng.choice(nodes))
        for name in tick.hung:
            run.write(scheduler.actor_gone(name, now, "killed: missed its deadline"))
            batches = {lid: b for lid, b in batches.items() if b[0] != name}

    for _ in range(300):
        step = rng.random()
        if step < 0.2 and len(added) < 120:
            chunk = [container(len(added) + i, rng.choice(hosts)) for i in range(rng.randint(1, 6))]
            added.update(c.id for c in chunk)
            run.write(scheduler.add(chunk))
        elif step < 0.55 and batches:
            respond(rng.choice(list(batches)))
        elif step < 0.6 and scheduler.live_actors():
            victim = rng.choice(scheduler.live_actors())
            run.write(scheduler.actor_gone(victim, now, "ActorDiedError"))
            batches = {lid: b for lid, b in batches.items() if b[0] != victim}
        elif step < 0.65:
            verdict = rng.choice(["ok", "ok", "throttle", "shed"])
            scheduler.set_verdict(verdict, now, rng.choice(nodes))
        elif step < 0.7 and batches:
            lease_id = rng.choice(list(batches))
            del batches[lease_id]
            run.write(scheduler.batch_failed(lease_id, now, "RayTaskError"))
        tick()  # what the shell does when an event wakes it: tick, then assign
        tick()  # a start that failed at once is retried after its backoff, not now
        assign()
        check_consistent(scheduler)
        check_no_early_wake(scheduler, now, rng)
        wake = scheduler.next_wake(now)
        now += rng.random() * 2 if wake.at is None else min(rng.random() * 2, wake.at - now)

    # drain: answer everything, let time pass, until the run is finished
    for node in nodes:
        scheduler.set_verdict("ok", now, node)
    for _ in range(5_000):
        if scheduler.finished:
            break
        tick()
        assign()
        for lease_id in list(batches):
            respond(lease_id)
        check_consistent(scheduler)
        wake = scheduler.next_wake(now)
        stuck = wake.at is None and not batches and not scheduler.finished
        assert not stuck, f"stuck: {scheduler.ledger.counts()}, in flight {scheduler.in_flight}"
        now = max(now + 0.01, wake.at or now)
    assert scheduler.finished, "the run did not finish"
    assert set(run.written) == added
    assert scheduler.in_flight == 0


def check_consistent(scheduler: Scheduler) -> None:
    scheduler.ledger.check_invariants()
    assert scheduler.in_flight == scheduler.ledger.in_flight + scheduler.held_count()


def check_no_early_wake(scheduler: Scheduler, now: float, rng: random.Random) -> None:
    """Nothing changes between now and the wake asked for: no assignment, no record, no kill."""
    wake = scheduler.next_wake(now)
    assert wake.at is None or wake.at > now, f"a wake due now after acting: {wake}"
    horizon = (wake.at - now) if wake.at is not None else 60.0
    probe = copy.deepcopy(scheduler)
    at = now + horizon * rng.uniform(0.01, 0.99)
    tick = probe.tick(at)
    assert (tick.records, tick.hung, tick.start) == ([], [], []), (wake, tick)
    assert probe.assign(at) == [], f"work could start at {at} before the wake {wake}"


def test_timedelta_settings_are_used_in_seconds() -> None:
    job = make_job(timeouts={"container": timedelta(seconds=3), "lease_margin": "1s"})
    scheduler = Scheduler(job)
    assert scheduler.lease_seconds("nobody", 2) == 3 + 1


# -- per-node verdicts ------------------------------------------------------------------------
def test_a_shedding_node_gets_its_floor_and_the_other_node_all_its_slots() -> None:
    job = make_job(budget={"actors": 4, "max_in_flight": 64, "min_in_flight": 2,
                           "domain_concurrency": 100, "domain_rate": 1000.0})  # fmt: skip
    scheduler = Scheduler(job)
    names = scheduler.tick(0.0).start
    node_of = {name: "A" if i < 2 else "B" for i, name in enumerate(names)}
    for name in names:
        assert scheduler.actor_ready(name, node_of[name])
    scheduler.budget.limit._limit = 16.0  # warmed up: the global limit is not what binds
    scheduler.add(container(i) for i in range(200))
    scheduler.set_verdict("shed", 0.0, "A")
    leased: dict[str, int] = {"A": 0, "B": 0}
    for assignment in scheduler.assign(0.0):
        leased[node_of[assignment.actor]] += len(assignment.lease.containers)
    assert leased == {"A": 1, "B": 2 * scheduler.roster.slots}  # A: its floor; B: full
    assert scheduler.budget.limit.value == 16  # one node's shed does not cut the cluster

    scheduler.set_verdict("ok", 1.0, "A")  # A recovers at half its slots, then grows
    more = [a for a in scheduler.assign(1.0) if node_of[a.actor] == "A"]
    half = 2 * scheduler.roster.slots // 2  # A's cap: half its two actors' slots
    assert sum(len(a.lease.containers) for a in more) == half - 1  # 1 was in flight already


# -- the page governor's lever: pages worked per actor -------------------------------------
def page_job() -> JobSpec:
    return make_job(budget={"actors": 1, "pages_per_actor": 8, "pages_at_start": 4,
                            "batch_size": 2, "min_in_flight": 2, "max_in_flight": 64,
                            "domain_concurrency": 100, "domain_rate": 1000.0})  # fmt: skip


def test_work_pages_moves_an_actors_slots_between_its_first_and_its_most() -> None:
    scheduler = Scheduler(page_job())
    [name] = start_all(scheduler)
    scheduler.budget.limit._limit = 64.0  # warmed up: the global limit is not what binds
    scheduler.add(container(i) for i in range(100))

    def leased() -> int:
        return sum(len(a.lease.containers) for a in scheduler.assign(0.0))

    assert leased() == 4 + 2  # pages_at_start, and a batch queued behind them
    assert scheduler.work_pages(name, 7) == 7
    assert leased() == 3  # 7 pages + 2 queued, 6 in flight already
    assert scheduler.work_pages(name, 20) == 8  # never more than pages_per_actor
    assert scheduler.work_pages(name, 8) is None  # no change: nothing to tell the actor
    assert scheduler.work_pages(name, 1) == 4  # never fewer than pages_at_start
    assert scheduler.roster.opened() == {name: 8}  # idled, still open: placement weighs 8
    assert leased() == 0  # 10 in flight over 6 slots: nothing until they finish
    assert scheduler.work_pages("browser-99", 5) is None  # not on the roster


def test_a_node_short_of_memory_caps_the_pages_the_governor_may_give() -> None:
    scheduler = Scheduler(page_job())
    [name] = scheduler.tick(0.0).start
    scheduler.place_actor(name, 3)  # placement: the node's headroom holds 3 pages
    assert scheduler.actor_ready(name)
    entry = scheduler.roster.entries[name]
    assert (entry.pages, entry.most, entry.slots) == (3, 3, 3 + 2)
    assert scheduler.work_pages(name, 8) is None  # already at its most
    assert scheduler.budget.free_slots(name) == 5
