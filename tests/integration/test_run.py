"""End to end through ``run_job`` (and the ``landmark`` command): real Ray, real Chromium, the
real Gallery site, scored against its ground truth.

The invariant under test everywhere: every container ends with exactly one
record, and every field in it is right — whatever dies or misbehaves meanwhile.
All runs share the session's Ray (``run_job`` joins it); the CLI tests that must
exercise a whole process start their own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from run_helpers import RUN_TIMEOUT_S, background_run, run_to_end, wait_until

from landmark.benchmarks.site import GallerySite, SiteConfig
from landmark.config.records import Status
from landmark.coordinator.run_stats import MILESTONES

pytestmark = [pytest.mark.browser, pytest.mark.ray]

MiB = 2**20
LANDMARK = [str(Path(sys.executable).with_name("landmark"))]  # the installed console script
EXAMPLE = Path(str(resources.files("landmark.config").joinpath("examples/gallery.yaml")))


def assert_exact(run, truth: list[dict[str, Any]]) -> None:
    """One record per container, none failed, every field right."""
    counts = Counter(run.ids)
    assert [i for i, n in counts.items() if n > 1] == [], "duplicated records"
    assert set(counts) == {item["id"] for item in truth}, "lost or unknown containers"
    failed = [(r["id"], r["errors"]) for r in run.records if r["status"] == Status.FAILED]
    assert failed == []
    score = run.score
    assert (score.accuracy, score.lost, score.duplicates) == (1.0, 0, 0), score.wrong


def refused(reason: str) -> bool:
    """A refused connection, as the browser says it (a page) or as robots.txt's fetch does
    (robots.txt is asked first: obeyed by default)."""
    return "ERR_CONNECTION_REFUSED" in reason or "ECONNREFUSED" in reason


def site_stats(site: GallerySite) -> dict[str, Any]:
    with urllib.request.urlopen(f"{site.url}api/stats", timeout=10) as response:
        return json.load(response)


# -- the full run, both modes ----------------------------------------------------
@pytest.mark.parametrize("mode", ["click", "link"])
def test_run_500_containers_matches_truth(ray_session, gallery_job, read_run, mode):
    config = SiteConfig(items=500, label_variants=True, missing_rate=0.05)
    with GallerySite(config) as site:
        job = gallery_job(site.url, **{"containers.open": mode, "budget.actors": 2})
        returned = run_to_end(job)
        truth = site.truth()
    finished = read_run(job, truth)

    assert_exact(finished, truth)
    summary = finished.summary
    assert returned["records"] == summary["records"] == config.items
    assert summary["completed"] is True
    assert {k: v for k, v in summary["by_status"].items() if v} == finished.by_status()
    assert summary["per_minute"] > 0
    assert summary["latency_ms"]["p95"] >= summary["latency_ms"]["p50"] > 0
    assert summary["dom_cache"]["hits"] > 0
    assert summary["peak_tree_pss"] > 0
    assert len(summary["actors"]) == 2  # both actors ran to the end and reported
    assert summary["actor_deaths"] == 0
    startup = summary["startup_s"]  # where the time to the first record went, in order
    assert list(startup) == list(MILESTONES), startup
    assert list(startup.values()) == sorted(startup.values())
    assert 0 <= startup["record_written"] <= summary["wall_s"]
    parts = summary["startup_parts_s"]  # the Ray processes and the browser's start, each timed
    assert set(parts) == {
        "coordinator_up", "actor_process", "actor_playwright", "actor_browser", "actor_pages"
    }, parts  # fmt: skip
    assert all(seconds > 0 for seconds in parts.values()), parts
    actor_start = sum(v for k, v in parts.items() if k.startswith("actor_"))
    assert actor_start <= startup["actor_ready"], (parts, startup)  # within "actor ready"
    pages = summary["pages"]  # the example job's budget: governed, from 4 pages up to 8
    assert (pages["governed"], pages["at_start"], pages["most"]) == (True, 4, 8), pages
    assert pages["moves"] == len(pages["log"]), pages
    assert all(4 <= n <= 8 for n in [*pages["now"].values(), *(m["pages"] for m in pages["log"])])


def test_a_file_listed_source_under_a_host_name_is_allowed_and_normalised(
    ray_session, gallery_job, read_run, tmp_path
):
    """Hosts of URLs given only in ``sources.file`` are allowed to the browsers (they were
    once blocked: every page failed with ERR_NAME_NOT_RESOLVED), and the file's URLs are
    normalised (upper-case scheme and host, spaces around them)."""
    config = SiteConfig(items=30, page_size=10)
    with GallerySite(config) as site:
        listed = site.url.replace("http://127.0.0.1", "  HTTP://LOCALHOST")
        urls = tmp_path / "urls.txt"
        urls.write_text(f"# the gallery, by name\n{listed}  \n")
        job = gallery_job(site.url, **{"sources.urls": [], "sources.file": str(urls)})
        assert job.source_urls() == [site.url.replace("127.0.0.1", "localhost")]
        run_to_end(job)
        truth = json.loads(json.dumps(site.truth()).replace("127.0.0.1", "localhost"))
    assert_exact(read_run(job, truth), truth)  # links are made absolute against the name


# -- crashes -------------------------------------------------------------------------
def test_run_survives_a_killed_actor_and_a_killed_browser(
    ray_session, gallery_job, read_run, session_processes, browser_main
):
    """Link mode, so the site's list-API count says when discovery is over: these kills hit
    extraction only (a crash during discovery is the next test)."""
    config = SiteConfig(items=300, latency_ms=20)
    with GallerySite(config) as site:
        job = gallery_job(site.url, **{"budget.actors": 2, "containers.open": "link"})
        with background_run(job) as outcome:
            wait_for_extraction(site, outcome, session_processes, attempted=100)
            victim, survivor = session_processes("ray::BrowserActor")[:2]
            browser = browser_main(survivor)
            assert browser is not None, "no Chromium found under the surviving actor"
            os.kill(victim.pid, signal.SIGKILL)  # as abrupt as a crash or the OOM killer
            os.kill(browser.pid, signal.SIGKILL)
        truth = site.truth()
    finished = read_run(job, truth)

    assert_exact(finished, truth)
    summary = finished.summary
    assert summary["actor_deaths"] >= 1
    assert summary["completed"] is True
    assert sum(stats["relaunches"] for stats in summary["actors"]) >= 1  # the survivor's browser
    # one replacement for one death: the run ends with as many actors as the job asked for
    names = sorted(stats["name"] for stats in summary["actors"])
    assert len(names) == job.budget.actors, names


def test_run_recovers_when_every_actor_and_the_metrics_actor_die_together(
    ray_session, gallery_job, read_run, session_processes
):
    config = SiteConfig(items=240, latency_ms=20)
    with GallerySite(config) as site:
        job = gallery_job(site.url, **{"budget.actors": 2, "containers.open": "link"})
        with background_run(job) as outcome:
            wait_for_extraction(site, outcome, session_processes, attempted=60)
            newest = sorted(session_processes("ray::BrowserActor"), key=lambda p: p.create_time())
            monitors = session_processes("ray::MetricsActor")
            for victim in [*newest[-2:], max(monitors, key=lambda p: p.create_time())]:
                os.kill(victim.pid, signal.SIGKILL)
        truth = site.truth()
    finished = read_run(job, truth)

    assert_exact(finished, truth)
    assert finished.summary["completed"] is True
    assert finished.summary["actor_deaths"] >= 2
    assert finished.summary["monitor_restarts"] >= 1


@pytest.mark.parametrize("victim", ["browsers", "actors"])
def test_run_survives_kills_during_discovery(
    ray_session, gallery_job, read_run, session_processes, browser_main, victim
):
    """Every browser (or every BrowserActor) dies while the gallery is still being scrolled
    (slow list pages): discovery must go on on a replacement that has started, not be
    written off as a failed source (an actor killed during discovery once left a
    replacement that was used before it had started: 548 of 600 items silently lost)."""
    config = SiteConfig(items=120, page_size=12, latency_ms=200, jitter="none")
    list_pages = -(-config.items // config.page_size)
    with GallerySite(config) as site:
        job = gallery_job(site.url, **{"budget.actors": 2, "containers.open": "link"})
        with background_run(job) as outcome:
            wait_for_site(
                site,
                lambda stats: 2 <= stats["requests"].get("api_items", 0) < list_pages - 2,
                outcome,
                lambda: len(session_processes("ray::BrowserActor")) >= 2,
            )
            actors = session_processes("ray::BrowserActor")
            targets = actors if victim == "actors" else [browser_main(a) for a in actors]
            assert all(targets), "an actor without a Chromium"
            for target in targets:
                os.kill(target.pid, signal.SIGKILL)
        truth = site.truth()
    finished = read_run(job, truth)

    source_records = [r for r in finished.records if r["id"].startswith("source:")]
    assert source_records == [], "the source was written off after a browser crash"
    assert_exact(finished, truth)


def wait_for_extraction(site, outcome, session_processes, attempted: int) -> None:
    """Discovery over (every list page served), ``attempted`` items opened, two actors up:
    from here a kill hits extraction only."""
    list_pages = -(-site.config.items // site.config.page_size)
    wait_for_site(
        site,
        lambda stats: (
            stats["items_attempted"] >= attempted
            and stats["requests"].get("api_items", 0) >= list_pages
        ),
        outcome,
        lambda: len(session_processes("ray::BrowserActor")) >= 2,
    )


def wait_for_site(site, condition, outcome, ready=lambda: True) -> None:
    """Block until the site's counters satisfy ``condition`` (and ``ready()``) mid-run."""
    wait_until(lambda: condition(site_stats(site)) and ready(), outcome, "the kill point")


