"""The HTTP API (``coordinator/api.py``) served for real on 127.0.0.1, over a small in-memory
service that keeps its jobs in a dict and writes a real record log: no Ray, no browser."""

from __future__ import annotations

import copy
import csv
import io
import json
import re
from pathlib import Path

import pytest
from fake_service import (
    CURSOR,
    GALLERY,
    FakeService,
    call,
    gallery,
    record,
    serving,
    submit,
    submitted,
)

from landmark.config.loading import JobFileError, load_job
from landmark.coordinator.api import ServeConfigError, bind_check, build_app
from landmark.coordinator.api_schema import openapi
from landmark.coordinator.exporters import export
from landmark.coordinator.log_chunks import read_chunk, tail_offset


# -- submitting -----------------------------------------------------------------------------
def test_a_good_job_is_created_with_its_location(server: str, service: FakeService) -> None:
    answer = submit(server, GALLERY.read_text(encoding="utf-8"), "?priority=3")
    assert answer.status == 201, answer.text
    status = answer.json()
    assert status["name"] == "gallery" and status["priority"] == 3
    assert answer.headers["Location"] == f"/jobs/{status['id']}"
    assert call(server, answer.headers["Location"]).json()["id"] == status["id"]
    assert [job["id"] for job in call(server, "/jobs").json()] == [status["id"]]
    assert service.specs[status["id"]] == load_job(GALLERY)


def test_a_json_envelope_carries_the_priority(server: str) -> None:
    answer = submit(server, {"job": gallery(), "priority": 7})
    assert answer.status == 201, answer.text
    assert answer.json()["priority"] == 7
    # without a Content-Type the body is sniffed (YAML reads JSON too)
    body = json.dumps(gallery())
    answer = call(server, "/jobs?priority=2", "POST", body, {"Content-Type": ""})
    assert answer.status == 201 and answer.json()["priority"] == 2


@pytest.mark.parametrize("query", ["?priority=10", "?priority=-1", "?priority=x"])
def test_a_priority_outside_0_to_9_is_refused(server: str, query: str) -> None:
    answer = submit(server, gallery(), query)
    assert answer.status == 422 and "priority" in answer.json()["error"]


def test_a_bad_job_names_its_field_as_validate_does(server: str) -> None:
    job = gallery()
    job["budget"]["actors"] = -1
    job["fields"][0]["lable"] = "oops"
    answer = submit(server, job)
    assert answer.status == 422
    error = answer.json()
    with pytest.raises(JobFileError) as expected:
        load_job(job)  # what `landmark validate` reports for the same job
    assert error["problems"] == expected.value.problems
    assert any(line.startswith("budget.actors: ") for line in error["problems"])
    assert any(line.startswith("fields[0].lable: unknown key") for line in error["problems"])
    assert "invalid job" in error["error"]


def test_bad_syntax_is_one_readable_problem(server: str) -> None:
    answer = submit(server, "name: [unclosed\n")
    assert answer.status == 422
    assert answer.json()["problems"][0].startswith("not valid YAML at line")
    answer = call(server, "/jobs", "POST", "[1, 2]", {"Content-Type": "application/json"})
    assert answer.status == 422 and "(top level)" in answer.json()["problems"][0]


def test_a_file_url_is_refused_naming_the_field(server: str) -> None:
    job = gallery()
    job["sources"]["urls"] = ["http://127.0.0.1:8765/", "file:///etc/passwd"]
    answer = submit(server, job)  # the job's own rule (allow_schemes: http, https)
    assert answer.status == 422
    assert answer.json()["problems"][0].startswith("sources.urls: [1]: file: is not allowed")
    job["sources"]["allow_schemes"] = ["http", "https", "file"]
    answer = submit(server, job)  # the job allows it; the service does not
    assert answer.status == 422
    assert answer.json()["problems"] == [
        "sources.urls[1]: file: is not allowed by this service (allowed: http, https)"
    ]


def test_discovery_is_narrowed_to_the_services_schemes(server: str, service: FakeService) -> None:
    job = gallery()
    job["sources"]["allow_schemes"] = ["http", "https", "file"]
    answer = submit(server, job)
    assert answer.status == 201, answer.text
    assert service.specs[answer.json()["id"]].sources.allow_schemes == ["http", "https"]


