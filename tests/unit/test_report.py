"""What the end table and the progress line say: blocked hosts (on the record, warned once
per run, named at the end) and whether the load monitor is down."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from landmark.benchmarks.profile import Options, save_profile, throughput_coordinator
from landmark.benchmarks.report import latest_results, render, targets, write_report
from landmark.config.job import JobSpec
from landmark.config.records import Record
from landmark.coordinator.crew import Crew
from landmark.coordinator.report import summary_rows
from landmark.coordinator.run_stats import RunStats


def summary(**extra: Any) -> dict[str, Any]:
    return {
        "records": 3,
        "by_status": {"ok": 3},
        "wall_s": 1.0,
        "per_minute": 180.0,
        "latency_ms": {"p50": 10.0, "p95": 20.0},
        "retries": 0,
        "duplicates_dropped": 0,
        "actor_deaths": 0,
        "oom_kills": 0,
        "dom_cache": {"hit_ratio": 0.5, "hits": 1},
        "record_cache": {"hits": 0, "total": 3},
        "shed_events": 0,
        "throttle_events": 0,
        **extra,
    }


def record(*blocked: str) -> Record:
    return Record(
        id="a", source="http://127.0.0.1/", position=0, status="ok", blocked=list(blocked)
    )


def test_blocked_hosts_are_new_to_the_run_once_and_counted_per_record():
    stats = RunStats()
    assert stats.note_blocked(record("cdn.example", "fonts.example")) == [
        "cdn.example",
        "fonts.example",
    ]
    assert stats.note_blocked(record("cdn.example")) == []  # warned already
    assert stats.note_blocked(record()) == []
    assert stats.blocked_hosts == {"cdn.example": 2, "fonts.example": 1}


def test_a_record_keeps_its_blocked_hosts_through_json_and_omits_none():
    line = record("cdn.example").to_json_dict()
    assert Record.from_json_dict(line).blocked == ["cdn.example"]
    assert "blocked" not in record().to_json_dict()


def test_the_table_names_blocked_hosts_and_the_setting_that_allows_them():
    hosts = {f"h{i}.example": 10 - i for i in reversed(range(7))}  # fewest first
    rows = dict(summary_rows(summary(blocked_hosts=hosts)))
    assert rows["hosts blocked"].startswith("h0.example, h1.example")
    assert "and 2 more" in rows["hosts blocked"]
    assert "browser.allow_domains" in rows["hosts blocked"]
    assert "hosts blocked" not in dict(summary_rows(summary()))


def test_the_load_monitor_is_down_only_while_wanted_and_missing():
    job = JobSpec.model_validate(
        {"name": "m", "sources": {"urls": ["http://x/"]}, "fields": [{"name": "t", "css": "h1"}]}
    )
    wanted = Crew(object, job, "/tmp", [], metrics=True)
    assert wanted.monitor_down  # not started yet, or dead and not replaced
    asyncio.run(wanted.stop_metrics())
    assert not wanted.monitor_down  # stopped at the end of the run: not "down"
    assert not Crew(object, job, "/tmp", [], metrics=False).monitor_down


def test_records_are_counted_per_actor_and_placed_per_node():
    stats = RunStats()
    for actor in ["browser-0", "browser-0", "browser-1", None]:
        done = record()
        done.actor = actor
        stats.wrote(done)
    cached = record()
    cached.actor, cached.cached = "browser-1", True
    stats.wrote(cached)  # served from the cache: no actor extracted it
    assert stats.by_actor == {"browser-0": 2, "browser-1": 1}

    crew = Crew(actor_class=None, job=None, out_dir="", allowed_hosts=[], metrics=False)
    crew.node_of = {"browser-0": "node-a", "browser-1": "node-b", "browser-2": "node-b"}
    placement = crew.placement(stats.by_actor)
    assert placement == {
        "node-a": {"actors": 1, "records": 2},
        "node-b": {"actors": 2, "records": 1},
    }
    row = dict(summary_rows(summary(placement=placement)))["placement"]
    assert row == "node node-a: 1 actors, 2 records; node node-b: 2 actors, 1 records"
    one_node = {"node-a": {"actors": 2, "records": 3}}
    assert "placement" not in dict(summary_rows(summary(placement=one_node)))


def test_nodes_that_joined_or_left_are_named_with_the_wait_for_their_first_actor():
    events = [
        {"event": "joined", "node": "1a2b3c4d5e", "at_s": 12.0, "cpus": 1.0,
         "first_actor_after_s": 3.14},
        {"event": "left", "node": "9f8e7d6c5b", "at_s": 40.25},
    ]  # fmt: skip
    row = dict(summary_rows(summary(node_events=events)))["nodes joined / left"]
    assert row == (
        "node 1a2b3c4d joined at 12.0 s (first actor 3.1 s later); node 9f8e7d6c left at 40.2 s"
    )
    assert "nodes joined / left" not in dict(summary_rows(summary(node_events=[])))


# -- benchmarks/RESULTS.md: targets, start-up, profile (benchmarks/report.py) -------------------

FIXTURES = Path(__file__).parent / "fixtures"


def bench_run(contender: str, mode: str, latency: float, per_min: float, **extra: Any) -> dict:
    """One row of a throughput or efficiency document, as scenarios._row writes it."""
    return {
        "contender": contender,
        "cell": {"mode": mode, "latency_ms": latency},
        "items": 40,
        "records": 40,
        "concurrency": 4,
        "error": None,
        "unavailable": None,
        "per_min": per_min,
        "wall_s": 40 / per_min * 60,
        "first_record_s": 2.5,
        "p50_ms": 50.0,
        "p95_ms": 90.0,
        "score": {"accuracy": 1.0, "lost": 0, "duplicates": 0},
        "memory": {"rss_max": 2**30},
        **extra,
    }


def scenario(name: str, runs: list[dict], **extra: Any) -> dict[str, Any]:
    return {"scenario": name, "_file": f"{name}-1.json", "started": "2026", "runs": runs, **extra}


def target_rows(documents: dict[str, dict]) -> dict[str, list[str]]:
    """The targets table as {target: [rule, measured, verdict, from]}."""
    rows = [line for line in targets(documents) if line.startswith("| ") and "---" not in line]
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[1:]]
    return {first: rest for first, *rest in cells}


def test_targets_say_met_missed_or_not_measured_from_the_medians():
    runs = [
        *(bench_run("landmark-auto", "click", 0.0, v) for v in (850, 900, 2000)),
        bench_run("bare-4", "click", 0.0, 1000),
        bench_run("landmark-auto", "click", 100.0, 500),
        bench_run("bare-4", "click", 100.0, 1000),
        bench_run("bare-4", "click", 100.0, 1, error="boom"),  # not counted
    ]
    memory = bench_run("landmark-2x4", "click", 0.0, 600, landmark={"oom_kills": 0})
    memory["series"] = {"t": list(range(11)), "rss": [100, 200, *[205] * 7, 210, 50]}
    rows = target_rows(
        {"throughput": scenario("throughput", runs), "memory": scenario("memory", [memory])}
    )

    click0 = rows["click mode, 0 ms: landmark-auto ÷ bare-4, containers/min"]
    assert click0 == ["≥ 0.8", "0.90 (900 / 1,000 per min)", "met", "`throughput-1.json`"]
    click100 = rows["click mode, 100 ms: landmark-auto ÷ bare-4, containers/min"]
    assert click100[1:3] == ["0.50 (500 / 1,000 per min)", "**missed**"]
    crawlee = rows["link mode, 0 ms: landmark-auto ÷ crawlee-4, containers/min"]
    assert crawlee == ["≥ 2", "-", "not measured", "`throughput-1.json`"]
    share = rows["efficiency, 200 ms site latency: landmark-2x4 container share"]
    assert share == ["≥ 80%", "-", "not measured", "no file"]
    # warm: the first sample from 10% of the time on (200); end: the last up to 90% (210),
    # not the teardown after it
    assert rows["memory: tree RSS growth, warm to end"][1:3] == ["+5.0%", "met"]
    assert rows["memory: OOM kills"][1:3] == ["0", "met"]
    assert rows["landmark-auto coordinator CPU per container"][2] == "not measured"


def test_targets_report_the_coordinators_cpu_and_a_missed_share():
    coordinator = {"cpu_s": 0.1, "us_per_record": 1250.0, "core_share": 0.045, "wakes": {}}
    runs = [bench_run("landmark-auto", "link", 100.0, 300, landmark={"coordinator": coordinator})]
    efficiency = [
        bench_run("landmark-2x4", "click", 200.0, 100, container_share=share)
        for share in (0.7, 0.75, 0.9)
    ]
    documents = {
        "throughput": scenario("throughput", runs, quick=True),
        "efficiency": scenario("efficiency", efficiency),
    }
    rows = target_rows(documents)
    cpu = rows["link mode, site latency 100 ms: landmark-auto coordinator CPU"]
    assert cpu == [
        "-",
        "1,250 µs per container, 4.5% of one core",
        "reported",
        "`throughput-1.json` (quick)",
    ]
    share = rows["efficiency, 200 ms site latency: landmark-2x4 container share"]
    assert share[1:3] == ["75.0%", "**missed**"]


def test_the_throughput_cell_shows_landmarks_start_up_when_the_runs_kept_it():
    startup = {"store_open": 0.2, "actor_ready": 3.1, "containers_found": 3.9,
               "batch_sent": 4.0, "record_written": 4.6}  # fmt: skip
    runs = [
        bench_run("landmark-auto", "click", 0.0, 300, landmark={"startup_s": startup}),
        bench_run(
            "landmark-auto",
            "click",
            0.0,
            300,
            landmark={"startup_s": {**startup, "actor_ready": 3.5}},
        ),
        bench_run("bare-4", "click", 0.0, 1000),
    ]
    text = render({"throughput": scenario("throughput", runs, params={"items": 40})})
    assert "landmark start-up (median s" in text
    header = next(line for line in text.splitlines() if line.startswith("| contender | n | store"))
    assert header == (
        "| contender | n | store open | actor ready | containers found | batch sent | "
        "record written | first record | wall |"
    )
    assert "| landmark-auto | 2 | 0.20 | 3.30 | 3.90 | 4.00 | 4.60 | 2.50 | 8.00 |" in text
    assert "where the start went" not in text  # these runs kept no parts
    parts = {"coordinator_up": 0.8, "actor_process": 0.7, "actor_playwright": 0.2,
             "actor_browser": 0.1, "actor_pages": 0.3}  # fmt: skip
    kept = {"startup_s": startup, "startup_parts_s": parts}
    text = render({"throughput": scenario("throughput", [bench_run(
        "landmark-auto", "click", 0.0, 300, landmark=kept)])})  # fmt: skip
    assert (
        "| contender | n | Coordinator process | BrowserActor process | Playwright | Chromium "
        "| context and pages |"
    ) in text
    assert "| landmark-auto | 1 | 0.80 | 0.70 | 0.20 | 0.10 | 0.30 |" in text
    older = [bench_run("landmark-auto", "click", 0.0, 300, landmark={"wall_s": 5.0})]
    assert "landmark start-up (median s" not in render(
        {"throughput": scenario("throughput", older)}
    )


def test_the_profile_renders_as_markdown_right_after_throughput():
    profile = json.loads((FIXTURES / "profile-quick.json").read_text(encoding="utf-8"))
    documents = {
        "memory": scenario("memory", []),
        "profile": {**profile, "_file": "profile-1.json"},
        "throughput": scenario("throughput", [bench_run("bare-4", "click", 0.0, 1000)]),
    }
    text = render(documents)
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections[:4] == ["## Machine and versions", "## targets", "## throughput", "## profile"]
    part = text.split("## profile", 1)[1].split("\n## ", 1)[0]
    assert "40 containers, click mode, site latency 0 ms, 4 pages each" in part
    assert "| figure | landmark | bare | landmark − bare | from |" in part
    assert "| **end to end** | | | | |" in part
    assert "| containers | 40 | 40 | +0 | records; failed ones fail the run |" in part
    assert "| coordinator CPU, ms | 1.37 | — |  | runs/demo/summary.json |" in part
    assert "| &nbsp;&nbsp;on the Playwright wire, ms | 0.212 | 0.276 | -0.065 |" in part
    assert "\nChromium CPU per container (psutil): landmark 18.5 ms, bare 15.5 ms" in part


def test_a_saved_profile_is_the_newest_profile_and_feeds_on_throughputs_coordinator(tmp_path):
    coordinator = {"cpu_s": 0.2, "us_per_record": 2000.0, "core_share": 0.05,
                   "wakes": {"tick": 10, "done": 30}}  # fmt: skip
    runs = [
        bench_run(
            "landmark-auto",
            "click",
            0.0,
            300,
            landmark={"coordinator": {**coordinator, "us_per_record": us}, "per_minute": 320.0},
        )
        for us in (3000.0, 2000.0, 1000.0)
    ]
    runs.append(bench_run("landmark-auto", "link", 0.0, 300, landmark={"coordinator": coordinator}))
    options = profile_options(tmp_path)
    figures = throughput_coordinator(scenario("throughput", runs), options)
    assert figures is not None
    assert figures["cpu_ms"] == 2.0  # the median run of the profiled cell
    assert figures["wakes"] == 1.0  # 40 wake-ups over 40 records
    assert figures["source"].startswith("throughput throughput-1.json: landmark-auto, click mode")
    two_actors = [{**run, "contender": "landmark-2x4"} for run in runs]  # not one actor's
    assert throughput_coordinator(scenario("throughput", two_actors), options) is None

    profile = json.loads((FIXTURES / "profile-quick.json").read_text(encoding="utf-8"))
    context = {"command": "landmark bench all", "machine": {"cores_logical": 2},
               "versions": {"python": "3"}, "duration_s": 20.0}  # fmt: skip
    paths = save_profile(profile, options, tmp_path / "results", context)
    assert paths[1] == options.out and options.out.read_bytes() == paths[0].read_bytes()
    assert paths[0].name == "profile-20261130T163209.json"
    saved = latest_results(tmp_path / "results")["profile"]
    assert saved["command"] == "landmark bench all"
    assert saved["machine"] == {"cores_logical": 2}
    assert saved["contenders"]["landmark"]["containers"] == 40


def profile_options(tmp_path: Path, pages: int = 4) -> Options:
    return Options(
        items=40, mode="click", latency_ms=0.0, pages=pages, trace_items=16, summary=None,
        out=tmp_path / "copy.json", traces=tmp_path / "copy.json", py_spy=False,
        keep_traces=False, quick=True,
    )  # fmt: skip


def test_a_scenario_without_its_json_here_keeps_its_section_from_the_previous_report(tmp_path):
    """Result files are not in the repository: a checkout that reran some scenarios would
    otherwise drop the sections of the others (the kill trials, the service) from the report."""
    previous = tmp_path / "RESULTS.md"
    previous.write_text(
        "# Benchmark results\n\n| scenario | file | command | started (UTC) | took |\n"
        "|---|---|---|---|---|\n"
        "| throughput | `throughput-0.json` | `landmark bench all` | 2026-01 | 9 s |\n"
        "| chaos | `chaos-0.json` | `landmark bench chaos` | 2026-01 | 997 s |\n\n"
        "## throughput\n\nold figures\n\n## chaos\n\n35 kill trials, nothing lost\n\n"
        "## Other measurements\n\nnot a scenario\n",
        encoding="utf-8",
    )
    results = tmp_path / "results"
    results.mkdir()
    runs = [bench_run("landmark-auto", "click", 0.0, 900)]
    document = scenario("throughput", runs, params={"items": 40})
    (results / "throughput-1.json").write_text(json.dumps(document), encoding="utf-8")

    write_report(results, previous)
    text = previous.read_text(encoding="utf-8")

    assert "old figures" not in text  # rerun: rendered from its new file
    assert "35 kill trials, nothing lost" in text  # not rerun: carried over
    assert "| chaos | `chaos-0.json` (carried from the previous report) |" in text
    assert text.index("## throughput") < text.index("## chaos") < text.index("35 kill")
    assert text.count("not a scenario") == 0  # a non-scenario section is not carried
