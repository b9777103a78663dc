"""The MetricsActor on a real Ray node, pushed by real memory that a child of this test holds.

Limits are set relative to the node's memory at the start of the test
(absolute bytes above the current use), so the test works on any machine and
makes a child process hold at most 1.3 GB (killing it gives all of it back).
Margins of a few hundred MB either side absorb other processes on the machine
moving a little meanwhile.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest

from landmark.actors.metrics_actor import create_metrics_actor
from landmark.actors.process_tree import (
    ProcessScanner,
    read_node_memory,
    tree_pids,
)
from landmark.config.job import BudgetSpec

MB = 10**6
THROTTLE_ABOVE = 400 * MB
SHED_ABOVE = 900 * MB
BAND = 100 * MB


def wait_for(
    actor, predicate: Callable[[dict[str, Any]], bool], seconds: float = 20.0
) -> dict[str, Any]:
    """Poll verdict() until the predicate holds; fail with the last answer at the deadline."""
    import ray

    deadline = time.monotonic() + seconds
    answer = ray.get(actor.verdict.remote())
    while not predicate(answer):
        if time.monotonic() > deadline:
            pytest.fail(f"condition not reached within {seconds}s; last verdict: {answer}")
        time.sleep(0.1)
        answer = ray.get(actor.verdict.remote())
    return answer


def wait_for_recovery(ray, actor, budget: BudgetSpec, seconds: float = 20.0) -> dict[str, Any]:
    """Wait for "ok" once the hog has let go.

    The machine is shared: other processes may grow meanwhile by more than our
    margin, which would keep the node above the throttle limit through no
    fault of the actor. Only then (node still above the limit though the hog
    holds nothing) are the limits moved up by that growth, once per growth.
    """
    deadline = time.monotonic() + seconds
    throttle = budget.memory_throttle.absolute
    answer = ray.get(actor.verdict.remote())
    while answer["verdict"] != "ok":
        if time.monotonic() > deadline:
            pytest.fail(f"no recovery within {seconds}s; last verdict: {answer}")
        used = read_node_memory().used
        if used >= throttle - BAND:
            throttle, shed = used + THROTTLE_ABOVE, used + SHED_ABOVE
            moved = BudgetSpec(memory_throttle=throttle, memory_shed=shed, cpu_throttle="100%")
            ray.get(actor.set_limits.remote(moved))
        time.sleep(0.1)
        answer = ray.get(actor.verdict.remote())
    return answer


HOG = """
import sys
block = b""
for line in sys.stdin:
    block = b""
    block = b"\\x01" * int(line)  # bytes * n writes every page: all of it is resident
    print(len(block), flush=True)
