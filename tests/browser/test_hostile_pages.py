"""Pages that never answer, downloads that stall, trickle or overflow: each is bounded by the
job's own deadlines, fails only its own container (keeping what was already read), leaves
no part file behind, and does not poison the next container."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from worker_helpers import PageServer, discover_all, guarded, item_page, self_job

from actors.discovery import DiscoveryError
from config.records import Container, Status

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
