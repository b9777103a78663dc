"""A real two-node Ray cluster on this machine: the demo joins it and spreads its actors.

The session's ``ray_session`` fixture already holds a Ray in this process, and
a process can be connected to one cluster only, so everything here runs in
subprocesses: ``cluster/local_cluster.sh`` starts a head and one worker node
(one CPU each, so the two BrowserActors cannot share a node), ``landmark demo
--address`` runs against it, and a second driver reads from the GCS which
node each BrowserActor ran on. The cluster is stopped in a ``finally``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "cluster" / "local_cluster.sh"
ITEMS = 40
START_TIMEOUT_S = 180
DEMO_TIMEOUT_S = 300

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


@pytest.fixture
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
    options = ["--address", address, "--quiet", "--out", str(out)]
    demo = subprocess.run(
        [sys.executable, "-m", "landmark.coordinator.cli", "demo", "--items", str(ITEMS), *options],
        cwd=tmp_path,  # the working_dir upload must not depend on the caller's directory
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