"""


class MemoryHog:
    """A child process that holds as many resident bytes as it is told; killing it frees them."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOG], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def hold(self, size: int) -> None:
        self.process.stdin.write(f"{size}\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == str(size)

    def close(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture
def hog():
    hog = MemoryHog()
    yield hog
    hog.close()


@pytest.fixture
def helper_process():
    """A small child process of this test, so the test process's tree has a known descendant."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    yield child
    child.stdin.close()
    child.wait(timeout=10)


@pytest.fixture
def metrics_actor(ray_session):
    total = read_node_memory().total
    actor = create_metrics_actor(
        BudgetSpec(),
        sample_interval=timedelta(milliseconds=200),
        hysteresis=BAND / total,
        hold=timedelta(milliseconds=500),
    )
    yield actor
    ray_session.kill(actor)


def test_memory_pressure_throttles_then_sheds_then_recovers(
    ray_session, metrics_actor, helper_process, hog
):
    first = ray_session.get(metrics_actor.verdict.remote())
    assert first["verdict"] == "ok"
    assert first["memory_total"] == read_node_memory().total

    ray_session.get(metrics_actor.register.remote("hog", [hog.pid]))
    ray_session.get(metrics_actor.register.remote("helper", [helper_process.pid]))
    base = read_node_memory().used
    budget = BudgetSpec(
        memory_throttle=base + THROTTLE_ABOVE,
        memory_shed=base + SHED_ABOVE,
        cpu_throttle="100%",  # other tests may load the CPU: only memory decides here
    )
    resolved = ray_session.get(metrics_actor.set_limits.remote(budget))
    assert resolved["memory_throttle"] == base + THROTTLE_ABOVE
    wait_for(metrics_actor, lambda v: v["verdict"] == "ok" and "helper" in v["actors_rss"])

    hog.hold(650 * MB)
    # A sample can land while the hog is still writing: wait for one taken after it.
    throttled = wait_for(
        metrics_actor, lambda v: v["verdict"] == "throttle" and v["actors_rss"]["hog"] >= 650 * MB
    )
    assert "throttle" in throttled["reason"]  # "≥ throttle", or inside its band
    assert throttled["heaviest"] == "hog"
    assert 0 < throttled["actors_rss"]["helper"] < 100 * MB

    hog.hold(1300 * MB)
    shed = wait_for(
        metrics_actor, lambda v: v["verdict"] == "shed" and v["actors_rss"]["hog"] >= 1300 * MB
    )
    assert "shed" in shed["reason"]
    assert shed["peak_tree_rss"] >= 1300 * MB  # registered trees are in the sum
    assert shed["shed_events"] == 1

    hog.hold(0)
    recovered = wait_for_recovery(ray_session, metrics_actor, budget)
    assert recovered["shed_events"] == 1
    assert recovered["throttle_events"] == 1
    assert recovered["time_in_state"]["shed"] > 0
    assert recovered["actors_rss"]["hog"] < 100 * MB
    assert recovered["peak_tree_rss"] >= shed["peak_tree_rss"]


def test_verdict_answers_from_the_running_loop(ray_session, metrics_actor, helper_process):
    first = wait_for(metrics_actor, lambda v: v["samples"] >= 1)
    later = wait_for(metrics_actor, lambda v: v["samples"] >= first["samples"] + 3)
    assert later["running"] is True
    assert later["sample_error"] is None
    assert later["memory_source"] in {"cgroup", "host"}
    assert 0 < later["memory_fraction"] < 1
    assert later["tree_rss"] > 0  # at least Ray's own processes

    ray_session.get(metrics_actor.register.remote("helper", [helper_process.pid]))
    wait_for(metrics_actor, lambda v: v["heaviest"] == "helper")
    ray_session.get(metrics_actor.unregister.remote("helper"))
    gone = wait_for(metrics_actor, lambda v: "helper" not in v["actors_rss"])
    assert gone["heaviest"] is None

    ray_session.get(metrics_actor.heartbeat.remote("worker-1", {"done": 3}))
    beats = ray_session.get(metrics_actor.heartbeats.remote())
    assert beats["worker-1"]["stats"] == {"done": 3}
    assert beats["worker-1"]["age_s"] >= 0

    ray_session.get(metrics_actor.stop.remote())
    stopped = ray_session.get(metrics_actor.verdict.remote())
    assert stopped["running"] is False
    assert ray_session.get(metrics_actor.verdict.remote())["samples"] == stopped["samples"]


def test_bad_limits_are_refused_with_their_reason(ray_session, metrics_actor):
    wrong = BudgetSpec(memory_throttle="3GiB", memory_shed="2GiB")
    with pytest.raises(ValueError, match="must not exceed memory_shed"):
        ray_session.get(metrics_actor.set_limits.remote(wrong))
    with pytest.raises(ValueError, match="must not exceed memory_shed"):
        create_metrics_actor(wrong)
    with pytest.raises(ValueError, match="pids must be positive integers"):
        ray_session.get(metrics_actor.register.remote("x", ["not-a-pid"]))


def test_tree_rss_covers_descendants_once(helper_process):
    """A tree of our own (parent → grandchild), so other children of this test process (Ray's,
    Chromium's) coming and going between two walks cannot change the answer."""
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys; c = subprocess.Popen([sys.executable, '-c', "
            "'import sys; sys.stdin.read()'], stdin=subprocess.PIPE); print(c.pid, flush=True); "
            "sys.stdin.read(); c.stdin.close(); c.wait()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        grandchild = int(parent.stdout.readline())
        assert tree_pids(parent.pid) == {parent.pid, grandchild}
        assert helper_process.pid in tree_pids(os.getpid())
        # one scan of the node answers the same, for every tree at once
        table = ProcessScanner().scan()
        assert table.tree(parent.pid) == {parent.pid, grandchild}
        assert table.trees([parent.pid, grandchild]) == {parent.pid, grandchild}
        assert table.rss_of(table.tree(parent.pid)) > table.rss[grandchild] > 0
    finally:
        parent.stdin.close()
        parent.wait(timeout=10)


def test_tree_rss_of_a_finished_process_is_zero():
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait(timeout=10)
    assert tree_pids(finished.pid) == set()
    table = ProcessScanner().scan()
    assert table.tree(finished.pid) == set()
    assert table.rss_of(table.tree(finished.pid)) == 0


def test_a_scan_knows_rays_own_processes_and_not_ours(ray_session, helper_process):
    """The union the summary's peak memory covers: Ray's raylet and GCS are in it, this test
    process (the driver) and its own children are not, on the first scan and on the next,
    which reuses what the first learnt about each process."""
    scanner = ProcessScanner()
    for _ in range(2):
        table = scanner.scan()
        names = {psutil.Process(pid).name() for pid in table.ray if psutil.pid_exists(pid)}
        assert {"raylet", "gcs_server"} <= names
        assert os.getpid() not in table.ray
        assert helper_process.pid not in table.ray


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_node_memory_uses_a_binding_cgroup_v2_limit_without_page_cache(tmp_path):
    root = _write(
        tmp_path,
        {
            "memory.max": "2000000\n",
            "memory.current": "1500000\n",
            "memory.stat": "anon 900000\ninactive_file 300000\nactive_file 100000\n",
        },
    )
    reading = read_node_memory(root)
    assert (reading.used, reading.total, reading.source) == (1_100_000, 2_000_000, "cgroup")


def test_node_memory_falls_back_to_host_when_no_cgroup_limit(tmp_path):
    v2_unlimited = _write(
        tmp_path / "v2",
        {
            "memory.max": "max\n",
            "memory.current": "1500000\n",
            "memory.stat": "inactive_file 1\nactive_file 1\n",
        },
    )
    v1_unlimited = _write(
        tmp_path / "v1",
        {
            "memory/memory.limit_in_bytes": "9223372036854771712\n",
            "memory/memory.usage_in_bytes": "1500000\n",
            "memory/memory.stat": "total_inactive_file 1\ntotal_active_file 1\n",
        },
    )
    for root in (v2_unlimited, v1_unlimited, tmp_path / "none"):
        reading = read_node_memory(root)
        assert reading.source == "host"
        assert 0 < reading.used < reading.total


def test_node_memory_reads_cgroup_v1(tmp_path):
    root = _write(
        tmp_path,
        {
            "memory/memory.limit_in_bytes": "4000000\n",
            "memory/memory.usage_in_bytes": "3000000\n",
            "memory/memory.stat": (
                "cache 5\ninactive_file 5\ntotal_inactive_file 700000\ntotal_active_file 300000\n"
            ),
        },
    )
    reading = read_node_memory(root)
    assert (reading.used, reading.total, reading.source) == (2_000_000, 4_000_000, "cgroup")
    assert reading.fraction == pytest.approx(0.5)