# -- misbehaving site --------------------------------------------------------------
def test_retries_recover_every_failing_container(ray_session, gallery_job, read_run):
    config = SiteConfig(items=120, fail_rate=0.1, fail_attempts=1)
    with GallerySite(config) as site:
        job = gallery_job(site.url, **{"budget.actors": 2})
        run_to_end(job)
        truth = site.truth()
        served = site_stats(site)["failures_served"]
        finished = read_run(job, truth)

    failing = [item for item in truth if item["fails"]]
    assert failing, "the site config injected no failures"
    assert served >= len(failing)
    assert_exact(finished, truth)
    assert finished.summary["retries"] > 0
    by_id = {record["id"]: record for record in finished.records}
    assert all(by_id[item["id"]]["attempts"] >= 2 for item in failing)


# -- memory pressure ---------------------------------------------------------------
def test_shedding_under_memory_pressure_drops_nothing(ray_session, gallery_job, read_run):
    """Limits no node is ever under (1 and 2 MiB, whatever else the machine runs): the first
    verdict is shed, and the run must still finish everything at the floor of in-flight
    containers."""
    config = SiteConfig(items=60)
    with GallerySite(config) as site:
        job = gallery_job(
            site.url,
            **{
                "budget.actors": 2,
                "budget.memory_throttle": 1 * MiB,
                "budget.memory_shed": 2 * MiB,
                "budget.min_in_flight": 2,
            },
        )
        run_to_end(job)
        truth = site.truth()
    finished = read_run(job, truth)

    assert_exact(finished, truth)
    assert finished.summary["shed_events"] >= 1
    assert finished.summary["completed"] is True


