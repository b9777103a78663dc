"""The pure parts of ``landmark serve``: sharing the pool's pages among jobs, one job's view of
the pool, the jobs kept on disk, and a job's slots following its share."""

from __future__ import annotations

import itertools
import json

import pytest

from landmark.config.job import JobSpec
from landmark.config.records import Container
from landmark.coordinator.pool_view import Member, PoolShare
from landmark.coordinator.scheduler import Scheduler
from landmark.coordinator.service_jobs import JobRegistry
from landmark.coordinator.service_types import JobState
from landmark.coordinator.shares import Claim, share_out

# -- shares -------------------------------------------------------------------------------


def test_one_job_takes_every_page():
    assert share_out([Claim("a", 0, 0, running=False)], 4) == {"a": 4}


def test_equal_jobs_share_equally_the_older_takes_the_odd_page():
    claims = [Claim("a", 0, 0, True), Claim("b", 0, 1, False), Claim("c", 0, 2, False)]
    assert share_out(claims, 4) == {"a": 2, "b": 1, "c": 1}


def test_a_later_high_priority_job_gets_most_pages_the_running_one_keeps_one():
    claims = [Claim("low", 0, 0, running=True), Claim("high", 5, 1, running=False)]
    assert share_out(claims, 4) == {"low": 1, "high": 3}


def test_waiting_jobs_are_admitted_by_priority_then_age_while_a_page_is_left():
    claims = [
        Claim("r1", 0, 0, True),
        Claim("r2", 0, 1, True),
        Claim("old", 0, 2, False),
        Claim("urgent", 7, 3, False),
        Claim("late", 7, 4, False),
    ]
    assert share_out(claims, 3) == {"r1": 1, "r2": 1, "urgent": 1}


@pytest.mark.parametrize("pages", [1, 2, 3, 4, 8, 16])
def test_shares_never_exceed_the_pages_and_every_admitted_job_has_one(pages):
    for n in range(1, 7):
        for priorities in itertools.product([0, 3, 9], repeat=min(n, 3)):
            claims = [
                Claim(f"j{i}", priorities[i % len(priorities)], i, running=i < pages // 2)
                for i in range(n)
            ]
            shares = share_out(claims, pages)
            assert sum(shares.values()) <= pages
            assert all(share >= 1 for share in shares.values())
            running = {c.job for c in claims if c.running}
            assert running <= set(shares), "a running job is never preempted"


def test_pages_must_be_positive():
    with pytest.raises(ValueError):
        share_out([], 0)


# -- one job's view of the pool ------------------------------------------------------------


class _Method:
    def __init__(self, calls: list, name: str) -> None:
        self.calls, self.name = calls, name

    def remote(self, *args):
        self.calls.append((self.name, args))
        return f"ref:{self.name}"


class _FakeHandle:
    """Records the calls a view makes: the view's job is only to add the job's key."""

    def __init__(self) -> None:
        self.calls: list = []

    def __getattr__(self, name: str) -> _Method:
        return _Method(self.calls, name)


def test_a_view_adds_the_job_key_and_opens_its_session_on_start():
    handle = _FakeHandle()
    share = PoolShare("job-1", [Member("pool-0", handle, "node")])
    view = share.options(num_cpus=1, scheduling_strategy="SPREAD").remote(
        "JOB", "browser-0", "/out", None, ["a.test"]
    )
    view.start.remote()
    view.extract.remote(["c1"])
    view.stats.remote()
    assert handle.calls == [
        ("open_job", ("job-1", "JOB", "browser-0", "/out", None, ["a.test"])),
        ("extract", ("job-1", ["c1"])),
        ("stats", ("job-1",)),
    ]


def test_views_go_to_the_least_used_member_and_release_frees_it():
    a, b = _FakeHandle(), _FakeHandle()
    share = PoolShare("job", [Member("pool-0", a), Member("pool-1", b)])
    first = share.remote("JOB", "browser-0")
    second = share.remote("JOB", "browser-1")
    assert {first.member.name, second.member.name} == {"pool-0", "pool-1"}
    first.release()
    assert ("close_job", ("job",)) in first.member.handle.calls
    assert share.remote("JOB", "browser-2").member.name == first.member.name


def test_a_pool_with_no_member_refuses_with_a_reason():
    with pytest.raises(RuntimeError, match="no live actor"):
        PoolShare("job").remote("JOB", "browser-0")


# -- the jobs on disk ------------------------------------------------------------------------


def _job(**budget) -> JobSpec:
    return JobSpec.model_validate(
        {
            "name": "disk",
            "sources": {"urls": ["http://a.test/"]},
            "fields": [{"name": "title", "labels": ["Title"]}],
            "timeouts": {"container": "7s"},
            "browser": {"proxy": {"server": "http://proxy.test:3128", "password": "s3cret"}},
            "budget": {"actors": 1, **budget},
        }
    )


def test_a_submitted_job_reads_back_the_same_secrets_and_durations_included(tmp_path):
    registry = JobRegistry(tmp_path)
    job = _job(pages_per_actor=3)
    meta = registry.create(job, priority=4, order=7)
    ((back_meta, back_job),) = registry.load_all()
    assert back_job == job
    assert back_job.browser.proxy.password.get_secret_value() == "s3cret"
    assert (back_meta.id, back_meta.priority, back_meta.state) == (meta.id, 4, JobState.QUEUED)
    assert (tmp_path / "jobs" / meta.id / "job.json").stat().st_mode & 0o077 == 0


def test_state_changes_are_saved_and_a_broken_folder_is_skipped(tmp_path):
    registry = JobRegistry(tmp_path)
    meta = registry.create(_job(), priority=0, order=0)
    meta.state = JobState.RUNNING
    registry.save(meta)
    broken = tmp_path / "jobs" / "broken"
    broken.mkdir()
    (broken / "meta.json").write_text(json.dumps({"id": "broken"}))
    loaded = registry.load_all()
    assert [(m.id, m.state) for m, _ in loaded] == [(meta.id, JobState.RUNNING)]


# -- a job's slots follow its share ---------------------------------------------------------


def _scheduler() -> Scheduler:
    job = _job(actors=2, pages_per_actor=4, batch_size=4, min_in_flight=8)
    return Scheduler(job)


def _containers(n: int) -> list[Container]:
    return [
        Container(
            id=f"c{i}",
            source="http://a.test/",
            position=i,
            open="link",
            url=f"http://a.test/item/{i}",
        )
        for i in range(n)
    ]


def test_a_narrowed_share_leases_no_more_than_its_pages_and_a_wider_one_more():
    scheduler = _scheduler()
    scheduler.share_pool(actors=1, pages=1)
    scheduler.add(_containers(20))
    (name,) = scheduler.roster.to_start(0.0)
    scheduler.actor_ready(name)
    leased = sum(len(a.lease.containers) for a in scheduler.assign(0.0))
    assert leased == 1, "one page, and no batch queued behind it"
    scheduler.share_pool(actors=1, pages=3)
    leased += sum(len(a.lease.containers) for a in scheduler.assign(0.0))
    assert leased == 3
    scheduler.share_pool(actors=1, pages=1)  # narrowed: what is in flight stays, no more
    assert scheduler.assign(0.0) == []