def test_files_on_the_server_are_refused_unless_allowed(
    service: FakeService, tmp_path: Path
) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text("http://127.0.0.1:8765/\n", encoding="utf-8")
    job = gallery()
    job["sources"] = {"file": str(urls)}
    job["browser"] = {"storage_state": str(tmp_path / "state.json")}
    with serving(build_app(service, token=None)) as base:
        answer = submit(base, job)
    assert answer.status == 422
    problems = answer.json()["problems"]
    assert [line.split(":")[0] for line in problems] == ["sources.file", "browser.storage_state"]
    assert "--allow-local-files" in problems[0]
    del job["browser"]
    with serving(build_app(service, token=None, allow_local_files=True)) as base:
        answer = submit(base, job)
        assert answer.status == 201, answer.text
        assert service.specs[answer.json()["id"]].source_urls() == ["http://127.0.0.1:8765/"]
        job["sources"] = {"file": str(tmp_path / "missing.txt")}
        answer = submit(base, job)  # read and checked as `landmark validate` does
        assert answer.status == 422
        assert answer.json()["problems"][0].startswith("sources.file: no such file")


def test_a_body_too_large_is_413_with_a_json_message(service: FakeService) -> None:
    with serving(build_app(service, token=None, max_body_bytes=2000)) as base:
        answer = submit(base, "name: big\n# " + "x" * 5000 + "\n")
        assert answer.status == 413
        assert "2000 bytes" in answer.json()["error"]
        chunked = call(base, "/jobs", "POST", iter([b"# " + b"x" * 3000]), {})
        assert chunked.status == 413 and "error" in chunked.json()


# -- tokens and guards ----------------------------------------------------------------------
def test_a_token_is_needed_and_compared(service: FakeService) -> None:
    with serving(build_app(service, token="s3cret")) as base:
        missing = call(base, "/jobs")
        assert missing.status == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
        assert "token" in missing.json()["error"]
        assert call(base, "/jobs", headers={"Authorization": "Bearer wrong"}).status == 401
        assert call(base, "/jobs", headers={"Authorization": "Bearer s3cret"}).status == 200
        assert call(base, "/healthz").json() == {"ok": True}
        assert call(base, "/?token=s3cret").status == 200  # the status page in a browser
        assert call(base, "/?token=nope").status == 401
        assert call(base, "/jobs?token=s3cret").status == 401  # only the page takes it there
        assert submit(base, gallery()).status == 401


def test_a_cross_site_post_and_a_foreign_host_are_refused(server: str) -> None:
    answer = submit(server, gallery(), Origin="https://evil.example")
    assert answer.status == 403
    same = server.removeprefix("http://")
    assert submit(server, gallery(), Origin=f"http://{same}").status == 201
    rebound = call(server, "/jobs", headers={"Host": "evil.example:8650"})  # DNS rebinding
    assert rebound.status == 403 and "loopback" in rebound.json()["error"]


def test_bind_check() -> None:
    for host in ("127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost"):
        bind_check(host, None)
    bind_check("0.0.0.0", "token")
    with pytest.raises(ServeConfigError) as error:
        bind_check("0.0.0.0", None)
    assert "--token" in str(error.value) and "LANDMARK_TOKEN" in str(error.value)
    with pytest.raises(ServeConfigError):
        bind_check("192.168.1.20", "")


# -- jobs -----------------------------------------------------------------------------------
def test_an_unknown_job_is_404(server: str) -> None:
    for method, path in (("GET", "/jobs/nope"), ("POST", "/jobs/nope/cancel"),
                         ("GET", "/jobs/nope/results")):  # fmt: skip
        answer = call(server, path, method)
        assert answer.status == 404 and "nope" in answer.json()["error"]
    assert "/openapi.json" in call(server, "/no/such/route").json()["error"]
    assert call(server, "/jobs", "DELETE").status == 405


