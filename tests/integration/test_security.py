"""A running ``landmark run`` exposes nothing: every socket its process tree listens on is on
the loopback, and Ray's token authentication refuses a client without the token."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import psutil
import pytest
import yaml

from landmark.benchmarks.site import GallerySite, SiteConfig
from landmark.coordinator.ray_setup import DEFAULT_TOKEN

pytestmark = [pytest.mark.browser, pytest.mark.ray]

LANDMARK = [str(Path(sys.executable).with_name("landmark"))]
LOOPBACK_PREFIXES = ("127.", "::ffff:127.")


def is_loopback(ip: str) -> bool:
    return ip == "::1" or ip.startswith(LOOPBACK_PREFIXES)


def listening(root: psutil.Process) -> list[tuple[str, int, str]]:
    """(address, port, process name) of every listening TCP socket under ``root``."""
    tree = {root.pid: root}
    for child in root.children(recursive=True):
        tree[child.pid] = child
    found = []
    for conn in psutil.net_connections("inet"):
        if conn.status == psutil.CONN_LISTEN and conn.pid in tree:
            with_name = tree[conn.pid]
            try:
                name = with_name.name()
            except psutil.Error:
                name = "?"
            found.append((conn.laddr.ip, conn.laddr.port, name))
    return found


def gcs_answers(address: str, token: str | None) -> str:
    """The GCS's answer to a node listing: "OK", or the gRPC status it refused with."""
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    metadata = (("authorization", f"Bearer {token}"),) if token else None
    with grpc.insecure_channel(address) as channel:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        try:
            stub.GetAllNodeInfo(gcs_service_pb2.GetAllNodeInfoRequest(), metadata=metadata,
                                timeout=10)  # fmt: skip
        except grpc.RpcError as error:
            return error.code().name
    return "OK"


def test_a_run_listens_on_loopback_only_and_refuses_strangers(tmp_path):
    config = SiteConfig(items=300, latency_ms=100, jitter="none")
    with GallerySite(config) as site:
        job = tmp_path / "job.yaml"
        job.write_text(
            yaml.safe_dump(
                {
                    "name": "exposure",
                    "sources": {"urls": [site.url]},
                    "containers": {"open": "link"},
                    "fields": [{"name": "prompt", "labels": ["Prompt", "Text prompt"]}],
                    "output": {"dir": str(tmp_path / "out")},
                }
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        command = [*LANDMARK, "run", str(job), "--quiet"]
        pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
        run = subprocess.Popen(command, cwd=tmp_path, env=env, **pipes)
        try:
            results = tmp_path / "out" / "results.jsonl"
            deadline = time.monotonic() + 240
            while not (results.exists() and results.read_text().count("\n") >= 5):
                assert run.poll() is None, run.communicate()
                assert time.monotonic() < deadline, "the run never wrote a record"
                time.sleep(0.2)
            sockets = listening(psutil.Process(run.pid))
            gcs = [port for _, port, name in sockets if "gcs_server" in name]
            assert gcs, sockets
            token = DEFAULT_TOKEN.read_text().strip()
            answers = {t: gcs_answers(f"127.0.0.1:{gcs[0]}", t) for t in (None, "0" * 64, token)}
        finally:
            run.send_signal(signal.SIGINT)
            run.communicate(timeout=240)

    assert len(sockets) > 5, sockets  # Ray's servers were found: the check can fail
    exposed = [s for s in sockets if not is_loopback(s[0])]
    assert exposed == [], f"listening beyond the loopback: {exposed}"
    assert answers[None] == "UNAUTHENTICATED"
    assert answers["0" * 64] == "UNAUTHENTICATED"
    assert answers[token] == "OK"  # the probe itself works: a right token is let in
    assert oct(DEFAULT_TOKEN.stat().st_mode & 0o777) == "0o600"
