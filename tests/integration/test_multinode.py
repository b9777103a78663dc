"""A real two-node Ray cluster on this machine: the demo joins it and spreads its actors, and
``landmark doctor --address`` checks both nodes.

The session's ``ray_session`` fixture already holds a Ray in this process, and
a process can be connected to one cluster only, so everything here runs in
subprocesses: ``cluster/local_cluster.sh`` starts a head and one worker node
(one CPU each, so the two BrowserActors cannot share a node), ``landmark demo
--address`` runs against it, and a second driver reads from the GCS which
node each BrowserActor ran on. The cluster is shared by the module's tests and stopped in
a ``finally``.
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "cluster" / "local_cluster.sh"
ITEMS = 40
START_TIMEOUT_S = 180
DEMO_TIMEOUT_S = 300
DOCTOR_TIMEOUT_S = 240  # the doctor's own per-node deadline is 150 s

# Reads the GCS actor table (it keeps dead actors too, with the node each one ran on).
ACTOR_NODES = """
import json, sys
import ray
from ray._private import state

ray.init(address=sys.argv[1], logging_level="ERROR")
nodes = [node["NodeID"] for node in ray.nodes() if node["Alive"]]
actors = [
    {"class": actor["ActorClassName"], "node": actor["Address"]["NodeID"]}
    for actor in state.actors().values()
]
print(json.dumps({"nodes": nodes, "actors": actors}))
"""


def _ports_free(base: int) -> bool:
    """The ports local_cluster.sh derives from ``base`` for a head and one worker."""
    wanted = [base, base + 1, *range(base + 10, base + 30), *range(base + 200, base + 400)]
    for port in wanted:
        with socket.socket() as probe:
            try:
                probe.bind(("0.0.0.0", port))
            except OSError:
                return False
    return True


def _free_base_port() -> int:
    candidates = list(range(21000, 31000, 500))
    random.shuffle(candidates)
    for base in candidates:
        if _ports_free(base):
            return base
    pytest.fail("no free block of ports for a local cluster between 21000 and 31000")


def _environment(state: Path) -> dict[str, str]:
    """Token auth on, with the token local_cluster.sh writes for the cluster."""
    env = dict(os.environ)
    env["RAY_AUTH_MODE"] = "token"
    env["LANDMARK_CLUSTER_DIR"] = str(state)
    env["RAY_AUTH_TOKEN_PATH"] = str(state / "auth_token")
    env.pop("RAY_AUTH_TOKEN", None)
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)  # the test session's loopback setting
    env["RAY"] = str(Path(sys.executable).with_name("ray"))
    env["COLUMNS"] = "200"  # the demo's summary lines stay on one line each
    env.pop("RAY_ADDRESS", None)
    return env


def _cluster(command: str, port: int, env: dict[str, str], *extra: str) -> str:
    done = subprocess.run(
        ["bash", str(SCRIPT), command, "--port", str(port), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
    )
    assert done.returncode == 0, f"local_cluster.sh {command} failed:\n{done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def two_node_cluster(found_browser):
    if shutil.which("setsid") is None:
        pytest.skip("local_cluster.sh needs setsid (util-linux)")
    if not Path(sys.executable).with_name("ray").exists():
        pytest.skip("no 'ray' executable next to this Python")
    port = _free_base_port()
    # short: Ray's socket paths under it must stay within AF_UNIX's 107 bytes
    state = Path(tempfile.mkdtemp(prefix="lmc-", dir="/tmp"))
    env = _environment(state)
    try:
        _cluster("start", port, env, "--workers", "1", "--head-cpus", "1", "--worker-cpus", "1")
        yield f"127.0.0.1:{port}", env
    finally:
        _cluster("stop", port, env)
        shutil.rmtree(state, ignore_errors=True)


def test_demo_spreads_browser_actors_over_two_nodes(two_node_cluster, tmp_path):
    address, env = two_node_cluster
    out = tmp_path / "demo"
    options = ["--address", address, "--out", str(out)]
    demo = subprocess.run(
        [sys.executable, "-m", "landmark.coordinator.cli", "demo", "--items", str(ITEMS), *options],
        cwd=tmp_path,  # the package is shipped (py_modules), whatever the caller's directory
        env=env,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "accuracy: 100.00%" in demo.stdout, demo.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["records"] == ITEMS
    assert summary["by_status"].get("failed", 0) == 0

    probe = subprocess.run(
        [sys.executable, "-c", ACTOR_NODES, address],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    seen = json.loads(probe.stdout.strip().splitlines()[-1])
    assert len(seen["nodes"]) == 2
    browser_nodes = {actor["node"] for actor in seen["actors"] if actor["class"] == "BrowserActor"}
    coordinator_nodes = {
        actor["node"] for actor in seen["actors"] if actor["class"] == "Coordinator"
    }
    assert browser_nodes == set(seen["nodes"]), "each node should have run a BrowserActor"
    assert len(coordinator_nodes) == 1
    # the summary says where the work went: both nodes, every record counted once
    placement = summary["placement"]
    assert set(placement) == set(seen["nodes"]), placement
    assert all(node["actors"] >= 1 for node in placement.values())
    assert sum(node["records"] for node in placement.values()) == ITEMS
    assert "placement" in demo.stdout
    [joined] = [line for line in demo.stderr.splitlines() if "joined the Ray cluster at" in line]
    assert address.rpartition(":")[2] in joined and "(2 node(s), 2 CPUs)" in joined, joined


def _doctor(address: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "landmark.coordinator.cli", "doctor", "--address", address],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=DOCTOR_TIMEOUT_S,
    )


def test_doctor_checks_each_node_from_the_node(two_node_cluster, tmp_path):
    address, env = two_node_cluster
    env = {key: value for key, value in env.items() if key != "LANDMARK_REDIS_URL"}
    doctor = _doctor(address, env, tmp_path)
    out = doctor.stdout
    assert doctor.returncode == 0, out + doctor.stderr
    assert f"cluster     {address}: 2 alive node(s)" in out
    nodes = [line for line in out.splitlines() if line.startswith("node ")]
    assert len(nodes) == 2 and len(set(nodes)) == 2, out  # two different nodes
    assert "head" in nodes[0] and "head" not in nodes[1], out
    assert out.count(": launched, version ") == 2, out  # each node started its Chromium
    assert out.count(f"  python    {platform.python_version()}\n") == 2, out
    assert out.count(f"  ray       {version('ray')}\n") == 2, out
    assert out.count("(shipped by the driver)") == 2, out  # py_modules, as runs do
    assert "on the driver" not in out.replace("(from the driver)", ""), out  # no mismatch
    verdicts = [line for line in out.splitlines() if line.startswith("verdict")]
    assert len(verdicts) == 2 and not any("FAIL" in line for line in verdicts), out
    assert "cluster     2 node(s): 2 ok, 0 would fail a run" in out


def test_doctor_with_a_wrong_token_is_one_line(two_node_cluster, tmp_path):
    address, env = two_node_cluster
    wrong = tmp_path / "auth_token"
    wrong.write_text("0" * 64)
    doctor = _doctor(address, env | {"RAY_AUTH_TOKEN_PATH": str(wrong)}, tmp_path)
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    (line,) = doctor.stderr.splitlines()
    assert line.startswith(f"landmark doctor: cannot reach the Ray cluster at '{address}'")
    assert "refused this client's token" in line


# A node check that cannot finish in time (0.05 s: the worker has not even started).
LATE = """
import sys
from landmark.coordinator.doctor import doctor

sys.exit(doctor(browser="/nonexistent/chrome", address=sys.argv[1], node_deadline_s=0.05))
"""


def test_doctor_reports_a_node_that_does_not_answer_in_time(two_node_cluster, tmp_path):
    address, env = two_node_cluster
    late = subprocess.run(
        [sys.executable, "-c", LATE, address],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=DOCTOR_TIMEOUT_S,
    )
    assert late.returncode == 1, late.stdout + late.stderr
    verdicts = [line for line in late.stdout.splitlines() if line.startswith("verdict")]
    assert len(verdicts) == 2, late.stdout
    assert all("FAIL: the check did not answer within 0.05 s" in line for line in verdicts)
    assert "cluster     2 node(s): 0 ok, 2 would fail a run" in late.stdout
