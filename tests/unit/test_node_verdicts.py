"""One MetricsActor per node, seen from the outside: the cluster's view of the nodes' verdicts
(the worst node, counts per state), what the summary, the progress line and the end table
say about them, and the dashboard's node variable. No Ray here."""

from __future__ import annotations

import ast
import contextlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from landmark.coordinator.progress import describe, node_states
from landmark.coordinator.report import summary_rows
from landmark.coordinator.summary import cluster_view, node_summaries

ROOT = Path(__file__).resolve().parents[2]


def reading(verdict: str, memory: float, **extra: Any) -> dict[str, Any]:
    return {"verdict": verdict, "reason": f"{verdict} at {memory:.0%}", "memory_fraction": memory,
            "shed_events": 0, "throttle_events": 0, "peak_tree_pss": 100, "peak_tree_rss": 200,
            **extra}  # fmt: skip


def test_the_cluster_view_is_the_worst_node_with_counts_per_state() -> None:
    nodes = {
        "node-a": reading("ok", 0.40, throttle_events=1),
        "node-b": reading("shed", 0.90, shed_events=2, throttle_events=1, peak_tree_pss=700),
        "node-c": reading("ok", 0.95),  # more memory, but a milder verdict
    }
    view = cluster_view(nodes)
    assert view["verdict"] == "shed" and view["node"] == "node-b"
    assert view["memory_fraction"] == 0.90 and view["reason"] == "shed at 90%"
    assert view["nodes"] == {"ok": 2, "shed": 1}
    assert view["shed_events"] == 2 and view["throttle_events"] == 2  # summed
    assert view["peak_tree_pss"] == 700 and view["peak_tree_rss"] == 200  # the largest node's


def test_among_equal_verdicts_the_fuller_node_is_the_worst() -> None:
    view = cluster_view({"a": reading("throttle", 0.8), "b": reading("throttle", 0.9)})
    assert view["node"] == "b" and view["nodes"] == {"throttle": 2}
    assert cluster_view({})["verdict"] == "ok" and cluster_view({})["nodes"] == {}


def test_the_summary_lists_every_node() -> None:
    nodes = node_summaries({"b": reading("shed", 0.9, shed_events=1), "a": reading("ok", 0.4)})
    assert list(nodes) == ["a", "b"]
    assert nodes["b"] == {"verdict": "shed", "reason": "shed at 90%", "memory_fraction": 0.9,
                          "shed_events": 1, "throttle_events": 0, "peak_tree_pss": 100}  # fmt: skip


def progress(**extra: Any) -> dict[str, Any]:
    return {"done": 10, "failed": 0, "known": 20, "rate": 2.0, "limit": 8, "verdict": "shed",
            "memory_fraction": 0.91, "discovering": 0, "paused": [], **extra}  # fmt: skip


def test_the_progress_line_shows_the_worst_node_and_the_states_of_several() -> None:
    assert node_states({"ok": 2, "shed": 1}) == "2 nodes ok, 1 shed"
    assert node_states({"ok": 1, "throttle": 1}) == "1 node ok, 1 throttle"
    assert node_states({"shed": 2}) == "2 nodes shed"
    assert node_states({"ok": 1}) == "" and node_states({}) == ""
    line = describe(progress(nodes={"ok": 2, "shed": 1}))
    assert "mem 91% shed · 2 nodes ok, 1 shed" in line
    assert "node" not in describe(progress(nodes={"shed": 1}))


def table(**extra: Any) -> dict[str, str]:
    summary = {
        "records": 3, "by_status": {"ok": 3}, "wall_s": 1.0, "per_minute": 180.0,
        "latency_ms": {"p50": 10.0, "p95": 20.0}, "retries": 0, "duplicates_dropped": 0,
        "actor_deaths": 0, "oom_kills": 0, "dom_cache": {"hit_ratio": 0.5, "hits": 1},
        "record_cache": {"hits": 0, "total": 3}, "shed_events": 0, "throttle_events": 0,
        **extra,
    }  # fmt: skip
    return dict(summary_rows(summary))


def test_the_end_table_has_a_node_states_row_for_several_nodes_worst_first() -> None:
    nodes = node_summaries(
        {"aaaaaaaa11": reading("ok", 0.4), "bbbbbbbb22": reading("shed", 0.9, shed_events=2)}
    )
    row = table(nodes=nodes)["node states"]
    assert row == "node bbbbbbbb: shed (mem 90%, 2 shed events); node aaaaaaaa: ok (mem 40%)"
    assert "node states" not in table(nodes={"a": nodes["aaaaaaaa11"]})