def test_a_host_that_refuses_everything_is_given_up_in_bounded_time(
    ray_session, tmp_path, closed_port
):
    from landmark.config.job import JobSpec

    host = f"127.0.0.1:{closed_port}"
    job = JobSpec.model_validate(
        {
            "name": "dead-host",
            "sources": {"urls": [f"http://{host}/item/{i}" for i in range(40)]},
            "containers": {"open": "self"},
            "fields": [{"name": "title", "labels": ["Title"]}],
            "budget": {"actors": 1},
            "retries": {"breaker_failures": 10, "breaker_cooldown": "2s", "breaker_probes": 2},
            "output": {"dir": str(tmp_path / "out")},
        }
    )
    started = time.monotonic()
    summary = run_to_end(job)
    wall = time.monotonic() - started
    records = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").open()]

    assert len(records) == 40 and {r["status"] for r in records} == {Status.FAILED}
    assert all(refused(r["errors"][-1]["reason"]) for r in records)
    assert sum("gave up on" in r["errors"][-1]["reason"] for r in records) > 0
    assert list(summary["given_up"]) == [host]
    assert summary["completed"]
    assert wall < 120, f"a dead host held the run {wall:.0f}s"


# -- bad inputs ----------------------------------------------------------------------
def test_invalid_job_file_exits_2_naming_file_and_field(tmp_path):
    job_file = tmp_path / "bad.yaml"
    job_file.write_text(
        yaml.safe_dump(
            {
                "name": "bad",
                "sources": {"urls": ["http://127.0.0.1:1/"]},
                "fields": [{"name": "title", "lable": ["Title"]}],
                "budget": {"actors": "many"},
            }
        )
    )

    result = landmark(["run", str(job_file), "--quiet"], cwd=tmp_path, timeout=120)

    assert result.returncode == 2, result
    assert str(job_file) in result.stderr
    assert "fields[0].lable" in result.stderr
    assert "budget.actors" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_unreachable_source_gives_a_failed_discover_record(
    ray_session, tmp_path, closed_port, capsys
):
    from landmark.coordinator.cli import main

    source = f"http://127.0.0.1:{closed_port}/"
    job_file = tmp_path / "job.yaml"
    example = yaml.safe_load(EXAMPLE.read_text())
    example["sources"]["urls"] = [source]
    example["output"]["dir"] = str(tmp_path / "out")
    job_file.write_text(yaml.safe_dump(example))

    status = main(["run", str(job_file), "--quiet"])

    assert status == 0, capsys.readouterr()
    lines = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    [record] = [json.loads(line) for line in lines]
    assert record["status"] == Status.FAILED
    assert record["source"] == source
    assert record["errors"][0]["phase"] == "discover"
    reason = record["errors"][0]["reason"]
    assert refused(reason), reason  # the cause, not Ray's wrapper
    assert "\x1b[" not in reason, reason  # no terminal colour codes in a results file
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["discovery_failures"] == 1 and summary["records"] == 1


def test_demo_command_scores_100_percent_and_a_repeat_comes_from_the_cache(tmp_path):
    demo = ["demo", "--items", "60", "--quiet", "--out", str(tmp_path / "demo")]
    first = landmark(demo, cwd=tmp_path, timeout=RUN_TIMEOUT_S)
    records = (tmp_path / "demo" / "results.jsonl").read_text().splitlines()
    second = landmark(demo, cwd=tmp_path, timeout=RUN_TIMEOUT_S)

    for result in (first, second):
        assert result.returncode == 0, result
        assert "accuracy: 100.00%" in result.stdout, result.stdout
        assert "Traceback" not in result.stderr
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["record_cache"]["hit_ratio"] >= 0.95, summary["record_cache"]
    again = (tmp_path / "demo" / "results.jsonl").read_text().splitlines()

    def fields(lines: list[str]) -> dict[str, Any]:
        return {r["id"]: r["fields"] for r in map(json.loads, lines)}

    assert fields(again) == fields(records)  # the same records, served without a browser


# -- helpers -------------------------------------------------------------------------
def landmark(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """The ``landmark`` command in its own process, as a user runs it."""
    env = dict(os.environ)
    return subprocess.run(
        LANDMARK + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
