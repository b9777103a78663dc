"""What the end table and the progress line say: blocked hosts (on the record, warned once
per run, named at the end) and whether the load monitor is down."""

from __future__ import annotations

import asyncio
from typing import Any

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
