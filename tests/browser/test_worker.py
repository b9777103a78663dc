"""The BrowserWorker against real Chromium and the real Gallery site, without Ray.

Each worker launches its own browser (that is what the worker does in an
actor), so tests that need the same job share one worker per module; tests
that need a different job or site start their own and close it. Every record
is scored against the site's ground truth: a test passes only if every field
is right, every missing field is reported missing and no container is lost.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Any

import psutil
import pytest
from worker_helpers import (
    PageServer,
    bounded,
    discover_all,
    guarded,
    item_page,
    self_job,
    started_worker,
)

from landmark.actors.process_tree import pss_of, tree_pids
from landmark.actors.worker import BrowserWorker
from landmark.benchmarks.scoring import score
from landmark.benchmarks.site import GallerySite, SiteConfig
from landmark.benchmarks.site.data import is_slow
from landmark.config.job import JobSpec
from landmark.config.loading import load_job
from landmark.config.records import Container, Record, Status

pytestmark = pytest.mark.browser

EXAMPLE_JOB = Path(str(resources.files("landmark.config").joinpath("examples/gallery.yaml")))
BATCH = 8
REQUIRED = {f.name for f in load_job(EXAMPLE_JOB).fields if f.required}


# -- helpers -------------------------------------------------------------------
def gallery_job(url: str, tmp: Path, **overrides: Any) -> JobSpec:
    """The example job (the one users start from) pointed at ``url``."""
    return load_job(
        EXAMPLE_JOB,
        {"sources.urls": [url], "output.dir": str(tmp), "budget.pages_per_actor": 4} | overrides,
    )


async def extract_in_batches(worker: BrowserWorker, containers: list[Container]) -> list[Record]:
    records: list[Record] = []
    for start in range(0, len(containers), BATCH):
        records += await bounded(worker.extract(containers[start : start + BATCH]))
    return records


def as_dicts(records: list[Record]) -> list[dict[str, Any]]:
    return [asdict(record) for record in records]


def assert_matches_truth(truth: list[dict], records: list[Record]) -> None:
    """Every present field equals the truth; every missing one is None with an error naming it;
    the status is partial exactly when a field the job requires is missing."""
    failed = [(r.id, r.position, r.errors, r.timings) for r in records if r.status == Status.FAILED]
    assert failed == [], failed
    result = score(truth, as_dicts(records))
    assert result.wrong == [], result.wrong
    assert (result.accuracy, result.lost, result.duplicates, result.unknown_ids) == (1.0, 0, 0, 0)
    by_id = {record.id: record for record in records}
    for item in truth:
        record = by_id[item["id"]]
        assert record.position == item["position"], record
        for name, want in item["fields"].items():
            if want is None:
                assert record.fields[name] is None, (record.id, name)
                assert any(problem.field == name for problem in record.errors), record.errors
        missing_required = any(item["fields"][name] is None for name in REQUIRED)
        assert record.status == (Status.PARTIAL if missing_required else Status.OK), record


def link_container(site: GallerySite, item: dict) -> Container:
    """A container as discovery makes it in link mode, built straight from the truth."""
    return Container(
        id=item["id"],
        source=site.url,
        position=item["position"],
        open="link",
        url=f"{site.url}item/{item['id']}",
    )


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def browser_mains() -> set[int]:
    """Main Chromium processes under this test process (not its renderers or helpers)."""
    mains = set()
    for process in psutil.Process(os.getpid()).children(recursive=True):
        try:
            name = process.name().lower()
            parent = process.parent()
            parent_name = parent.name().lower() if parent else ""
        except psutil.Error:
            continue
        if "chrom" in name and "crashpad" not in name and "chrom" not in parent_name:
            mains.add(process.pid)
    return mains


# -- fixtures --------------------------------------------------------------------
MAIN_SITE = SiteConfig(items=300, label_variants=True, missing_rate=0.05)


@pytest.fixture(scope="module")
def main_site() -> Iterator[GallerySite]:
    with GallerySite(MAIN_SITE) as site:
        yield site


@pytest.fixture(scope="module", params=["click", "link"])
def mode_worker(request, run, found_browser, main_site, tmp_path_factory):
    """One worker per open mode, shared by the tests of this module that read the main site."""
    job = gallery_job(
        main_site.url,
        tmp_path_factory.mktemp(request.param),
        # In a test the worker weighs this whole process's tree (the session's Ray and
        # browsers too, ~1.6 GB seen): a bound well above that, and well below the summed
        # RSS that counts Chromium's shared pages once per process (about 3x).
        **{"containers.open": request.param, "browser.recycle_rss": 3 * 2**30},
    )
    with started_worker(run, job, found_browser) as worker:
        yield worker


# -- the main site, both modes ------------------------------------------------
def test_every_field_matches_the_truth(run, mode_worker, main_site):
    chunks = run(discover_all(mode_worker, main_site.url))
    containers = [c for chunk in chunks for c in chunk]
    assert len(containers) == MAIN_SITE.items

    records = run(extract_in_batches(mode_worker, containers))

    assert [r.id for r in records] == [c.id for c in containers]  # one per container, in order
    truth = main_site.truth()
    assert_matches_truth(truth, records)
    assert any(None in item["fields"].values() for item in truth)  # missing fields were tested


def test_a_container_that_waited_for_a_page_says_so_apart_from_its_work(
    run, mode_worker, main_site
):
    """A batch of twice as many containers as pages: half get a page at once, half wait for
    one. That wait is the record's ``queued``, kept out of the time with a page in hand
    (``wait``), so a queue in front of the pages never reads as a slow site."""
    pages = mode_worker.job.budget.pages_per_actor
    chunks = run(discover_all(mode_worker, main_site.url))
    batch = [c for chunk in chunks for c in chunk][: 2 * pages]

    records = run(mode_worker.extract(batch))

    queued = sorted(record.timings["queued"] for record in records)
    assert queued[pages] > 1.0, queued  # the second half waited for a page to come free
    assert queued[pages] > 10 * queued[pages - 1], queued  # the first half did not wait
    for record in records:
        parts = record.timings["queued"] + record.timings["wait"]
        assert parts <= record.timings["total"] + 0.1, record.timings


def test_dom_cache_hits_and_learner_has_timings(run, mode_worker, main_site):
    """Runs after the full extraction above on the same worker."""
    if mode_worker.stats()["containers"] == 0:  # run on its own
        chunks = run(discover_all(mode_worker, main_site.url))
        run(extract_in_batches(mode_worker, [c for chunk in chunks for c in chunk][:BATCH]))

    stats = mode_worker.stats()

    assert stats["cache"]["hits"] > 0, stats["cache"]
    timings = stats["learner"]["timings"]
    settle = [value["n"] for key, value in timings.items() if key.endswith(" settle")]
    assert settle and settle[0] > 0, timings
    assert stats["learner"]["chains"], stats["learner"]
    assert stats["in_flight"] == 0


def test_no_recycle_while_the_tree_is_under_its_memory_bound(run, mode_worker, main_site):
    """Runs after the full extraction above: 300 containers, far from recycle_after (1000).

    A recycle reloads every page (click mode re-scrolls the gallery), so recycling a tree
    that is not actually over its bound costs throughput for nothing."""
    if mode_worker.stats()["containers"] < 50:  # run on its own
        chunks = run(discover_all(mode_worker, main_site.url))
        run(extract_in_batches(mode_worker, [c for chunk in chunks for c in chunk]))
    bound = mode_worker.job.browser.recycle_rss
    # this whole test process (every browser in it) really uses less than one worker's bound
    assert pss_of(tree_pids(os.getpid())) < bound

    stats = mode_worker.stats()

    assert stats["recycles"] == 0, mode_worker.session.counters.recycle_reasons


# -- discovery -----------------------------------------------------------------
def test_virtualised_gallery_yields_every_container_once(run, worker_for, tmp_path):
    config = SiteConfig(items=200, virtualize=True)
    with GallerySite(config) as site:
        worker = worker_for(gallery_job(site.url, tmp_path))
        chunks = run(discover_all(worker, site.url))
        truth = site.truth()

    containers = [c for chunk in chunks for c in chunk]
    assert [c.id for c in containers] == [item["id"] for item in truth]
    assert [c.position for c in containers] == list(range(config.items))
    assert len(chunks) >= 2  # streamed in chunks, not one list at the end


@pytest.mark.parametrize("virtualize", [False, True])
def test_discovery_sends_each_card_once_not_every_card_every_step(
    run, worker_for, tmp_path, monkeypatch, virtualize
):
    """A step that sent every card in the DOM made a long gallery's discovery quadratic (a
    10,000-item gallery's actor spent its CPU decoding cards it had already seen, while its
    pages waited). Each card crosses to Python once; a card a virtualised list dropped and
    brought back may come again (Python's own set drops it)."""
    from landmark.actors.discovery import Discovery

    config = SiteConfig(items=600, virtualize=virtualize)
    received: list[int] = []
    original = Discovery._new_containers

    def counting(self, source, cards, seen):
        received.append(len(cards))
        return original(self, source, cards, seen)

    monkeypatch.setattr(Discovery, "_new_containers", counting)
    with GallerySite(config) as site:
        worker = worker_for(gallery_job(site.url, tmp_path))
        chunks = run(discover_all(worker, site.url))
        truth = site.truth()

    assert [c.id for chunk in chunks for c in chunk] == [item["id"] for item in truth]
    assert len(received) > 10  # many steps: the gallery grew screen by screen
    bound = config.items if not virtualize else 2 * config.items
    assert sum(received) <= bound, (sum(received), len(received))


def test_unreachable_source_fails_clearly(run, worker_for, tmp_path):
    source = f"http://127.0.0.1:{closed_port()}/"
    worker = worker_for(gallery_job(source, tmp_path))

    with pytest.raises(RuntimeError, match=r"discovery of http://127\.0\.0\.1:") as caught:
        run(discover_all(worker, source))

    # robots.txt is asked first (obeyed by default): its fetch is refused the same way
    assert "ECONNREFUSED" in str(caught.value) or "ERR_CONNECTION_REFUSED" in str(caught.value)
    assert worker.stats()["in_flight"] == 0  # the page went back


# -- failures ------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["click", "link"])
def test_failing_item_fails_retryably_then_succeeds(run, worker_for, tmp_path, mode):
    config = SiteConfig(items=24, fail_rate=1.0, fail_attempts=1)
    with GallerySite(config) as site:
        worker = worker_for(gallery_job(site.url, tmp_path, **{"containers.open": mode}))
        containers = [c for chunk in run(discover_all(worker, site.url)) for c in chunk]
        first = guarded(run, worker.extract(containers[:2]))
        second = guarded(run, worker.extract(containers[:2]))
        truth = site.truth()[:2]

    for record in first:
        assert record.status == Status.FAILED, record
        assert record.retryable is True, record
        [problem] = record.errors
        assert problem.phase in {"open", "wait"} and problem.reason, problem
        assert "500" in problem.reason or "fail" in problem.reason.lower(), problem
    assert_matches_truth(truth, second)


def test_killed_browser_fails_in_flight_containers_then_relaunches(run, worker_for, tmp_path):
    config = SiteConfig(items=48, latency_ms=300, jitter="none")
    with GallerySite(config) as site:
        before = browser_mains()
        job = gallery_job(site.url, tmp_path, **{"containers.open": "link"})
        worker = worker_for(job)
        [browser_pid] = browser_mains() - before
        truth = site.truth()
        batch = [link_container(site, item) for item in truth[:8]]

        async def kill_mid_batch() -> list[Record]:
            task = asyncio.ensure_future(worker.extract(batch))
            pages = job.budget.pages_per_actor
            while worker.stats()["in_flight"] < pages and not task.done():
                await asyncio.wait({task}, timeout=0.02)  # every page busy, or the batch done
            assert not task.done(), "the batch finished before the browser could be killed"
            os.kill(browser_pid, signal.SIGKILL)
            return await task

        records = guarded(run, kill_mid_batch())
        after = guarded(run, worker.extract([link_container(site, item) for item in truth[8:12]]))

    assert [r.id for r in records] == [c.id for c in batch]
    failed = [r for r in records if r.status == Status.FAILED]
    assert failed, "no container was in flight when the browser died"
    for record in failed:
        assert record.retryable, record
        assert "browser" in record.errors[0].reason.lower(), record.errors
    ok = [r for r in records if r.status != Status.FAILED]
    by_id = {item["id"]: item for item in truth}
    for record in ok:
        assert record.fields == by_id[record.id]["fields"], record
    assert_matches_truth(truth[8:12], after)
    stats = worker.stats()
    assert stats["relaunches"] == 1, stats
    assert stats["in_flight"] == 0


def test_container_deadline_fails_the_container_not_the_worker(run, worker_for, tmp_path):
    # slow items take 10 s, quick ones 50 ms: a 4 s deadline parts them even on a loaded machine
    config = SiteConfig(items=40, latency_ms=50, jitter="none", slow_rate=0.5, slow_factor=200)
    with GallerySite(config) as site:
        job = gallery_job(
            site.url, tmp_path, **{"containers.open": "link", "timeouts.container": "4s"}
        )
        worker = worker_for(job)
        truth = site.truth()
        slow = next(item for item in truth if is_slow(config, item["position"]))
        quick = next(item for item in truth if not is_slow(config, item["position"]))

        [late] = guarded(run, worker.extract([link_container(site, slow)]))
        [fine] = guarded(run, worker.extract([link_container(site, quick)]))
        run(worker.close())  # before the site stops: it would wait for the slow response

    assert late.status == Status.FAILED and late.retryable, late
    assert "deadline" in late.errors[0].reason, late.errors
    assert_matches_truth([quick], [fine])
    assert worker.stats()["in_flight"] == 0


# -- hostile pages ---------------------------------------------------------------
def test_js_dialog_is_dismissed(run, worker_for, tmp_path):
    pages = {"/": item_page("Alerted", "<script>alert('hello'); confirm('sure?');</script>")}
    with PageServer(pages) as server:
        worker = worker_for(self_job(server.url, tmp_path))
        [chunk] = run(discover_all(worker, server.url))
        [record] = guarded(run, worker.extract(chunk))

    assert record.status == Status.OK, record
    assert record.fields == {"title": "Alerted"}
    assert worker.stats()["dialogs_dismissed"] >= 1


def test_requests_to_other_hosts_are_blocked(run, worker_for, tmp_path, page):
    """A page on 127.0.0.1 asks for a script by another name (localhost) and one by another
    address (127.0.0.2), and fetches from the latter. Both listeners are on loopback, so even
    a leak would stay on this machine; a plain browser (the control) does reach them.
    (Scripts, not images: the job's browser fetches no image at all; and a script in the
    head holds the page until its request has failed, so the failure is heard before the
    container is read, where a stylesheet's came after it now and then.)"""
    with (
        PageServer({"/x.js": "", "/data": "{}"}) as by_name,
        PageServer({"/x.js": "", "/data": "{}"}, host="127.0.0.2") as by_address,
    ):
        port = by_name.url.rsplit(":", 1)[1].strip("/")
        extra = (
            f"<script src='http://localhost:{port}/x.js'></script>"
            f"<script src='{by_address.url}x.js'></script>"
            f"<script>fetch('{by_address.url}data').catch(() => {{}})</script>"
        )
        with PageServer({"/": item_page("Fenced", extra)}) as server:
            worker = worker_for(self_job(server.url, tmp_path))
            [chunk] = run(discover_all(worker, server.url))
            [record] = guarded(run, worker.extract(chunk))
            own_requests = list(server.requests)
            leaked = by_name.requests + by_address.requests
            run(page.goto(server.url, wait_until="load"))  # the control: no job, no fence
        control = by_name.requests + by_address.requests

    assert record.status == Status.OK, record
    assert record.fields == {"title": "Fenced"}
    assert own_requests  # the page's own host was reached
    assert leaked == []  # nothing reached another host
    assert worker.stats()["blocked_requests"] >= 2
    assert record.blocked == ["127.0.0.2", "localhost"]  # named, for the run's warning
    assert "/x.js" in control, control  # without the fence both would have been reached


# -- recycling -------------------------------------------------------------------
def test_recycles_after_n_containers_and_stays_correct(run, worker_for, tmp_path):
    config = SiteConfig(items=25, label_variants=True, missing_rate=0.05)
    with GallerySite(config) as site:
        worker = worker_for(gallery_job(site.url, tmp_path, **{"browser.recycle_after": 10}))
        containers = [c for chunk in run(discover_all(worker, site.url)) for c in chunk]
        records = run(extract_in_batches(worker, containers))
        truth = site.truth()

    assert_matches_truth(truth, records)
    stats = worker.stats()
    assert stats["recycles"] >= 2, stats
    assert stats["relaunches"] == 0, stats


def test_a_context_whose_fresh_working_set_is_over_the_bound_is_not_recycled_over_again(
    run, worker_for, tmp_path
):
    """Observed on a 10,000-card gallery in click mode: past ~5,000 cards each page holds
    that many cards, a fresh context needs as much memory to reach the next one, and the
    PSS bound recycled each actor about once a minute, every page scrolling back down each
    time (the run fell from ~20 to ~6 containers/s). Here the bound is the least allowed
    and the whole test process is far over it: only growth past a fresh context's first
    reading may recycle, and 150 containers (three readings) grow nowhere near that."""
    config = SiteConfig(items=150)
    with GallerySite(config) as site:
        job = gallery_job(site.url, tmp_path, **{"browser.recycle_rss": 64 * 2**20})
        worker = worker_for(job)
        containers = [c for chunk in run(discover_all(worker, site.url)) for c in chunk]
        records = run(extract_in_batches(worker, containers))
        truth = site.truth()

    assert_matches_truth(truth, records)
    stats = worker.stats()
    assert stats["recycles"] == 0, worker.session.counters.recycle_reasons
    assert stats["recycle_bound"] > 64 * 2**20, stats  # the fresh reading raised it


def test_a_seek_cut_short_by_the_deadline_keeps_its_place_for_the_next_attempt(
    run, worker_for, tmp_path
):
    """Observed on a 10,000-card gallery in click mode: past ~9,000 cards a fresh page (after
    a recycle) needed longer than a container's deadline to scroll down to its card. The
    deadline cut the seek from outside, the page was replaced, its successor started from
    the top again, and the run stalled at 9,457 of 10,000. Here the last of 960 cards is 40
    list loads of 100 ms down, and a container may take 3 s: the seek stops itself in time,
    the page is kept, and a later attempt goes on from where the last one stopped."""
    config = SiteConfig(items=960, latency_ms=100, jitter="none")
    with GallerySite(config) as site:
        job = gallery_job(
            site.url, tmp_path, **{"timeouts.container": "3s", "budget.pages_per_actor": 1}
        )
        worker = worker_for(job)
        truth = site.truth()
        item = truth[-1]  # not discovered: discovery's scrolling would do the seek's work
        last = Container(id=item["id"], source=site.url, position=len(truth) - 1, open="click")
        attempts: list[Record] = []
        while len(attempts) < 8 and (not attempts or attempts[-1].status != Status.OK):
            attempts += run(extract_in_batches(worker, [last]))

    reasons = [problem.reason for record in attempts for problem in record.errors]
    assert attempts[-1].status == Status.OK, reasons
    assert_matches_truth(truth[-1:], attempts[-1:])
    assert len(attempts) >= 2 and "not reached in time" in reasons[0], reasons
    assert worker.stats()["pages_replaced"] == 0  # each cut-short seek kept its page


def test_set_pages_opens_pages_on_demand_and_caps_pages_at_work(run, worker_for, tmp_path):
    """The page governor's lever: an actor starts on ``pages_at_start`` pages, opens more
    when asked, and with fewer asked keeps them open but never works more at once."""
    config = SiteConfig(items=24, label_variants=True, missing_rate=0.05)
    overrides = {"budget.pages_per_actor": 4, "budget.pages_at_start": 2}
    with GallerySite(config) as site:
        worker = worker_for(gallery_job(site.url, tmp_path, **overrides))
        session = worker.session
        assert (worker.stats()["pages"], worker.stats()["pages_open"]) == (2, 2)
        most_at_once = 0
        acquire = session.acquire

        async def counted(gallery):
            nonlocal most_at_once
            slot = await acquire(gallery)
            most_at_once = max(most_at_once, session.stats()["in_flight"])
            return slot

        session.acquire = counted
        containers = [c for chunk in run(discover_all(worker, site.url)) for c in chunk]
        first = run(bounded(worker.extract(containers[:8])))
        at_two = most_at_once
        assert guarded(run, worker.set_pages(9)) == 4  # never more than pages_per_actor
        assert (worker.stats()["pages"], worker.stats()["pages_open"]) == (4, 4)
        most_at_once = 0
        second = run(bounded(worker.extract(containers[8:16])))
        at_four = most_at_once
        assert guarded(run, worker.set_pages(1)) == 1
        most_at_once = 0
        third = run(bounded(worker.extract(containers[16:])))
        truth = site.truth()

    assert_matches_truth(truth, first + second + third)
    assert (at_two, at_four, most_at_once) == (2, 4, 1)
    assert worker.stats()["pages_open"] == 4  # idled, not closed: they come back at once


# -- start-up ----------------------------------------------------------------------
def test_a_browser_that_hangs_while_launching_fails_the_start_in_bounded_time(run, tmp_path):
    """A browser that never answers (it died or hung while launching) must not hold the
    actor's start for ever: the coordinator counts it as a failed start and tries again."""
    from landmark.actors.browser import FoundBrowser

    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\nexec sleep 60\n")
    fake.chmod(0o755)
    # The launch has the actor's start deadline (not a page's navigation deadline).
    job = gallery_job("http://127.0.0.1:9/", tmp_path, **{"timeouts.actor_start": "3s"})
    worker = BrowserWorker(job, "hung-start", found=FoundBrowser(fake, "explicit"))
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        guarded(run, worker.start())
    took = time.monotonic() - started
    run(worker.close())
    assert took < 20, f"start took {took:.0f}s"
    leftovers = [p for p in psutil.Process().children(recursive=True) if "sleep" in p.name()]
    for process in leftovers:
        process.kill()