def test_every_metric_carries_the_node_tag() -> None:
    source = (ROOT / "actors" / "metrics_actor.py").read_text()
    calls = [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("Gauge", "Counter")
    ]
    assert len(calls) == 8
    for call in calls:
        keys = call.args[2] if len(call.args) > 2 else None
        keys = keys or next(k.value for k in call.keywords if k.arg == "tag_keys")
        assert isinstance(keys, ast.Tuple | ast.Name), ast.dump(call)
    assert 'set_default_tags({"node": node})' in source


def test_the_dashboard_has_a_node_variable_and_filters_every_query_by_it() -> None:
    board = json.loads((ROOT / "cluster" / "grafana" / "landmark-dashboard.json").read_text())
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    node = variables["node"]
    assert node["type"] == "query" and node["includeAll"] and node["multi"]
    assert (
        node["definition"].startswith("label_values(ray_landmark_")
        and ", node)" in node["definition"]
    )
    for panel in board["panels"]:
        for target in panel["targets"]:
            if "ray_landmark_" in target["expr"]:
                assert 'node=~"$node"' in target["expr"], panel["title"]
    memory = next(p for p in board["panels"] if "memory_used_fraction" in str(p["targets"]))
    assert memory["title"] == "Memory used per node (fraction)"
    assert "by (node)" in memory["targets"][0]["expr"]
    assert "{{node}}" in memory["targets"][0]["legendFormat"]


def test_the_load_monitor_is_down_while_any_node_with_workers_lacks_one() -> None:
    from landmark.config.job import JobSpec
    from landmark.coordinator.crew import Crew

    job = JobSpec.model_validate(
        {"name": "m", "sources": {"urls": ["http://x/"]}, "fields": [{"name": "t", "css": "h1"}]}
    )
    crew = Crew(object, job, "/tmp", [], metrics=True)
    assert crew.start_metrics() == {}  # no worker yet: nothing to watch, nothing missing
    assert not crew.monitor_down
    crew.pids = {"browser-0": (101, "node-a"), "browser-1": (102, "node-b")}
    crew.monitors = {"node-a": object()}
    assert crew.wanted_nodes() == {"node-a", "node-b"} and crew.monitor_down
    crew.monitors["node-b"] = object()
    assert not crew.monitor_down
    quiet = Crew(object, job, "/tmp", [], metrics=False)
    quiet.pids = dict(crew.pids)
    assert quiet.start_metrics() == {} and not quiet.monitor_down  # benchmarks' no-op runs


def test_a_monitor_that_died_with_every_worker_of_its_node_counts_as_restarted(monkeypatch):
    """Whichever death the Coordinator hears of first — the workers' or the monitor's — the
    monitor created when workers come back to the node is a restart, and is counted."""
    from landmark.config.job import JobSpec
    from landmark.coordinator import crew as crew_module

    class Handle:
        class _Call:
            def remote(self, *args: Any) -> None:
                return None

        register = unregister = _Call()

    monkeypatch.setattr(crew_module, "create_metrics_actor", lambda *a, **k: Handle())
    monkeypatch.setattr(crew_module.ray, "kill", lambda handle, **kwargs: None)  # no Ray here
    job = JobSpec.model_validate(
        {"name": "m", "sources": {"urls": ["http://x/"]}, "fields": [{"name": "t", "css": "h1"}]}
    )
    for workers_first in (True, False):
        crew = crew_module.Crew(object, job, "/tmp", [], metrics=True)
        crew.pids = {"browser-0": (101, "node-a")}
        crew.start_metrics()
        if workers_first:
            crew.pids = {}  # the workers' deaths were handled first: nothing to protect now
        crew.restart_metrics("node-a", "ActorDiedError")
        crew.pids = {"browser-2": (103, "node-a")}  # a replacement starts on the node
        crew.start_metrics()
        assert "node-a" in crew.monitors and crew.metrics_restarts == 1, workers_first


