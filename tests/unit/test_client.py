"""The stdlib client (``coordinator/client.py``) and the CLI commands on it, against the real
HTTP API over the in-memory service of ``test_http_api``: no Ray, no browser."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from fake_service import GALLERY, FakeService, gallery, record, serving

from landmark.coordinator.api import build_app
from landmark.coordinator.cli import main
from landmark.coordinator.client import Client, ServiceError, ServiceUnreachableError


@pytest.fixture
def client(server: str) -> Client:
    return Client(server)


def running(client: Client, service: FakeService, records: int = 0) -> str:
    job_id = client.submit(GALLERY)["id"]
    service.set(job_id, state="running", known=records)
    service.append(job_id, [record(n, failed=n == 2) for n in range(records)])
    return job_id


def test_submit_a_file_or_a_mapping_and_read_the_status(
    client: Client, service: FakeService
) -> None:
    first = client.submit(GALLERY, priority=4)
    assert first["priority"] == 4 and first["state"] == "queued"
    second = client.submit(gallery())
    assert client.status(first["id"])["name"] == "gallery"
    assert [job["id"] for job in client.status()] == [second["id"], first["id"]]
    assert client.stats()["jobs"]["queued"] == 2


def test_an_invalid_job_is_a_service_error_with_its_problems(client: Client) -> None:
    job = gallery()
    job["budget"]["actors"] = -1
    with pytest.raises(ServiceError) as error:
        client.submit(job)
    assert error.value.status == 422
    assert any(line.startswith("budget.actors: ") for line in error.value.problems)
    assert "budget.actors" in str(error.value)


def test_unknown_jobs_and_wrong_states(client: Client, service: FakeService) -> None:
    with pytest.raises(ServiceError) as error:
        client.status("nope")
    assert error.value.status == 404 and "nope" in error.value.message
    job_id = running(client, service)
    assert client.pause(job_id)["state"] == "paused"
    assert client.resume(job_id)["state"] == "running"
    assert client.cancel(job_id)["state"] == "cancelled"
    with pytest.raises(ServiceError) as error:
        client.cancel(job_id)
    assert error.value.status == 409


def test_results_follow_the_cursor_to_the_end(
    client: Client, service: FakeService, tmp_path: Path
) -> None:
    job_id = running(client, service, records=7)
    records = list(client.results(job_id, page_size=3))
    assert records == [record(n, failed=n == 2) for n in range(7)]
    rows = list(client.results(job_id, "csv", page_size=2))
    assert [row["id"] for row in rows] == [f"item-{n}" for n in range(7)]
    assert rows[0]["prompt"] == "'=cat 0"
    text = client.results_text(job_id)
    assert text.count("id,source") == 1 and len(text.splitlines()) == 8
    path = client.download(job_id, tmp_path / "out" / "r.jsonl", "jsonl")
    assert path.read_text(encoding="utf-8") == service.record_log(job_id).read_text("utf-8")


def test_download_xlsx_once_finished(client: Client, service: FakeService, tmp_path: Path) -> None:
    pytest.importorskip("openpyxl")
    job_id = running(client, service, records=3)
    target = tmp_path / "out" / "r.xlsx"
    with pytest.raises(ServiceError) as error:
        client.download(job_id, target)
    assert error.value.status == 409
    assert list(target.parent.iterdir()) == []  # no half file left behind
    service.set(job_id, state="done")
    assert client.download(job_id, target).read_bytes().startswith(b"PK")


def test_wait_returns_the_finished_status_or_times_out(
    client: Client, service: FakeService
) -> None:
    job_id = running(client, service)
    seen: list[str] = []

    def progress(status: dict) -> None:
        seen.append(status["state"])
        if len(seen) == 2:
            service.set(job_id, state="done")

    assert client.wait(job_id, timeout_s=10, poll_s=0.01, on_progress=progress)["state"] == "done"
    assert seen == ["running", "running", "done"]
    other = running(client, service)
    started = time.monotonic()
    with pytest.raises(TimeoutError) as error:
        client.wait(other, timeout_s=0.2, poll_s=0.05)
    assert time.monotonic() - started < 5
    assert other in str(error.value) and "still running" in str(error.value)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_service_says_how_to_start_one() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ServiceUnreachableError) as error:
        Client(url).status()
    assert f"no landmark service at {url}" in str(error.value)
    assert "landmark serve" in str(error.value)


def test_server_and_token_come_from_the_environment(
    service: FakeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serving(build_app(service, token="t0ken")) as base:
        monkeypatch.setenv("LANDMARK_SERVER", base.removeprefix("http://"))
        with pytest.raises(ServiceError) as error:
            Client().status()
        assert error.value.status == 401
        monkeypatch.setenv("LANDMARK_TOKEN", "t0ken")
        assert Client().status() == []
        assert "t0ken" not in repr(Client())


# -- the CLI --------------------------------------------------------------------------------
def test_cli_submit_status_results_cancel(
    server: str, service: FakeService, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["submit", str(GALLERY), "--server", server, "--priority", "2"]) == 0
    out = capsys.readouterr().out
    job_id = service.jobs()[0]["id"]
    assert f"as {job_id}" in out and "priority 2" in out
    service.set(job_id, state="running", known=3)
    service.append(job_id, [record(n) for n in range(3)])
    assert main(["status", "--server", server]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["ID", "NAME", "STATE"]
    assert table[1].split()[:3] == [job_id, "gallery", "running"]
    assert main(["status", job_id, "--server", server, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == job_id
    assert main(["results", job_id, "--server", server, "--format", "csv"]) == 0
    assert capsys.readouterr().out.count("item-") == 3
    target = tmp_path / "r.csv"
    assert main(["results", job_id, "--server", server, "--to", str(target)]) == 0
    assert target.read_text(encoding="utf-8").startswith("id,source")
    assert main(["cancel", job_id, "--server", server]) == 0
    assert "cancelled" in capsys.readouterr().out


def test_cli_exit_codes(
    server: str, service: FakeService, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    text = GALLERY.read_text(encoding="utf-8")
    bad.write_text(text.replace("  actors: auto", "  actors: -1"), encoding="utf-8")
    assert main(["submit", str(bad), "--server", server]) == 2
    assert "budget.actors" in capsys.readouterr().err
    assert main(["submit", str(tmp_path / "none.yaml"), "--server", server]) == 2
    assert main(["status", "nope", "--server", server]) == 2
    unreachable = f"http://127.0.0.1:{free_port()}"
    assert main(["status", "--server", unreachable]) == 1
    assert "landmark serve" in capsys.readouterr().err


def test_cli_submit_wait_exits_on_the_jobs_end(
    server: str, service: FakeService, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    original = FakeService.job

    def finishing(self: FakeService, job_id: str) -> dict:
        self.set(job_id, state="failed", error="the pool is gone")  # ends at the first poll
        return original(self, job_id)

    monkeypatch.setattr(FakeService, "job", finishing)
    assert main(["submit", str(GALLERY), "--server", server, "--wait"]) == 1
    captured = capsys.readouterr()
    assert "failed" in captured.out and "the pool is gone" in captured.err
