"""Results by name, end to end through ``run_job``: a job that names ``results.csv`` or
``results.json`` gets that format, made from the JSON-lines record log record for record,
also when the run stops short, and a resumed run still gives one row per container."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import ray
from run_helpers import background_run, progress, run_to_end, wait_for_coordinator, wait_until

from landmark.benchmarks.noop_actor import NoopActor
from landmark.benchmarks.site import GallerySite, SiteConfig
from landmark.config.job import JobSpec
from landmark.coordinator.exporters import csv_cell, csv_columns, read_records
from landmark.coordinator.store import read_results

pytestmark = pytest.mark.ray

NOOP_FIELDS = ["created", "prompt", "model", "seed", "dimensions", "image"]  # NoopActor's


def log_records(spec: JobSpec) -> list[dict[str, Any]]:
    return list(read_results(spec.output.dir / spec.output.record_log))


def assert_results_match_the_log(spec: JobSpec) -> list[dict[str, Any]]:
    """The results file holds the log's records, in its order, every column of every one."""
    logged = log_records(spec)
    results = list(read_records(spec.output.dir / spec.output.results))
    assert len(results) == len(logged)
    if spec.output.kind == "json":
        assert results == logged
        return logged
    columns = csv_columns([field.name for field in spec.fields])
    for row, record in zip(results, logged, strict=True):
        assert list(row) == [heading for heading, _ in columns]
        assert row == {heading: csv_cell(get(record), guard=False) for heading, get in columns}
    return logged


# -- a real run: Chromium on the Gallery site ------------------------------------------------
@pytest.mark.browser
@pytest.mark.parametrize("results", ["results.csv", "results.json"])
def test_a_gallery_run_writes_the_format_its_results_name(
    ray_session, gallery_job, tmp_path, results
):
    with GallerySite(SiteConfig(items=30, missing_rate=0.1)) as site:
        spec = gallery_job(site.url, **{"output.results": results, "budget.actors": 1})
        summary = run_to_end(spec)
        truth = {item["id"] for item in site.truth()}
    assert summary["completed"], summary.get("failure")
    out = spec.output.dir
    assert (out / ".landmark" / f"records-{Path(results).stem}.jsonl").is_file()
    assert not (out / "results.jsonl").exists()
    logged = assert_results_match_the_log(spec)
    assert {record["id"] for record in logged} == truth
    if results.endswith(".csv"):
        rows = list(read_records(out / results))
        assert any(row["created"] and row["image"].startswith("http") for row in rows)


# -- stopped and resumed (scripted actors: no browsers) -------------------------------------------
@pytest.fixture(params=["local", "redis"])
def store_url(request) -> str | None:
    return request.getfixturevalue("redis_url") if request.param == "redis" else None


def noop_job(tmp_path: Path, items: int) -> JobSpec:
    return JobSpec.model_validate(
        {
            "name": f"formats-{os.getpid()}-{time.monotonic_ns()}",
            "sources": {"urls": ["http://127.0.0.1:9/?delay_ms=20"]},
            "containers": {"open": "link", "limit": items},
            "fields": [{"name": name, "labels": [name]} for name in NOOP_FIELDS],
            "budget": {"actors": 1, "pages_per_actor": 2, "batch_size": 2, "min_in_flight": 4},
            "timeouts": {"container": "1s", "lease_margin": "1s", "actor_start": "20s"},
            "output": {"dir": str(tmp_path / "out"), "results": "results.csv"},
            "cache": False,
        }
    )


def test_a_stopped_csv_run_shows_what_it_did_and_its_resume_gives_one_row_each(
    ray_session, tmp_path, store_url
):
    spec = noop_job(tmp_path, items=300)
    with background_run(spec, actor_class=NoopActor, store_url=store_url) as outcome:
        coordinator = wait_for_coordinator(spec, outcome)
        wait_until(lambda: progress(coordinator)["done"] >= 40, outcome, "40 records")
        ray.get(coordinator.stop.remote())
    first = outcome["summary"]
    assert first["stopped"] == "interrupted" and first["pending"] > 0
    assert len(assert_results_match_the_log(spec)) == first["records"]

    second = run_to_end(spec, actor_class=NoopActor, store_url=store_url)
    assert second["completed"] and second["resumed"] == first["records"]
    logged = assert_results_match_the_log(spec)
    rows = list(read_records(spec.output.dir / "results.csv"))
    counts = Counter(row["id"] for row in rows)
    assert len(counts) == 300 and max(counts.values()) == 1
    assert {row["dimensions"] for row in rows} == {"1024 \u00d7 768"}
    assert [row["id"] for row in rows] == [record["id"] for record in logged]


def test_fresh_deletes_the_exported_results_with_the_log(ray_session, tmp_path):
    spec = noop_job(tmp_path, items=30)
    run_to_end(spec, actor_class=NoopActor)
    assert len(list(read_records(spec.output.dir / "results.csv"))) == 30
    said: list[str] = []
    summary = run_to_end(spec, actor_class=NoopActor, fresh=True, say=said.append)
    assert any("--fresh: deleting 30 records" in line for line in said), said
    assert summary["resumed"] == 0 and summary["records"] == 30
    assert len(assert_results_match_the_log(spec)) == 30
