"""The BrowserActor as a real Ray actor with a real Chromium: start, streaming discovery,
extraction, stats while busy, close.

The site is slow on purpose (list pages and item APIs wait ~300 ms), so that
"a chunk arrived before discovery ended" and "stats answered while an extract
was running" are facts the test observes, not races it hopes to win.
"""

from __future__ import annotations

import os
import time
from typing import Any

import psutil
import pytest

from landmark.benchmarks.scoring import score
from landmark.benchmarks.site import GallerySite, SiteConfig
from landmark.config.records import Status

pytestmark = [pytest.mark.browser, pytest.mark.ray]

CONFIG = SiteConfig(
    items=96, page_size=12, latency_ms=300, jitter="none", label_variants=True, missing_rate=0.05
)
TIMEOUT_S = 120.0


def poll_stats_while_running(ray, actor, ref) -> list[dict[str, Any]]:
    """Ask the control group for stats until ``ref`` is done; every answer, in order."""
    answers = []
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        answers.append(ray.get(actor.stats.remote(), timeout=TIMEOUT_S))
        ready, _ = ray.wait([ref], timeout=0.05)
        if ready:
            return answers
    pytest.fail(f"extract did not finish within {TIMEOUT_S}s")


def test_browser_actor_discovers_extracts_and_answers_stats_while_busy(
    ray_session, gallery_job, tmp_path
):
    ray = ray_session
    from landmark.actors.browser_actor import BrowserActor

    with GallerySite(CONFIG) as site:
        job = gallery_job(site.url)
        truth = site.truth()
        actor = BrowserActor.options(num_cpus=1).remote(job, "actor-under-test", str(tmp_path))
        try:
            started = ray.get(actor.start.remote(), timeout=TIMEOUT_S)
            assert started["name"] == "actor-under-test"
            assert started["pid"] != os.getpid()  # it runs in its own worker process
            assert ray.get(actor.ping.remote(), timeout=TIMEOUT_S) == "actor-under-test"
            # At the normal priority, and so the Playwright driver it started: at Ray's
            # default worker niceness (15) both lost the CPU to Chromium, which raises its own.
            driver = [p for p in psutil.Process(started["pid"]).children() if "node" in p.name()]
            assert started["nice"] == 0 and [p.nice() for p in driver] == [0]

            chunks, discovered_at_first_chunk = [], None
            for ref in actor.discover.remote(site.url):
                chunks.append(ray.get(ref, timeout=TIMEOUT_S))
                if discovered_at_first_chunk is None:
                    stats = ray.get(actor.stats.remote(), timeout=TIMEOUT_S)
                    discovered_at_first_chunk = stats["discovered"]
            containers = [c for chunk in chunks for c in chunk]

            first = containers[:12]
            running = actor.extract.remote(first)
            answers = poll_stats_while_running(ray, actor, running)
            records = ray.get(running, timeout=TIMEOUT_S)
            records += ray.get(actor.extract.remote(containers[12:24]), timeout=TIMEOUT_S)
            final = ray.get(actor.stats.remote(), timeout=TIMEOUT_S)

            browsers_before_close = browser_processes(started["pid"])
            ray.get(actor.close.remote(), timeout=TIMEOUT_S)
            browsers_after_close = browser_processes(started["pid"])
        finally:
            ray.kill(actor)

    # discovery streamed: several chunks, the first while discovery was still going
    assert len(chunks) >= 2, [len(chunk) for chunk in chunks]
    assert discovered_at_first_chunk < CONFIG.items
    assert [c.id for c in containers] == [item["id"] for item in truth]
    assert [c.position for c in containers] == list(range(CONFIG.items))

    # stats answered from the control group while the extract held the pages
    assert any(answer["in_flight"] > 0 for answer in answers), answers

    # the records are right
    assert [r.id for r in records] == [c.id for c in containers[:24]]
    failed = [(r.id, r.errors) for r in records if r.status == Status.FAILED]
    assert failed == []
    result = score(truth[:24], [r.to_json_dict() for r in records])
    assert (result.accuracy, result.lost, result.duplicates) == (1.0, 0, 0), result.wrong
    assert {r.actor for r in records} == {"actor-under-test"}
    assert final["containers"] == 24 and final["in_flight"] == 0
    assert final["discovered"] == CONFIG.items

    # close() shut the browser down
    assert browsers_before_close, "no Chromium under the actor before close()"
    assert browsers_after_close == []


def browser_processes(pid: int) -> list[int]:
    """Chromium processes under the actor's worker process."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []
    alive = []
    for child in children:
        try:
            if "chrom" in child.name().lower() and child.status() != psutil.STATUS_ZOMBIE:
                alive.append(child.pid)
        except psutil.Error:
            continue
    return alive
