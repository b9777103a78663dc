"""The cluster/ files: configs that parse and say the right things, a dashboard that queries only
what the MetricsActor exports, and provision_grafana's arguments and error messages.

Metric names are read from actors/metrics_actor.py's source (no Ray import): Ray exports a
metric ``name`` as ``ray_name`` and a Counter as ``ray_name_total`` (checked against a real
scrape of Ray 2.60's metrics port; see cluster/README.md).
"""

from __future__ import annotations

import ast
import copy
import json
import re
import socket
import subprocess
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import yaml

from landmark.benchmarks.site.runner import serve_in_thread
from landmark.cluster import provision_grafana
from landmark.cluster.provision_grafana import ProvisionError, build_parser, credential_from

ROOT = Path(__file__).resolve().parents[2]

CLUSTER = ROOT / "cluster"
DASHBOARD = CLUSTER / "grafana" / "landmark-dashboard.json"
METRIC = re.compile(r"\bray_landmark_[a-z_]+\b")
REFERENCE_LINE = re.compile(r"^vector\((0\.\d+|\$memory_(throttle|shed))\)$")


def exported_metrics() -> set[str]:
    """``ray_``-prefixed names of every Gauge/Counter created in actors/metrics_actor.py."""
    tree = ast.parse((ROOT / "actors" / "metrics_actor.py").read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        is_call = isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        if is_call and node.func.id in ("Gauge", "Counter") and node.args:
            first = node.args[0]
            assert isinstance(first, ast.Constant), "metric names must be literals"
            suffix = "_total" if node.func.id == "Counter" else ""
            names.add(f"ray_{first.value}{suffix}")
    return names


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panel_queries() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
    ]


def test_metrics_actor_exports_the_expected_metrics():
    assert exported_metrics() == {
        "ray_landmark_memory_used_fraction",
        "ray_landmark_memory_used_bytes",
        "ray_landmark_cpu_percent",
        "ray_landmark_verdict",
        "ray_landmark_actor_rss_bytes",
        "ray_landmark_tree_rss_bytes",
        "ray_landmark_shed_events_total",
        "ray_landmark_throttle_events_total",
    }


def test_every_dashboard_query_uses_an_exported_metric_or_is_a_reference_line():
    exported = exported_metrics()
    for title, expr in panel_queries():
        used = set(METRIC.findall(expr))
        if not used:
            assert REFERENCE_LINE.match(expr), f"{title}: {expr!r} queries no landmark metric"
        assert used <= exported, f"{title}: {sorted(used - exported)} are not exported"


def test_every_exported_metric_has_a_panel():
    used = {name for _, expr in panel_queries() for name in METRIC.findall(expr)}
    assert exported_metrics() <= used


