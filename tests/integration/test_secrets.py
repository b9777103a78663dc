"""Secrets stay secret: a Redis password, a Ray token and a Grafana token, each a canary,
appear nowhere a run writes — its terminal output, results, summary, state, and Ray's logs
for the session — nor in what the Grafana provisioner prints when Grafana refuses it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import yaml

from landmark.benchmarks.site import GallerySite, SiteConfig
from landmark.benchmarks.site.runner import serve_in_thread
from landmark.cluster.provision_grafana import main as provision_main

LANDMARK = [str(Path(sys.executable).with_name("landmark"))]
REDIS_CANARY = "canary-redis-5f1e9c"
RAY_CANARY = "canaryraytoken" + "7" * 34
GRAFANA_CANARY = "glsa_canary_grafana_0d4b"


def files_under(folder: Path) -> Iterator[Path]:
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            yield path


def ray_sessions() -> set[Path]:
    return set(Path("/tmp/ray").glob("session_2*"))


@pytest.mark.browser
@pytest.mark.ray
def test_no_secret_in_anything_a_run_writes(private_redis, tmp_path):
    server = private_redis(REDIS_CANARY)
    sessions_before = ray_sessions()
    with GallerySite(SiteConfig(items=12, page_size=12)) as site:
        job = {
            "name": "secrets",
            "sources": {"urls": [site.url]},
            "containers": {"open": "link"},
            "fields": [{"name": "prompt", "labels": ["Prompt"]}],
            "budget": {"actors": 1, "pages_per_actor": 2},
            "output": {"dir": str(tmp_path / "out")},
        }
        (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
        env = dict(os.environ, RAY_AUTH_TOKEN=RAY_CANARY, LANDMARK_REDIS_URL=server.url)
        finished = subprocess.run(
            [*LANDMARK, "run", "job.yaml"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert finished.returncode == 0, finished.stderr[-3000:]
    results = (tmp_path / "out" / "results.jsonl").read_text()
    assert results.count("\n") == 12  # the run did its work, with the secrets in use
    written = [finished.stdout, finished.stderr]
    written += [p.read_text(errors="replace") for p in files_under(tmp_path / "out")]
    for session in ray_sessions() - sessions_before:
        written += [p.read_text(errors="replace") for p in files_under(session / "logs")]
    assert len(written) > 3  # Ray's logs of the run's session were read too
    for canary in (REDIS_CANARY, RAY_CANARY):
        leaks = [text[max(0, text.find(canary) - 80) :][:200] for text in written if canary in text]
        assert not leaks, f"{canary} leaked: {leaks}"


class RefusingGrafana(BaseHTTPRequestHandler):
    """Answers every call as a Grafana that refuses or fails, echoing nothing secret back."""

    def do_GET(self) -> None:  # the name http.server calls
        status = 401 if self.path.startswith("/api/datasources") else 500
        body = b'{"message": "nope"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PUT = do_GET

    def log_message(self, *args) -> None:
        return


@pytest.fixture
def refusing_grafana() -> Iterator[str]:
    with serve_in_thread(RefusingGrafana, "refusing-grafana") as url:
        yield url


def test_no_grafana_secret_in_what_the_provisioner_prints(refusing_grafana, capsys):
    url = refusing_grafana.replace("http://", f"http://admin:{GRAFANA_CANARY}@")
    for argv in (
        ["--url", refusing_grafana, "--token", GRAFANA_CANARY],
        ["--url", url, "--token", GRAFANA_CANARY],
        ["--url", "http://127.0.0.1:9", "--user", "admin", "--password", GRAFANA_CANARY],
    ):
        status = provision_main([*argv, "--prometheus", "http://127.0.0.1:9", "--timeout", "5"])
        out = capsys.readouterr()
        assert status != 0
        assert GRAFANA_CANARY not in out.out + out.err, out.err
        assert "provision_grafana:" in out.err  # it did say what went wrong
