"""The ledger: one state per container, one terminal record per container, whatever happens."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from landmark.config.job import RetrySpec
from landmark.config.records import Container, Phase, Record, Status
from landmark.coordinator.ledger import Ledger, LedgerError, Outcome, State


def container(i: int, host: str = "a.test") -> Container:
    return Container(id=f"c{i}", source=f"http://{host}/gallery", position=i, open="click")


def record(c: Container, status: str = Status.OK, retryable: bool = False) -> Record:
    return Record(id=c.id, source=c.source, position=c.position, status=status, retryable=retryable)


def retry_spec(attempts: int = 3, backoff: float = 1.0, backoff_max: float = 30.0) -> RetrySpec:
    return RetrySpec(
        max_attempts=attempts,
        backoff=timedelta(seconds=backoff),
        backoff_max=timedelta(seconds=backoff_max),
    )


def ledger_with(n: int, hosts: tuple[str, ...] = ("a.test",), **retry: float) -> Ledger:
    ledger = Ledger(retry_spec(**retry), rng=random.Random(7))  # type: ignore[arg-type]
    for i in range(n):
        assert ledger.add(container(i, hosts[i % len(hosts)]))
    return ledger


def ids(lease) -> list[str]:
    return [c.id for c in lease.containers]


def test_lease_takes_fifo_and_counts_attempts() -> None:
    ledger = ledger_with(10)
    first = ledger.lease("a1", 4, now=0, deadline=60)
    second = ledger.lease("a2", 4, now=0, deadline=60)
    assert ids(first) == ["c0", "c1", "c2", "c3"]
    assert ids(second) == ["c4", "c5", "c6", "c7"]
    assert first.attempts == [1, 1, 1, 1]
    assert ledger.counts()[State.LEASED] == 8 and ledger.in_flight == 8
    assert ledger.lease("a1", 0, now=0, deadline=60) is None
    ledger.check_invariants()


def test_fifo_holds_across_lanes() -> None:
    ledger = ledger_with(9, hosts=("a.test", "b.test", "c.test"))
    lease = ledger.lease("a1", 9, now=0, deadline=60)
    assert ids(lease) == [f"c{i}" for i in range(9)]


def test_duplicate_discovery_is_counted_not_added() -> None:
    ledger = ledger_with(3)
    assert not ledger.add(container(1))
    assert ledger.duplicates_discovered == 1
    assert ledger.counts()[State.PENDING] == 3


def test_ok_and_partial_are_done_with_attempts_filled() -> None:
    ledger = ledger_with(2)
    lease = ledger.lease("a1", 2, now=0, deadline=60)
    ok = ledger.complete(lease.id, record(lease.containers[0]), now=1)
    partial = ledger.complete(lease.id, record(lease.containers[1], Status.PARTIAL), now=1)
    assert ok.outcome is Outcome.FINAL and ok.record.attempts == 1
    assert partial.outcome is Outcome.FINAL and partial.record.status == Status.PARTIAL
    assert ledger.counts()[State.DONE] == 2 and ledger.is_finished
    assert ledger.get_lease(lease.id) is None
    ledger.check_invariants()


def test_retryable_failure_backs_off_and_respects_not_before() -> None:
    ledger = ledger_with(1, backoff=1.0)
    lease = ledger.lease("a1", 1, now=100, deadline=160)
    result = ledger.complete(lease.id, record(lease.containers[0], Status.FAILED, True), now=100)
    assert result == (Outcome.RETRY, None)
    ready_at = ledger.next_ready_at()
    assert 100.5 <= ready_at <= 101.0  # equal jitter: half the backoff at least
    assert ledger.lease("a1", 1, now=ready_at - 0.01, deadline=200) is None
    again = ledger.lease("a1", 1, now=ready_at, deadline=200)
    assert ids(again) == ["c0"] and again.attempts == [2]
    assert ledger.retries == 1


def test_retry_joins_the_back_of_the_queue() -> None:
    ledger = ledger_with(3, backoff=1.0)
    lease = ledger.lease("a1", 1, now=0, deadline=60)
    ledger.complete(lease.id, record(lease.containers[0], Status.FAILED, True), now=0)
    later = ledger.lease("a1", 3, now=5, deadline=60)
    assert ids(later) == ["c1", "c2", "c0"]


def test_backoff_grows_doubling_and_is_capped() -> None:
    ledger = ledger_with(0, backoff=1.0, backoff_max=5.0)
    for attempts, cap in [(1, 1), (2, 2), (3, 4), (4, 5), (9, 5)]:
        delays = [ledger.backoff_delay(attempts) for _ in range(200)]
        assert all(cap / 2 <= d <= cap for d in delays), (attempts, min(delays), max(delays))
        assert max(delays) - min(delays) > cap / 4  # jittered, not constant


def test_retries_exhausted_is_final_failure() -> None:
    ledger = ledger_with(1, attempts=2, backoff=0.0)
    now = 0.0
    outcomes = []
    for _ in range(2):
        lease = ledger.lease("a1", 1, now=now, deadline=now + 60)
        failure = Record.failure(lease.containers[0], Phase.WAIT, "timed out")
        outcomes.append(ledger.complete(lease.id, failure, now=now))
    assert [o.outcome for o in outcomes] == [Outcome.RETRY, Outcome.FINAL]
    assert outcomes[1].record.attempts == 2
    assert ledger.counts()[State.FAILED] == 1 and ledger.is_finished


def test_non_retryable_failure_is_final_at_once() -> None:
    ledger = ledger_with(1)
    lease = ledger.lease("a1", 1, now=0, deadline=60)
    result = ledger.complete(lease.id, record(lease.containers[0], Status.FAILED), now=0)
    assert result.outcome is Outcome.FINAL and ledger.retries == 0


def test_late_duplicate_after_requeue_is_dropped() -> None:
    ledger = ledger_with(1, backoff=0.0)
    old = ledger.lease("a1", 1, now=0, deadline=10)
    assert ledger.release(old.id, now=11, reason="lease expired") == []
    new = ledger.lease("a2", 1, now=11, deadline=70)
    late = ledger.complete(old.id, record(old.containers[0]), now=12)
    assert late == (Outcome.DUPLICATE, None) and ledger.duplicates_dropped == 1
    assert ledger.counts()[State.LEASED] == 1
    assert ledger.complete(new.id, record(new.containers[0]), now=12).outcome is Outcome.FINAL
    again = ledger.complete(new.id, record(new.containers[0]), now=13)
    assert again.outcome is Outcome.DUPLICATE and ledger.duplicates_dropped == 2
    ledger.check_invariants()


def test_release_after_actor_death_requeues_then_fails_with_reason() -> None:
    ledger = ledger_with(3, attempts=2, backoff=0.0)
    ledger.lease("dead", 2, now=0, deadline=60)
    ledger.lease("alive", 1, now=0, deadline=60)
    (lease_id,) = ledger.leases_of("dead")
    assert ledger.release(lease_id, now=1, reason="actor died") == []
    assert ledger.leases_of("dead") == [] and ledger.counts()[State.PENDING] == 2
    second = ledger.lease("dead2", 2, now=1, deadline=60)
    assert second.attempts == [2, 2]
    records = ledger.release(second.id, now=2, reason="actor died: OOM")
    assert [r.id for r in records] == ["c0", "c1"]  # in lease order
    assert all(r.status == Status.FAILED and r.attempts == 2 for r in records)
    # every try's reason, in order: the first death, then the one that ended it
    assert all([e.reason for e in r.errors] == ["actor died", "actor died: OOM"] for r in records)
    assert all(r.errors[0].phase == Phase.DISPATCH and r.actor == "dead2" for r in records)
    ledger.check_invariants()


def test_release_without_retry_fails_everything_open() -> None:
    ledger = ledger_with(2)
    lease = ledger.lease("a1", 2, now=0, deadline=60)
    ledger.complete(lease.id, record(lease.containers[0]), now=0)
    records = ledger.release(lease.id, now=0, reason="cancelled", retry=False)
    assert [r.id for r in records] == ["c1"] and ledger.is_finished


def test_expired_reports_each_lease_once_and_skips_finished() -> None:
    ledger = ledger_with(3)
    short = ledger.lease("a1", 1, now=0, deadline=10)
    done = ledger.lease("a1", 1, now=0, deadline=5)
    ledger.lease("a1", 1, now=0, deadline=50)
    ledger.complete(done.id, record(done.containers[0]), now=1)
    assert ledger.expired(now=9) == []
    assert ledger.expired(now=10) == [short.id]
    assert ledger.expired(now=11) == []
    ledger.release(short.id, now=11, reason="lease expired")
    assert ledger.counts()[State.PENDING] == 1


def test_accept_rejection_closes_the_lane_and_keeps_its_order() -> None:
    ledger = ledger_with(6, hosts=("a.test", "b.test"))
    seen: list[str] = []

    def no_a(c: Container) -> bool:
        seen.append(c.id)
        return "a.test" not in c.source

    lease = ledger.lease("a1", 10, now=0, deadline=60, accept=no_a)
    assert ids(lease) == ["c1", "c3", "c5"]
    assert seen.count("c0") == 1 and "c2" not in seen  # one check per blocked lane per call
    rest = ledger.lease("a1", 10, now=0, deadline=60)
    assert ids(rest) == ["c0", "c2", "c4"]
    ledger.check_invariants()


def test_accept_may_reserve_because_true_means_taken() -> None:
    ledger = ledger_with(10)
    room = [3]

    def reserve(_: Container) -> bool:
        if room[0] == 0:
            return False
        room[0] -= 1
        return True

    lease = ledger.lease("a1", 8, now=0, deadline=60, accept=reserve)
    assert len(lease.containers) == 3 and room == [0]


def test_prefer_picks_favoured_within_the_window_then_fifo() -> None:
    ledger = ledger_with(200)
    ledger.prefer_window = 64
    wanted = {f"c{i}" for i in range(3, 200, 10)}
    lease = ledger.lease("a1", 10, now=0, deadline=60, prefer=lambda c: c.id in wanted)
    assert ids(lease) == ["c3", "c13", "c23", "c33", "c43", "c53", "c63", "c0", "c1", "c2"]
    rest = ledger.lease("a1", 300, now=0, deadline=60)
    assert len(rest.containers) == 190 and "c3" not in ids(rest)
    assert ids(rest)[:3] == ["c4", "c5", "c6"]
    ledger.check_invariants()


def test_prefer_respects_accept() -> None:
    ledger = ledger_with(4, hosts=("a.test", "b.test"))
    lease = ledger.lease(
        "a1",
        4,
        now=0,
        deadline=60,
        accept=lambda c: "b.test" in c.source,
        prefer=lambda c: c.id == "c2",
    )
    assert ids(lease) == ["c1", "c3"]


def test_fail_pending_turns_chosen_pending_into_records() -> None:
    ledger = ledger_with(6, hosts=("a.test", "b.test"), backoff=5.0)
    lease = ledger.lease("a1", 1, now=0, deadline=60)
    ledger.complete(lease.id, record(lease.containers[0], Status.FAILED, True), now=0)
    records = ledger.fail_pending("circuit open", lambda c: "a.test" in c.source)
    assert sorted(r.id for r in records) == ["c0", "c2", "c4"]  # c0 was backing off
    assert {r.attempts for r in records if r.id != "c0"} == {0}
    assert ledger.next_ready_at() == float("-inf")
    assert ids(ledger.lease("a1", 10, now=100, deadline=160)) == ["c1", "c3", "c5"]
    ledger.check_invariants()
    assert ledger.next_ready_at() is None


def test_illegal_transition_raises() -> None:
    ledger = ledger_with(1)
    lease = ledger.lease("a1", 1, now=0, deadline=60)
    ledger.complete(lease.id, record(lease.containers[0]), now=0)
    with pytest.raises(LedgerError, match="illegal move done -> leased"):
        ledger._move("c0", State.LEASED)
    with pytest.raises(LedgerError, match="illegal move None -> leased"):
        ledger._move("never-seen", State.LEASED)


def test_finished_without_running_counts_once_and_blocks_rediscovery() -> None:
    """Resumed records and cache hits: terminal at once, and a rediscovery is a duplicate."""
    ledger = ledger_with(0)
    assert ledger.add_finished("c0") and ledger.add_finished("c1", Status.FAILED)
    assert not ledger.add_finished("c0")
    assert not ledger.add(container(0)) and ledger.duplicates_discovered == 1
    assert ledger.counts()[State.DONE] == 1 and ledger.counts()[State.FAILED] == 1
    assert ledger.is_finished
    ledger.check_invariants()


def test_unknown_status_is_a_bug_not_a_silent_success() -> None:
    ledger = ledger_with(1)
    lease = ledger.lease("a1", 1, now=0, deadline=60)
    with pytest.raises(LedgerError, match="unknown record status"):
        ledger.complete(lease.id, record(lease.containers[0], "weird"), now=0)


@pytest.mark.parametrize("seed", range(6))
def test_random_histories_keep_every_container_exactly_once(seed: int) -> None:
    """Add, lease (with accept/prefer), complete, duplicate, release, expire and cancel in a
    seeded random order: invariants hold at every step and each container gets one record."""
    rng = random.Random(seed)
    ledger = Ledger(retry_spec(attempts=3, backoff=0.5, backoff_max=4.0), rng=random.Random(seed))
    hosts = ("a.test", "b.test", "c.test")
    written: dict[str, Record] = {}
    open_leases: dict[int, list[Container]] = {}
    answered: list[tuple[int, Record]] = []
    now, added = 0.0, 0

    def write(records: list[Record]) -> None:
        for r in records:
            assert r.id not in written, f"second terminal record for {r.id}"
            written[r.id] = r

    def answer(lease_id: int, c: Container) -> None:
        status = rng.choice([Status.OK, Status.PARTIAL, Status.FAILED, Status.FAILED])
        r = record(c, status, retryable=rng.random() < 0.7)
        answered.append((lease_id, r))
        result = ledger.complete(lease_id, r, now)
        if result.outcome is Outcome.FINAL:
            write([result.record])

    for _ in range(400):
        now += rng.random() * 0.5
        step = rng.random()
        if step < 0.2 and added < 150:
            for _ in range(rng.randint(1, 8)):
                ledger.add(container(added, rng.choice(hosts)))
                added += 1
            ledger.add(container(rng.randrange(added)))  # rediscovered
        elif step < 0.45:
            blocked = rng.choice(hosts)
            lease = ledger.lease(
                f"actor{rng.randrange(3)}",
                rng.randint(1, 8),
                now,
                now + rng.uniform(1, 5),
                accept=(lambda c, b=blocked: b not in c.source) if rng.random() < 0.3 else None,
                prefer=(lambda c: c.position % 3 == 0) if rng.random() < 0.3 else None,
            )
            if lease is not None:
                assert all(ledger.state_of(c.id) is State.LEASED for c in lease.containers)
                open_leases[lease.id] = list(lease.containers)
        elif step < 0.75 and open_leases:
            lease_id = rng.choice(list(open_leases))
            for c in open_leases.pop(lease_id):
                if rng.random() < 0.8:
                    answer(lease_id, c)
            write(ledger.release(lease_id, now, "answered in part"))
        elif step < 0.82 and answered:
            late_id, late = rng.choice(answered)
            assert ledger.complete(late_id, late, now).outcome is Outcome.DUPLICATE
        elif step < 0.9 and open_leases:
            lease_id = rng.choice(list(open_leases))
            del open_leases[lease_id]
            write(ledger.release(lease_id, now, "actor died"))
        elif step < 0.97:
            for lease_id in ledger.expired(now):
                open_leases.pop(lease_id, None)
                write(ledger.release(lease_id, now, "lease expired"))
        else:
            write(ledger.fail_pending("breaker open", lambda c: c.position % 7 == 0))
        ledger.check_invariants()

    # drain: answer everything until the ledger is finished
    for lease_id in list(open_leases):
        write(ledger.release(lease_id, now, "drain"))
    while not ledger.is_finished:
        ready = ledger.next_ready_at()
        now = max(now, ready) if ready is not None else now
        lease = ledger.lease("drain", 16, now, now + 10)
        assert lease is not None
        for c in lease.containers:
            answer(lease.id, c)
        ledger.check_invariants()

    assert sorted(written) == sorted(f"c{i}" for i in range(added))
    counts = ledger.counts()
    assert counts[State.PENDING] == counts[State.LEASED] == 0
    assert counts[State.DONE] + counts[State.FAILED] == added
    assert all(
        1 <= r.attempts <= 3 or r.errors[0].reason == "breaker open" for r in written.values()
    )
    assert ledger.duplicates_discovered > 0 and ledger.duplicates_dropped > 0
