"""The Coordinator actor, in real Ray, with scripted actors: the benchmarks' NoopActor, told by
its source's query string to hang, to be slow, to fail every container or never to start.

Each run goes through ``run_job`` (the driver a user's program calls), so what is checked
is what a user gets: every container exactly once in ``results.jsonl``, a summary that
says what happened, and a run that ends — bounded by the job's own deadlines, never by
the test's timeout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import ray
import redis
from run_helpers import background_run, progress, run_to_end, wait_for_coordinator, wait_until

from landmark.benchmarks.noop_actor import NoopActor
from landmark.config.job import JobSpec
from landmark.config.records import Status
from landmark.coordinator.local_store import LocalStore
from landmark.coordinator.ray_setup import LOOPBACK_ONLY_ENV, NAMESPACE, coordinator_name
from landmark.coordinator.store import JobIdentity, read_results

pytestmark = pytest.mark.ray


def job(tmp_path: Path, script: str = "", items: int = 200, **sections: Any) -> JobSpec:
    data: dict[str, Any] = {
        "name": f"scripted-{os.getpid()}-{time.monotonic_ns()}",
        "sources": {"urls": [f"http://127.0.0.1:9/?{script}"]},
        "containers": {"open": "link", "limit": items},
        "fields": [{"name": "title", "labels": ["Title"]}],
        "budget": {"actors": 2, "pages_per_actor": 2, "batch_size": 2, "min_in_flight": 4},
        "timeouts": {"container": "1s", "lease_margin": "1s", "actor_start": "20s"},
        "retries": {"backoff": "100ms", "backoff_max": "1s"},
        "output": {"dir": str(tmp_path / "out")},
        "cache": False,
    }
    for section, values in sections.items():
        data[section] = {**data.get(section, {}), **values}
    return JobSpec.model_validate(data)


def records_of(spec: JobSpec) -> list[dict[str, Any]]:
    return list(read_results(spec.output.dir / spec.output.results))


def assert_once_each(spec: JobSpec, items: int) -> list[dict[str, Any]]:
    records = records_of(spec)
    counts = Counter(r["id"] for r in records)
    assert [cid for cid, n in counts.items() if n > 1] == [], "duplicated records"
    assert len(counts) == items, f"{items - len(counts)} containers without a record"
    return records


def scripted_run(spec: JobSpec) -> dict[str, Any]:
    return run_to_end(spec, actor_class=NoopActor)


def test_a_hung_actor_is_killed_and_replaced_and_nothing_is_lost(ray_session, tmp_path):
    spec = job(tmp_path, "hang=browser-0&delay_ms=50", items=400)
    summary = scripted_run(spec)
    records = assert_once_each(spec, 400)
    assert {r["status"] for r in records} == {Status.OK}
    assert summary["completed"] and summary["expired_leases"] >= 1
    assert summary["actor_deaths"] >= 1  # browser-0, killed after its deadline
    worked = {a["name"]: a["containers"] for a in summary["actors"]}
    assert "browser-0" not in worked
    assert worked.get("browser-2", 0) > 0, worked  # its replacement took work


def test_a_slow_actor_is_replaced_and_no_actor_exceeds_its_slots(ray_session, tmp_path):
    spec = job(tmp_path, "slow=browser-1&slow_s=5&delay_ms=50", items=400)
    summary = scripted_run(spec)
    assert_once_each(spec, 400)
    slots = spec.budget.pages_per_actor + spec.budget.batch_size
    assert all(a["max_in_flight"] <= slots for a in summary["actors"]), summary["actors"]
    assert summary["expired_leases"] >= 1 and summary["actor_deaths"] >= 1
    assert "browser-1" not in {a["name"] for a in summary["actors"]}


def test_a_dead_domain_is_given_up_in_bounded_time(ray_session, tmp_path):
    spec = job(
        tmp_path,
        "fail=net::ERR_CONNECTION_REFUSED",
        items=300,
        retries={"breaker_cooldown": "1s", "breaker_probes": 2},
    )
    started = time.monotonic()
    summary = scripted_run(spec)
    wall = time.monotonic() - started
    records = assert_once_each(spec, 300)
    assert {r["status"] for r in records} == {Status.FAILED}
    last = [r["errors"][-1]["reason"] for r in records]
    assert sum("gave up on 127.0.0.1:9" in reason for reason in last) > 200, last[:3]
    assert all("ERR_CONNECTION_REFUSED" in reason for reason in last)
    assert list(summary["given_up"]) == ["127.0.0.1:9"]
    assert summary["completed"]
    assert wall < 60, f"a dead domain held the run {wall:.0f}s"


def test_pause_resume_and_cancel(ray_session, tmp_path):
    spec = job(tmp_path, "delay_ms=50", items=400, budget={"actors": 1})
    with background_run(spec, actor_class=NoopActor) as outcome:
        coordinator = wait_for_coordinator(spec, outcome)
        wait_until(lambda: progress(coordinator)["done"] >= 20, outcome, "20 records")
        ray.get(coordinator.pause.remote())
        wait_until(lambda: progress(coordinator)["leased"] == 0, outcome, "in flight answered")
        paused_at = progress(coordinator)["done"]
        assert progress(coordinator)["paused"] == ["user"]
        ray.get(coordinator.resume.remote())
        wait_until(lambda: progress(coordinator)["done"] > paused_at, outcome, "work after resume")
        ray.get(coordinator.cancel.remote())
    summary = outcome["summary"]
    records = assert_once_each(spec, 400)
    cancelled = [r for r in records if r["status"] == Status.FAILED]
    assert cancelled and all("cancelled" in r["errors"][-1]["reason"] for r in cancelled)
    assert summary["stopped"] == "cancelled" and not summary["completed"]


def test_landmark_control_from_another_shell_sees_and_cancels_a_run(ray_session, tmp_path):
    """``landmark control`` is a separate process joining the run's loopback-only Ray. Ray
    swapped 127.0.0.1 for the machine's outward address and waited there in vain, so on
    this machine the command timed out; it must answer, and its cancel must land."""
    spec = job(tmp_path, "delay_ms=50", items=400, budget={"actors": 1})
    address = ray.get_runtime_context().gcs_address
    # another shell's environment: not this test process's, which starting Ray here changed
    shell = {k: v for k, v in os.environ.items() if k not in (LOOPBACK_ONLY_ENV, "RAY_AUTH_MODE")}

    def control(action: str) -> dict[str, Any]:
        landmark = str(Path(sys.executable).with_name("landmark"))  # this venv's command
        command = [landmark, "control", action, spec.name, "--json"]
        shown = subprocess.run(
            [*command, "--address", address], env=shell, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert shown.returncode == 0, shown.stderr[-2000:]
        return json.loads(shown.stdout)

    with background_run(spec, actor_class=NoopActor) as outcome:
        coordinator = wait_for_coordinator(spec, outcome)
        wait_until(lambda: progress(coordinator)["done"] >= 20, outcome, "20 records")
        assert control("status")["done"] >= 20
        control("cancel")
    assert outcome["summary"]["stopped"] == "cancelled"


def test_actors_that_cannot_start_fail_the_run_resumably(ray_session, tmp_path):
    spec = job(tmp_path, "start_fail=all", retries={"actor_start_failures": 2})
    started = time.monotonic()
    summary = scripted_run(spec)
    assert time.monotonic() - started < 60
    assert "no BrowserActor could start after 2 tries" in summary["failure"]
    assert "scripted start failure" in summary["failure"]
    assert not summary["completed"] and summary["failed_starts"] >= 2
    identity = JobIdentity.of(spec, spec.source_urls())
    assert LocalStore(spec.output.dir).inspect(identity).kind == "unfinished"
    with pytest.raises(ValueError):  # a failed run leaves no named actor behind
        ray.get_actor(coordinator_name(spec.name), namespace=NAMESPACE)
    again = scripted_run(spec)  # so the same job can run again in the same process
    assert "no BrowserActor could start" in again["failure"]


def test_the_run_goes_on_when_the_metrics_actor_dies(ray_session, tmp_path, session_processes):
    spec = job(tmp_path, "delay_ms=20", items=400)
    started = time.time()

    def this_runs_monitors():  # an earlier run's may still be exiting
        found = session_processes("ray::MetricsActor")
        return [process for process in found if process.create_time() >= started - 1]

    with background_run(spec, actor_class=NoopActor) as outcome:
        coordinator = wait_for_coordinator(spec, outcome)
        wait_until(lambda: progress(coordinator)["done"] >= 20, outcome, "20 records")
        # created when the first actor on the node has started: its process may still be coming
        wait_until(lambda: bool(this_runs_monitors()), outcome, "the node's MetricsActor")
        os.kill(this_runs_monitors()[0].pid, signal.SIGKILL)
    assert_once_each(spec, 400)
    assert outcome["summary"]["completed"] and outcome["summary"]["monitor_restarts"] >= 1


@pytest.fixture(params=["local", "redis"])
def store_url(request) -> str | None:
    """Each durability test runs on both stores."""
    return request.getfixturevalue("redis_url") if request.param == "redis" else None


def test_a_stopped_run_resumes_without_redoing_anything(ray_session, tmp_path, store_url):
    spec = job(tmp_path, "delay_ms=20", items=400, budget={"actors": 1})
    with background_run(spec, actor_class=NoopActor, store_url=store_url) as outcome:
        coordinator = wait_for_coordinator(spec, outcome)
        wait_until(lambda: progress(coordinator)["done"] >= 50, outcome, "50 records")
        ray.get(coordinator.stop.remote())
    first = outcome["summary"]
    assert first["stopped"] == "interrupted" and first["pending"] > 0
    written = len(records_of(spec))
    assert written == first["records"]

    second = run_to_end(spec, actor_class=NoopActor, store_url=store_url)
    assert_once_each(spec, 400)
    assert second["completed"] and second["resumed"] == written
    extracted = sum(a["containers"] for a in second["actors"])
    assert extracted == 400 - written, "containers done in the first run were extracted again"


def test_a_killed_coordinator_is_replaced_and_the_output_is_exactly_once(
    ray_session, tmp_path, store_url
):
    spec = job(tmp_path, "delay_ms=20", items=400, budget={"actors": 1})
    with background_run(spec, actor_class=NoopActor, store_url=store_url) as outcome:
        coordinator = wait_for_coordinator(spec, outcome)
        # durable, not merely done: records in results.jsonl are in the store (the local
        # file itself, or mirrored from Redis), whatever the machine's load
        results = spec.output.dir / spec.output.results
        wait_until(lambda: lines_in(results) >= 50, outcome, "50 records written")
        os.kill(progress(coordinator)["pid"], signal.SIGKILL)
    summary = outcome["summary"]
    assert summary["completed"] and summary["resumed"] >= 50
    assert_once_each(spec, 400)
    assert json.loads((spec.output.dir / "summary.json").read_text())["records"] == 400


# -- helpers ---------------------------------------------------------------------------
def lines_in(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_redis_away_for_10s_loses_nothing(ray_session, tmp_path, redis_server, redis_url):
    spec = job(tmp_path, "delay_ms=100", items=600, budget={"actors": 1})
    seen_trouble: list[str] = []
    with background_run(spec, actor_class=NoopActor, store_url=redis_url) as outcome:
        coordinator = wait_for_coordinator(spec, outcome)
        wait_until(lambda: progress(coordinator)["done"] >= 50, outcome, "50 records")
        redis_server.stop()
        try:
            away_until = time.monotonic() + 10
            while time.monotonic() < away_until:
                trouble = progress(coordinator)["store"]
                if trouble:
                    seen_trouble.append(trouble)
                outcome["thread"].join(0.2)
        finally:
            redis_server.start()
    summary = outcome["summary"]
    assert summary["completed"], summary["failure"]
    assert any("store unavailable" in t for t in seen_trouble), "the progress never said so"
    assert_once_each(spec, 600)
    stream = redis.Redis.from_url(redis_url).xlen(f"landmark:job:{spec.name}:records")
    assert stream == 600


def test_a_redis_that_never_comes_back_stops_the_run_resumably(
    ray_session, tmp_path, private_redis
):
    """With a password in the URL: it shows in no message, summary or results."""
    server = private_redis("canary-pw-2718")
    spec = job(tmp_path, "delay_ms=50", items=400, budget={"actors": 1},
               timeouts={"store_outage": "3s"})  # fmt: skip
    with background_run(spec, actor_class=NoopActor, store_url=server.url) as outcome:
        results = spec.output.dir / "results.jsonl"
        wait_until(lambda: results.exists() and len(records_of(spec)) >= 20, outcome, "20 lines")
        server.stop()
    summary = outcome["summary"]
    assert not summary["completed"] and summary["stopped"] == "failed"
    assert "the store did not come back" in summary["failure"]
    written = (spec.output.dir / "summary.json").read_text()
    results = (spec.output.dir / "results.jsonl").read_text()
    assert "canary-pw-2718" not in written + results + summary["failure"]
    assert len(records_of(spec)) >= 20  # the local copy of what reached Redis is intact
    assert "***" in summary["store"]
