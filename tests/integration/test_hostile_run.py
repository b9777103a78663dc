"""Hostile pages through the whole run (real Ray, the Coordinator): an endless feed never keeps
a run going, its source is reported cut short with the reason, and what was found by then
is extracted; an actor that scrolls on past the discovery deadline is given up for it."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from run_helpers import background_run

from landmark.benchmarks.hostile import BY_NAME
from landmark.benchmarks.noop_actor import NoopActor
from landmark.benchmarks.site.hostile import HostileSite
from landmark.config.job import JobSpec
from landmark.coordinator.store import read_results

pytestmark = [pytest.mark.browser, pytest.mark.ray]


def records_of(job: JobSpec) -> list[dict]:
    return list(read_results(job.output.dir / job.output.results))


def test_an_endless_feed_is_cut_at_its_deadline_and_what_it_found_is_extracted(
    ray_session, tmp_path
):
    with HostileSite() as site:
        job = BY_NAME["endless-feed"].job(
            site.url, tmp_path / "out", **{"timeouts.discovery": "3s", "budget.pages_per_actor": 4}
        )
        started = time.monotonic()
        with background_run(job) as outcome:  # without the deadline: fails at RUN_TIMEOUT_S
            pass
        took = time.monotonic() - started
        summary, feed = outcome["summary"], site.url + "feed/"
    records = records_of(job)
    assert summary["completed"], summary.get("failure")
    [cut] = summary["discovery_cut"]
    assert (cut["source"], cut["kind"]) == (feed, "deadline"), cut
    assert f"discovery deadline 3s reached after {len(records)} containers" == cut["reason"]
    assert summary["discovery_cuts"] == 1 and summary["actor_deaths"] == 0, summary
    assert records and Counter(r["status"] for r in records) == {"ok": len(records)}
    assert len({r["id"] for r in records}) == len(records)
    assert took < 120, f"the run took {took:.0f}s"  # actor start + 3 s + the items found


def test_an_actor_that_scrolls_past_the_discovery_deadline_is_given_up(ray_session, tmp_path):
    """The NoopActor's ``endless`` script ignores the deadline, as a broken actor would:
    the Coordinator keeps it itself, one chunk's wait later, and the run still ends."""
    job = JobSpec.model_validate(
        {
            "name": f"endless-{time.monotonic_ns()}",
            "sources": {"urls": ["http://127.0.0.1:9/?endless=20"]},
            "containers": {"open": "link"},
            "fields": [{"name": "title", "labels": ["Title"]}],
            "budget": {"actors": 1, "pages_per_actor": 2},
            "timeouts": {"discovery": "2s", "navigation": "1s", "wait_min": "1s",
                         "wait_max": "1s", "lease_margin": "1s", "actor_start": "20s"},
            "output": {"dir": str(tmp_path / "out")},
            "cache": False,
        }
    )  # fmt: skip
    started = time.monotonic()
    with background_run(job, actor_class=NoopActor) as outcome:
        pass
    took = time.monotonic() - started
    summary = outcome["summary"]
    records = records_of(job)
    assert summary["completed"], summary.get("failure")
    [cut] = summary["discovery_cut"]
    assert cut["kind"] == "deadline" and "did not stop" in cut["reason"], cut
    assert summary["actor_deaths"] >= 1  # the one that would not stop was replaced
    assert records and {r["status"] for r in records} == {"ok"}
    assert len({r["id"] for r in records}) == len(records)
    assert took < 60, f"the run took {took:.0f}s"  # 2 s + one chunk's wait (3 s) + starts