def test_a_nodes_monitor_boots_beside_the_first_actor_placed_there(monkeypatch):
    """Observed: the node's MetricsActor was created once the first BrowserActor had
    started, so its boot (a Ray worker process: about half a second of CPU) fell on
    discovery's first chunk and the first containers, on a machine that then had no core to
    spare. Created as soon as an actor is placed on a known node, it boots while the actor
    boots, on the core that boot leaves idle; if the actor does not start there after all,
    it goes again."""
    import asyncio

    from ray.exceptions import RayError

    from landmark.config.job import JobSpec
    from landmark.coordinator import crew as crew_module
    from landmark.coordinator.placement import Placement

    node_a, node_b = "ab" * 28, "cd" * 28  # node ids as Ray writes them (hex)
    events: list[tuple[str, ...]] = []

    class Monitor:
        def __init__(self, node: str) -> None:
            self.node = node

            class Register:
                @staticmethod
                def remote(name: str, pids: list[int], on: str) -> None:
                    events.append(("register", name, on))

            self.register = Register()

    def create_metrics_actor(*args: Any, node_id: str, **kwargs: Any) -> Monitor:
        events.append(("monitor", node_id))
        return Monitor(node_id)

    def actor_class(landed_on: str | None) -> type:
        """An actor whose start answers from ``landed_on``, or fails (None)."""

        async def answer() -> dict[str, Any]:
            events.append(("started",))
            if landed_on is None:
                raise RayError("the browser did not launch")
            return {"pid": 101, "node_id": landed_on}

        return fake_actor_class(answer)

    killed: list[Any] = []  # the monitors killed (the failed actor is killed too)

    def kill(handle: Any, **kwargs: Any) -> None:
        if isinstance(handle, Monitor):
            killed.append(handle)

    monkeypatch.setattr(crew_module, "create_metrics_actor", create_metrics_actor)
    monkeypatch.setattr(crew_module.ray, "kill", kill)
    job = JobSpec.model_validate(
        {"name": "m", "sources": {"urls": ["http://x/"]}, "fields": [{"name": "t", "css": "h1"}]}
    )

    def start_on(landed_on: str | None) -> crew_module.Crew:
        events.clear()
        killed.clear()
        crew = crew_module.Crew(actor_class(landed_on), job, "/tmp", [], metrics=True)
        crew.start_metrics()
        with contextlib.suppress(crew_module.StartFailed):
            asyncio.run(crew.start("browser-0", None, Placement(node_a, 4)))
        return crew

    crew = start_on(node_a)
    assert events == [
        ("monitor", node_a),  # before the actor's start came back
        ("started",),
        ("register", "browser-0", node_a),
    ]
    assert list(crew.monitors) == [node_a] and killed == []

    crew = start_on(node_b)  # soft affinity: Ray put it elsewhere
    assert ("monitor", node_b) in events and list(crew.monitors) == [node_b]
    assert [monitor.node for monitor in killed] == [node_a] and crew.metrics_restarts == 0

    crew = start_on(None)  # the start failed: nothing left watching an empty node
    assert crew.monitors == {} and [monitor.node for monitor in killed] == [node_a]


def test_a_worker_at_a_lowered_priority_is_named_once_with_the_setting_that_fixes_it(caplog):
    """A cluster started with Ray's default worker niceness (15) runs the workers, and the
    browsers' drivers they start, below the Chromium they drive; a local run starts Ray
    with 0 (ray_setup.WORKER_NICENESS)."""
    import asyncio
    import logging

    from landmark.config.job import JobSpec
    from landmark.coordinator.crew import Crew
    from landmark.coordinator.placement import Placement

    async def answer() -> dict[str, Any]:
        return {"pid": 101, "node_id": "ef" * 28, "nice": 15}

    job = JobSpec.model_validate(
        {"name": "m", "sources": {"urls": ["http://x/"]}, "fields": [{"name": "t", "css": "h1"}]}
    )
    crew = Crew(fake_actor_class(answer), job, "/tmp", [], metrics=False)
    with caplog.at_level(logging.WARNING, logger="landmark.coordinator"):
        for name in ("browser-0", "browser-1"):
            asyncio.run(crew.start(name, None, Placement(None, 4)))

    warnings = [r.getMessage() for r in caplog.records if "nice" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "browser-0 runs at nice 15" in warnings[0]
    assert "RAY_worker_niceness=0" in warnings[0]


def fake_actor_class(start_answer: Callable[[], Awaitable[dict[str, Any]]]) -> type:
    """What the crew uses of a Ray actor class: ``options().remote()`` makes a handle whose
    ``start.remote()`` is awaited; this one answers with ``start_answer()``."""

    class Starting:
        @staticmethod
        def remote() -> Awaitable[dict[str, Any]]:
            return start_answer()

    class Actor:
        start = Starting()

        @classmethod
        def options(cls, **kwargs: Any) -> type[Actor]:
            return cls

        @classmethod
        def remote(cls, *args: Any) -> type[Actor]:
            return cls

    return Actor
