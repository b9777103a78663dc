"""The load-test harness end to end on a tiny gallery: it runs, scores and reports.

This checks that ``landmark bench`` works (contenders start, runs are scored,
JSON and RESULTS.md are written), not how fast anything is. The landmark
contender runs in the harness's own worker process, which starts its own
local Ray: that process tree is what the harness measures.
"""

from __future__ import annotations

import json

import psutil
import pytest

from landmark.benchmarks.__main__ import main

pytestmark = [pytest.mark.browser, pytest.mark.ray]

CONTENDERS = ["bare-4", "baseline-0.1", "landmark-auto"]  # landmark: the default budget


def test_throughput_quick_writes_scored_json_and_report(tmp_path):
    report = tmp_path / "RESULTS.md"
    argv = [
        "throughput",
        "--quick",
        "--items",
        "30",
        "--repeats",
        "1",
        "--modes",
        "click",
        "--latencies",
        "0",
        "--contenders",
        ",".join(CONTENDERS),
        "--results-dir",
        str(tmp_path),
        "--report",
        str(report),
    ]

    status = main(argv)

    [written] = tmp_path.glob("throughput-*.json")
    document = json.loads(written.read_text())
    runs = {run["contender"]: run for run in document["runs"]}
    assert sorted(runs) == sorted(CONTENDERS)
    for name, run in runs.items():
        assert run["error"] is None, f"{name}: {run['error']}"
        assert run["score"]["lost"] == 0 and run["score"]["duplicates"] == 0, name
        assert run["records"] == run["items"] > 0, name
        assert run["per_min"] > 0 and run["p95_ms"] >= run["p50_ms"] > 0, name
        assert run["memory"]["rss_max"] > 0, name
    assert runs["bare-4"]["score"]["accuracy"] == 1.0
    assert runs["baseline-0.1"]["items"] == 6  # the baseline's quick cap, not the gallery size
    assert status == 0
    assert document["machine"]["cores_logical"] >= 1 and document["versions"]["playwright"]

    text = report.read_text()
    assert "## throughput" in text and "click mode, site latency 0 ms" in text
    for name in CONTENDERS:
        assert f"| {name} |" in text

    report.unlink()
    assert main(["report", "--results-dir", str(tmp_path), "--report", str(report)]) == 0
    assert "## throughput" in report.read_text()


def test_report_without_results_is_a_clear_error(tmp_path, capsys):
    status = main(["report", "--results-dir", str(tmp_path), "--report", str(tmp_path / "R.md")])

    assert status == 2
    assert "no results" in capsys.readouterr().err
    assert not (tmp_path / "R.md").exists()


def test_hostile_runs_each_scenario_as_a_job_and_prints_the_table(ray_session, tmp_path, capsys):
    """A few of ``landmark bench hostile``'s scenarios, on the session's Ray: every row
    bounded, nothing left behind, the table printed and kept for the report."""
    only = ["download-stall", "endless-feed", "redirect-server"]
    argv = ["hostile", "--only", ",".join(only), "--bound", "90", "--results-dir", str(tmp_path)]

    status = main(argv)

    out = capsys.readouterr().out
    [written] = tmp_path.glob("hostile-*.json")
    rows = {row["scenario"]: row for row in json.loads(written.read_text())["runs"]}
    assert sorted(rows) == sorted(only)
    for name, row in rows.items():
        assert row["bounded"] and row["passed"] and row["files_left"] == 0, (name, row)
    assert rows["download-stall"]["statuses"] == {"partial": 1}
    assert "stalled" in rows["download-stall"]["error"]
    assert rows["redirect-server"]["statuses"] == {"failed": 1}
    assert "| scenario | wall s | statuses |" in out and "| endless-feed |" in out
    assert status == 0

    report = tmp_path / "RESULTS.md"
    assert main(["report", "--results-dir", str(tmp_path), "--report", str(report)]) == 0
    assert "## hostile" in report.read_text()


def test_coordinator_bench_runs_its_job_to_the_end(tmp_path):
    """The coordinator benchmark's job must stay valid as the job's settings gain bounds
    (it once asked for budget.max_in_flight=1,000,000, over the limit, and did not start).
    It starts its own local Ray, so it runs in a process of its own."""
    import subprocess
    import sys

    bench = [sys.executable, "-m", "landmark.benchmarks.coordinator_bench", "--containers", "500"]
    done = subprocess.run(bench, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "records 500" in done.stdout and "containers/s" in done.stdout, done.stdout


def test_service_bench_compares_a_warm_service_with_separate_runs(tmp_path, capsys):
    """``landmark bench service`` at its smallest: a real ``landmark serve`` and real
    ``landmark run``s (each its own local Ray, in its own session), every job scored, the
    table printed and kept for the report, and none of those commands left running."""
    argv = ["service", "--jobs", "2", "--items", "5", "--api-items", "20", "--api-calls", "10"]

    status = main([*argv, "--results-dir", str(tmp_path)])

    out = capsys.readouterr().out
    [written] = tmp_path.glob("service-*.json")
    document = json.loads(written.read_text())
    assert document["failures"] == [] and status == 0, document["failures"]
    runs = document["runs"]
    assert sorted(run["name"] for run in runs) == ["run-0", "run-1", "svc-0", "svc-1"]
    for run in runs:
        assert run["records"] == 5 and run["accuracy"] == 1.0, run
        assert 0 < run["first_record_s"] <= run["end_s"], run
    for mode in ("service", "separate"):
        assert document["summary"][mode]["total_wall_s"] > 0, mode
    assert document["api"]["job_status"]["calls"] == 10 and document["api"]["stats"]["p95_ms"] > 0
    assert "| service | 2 |" in out and "| separate | 2 |" in out
    assert not [p for p in psutil.process_iter(["cmdline"]) if _scratch(p)], "a process was left"

    report = tmp_path / "RESULTS.md"
    assert main(["report", "--results-dir", str(tmp_path), "--report", str(report)]) == 0
    assert "## service" in report.read_text()


def _scratch(process: psutil.Process) -> bool:
    """A command the service bench started (its scratch folder is on every command line)."""
    return any("landmark-svcbench-" in part for part in process.info["cmdline"] or [])
