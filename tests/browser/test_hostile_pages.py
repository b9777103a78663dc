"""Pages that never answer, downloads that stall, trickle or overflow, redirects off the
job's hosts, pages that navigate themselves, spawn popups, raise dialogs or weigh 10 MB,
galleries that never end: each is bounded by the job's own deadlines, fails only its own
container with a reason that says what happened (keeping what was already read), leaves no
part file behind, and does not poison the next container.

The later tests run the scenarios of ``landmark bench hostile`` (``benchmarks/hostile.py``)
against the hostile site, with this file's short deadlines."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from worker_helpers import PageServer, discover_all, guarded, item_page, self_job

from landmark.actors.discovery import DiscoveryError
from landmark.actors.protocol import CutShort
from landmark.actors.session import CLOSE_DEADLINE_S
from landmark.benchmarks.hostile import BY_NAME
from landmark.benchmarks.site.hostile import HostileSite
from landmark.config.records import Container, Record, Status

pytestmark = pytest.mark.browser

FAST = {
    "timeouts.navigation": "3s",
    "timeouts.container": "4s",
    "timeouts.wait": "2s",
    "timeouts.wait_min": "1s",
    "timeouts.discovery_idle": "1s",
}
SPIN_SOON = "<script>setTimeout(() => { for (;;) {} }, 300)</script>"
SPIN_ON_LOAD = "<script>addEventListener('DOMContentLoaded', () => { for (;;) {} })</script>"


def stall(handler) -> None:
    """Headers and ten bytes, then nothing until the server closes."""
    handler.send_response(200)
    handler.send_header("Content-Type", "image/png")
    handler.send_header("Content-Length", "1000000")
    handler.end_headers()
    handler.wfile.write(b"x" * 10)
    handler.wfile.flush()
    handler.server.closing.wait(60)


def trickle(handler) -> None:
    """One byte every 0.2 s: never idle long enough for the idle timeout to fire."""
    handler.send_response(200)
    handler.send_header("Content-Type", "image/png")
    handler.end_headers()
    while not handler.server.closing.wait(0.2):
        handler.wfile.write(b"x")
        handler.wfile.flush()


def huge(handler) -> None:
    """20 MiB of zeros, announced as such."""
    handler.send_response(200)
    handler.send_header("Content-Type", "image/png")
    handler.send_header("Content-Length", str(20 * 2**20))
    handler.end_headers()
    chunk = b"\0" * 2**16
    for _ in range(20 * 16):
        handler.wfile.write(chunk)


def download_page(target: str) -> str:
    return item_page("Kept", f"</head><body><a href='{target}'>Download</a><head>")


def download_job(url: str, tmp: Path, **overrides: Any):
    overrides = {
        "fields": [
            {"name": "title", "labels": ["Title"]},
            {"name": "image", "labels": ["Download"], "relation": "attr", "attr": "href",
             "type": "url"},
        ],
        "download": {"field": "image", "idle": "1s", "timeout": "3s", "max_bytes": "1MiB"},
        **FAST,
        "timeouts.container": "10s",  # the download's own deadlines decide, not this one
        **overrides,
    }  # fmt: skip
    return self_job(url, tmp, **overrides)


def test_a_gallery_whose_script_never_returns_fails_discovery_in_bounded_time(
    run, worker_for, tmp_path
):
    gallery = "<div data-id='a'><a href='/item/a'>A</a></div>" + SPIN_SOON
    pages = {"/": gallery, "/ok": item_page("Fine")}
    with PageServer(pages) as server:
        job = self_job(server.url, tmp_path, **{"containers.open": "link", **FAST})
        worker = worker_for(job)
        started = time.monotonic()
        with pytest.raises(DiscoveryError, match=r"stopped answering|failed"):
            guarded(run, discover_all(worker, server.url))
        took = time.monotonic() - started
        [record] = guarded(run, worker.extract([Container.for_page(server.url + "ok", 0)]))
    assert took < 30, f"discovery held the worker {took:.0f}s"
    assert record.status == Status.OK and record.fields == {"title": "Fine"}, record


def test_a_page_that_hangs_fails_its_container_and_not_the_next(run, worker_for, tmp_path):
    pages = {"/spin": item_page("Never", SPIN_ON_LOAD), "/ok": item_page("Fine")}
    with PageServer(pages) as server:
        worker = worker_for(self_job(server.url, tmp_path, **FAST))
        [hung] = guarded(run, worker.extract([Container.for_page(server.url + "spin", 0)]))
        [fine] = guarded(run, worker.extract([Container.for_page(server.url + "ok", 1)]))
    assert hung.status == Status.FAILED and hung.retryable
    reason = hung.errors[0].reason
    assert "deadline" in reason or "Timeout" in reason, hung.errors
    assert fine.status == Status.OK and fine.fields == {"title": "Fine"}, fine
    assert worker.stats()["pages_replaced"] >= 1


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        (stall, "stalled: no data for 1s"),
        (trickle, "took longer than 3s"),
        (huge, "over download.max_bytes"),
    ],
)
def test_a_failed_download_keeps_the_fields_and_leaves_no_file(
    run, worker_for, tmp_path, route, reason
):
    with PageServer({"/": download_page("/media.png"), "/media.png": route}) as server:
        worker = worker_for(download_job(server.url, tmp_path))
        [chunk] = run(discover_all(worker, server.url))
        started = time.monotonic()
        [record] = guarded(run, worker.extract(chunk))
        took = time.monotonic() - started
    assert record.status == Status.PARTIAL, record
    assert record.fields["title"] == "Kept"
    [problem] = [p for p in record.errors if p.phase == "download"]
    assert reason in problem.reason, problem
    assert record.download is None
    assert list((tmp_path / "downloads").glob("*")) == [], "a part of the file stayed on disk"
    assert took < 10, f"the download held its container {took:.1f}s"


def test_a_download_from_another_host_is_refused(run, worker_for, tmp_path):
    with PageServer({"/": download_page("http://127.0.0.2:9/media.png")}) as server:
        worker = worker_for(download_job(server.url, tmp_path))
        [chunk] = run(discover_all(worker, server.url))
        [record] = guarded(run, worker.extract(chunk))
    assert record.status == Status.PARTIAL and record.fields["title"] == "Kept"
    assert any("not allowed" in p.reason and "allow_domains" in p.reason for p in record.errors)


# -- the hostile site (benchmarks/site/hostile.py), scenario by scenario -------------------
def huge_undeclared(handler) -> None:
    """4 MiB with no Content-Length: too large is only found by counting."""
    handler.send_response(200)
    handler.send_header("Content-Type", "image/png")
    handler.end_headers()
    chunk = b"\0" * 2**16
    for _ in range(4 * 16):
        handler.wfile.write(chunk)


def test_an_unannounced_oversize_download_is_cut_while_counting(run, worker_for, tmp_path):
    pages = {"/": download_page("/media.png"), "/media.png": huge_undeclared}
    with PageServer(pages) as server:
        worker = worker_for(download_job(server.url, tmp_path))
        [chunk] = run(discover_all(worker, server.url))
        [record] = guarded(run, worker.extract(chunk))
    assert record.status == Status.PARTIAL and record.fields["title"] == "Kept", record
    [problem] = [p for p in record.errors if p.phase == "download"]
    assert "grew over download.max_bytes" in problem.reason, problem
    assert list((tmp_path / "downloads").glob("*")) == []


@pytest.fixture(scope="module")
def hostile():
    with HostileSite() as site:
        yield site


def scenario_job(name: str, site: HostileSite, tmp: Path, **overrides: Any):
    """The bench's job for one scenario, with this file's short deadlines and one page."""
    return BY_NAME[name].job(site.url, tmp, **{**FAST, "budget.pages_per_actor": 1, **overrides})


def extract_pages(run, worker, site: HostileSite, *paths: str) -> list[Record]:
    """Each path as its own container, one after the other, in the same page."""
    records = []
    for position, path in enumerate(paths):
        container = Container.for_page(site.url.rstrip("/") + path, position)
        records += guarded(run, worker.extract([container]))
    return records


@pytest.mark.parametrize(
    ("scenario", "path", "said"),
    [
        ("redirect-server", "/redirect/server", "redirected off the job's hosts"),
        ("redirect-script", "/redirect/script", "navigated off the job's hosts"),
    ],
)
def test_a_page_sent_off_site_fails_its_container_and_says_where(
    run, worker_for, tmp_path, hostile, scenario, path, said
):
    """A server's 302, or a script's ``location =``, to a host outside the job."""
    worker = worker_for(scenario_job(scenario, hostile, tmp_path))
    [record, fine] = extract_pages(run, worker, hostile, path, "/dialogs/9")
    assert record.status == Status.FAILED and not record.retryable, record
    reason = record.errors[0].reason
    assert f"{said}, to http://localhost:" in reason, reason
    assert fine.status == Status.OK, fine


def test_a_page_that_keeps_navigating_itself_fails_and_leaves_the_next_alone(
    run, worker_for, tmp_path, hostile
):
    worker = worker_for(scenario_job("self-navigating", hostile, tmp_path))
    started = time.monotonic()
    [record] = extract_pages(run, worker, hostile, "/selfnav/")
    took = time.monotonic() - started
    [fine] = extract_pages(run, worker, hostile, "/dialogs/9")
    assert record.status == Status.FAILED and record.retryable, record
    assert "kept navigating itself" in record.errors[0].reason, record.errors
    assert took < 4 + 2, f"held its container {took:.1f}s"  # the container's deadline
    assert fine.status == Status.OK, fine


def test_a_same_site_script_redirect_is_followed_to_the_item(run, worker_for, tmp_path):
    hop = "<script>setTimeout(() => location.replace('/real'), 300)</script>"
    pages = {"/moved": f"<html><body>moving…{hop}</body></html>", "/real": item_page("Here")}
    with PageServer(pages) as server:
        worker = worker_for(self_job(server.url, tmp_path, **FAST))
        [record] = guarded(run, worker.extract([Container.for_page(server.url + "moved", 0)]))
    assert record.status == Status.OK and record.fields == {"title": "Here"}, record


def test_dialogs_and_beforeunload_do_not_block_this_page_or_the_next(
    run, worker_for, tmp_path, hostile
):
    """Three pages in one tab, each with alert/confirm/prompt and a beforeunload guard: a
    guard answered "stay" would cancel the navigation to the next one."""
    worker = worker_for(scenario_job("dialogs", hostile, tmp_path))
    records = extract_pages(run, worker, hostile, "/dialogs/0", "/dialogs/1", "/dialogs/2")
    assert [r.status for r in records] == [Status.OK] * 3, [r.errors for r in records]
    assert [r.fields["title"] for r in records] == [f"Dialogs {n}" for n in range(3)]
    assert worker.stats()["dialogs_dismissed"] >= 3 * 3


def test_popups_are_closed_as_they_open(run, worker_for, tmp_path, hostile):
    """A page that opens popups on load and every 100 ms: read, then left; no popup stays."""
    worker = worker_for(scenario_job("popups", hostile, tmp_path, **{"timeouts.container": "8s"}))
    records = extract_pages(run, worker, hostile, "/popups/0", "/popups/1", "/dialogs/9")
    assert [r.status for r in records] == [Status.OK] * 3, [r.errors for r in records]
    run(until(lambda: worker.stats()["pages_open"] == 1, "the popups were closed"))
    assert worker.stats()["popups_closed"] >= 3


def test_a_10mb_dom_is_bounded_by_the_container_deadline(run, worker_for, tmp_path, hostile):
    worker = worker_for(scenario_job("dom-10mb", hostile, tmp_path, **FAST))  # not its own
    started = time.monotonic()
    [record] = extract_pages(run, worker, hostile, "/bigdom")
    took = time.monotonic() - started
    [fine] = extract_pages(run, worker, hostile, "/dialogs/9")
    if record.status == Status.OK:
        assert record.fields == {"title": "Found at the end"}
    else:
        reason = record.errors[0].reason
        assert "deadline" in reason or "Timeout" in reason, record.errors
    assert took < 4 + CLOSE_DEADLINE_S + 2, f"held its container {took:.1f}s"
    assert fine.status == Status.OK, fine


@pytest.mark.parametrize(
    ("overrides", "kind", "reason"),
    [
        ({"timeouts.discovery": "2s"}, "deadline", "discovery deadline 2s reached after"),
        ({"containers.limit": 12}, "limit", "containers.limit (12) reached"),
    ],
)
def test_an_endless_feed_is_cut_short_and_says_why(
    run, worker_for, tmp_path, hostile, overrides, kind, reason
):
    worker = worker_for(scenario_job("endless-feed", hostile, tmp_path, **overrides))
    started = time.monotonic()
    chunks = guarded(run, discover_all(worker, hostile.url + "feed/"))
    took = time.monotonic() - started
    *found, last = chunks
    assert isinstance(last, CutShort) and last == [], chunks
    assert (last.kind, reason in last.reason) == (kind, True), last
    containers = [c for chunk in found for c in chunk]
    assert containers and len({c.id for c in containers}) == len(containers)
    if kind == "limit":
        assert len(containers) == 12
    assert took < 2 + 3 + 5, f"discovery took {took:.1f}s"  # deadline + a step + start-up


async def until(condition, what: str, within_s: float = 10.0) -> None:
    """Wait for ``condition()`` on the loop (popups close in the background)."""
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {within_s:g}s"
        await asyncio.sleep(0.05)


def test_a_gallery_that_navigates_away_when_clicked_fails_the_card_saying_so(
    run, worker_for, tmp_path
):
    """Click mode: the card's click sends the gallery page elsewhere instead of opening a
    panel; the card fails with that reason, and the gallery is reopened for the next."""
    cards = (
        "<div data-id='a' onclick=\"location.href='/elsewhere'\">A</div>"
        "<div data-id='b' onclick=\"document.body.insertAdjacentHTML('beforeend',"
        " '<div role=dialog><dl><dt>Title</dt><dd>Bee</dd></dl></div>')\">B</div>"
    )
    pages = {"/": f"<html><body>{cards}</body></html>", "/elsewhere": item_page("Other")}
    with PageServer(pages) as server:
        job = self_job(
            server.url, tmp_path, **FAST,
            **{"containers.open": "click", "containers.panel_selector": "[role=dialog]"},
        )  # fmt: skip
        worker = worker_for(job)
        [[first, second]] = guarded(run, discover_all(worker, server.url))
        [away] = guarded(run, worker.extract([first]))
        [fine] = guarded(run, worker.extract([second]))
    assert away.status == Status.FAILED and away.retryable, away
    assert "navigated itself away, to " in away.errors[0].reason, away.errors
    assert fine.status == Status.OK and fine.fields == {"title": "Bee"}, fine


def test_a_card_linking_to_a_scheme_the_job_does_not_allow_is_not_opened(run, worker_for, tmp_path):
    """Discovered URLs are checked like the sources: a card whose href is a local file or a
    script fails its container with the reason, and the honest card next to it is read."""
    cards = "".join(
        f'<a data-id="{i}" href="{href}">card {i}</a>'
        for i, href in enumerate(["file:///etc/passwd", "javascript:alert(1)", "/item"])
    )
    pages = {"/": f"<!doctype html><body>{cards}</body>", "/item": item_page("Honest")}
    with PageServer(pages) as server:
        job = self_job(server.url, tmp_path, **{"containers.open": "link"})
        worker = worker_for(job)
        chunks = run(discover_all(worker, server.url))
        records = guarded(run, worker.extract([c for chunk in chunks for c in chunk]))
    by_id = {record.id: record for record in records}
    assert by_id["2"].status == Status.OK and by_id["2"].fields["title"] == "Honest"
    for refused, scheme in (("0", "file"), ("1", "javascript")):
        assert by_id[refused].status == Status.FAILED
        reason = by_id[refused].errors[0].reason
        assert f"{scheme}: links are not opened" in reason and "allow_schemes" in reason, reason
    assert server.requests.count("/item") == 1