def test_dashboard_panels_use_the_datasource_variable():
    board = dashboard()
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert board["uid"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_memory_panel_draws_the_throttle_and_shed_lines():
    memory = next(p for p in dashboard()["panels"] if "ray_landmark_memory_used_fraction" in str(p))
    exprs = [target["expr"] for target in memory["targets"]]
    assert "vector($memory_throttle)" in exprs
    assert "vector($memory_shed)" in exprs


def test_verdict_panels_map_levels_to_names():
    verdicts = [p for p in dashboard()["panels"] if "ray_landmark_verdict" in str(p["targets"])]
    assert verdicts
    for panel in verdicts:
        mapping = panel["fieldConfig"]["defaults"]["mappings"][0]["options"]
        assert {level: entry["text"] for level, entry in mapping.items()} == {
            "0": "ok",
            "1": "throttle",
            "2": "shed",
        }


def test_dashboard_payload_defaults_the_variable_to_the_new_datasource():
    board = dashboard()
    board["id"] = 7
    payload = provision_grafana.dashboard_payload(board, "abc", "landmark-prometheus", "f1")
    assert payload["overwrite"] is True
    assert payload["folderUid"] == "f1"
    assert "id" not in payload["dashboard"]
    variable = next(
        v for v in payload["dashboard"]["templating"]["list"] if v["name"] == "datasource"
    )
    assert variable["current"] == {"text": "landmark-prometheus", "value": "abc"}
    assert "id" in board  # the caller's copy is untouched


# -- launcher configs --------------------------------------------------------------------------
def test_ray_cluster_yaml_passes_rays_own_validation():
    pytest.importorskip("jsonschema")
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((CLUSTER / "ray-cluster.yaml").read_text())
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    setup = " ".join(prepared["setup_commands"])
    assert "chromium" in setup
    assert "pip install" in setup and "~/landmark" in setup
    assert prepared["file_mounts"]["~/landmark"] == "."
    assert "**/.venv" in prepared["rsync_exclude"]
    head = " ".join(prepared["head_start_ray_commands"])
    assert "ray start --head" in head and "--metrics-export-port" in head
    assert "RAY_AUTH_MODE" in head
    assert "ray start --address" in " ".join(prepared["worker_start_ray_commands"])


def test_raycluster_manifest_has_a_head_and_a_worker_group():
    manifest = yaml.safe_load((CLUSTER / "kuberay" / "raycluster.yaml").read_text())
    assert manifest["apiVersion"] == "ray.io/v1"
    assert manifest["kind"] == "RayCluster"
    spec = manifest["spec"]
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    assert len(groups) == 2
    for group in groups:
        assert group["rayStartParams"]["metrics-export-port"] == "8080"
        (container,) = group["template"]["spec"]["containers"]
        assert container["image"] == "REGISTRY/landmark:TAG"
        env = {entry["name"]: entry for entry in container["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        assert container["resources"]["requests"]["cpu"]
        assert container["resources"]["requests"]["memory"]
        mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
        assert "/dev/shm" in mounts


def test_dockerfile_installs_python_311_and_debian_chromium():
    text = (CLUSTER / "kuberay" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim-bookworm", text, re.MULTILINE)
    assert "chromium" in text and "wget" in text
    assert "ray[default]==${RAY_VERSION}" in text


def test_local_cluster_script_is_valid_bash_and_rejects_bad_options():
    script = CLUSTER / "local_cluster.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    wrong = subprocess.run(
        ["bash", str(script), "start", "--workers", "99"], capture_output=True, text=True
    )
    assert wrong.returncode != 0
    assert "--workers must be at most" in wrong.stderr
    unknown = subprocess.run(["bash", str(script), "start", "--nodes", "2"], capture_output=True)
    assert unknown.returncode == 2


def test_local_cluster_dashboard_option_is_documented_and_shown_by_status(tmp_path):
    """``--dashboard`` is a known option with a documented port; ``status`` of a cluster
    started with it names the dashboard (a recorded state, no Ray: RAY is ``true``)."""
    script = CLUSTER / "local_cluster.sh"
    header = script.read_text()
    assert "[--dashboard]" in header and "P+2      dashboard and Jobs API" in header
    start = ["bash", str(script), "start", "--dashboard", "--port", "80"]
    known = subprocess.run(start, capture_output=True, text=True)
    assert known.returncode == 1 and "--port must leave room" in known.stderr  # parsed first
    (tmp_path / "node-0").mkdir()
    (tmp_path / "dashboard").write_text("http://127.0.0.1:6392\n")
    env = {"PATH": "/usr/bin:/bin", "LANDMARK_CLUSTER_DIR": str(tmp_path), "RAY": "true"}
    status = subprocess.run(
        ["bash", str(script), "status", "--port", "6390"], capture_output=True, text=True, env=env
    )
    assert status.returncode == 0, status.stderr
    assert "node-0: not running" in status.stdout
    assert "dashboard: http://127.0.0.1:6392 (Jobs API: ray job submit --address" in status.stdout


# -- provision_grafana ---------------------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_arguments_parse_with_a_token():
    args = build_parser().parse_args(
        ["--url", "http://127.0.0.1:3000/", "--prometheus", "http://127.0.0.1:9090", "--token", "t"]
    )
    assert args.url == "http://127.0.0.1:3000"
    assert args.timeout.total_seconds() == 5
    assert credential_from(args, {}) == "t"


def test_user_and_password_come_from_the_environment():
    args = build_parser().parse_args(["--url", "http://g:3000", "--prometheus", "http://p:9090"])
    assert credential_from(args, {"GRAFANA_USER": "u", "GRAFANA_PASSWORD": "p"}) == ("u", "p")
    assert credential_from(args, {}) is None
    with pytest.raises(ProvisionError, match="--user needs --password"):
        credential_from(args, {"GRAFANA_USER": "u"})


@pytest.mark.parametrize(
    "argv",
    [
        ["--url", "grafana:3000", "--prometheus", "http://p:9090"],
        ["--url", "http://g:3000", "--prometheus", "http://p:9090", "--timeout", "0"],
        ["--url", "http://g:3000", "--prometheus", "http://p:9090", "--token", "t", "--user", "u"],
        ["--prometheus", "http://p:9090"],
    ],
)
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_unreachable_grafana_is_one_clear_line_without_a_traceback():
    url = f"http://127.0.0.1:{_closed_port()}"
    options = ["--prometheus", "http://127.0.0.1:9090", "--timeout", "3"]
    done = subprocess.run(
        [sys.executable, "-m", "landmark.cluster.provision_grafana", "--url", url, *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        f"provision_grafana: could not reach Grafana: cannot connect to {url} "
        "(is Grafana running there?)"
    )


class _FakeGrafana(BaseHTTPRequestHandler):
    """The four Grafana HTTP API routes provisioning uses (Grafana itself cannot run here)."""

    datasources: dict[str, dict] = {}
    dashboards: list[dict] = []

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict:
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != "Bearer secret":
            self._answer(401, {"message": "Unauthorized"})
        elif self.path == "/api/frontend/settings":
            self._answer(200, {"buildInfo": {"version": "11.0.0"}})
        elif self.path.startswith("/api/datasources/name/"):
            name = self.path.rsplit("/", 1)[1]
            found = [d for d in self.datasources.values() if d["name"] == name]
            self._answer(200, found[0]) if found else self._answer(404, {"message": "not found"})

    def do_POST(self) -> None:
        body = self._body()
        if self.path == "/api/datasources":
            uid = f"uid-{len(self.datasources) + 1}"
            self.datasources[uid] = {**body, "uid": uid}
            self._answer(200, {"datasource": self.datasources[uid], "message": "added"})
        elif self.path == "/api/dashboards/db":
            self.dashboards.append(body)
            uid = body["dashboard"]["uid"]
            self._answer(200, {"uid": uid, "url": f"/d/{uid}/x", "status": "success"})

    def do_PUT(self) -> None:
        uid = self.path.rsplit("/", 1)[1]
        self.datasources[uid] = self._body()
        self._answer(200, {"datasource": self.datasources[uid], "message": "updated"})

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def fake_grafana():
    _FakeGrafana.datasources, _FakeGrafana.dashboards = {}, []
    with serve_in_thread(_FakeGrafana, "fake-grafana") as url:
        yield url


def test_provision_creates_then_updates_the_datasource_and_uploads_the_dashboard(fake_grafana):
    first = provision_grafana.provision(fake_grafana, "secret", "http://127.0.0.1:9090")
    again = provision_grafana.provision(fake_grafana, "secret", "http://prom:9090")
    assert (first.datasource_created, again.datasource_created) == (True, False)
    assert first.datasource_uid == again.datasource_uid
    (stored,) = _FakeGrafana.datasources.values()
    assert stored["url"] == "http://prom:9090" and stored["type"] == "prometheus"
    assert len(_FakeGrafana.dashboards) == 2
    assert first.dashboard_url == f"{fake_grafana}/d/landmark-load/x"


def test_refused_credentials_are_one_clear_sentence(fake_grafana):
    with pytest.raises(ProvisionError, match="refused the credentials"):
        provision_grafana.provision(fake_grafana, "wrong", "http://127.0.0.1:9090")