def test_pause_resume_cancel_and_409(server: str, service: FakeService) -> None:
    job_id = submitted(server, service)
    assert call(server, f"/jobs/{job_id}/pause", "POST").json()["state"] == "paused"
    assert call(server, f"/jobs/{job_id}/resume", "POST").json()["state"] == "running"
    assert call(server, f"/jobs/{job_id}/cancel", "POST").json()["state"] == "cancelled"
    again = call(server, f"/jobs/{job_id}/resume", "POST")
    assert again.status == 409 and "cancelled" in again.json()["error"]


def test_an_unexpected_error_is_500_json_without_a_traceback(
    server: str, service: FakeService, caplog: pytest.LogCaptureFixture
) -> None:
    service.fail_stats = True
    answer = call(server, "/stats")
    assert answer.status == 500
    assert "secret" not in answer.text and "Traceback" not in answer.text
    assert "error" in answer.json()
    assert "secret internals" in caplog.text  # logged, with the traceback, for the operator


# -- results --------------------------------------------------------------------------------
def read_all(base: str, job_id: str, fmt: str, limit: int) -> tuple[list[str], str]:
    """Follow the cursor: the chunks, and the last cursor."""
    chunks: list[str] = []
    cursor: str | None = None
    while True:
        query = f"format={fmt}&limit={limit}" + (f"&after={cursor}" if cursor else "")
        answer = call(base, f"/jobs/{job_id}/results?{query}")
        assert answer.status == 200, answer.text
        chunks.append(answer.text)
        cursor = answer.headers[CURSOR]
        if answer.headers["Landmark-More"] != "true":
            return chunks, cursor


def test_jsonl_chunks_add_up_to_the_whole(server: str, service: FakeService) -> None:
    job_id = submitted(server, service, records=10)
    chunks, _ = read_all(server, job_id, "jsonl", 3)
    assert len(chunks) == 4
    assert [len(chunk.splitlines()) for chunk in chunks] == [3, 3, 3, 1]
    assert "".join(chunks) == service.record_log(job_id).read_text(encoding="utf-8")


def test_csv_chunks_add_up_to_the_export_with_one_header(
    server: str, service: FakeService, tmp_path: Path
) -> None:
    job_id = submitted(server, service, records=10)
    chunks, _ = read_all(server, job_id, "csv", 3)
    whole = tmp_path / "whole.csv"
    names = [field.name for field in service.specs[job_id].fields]
    export([record(n, failed=n % 4 == 3) for n in range(10)], whole, "csv", names)
    assert "".join(chunks) == whole.read_bytes().decode()  # \r\n line ends, as written
    rows = list(csv.reader(io.StringIO("".join(chunks))))
    assert rows[0][0] == "id" and sum(row[0] == "id" for row in rows) == 1
    assert rows[1][rows[0].index("prompt")] == "'=cat 0"  # the formula guard, as export does


def test_a_partly_written_line_waits_until_it_is_complete(
    server: str, service: FakeService
) -> None:
    job_id = submitted(server, service, records=2)
    line = json.dumps(record(2))
    service.append(job_id, [], partial=line[:25])
    first = call(server, f"/jobs/{job_id}/results")
    assert len(first.text.splitlines()) == 2 and first.headers["Landmark-More"] == "false"
    cursor = first.headers[CURSOR]
    assert call(server, f"/jobs/{job_id}/results?after={cursor}").body == b""
    service.append(job_id, [], partial=line[25:] + "\n")
    second = call(server, f"/jobs/{job_id}/results?after={cursor}")
    assert json.loads(second.text) == record(2)
    assert int(second.headers[CURSOR]) > int(cursor)


def test_no_log_yet_is_an_empty_chunk(server: str, service: FakeService) -> None:
    job_id = submitted(server, service)
    answer = call(server, f"/jobs/{job_id}/results?format=csv")
    assert answer.status == 200 and answer.headers[CURSOR] == "0"
    assert answer.text.startswith("id,source,position,status")


def test_tail_and_bad_cursors(server: str, service: FakeService) -> None:
    job_id = submitted(server, service, records=10)
    tail = call(server, f"/jobs/{job_id}/results?tail=2")
    assert [json.loads(line)["id"] for line in tail.text.splitlines()] == ["item-8", "item-9"]
    size = service.record_log(job_id).stat().st_size
    assert tail.headers[CURSOR] == str(size)
    for bad in ("5", "abc", str(size + 100)):
        answer = call(server, f"/jobs/{job_id}/results?after={bad}")
        assert answer.status == 400 and "after" in answer.json()["error"]
    for query in ("limit=0", "limit=10001", "format=xml", "tail=2&after=0"):
        assert call(server, f"/jobs/{job_id}/results?{query}").status == 400


