"""``landmark doctor --address``: the verdict on a node's report, without a cluster, and a
cluster that cannot be reached (one line, exit 1)."""

from __future__ import annotations

import dataclasses
import platform
import socket
import subprocess
import sys

import pytest

from landmark.coordinator.doctor import report_nodes
from landmark.coordinator.node_check import (
    NodeFacts,
    NodeReport,
    Versions,
    check_browser,
    gather,
)

DRIVER = Versions(python="3.11.7", ray="2.60.0", landmark="0.1.0")
GIB = 2**30
FACTS = NodeFacts(
    hostname="worker-1",
    ip="10.0.0.2",
    versions=DRIVER,
    landmark_path="/tmp/ray/session/runtime_resources/py_modules_files/_ray_pkg_x/landmark",
    browser="/usr/bin/chromium (system)",
    browser_version="131.0.6778.85",
    launch_s=1.2,
    shm_total=8 * GIB,
    shm_free=8 * GIB,
    memory_available=6 * GIB,
    memory_total=8 * GIB,
    cpus=4,
)


def node(facts: NodeFacts | None = FACTS, **changes) -> NodeReport:
    report = NodeReport(node_id="a1b2c3d4e5f6", address="10.0.0.2", ray_cpus=4.0, facts=facts)
    return dataclasses.replace(report, **changes)


def verdicts(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("verdict")]


def test_a_healthy_node_is_ok(capsys):
    assert report_nodes([node()], DRIVER) == 0
    out = capsys.readouterr().out
    assert verdicts(out) == ["verdict     node 10.0.0.2 (worker-1) a1b2c3d4: ok"]
    assert "launched, version 131.0.6778.85" in out
    assert "shipped by the driver" in out


@pytest.mark.parametrize(
    ("versions", "problem"),
    [
        (Versions("3.11.7", "2.59.0", "0.1.0"), "Ray 2.59.0 here, 2.60.0 on the driver"),
        (Versions("3.12.1", "2.60.0", "0.1.0"), "Python 3.12.1 here, 3.11.7 on the driver"),
    ],
)
def test_a_version_mismatch_fails_naming_the_node(capsys, versions, problem):
    bad = node(dataclasses.replace(FACTS, versions=versions), node_id="ffff0000aaaa")
    assert report_nodes([node(), bad], DRIVER) == 1
    lines = verdicts(capsys.readouterr().out)
    assert lines[0].endswith(": ok")
    assert lines[1] == f"verdict     node 10.0.0.2 (worker-1) ffff0000: FAIL: {problem}"


def test_another_python_patch_release_is_fine(capsys):
    same_minor = dataclasses.replace(FACTS, versions=Versions("3.11.9", "2.60.0", "0.1.0"))
    assert report_nodes([node(same_minor)], DRIVER) == 0


def test_a_missing_or_unlaunchable_browser_fails(capsys):
    missing = dataclasses.replace(
        FACTS, browser=None, browser_version=None, browser_error="not found: no Chromium"
    )
    broken = dataclasses.replace(
        FACTS, browser_version=None, browser_error="cannot launch: libnss3.so missing"
    )
    assert report_nodes([node(missing, head=True), node(broken)], DRIVER) == 1
    lines = verdicts(capsys.readouterr().out)
    assert "(worker-1, head) a1b2c3d4: FAIL: browser not found: no Chromium" in lines[0]
    assert "FAIL: browser cannot launch: libnss3.so missing" in lines[1]


def test_a_node_that_does_not_answer_or_cannot_reach_the_store_fails(capsys):
    silent = node(None, hostname="worker-2", error="the check did not answer within 150 s")
    no_store = node(dataclasses.replace(FACTS, store_ok=False, store_detail="NOT answering"))
    assert report_nodes([silent, no_store], DRIVER) == 1
    lines = verdicts(capsys.readouterr().out)
    assert "node 10.0.0.2 (worker-2) a1b2c3d4: FAIL: the check did not answer within" in lines[0]
    assert "FAIL: the store, from this node: NOT answering" in lines[1]


def test_the_driver_without_its_store_or_without_nodes_fails(capsys):
    assert report_nodes([node()], DRIVER, store_ok=False) == 1
    assert "the driver cannot reach the store" in capsys.readouterr().out
    assert report_nodes([], DRIVER) == 1
    assert "no alive node" in capsys.readouterr().out


def test_small_shm_is_a_note_because_chromium_is_told_not_to_use_it(capsys):
    small = dataclasses.replace(FACTS, shm_total=64 * 2**20, shm_free=64 * 2**20)
    assert report_nodes([node(small)], DRIVER) == 0
    out = capsys.readouterr().out
    assert (
        "note      /dev/shm is 64.0 MiB; fine: browsers launch with --disable-dev-shm-usage" in out
    )


def test_low_memory_and_no_cpu_are_warnings(capsys):
    tight = dataclasses.replace(FACTS, memory_available=GIB // 2)
    assert report_nodes([node(tight, ray_cpus=0.0)], DRIVER) == 0
    (line,) = verdicts(capsys.readouterr().out)
    assert "ok, with warnings: only 512.0 MiB of memory free" in line
    assert "Ray gives this node no CPU" in line


def test_a_browser_that_is_not_there_or_does_not_start_is_reported(tmp_path):
    missing = check_browser(str(tmp_path / "no-chrome"), timeout_s=30)
    assert missing["browser_error"].startswith("not found: the browser set explicitly")
    fake = tmp_path / "chrome"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    broken = check_browser(str(fake), timeout_s=30)
    assert broken["browser"] == f"{fake} (explicit)"
    assert broken["browser_error"].startswith("cannot launch: ")


def test_gather_reports_this_machine_without_ray(tmp_path):
    facts = gather(browser=str(tmp_path / "no-chrome"))
    assert facts.hostname == socket.gethostname()
    assert facts.versions.python == platform.python_version()
    assert facts.cpus and facts.memory_total
    assert facts.store_ok is None
    assert facts.browser_error


def test_an_unreachable_cluster_is_one_line_and_exit_1(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "landmark.coordinator.cli",
            "doctor",
            "--address",
            f"127.0.0.1:{port}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"landmark doctor: cannot reach the Ray cluster at '127.0.0.1:{port}': Connection "
        "refused. Is the head running there (`ray start --head`, or cluster/local_cluster.sh)?"
    ]
