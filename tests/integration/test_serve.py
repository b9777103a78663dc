"""``landmark serve`` over real HTTP: real Ray, real Chromium, the real Gallery site.

One service for the module (one pool actor with 4 pages, as this 2-core machine's default
gives), reached through the Python client as a user's notebook would. The restart test runs
the real command in its own process and stops it with SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from serve_helpers import ServedService, free_port, gallery_job, wait_for

from landmark.benchmarks.scoring import score
from landmark.benchmarks.site import GallerySite, SiteConfig
from landmark.config.loading import JobFileError, load_job
from landmark.coordinator.client import Client, ServiceError

pytestmark = [pytest.mark.browser, pytest.mark.ray]

LANDMARK = [str(Path(sys.executable).with_name("landmark"))]
FINISHED = {"done", "cancelled", "failed"}


@pytest.fixture(scope="module")
def served(ray_session, tmp_path_factory):
    served = ServedService(tmp_path_factory.mktemp("service")).start()
    yield served
    served.stop()


def assert_exact(records: list[dict[str, Any]], truth: list[dict[str, Any]]) -> None:
    """One record per container and every field right."""
    counts = Counter(record["id"] for record in records)
    assert [i for i, n in counts.items() if n > 1] == [], "duplicated records"
    result = score(truth, records)
    assert (result.accuracy, result.lost, result.duplicates) == (1.0, 0, 0), result.wrong


def test_two_jobs_submitted_together_both_match_the_site(served):
    client = served.client()
    with GallerySite(SiteConfig(items=80)) as clicks, GallerySite(SiteConfig(items=60)) as links:
        first = client.submit(gallery_job(clicks.url, "clicks"))
        second = client.submit(gallery_job(links.url, "links", containers={"open": "link"}))
        for job in (first, second):
            assert client.wait(job["id"], timeout_s=180)["state"] == "done"
        assert_exact(list(client.results(first["id"])), clicks.truth())
        assert_exact(list(client.results(second["id"])), links.truth())
    listed = {job["id"]: job for job in client.status()}
    assert listed[first["id"]]["done"] == 80 and listed[second["id"]]["done"] == 60


def test_a_later_high_priority_job_overtakes_a_running_low_one(served):
    client = served.client()
    with (
        GallerySite(SiteConfig(items=400, latency_ms=30)) as big,
        GallerySite(SiteConfig(items=40, latency_ms=30)) as small,
    ):
        low = client.submit(gallery_job(big.url, "low", containers={"open": "link"}))
        wait_for(lambda: client.status(low["id"])["done"] >= 20, "the low job to be running")
        high = client.submit(gallery_job(small.url, "high", containers={"open": "link"}), 6)
        shares = wait_for(
            lambda: _shares(client, low["id"], high["id"]), "the high job's share of the pool"
        )
        assert shares[1] > shares[0], f"low, high pages: {shares}"
        assert client.wait(high["id"], timeout_s=120)["state"] == "done"
        low_then = client.status(low["id"])
        assert low_then["state"] == "running" and low_then["done"] < 400, low_then
        assert client.cancel(low["id"])["id"] == low["id"]
        assert client.wait(low["id"], timeout_s=60)["state"] == "cancelled"
        assert_exact(list(client.results(high["id"])), small.truth())
        low_ids = Counter(record["id"] for record in client.results(low["id"]))
        assert max(low_ids.values()) == 1 and len(low_ids) == 400, "each container once"


def _shares(client: Client, low: str, high: str) -> tuple[int, int] | None:
    jobs = {job["id"]: job for job in client.status()}
    if jobs[high]["state"] != "running":
        return None
    return jobs[low]["share"], jobs[high]["share"]


def test_pause_holds_a_job_and_resume_finishes_it_each_container_once(served):
    client = served.client()
    with GallerySite(SiteConfig(items=150, latency_ms=20)) as site:
        job = client.submit(gallery_job(site.url, "pausing", containers={"open": "link"}))
        wait_for(lambda: client.status(job["id"])["done"] >= 10, "some records")
        assert client.pause(job["id"])["state"] == "paused"
        held = steady_done(client, job["id"])
        assert held < 150
        with pytest.raises(ServiceError) as unknown:
            client.resume("no-such-job")
        assert unknown.value.status == 404
        assert client.resume(job["id"])["state"] == "running"
        assert client.wait(job["id"], timeout_s=120)["state"] == "done"
        assert_exact(list(client.results(job["id"])), site.truth())
    with pytest.raises(ServiceError) as finished:
        client.cancel(job["id"])
    assert finished.value.status == 409


def steady_done(client: Client, job_id: str, timeout_s: float = 60.0) -> int:
    """The job's done count once four readings in a row, half a second apart, agree."""
    readings: list[int] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        readings.append(client.status(job_id)["done"])
        if len(readings) >= 4 and len(set(readings[-4:])) == 1:
            return readings[-1]
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still advanced while paused: {readings[-8:]}")