def test_tail_reads_backwards_past_blocks_and_a_partial_line(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    lines = [f'{{"n": {n}}}\n'.encode() for n in range(50)]
    log.write_bytes(b"".join(lines) + b'{"n": 5')
    size = log.stat().st_size
    with log.open("rb") as file:
        for count in (1, 3, 49, 50, 80):
            offset = tail_offset(file, size, count, block=8)
            assert offset == sum(map(len, lines[: max(0, 50 - count)])), count
    chunk = read_chunk(log, 0, 10_000, max_bytes=30)  # stops after the line crossing 30 bytes
    assert chunk.lines == lines[:4] and chunk.more  # 9 bytes a line
    assert read_chunk(log, chunk.next_offset, 100).lines == lines[4:]


def test_xlsx_only_for_a_finished_job(server: str, service: FakeService, tmp_path: Path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    job_id = submitted(server, service, records=5)
    answer = call(server, f"/jobs/{job_id}/results?format=xlsx")
    assert answer.status == 409 and "csv" in answer.json()["error"]
    service.set(job_id, state="done")
    answer = call(server, f"/jobs/{job_id}/results?format=xlsx")
    assert answer.status == 200
    assert 'filename="gallery.xlsx"' in answer.headers["Content-Disposition"]
    path = tmp_path / "got.xlsx"
    path.write_bytes(answer.body)
    rows = list(openpyxl.load_workbook(path).active.iter_rows(values_only=True))
    assert rows[0][0] == "id" and [row[0] for row in rows[1:]] == [f"item-{n}" for n in range(5)]


# -- description, metrics, page -------------------------------------------------------------
def test_openapi_lists_every_route_the_app_has(server: str, service: FakeService) -> None:
    app = build_app(service, token=None)
    routes = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    spec = call(server, "/openapi.json").json()
    assert spec == openapi() and spec["openapi"].startswith("3.1")
    described = {(method, path) for path, item in spec["paths"].items() for method in item}
    assert described == routes
    for path, item in spec["paths"].items():
        for operation in item.values():
            assert operation["responses"], path
            names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert names == set(re.findall(r"\{(\w+)\}", path)), path


SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_]\w*="([^"\\]|\\.)*",?)*\})? \S+$')


def test_metrics_are_prometheus_text(server: str, service: FakeService) -> None:
    job_id = submitted(server, service)
    service.set(job_id, done=7, failed=1, known=20, rate=2.5, name='odd "name"\n')
    answer = call(server, "/metrics")
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    lines = answer.text.splitlines()
    assert any("metrics export port" in line for line in lines if line.startswith("#"))
    samples = {}
    for line in lines:
        if line.startswith("#"):
            assert line.startswith(("# HELP ", "# TYPE ")) or "Ray" in line
            continue
        assert SAMPLE.match(line), line
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    assert samples['landmark_jobs{state="running"}'] == 1
    assert samples['landmark_latency_ms{quantile="0.95"}'] == 300.0
    assert samples["landmark_memory_fraction"] == 0.41
    assert samples["landmark_records_per_second"] == 3.25
    assert samples[f'landmark_job_done{{job="{job_id}",name="odd \\"name\\"\\n"}}'] == 7


def test_the_status_page_and_health(server: str) -> None:
    page = call(server, "/")
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    assert 'id="jobs"' in page.text and "fetch(" in page.text
    policy = page.headers["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"].startswith("'sha256-")  # this page's script, no other
    assert "unsafe-inline" not in directives["script-src"]
    assert call(server, "/healthz").json() == {"ok": True}
    assert call(server, "/stats").json()["throughput"] == 3.25


def test_submitting_does_not_change_the_callers_mapping(server: str) -> None:
    job = gallery()
    job["sources"]["allow_schemes"] = ["http", "https", "file"]
    before = copy.deepcopy(job)
    submit(server, job)
    assert job == before