def test_results_read_in_chunks_equal_the_whole_and_excel_opens(served, tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    client = served.client()
    with GallerySite(SiteConfig(items=45, label_variants=True, missing_rate=0.1)) as site:
        job = client.submit(gallery_job(site.url, "chunks"))
        assert client.wait(job["id"], timeout_s=120)["state"] == "done"
    whole = client.results_text(job["id"], "jsonl")
    assert b"".join(client.chunks(job["id"], "jsonl", page_size=7)).decode() == whole
    assert len(whole.splitlines()) == 45
    csv_whole = client.results_text(job["id"], "csv")
    chunked = b"".join(client.chunks(job["id"], "csv", page_size=4)).decode()
    assert chunked == csv_whole and csv_whole.count("id,") <= 1
    workbook = openpyxl.load_workbook(client.download(job["id"], tmp_path / "r.xlsx"))
    sheet = workbook.active
    header = [cell.value for cell in next(sheet.iter_rows(max_row=1))]
    assert "prompt" in header and sheet.max_row == 46  # the header and 45 records


PROGRESS_JS = """() => Object.fromEntries([...document.querySelectorAll('#jobs tbody tr')]
    .map(row => [row.dataset.jobId, row.querySelector('progress').value]))"""


def test_the_status_page_shows_both_jobs_and_their_progress_advances(served, page, run):
    client = served.client()
    config = SiteConfig(items=200, latency_ms=40)
    with GallerySite(config) as first_site, GallerySite(config) as second_site:
        ids = [
            client.submit(gallery_job(site.url, name, containers={"open": "link"}))["id"]
            for name, site in (("page-a", first_site), ("page-b", second_site))
        ]
        try:
            run(page.goto(served.url + "/"))
            for job_id in ids:
                run(page.wait_for_selector(f'tr[data-job-id="{job_id}"]', timeout=30_000))
            before = run(page.evaluate(PROGRESS_JS))
            wait_for(
                lambda: all(run(page.evaluate(PROGRESS_JS))[i] > before[i] for i in ids),
                "both progress bars to advance on the page",
            )
            run(page.click(f'tr[data-job-id="{ids[0]}"]'))
            run(page.wait_for_selector("#records li.record", timeout=30_000))
            shown = run(page.inner_text("#detail-title"))
            assert ids[0] in shown
        finally:
            for job_id in ids:
                client.cancel(job_id)
            for job_id in ids:
                assert client.wait(job_id, timeout_s=60)["state"] == "cancelled"


def test_a_bad_job_gets_422_with_the_same_problems_as_validate(served, tmp_path):
    bad = gallery_job("http://127.0.0.1:1/", "bad", budget={"actors": -1})
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(JobFileError) as validated:
        load_job(path)
    with pytest.raises(ServiceError) as refused:
        served.client().submit(bad)
    assert refused.value.status == 422
    assert any(p.startswith("budget.actors") for p in refused.value.problems)
    assert set(refused.value.problems) == set(validated.value.problems)


def test_a_service_with_a_token_refuses_requests_without_it(served):
    url = served.serve(token="s3cret-token")
    for token in (None, "wrong"):
        with pytest.raises(ServiceError) as refused:
            served.client(token=token, url=url).status()
        assert refused.value.status == 401
    assert isinstance(served.client(token="s3cret-token", url=url).status(), list)


def test_beyond_loopback_without_a_token_the_command_refuses_to_start(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "LANDMARK_TOKEN"}
    done = subprocess.run(
        [*LANDMARK, "serve", "--host", "0.0.0.0", "--data", str(tmp_path)],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "--token" in done.stderr and "Traceback" not in done.stderr


def test_sigterm_mid_job_then_a_restart_extracts_everything_exactly_once(tmp_path):
    """The real command, twice, on one data folder: the second resumes the first's job."""
    data, port = tmp_path / "data", free_port()
    command = [*LANDMARK, "serve", "--port", str(port), "--data", str(data), "--actors", "1"]
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "RAY_ADDRESS": ""}
    with GallerySite(SiteConfig(items=300, latency_ms=30)) as site:
        first = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
        try:
            client = Client(url)
            wait_for(lambda: _ready(client), "the service to be ready", timeout_s=120)
            job = client.submit(gallery_job(site.url, "restart", containers={"open": "link"}))
            wait_for(lambda: client.status(job["id"])["done"] >= 40, "records before the stop")
            first.send_signal(signal.SIGTERM)
            _, log = first.communicate(timeout=120)
            assert first.returncode == 0, log
        finally:
            first.kill()
        second = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: _ready(client), "the restarted service", timeout_s=120)
            status = client.wait(job["id"], timeout_s=180)
            assert (status["state"], status["restarts"]) == ("done", 1), status
            assert_exact(list(client.results(job["id"])), site.truth())
        finally:
            second.send_signal(signal.SIGTERM)
            second.communicate(timeout=120)


def _ready(client: Client) -> bool:
    try:
        return bool(client.stats()["ready"])
    except ServiceError:  # not listening yet
        return False
