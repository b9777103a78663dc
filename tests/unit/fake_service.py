"""An in-memory ``ServiceBackend`` (jobs in a dict, a real record log on disk) and a real
aiohttp server for it, shared by the HTTP API and client tests: no Ray, no browser."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from landmark.config.job import JobSpec
from landmark.coordinator.service_types import JobState, JobStateError, UnknownJobError

ROOT = Path(__file__).resolve().parents[2]
GALLERY = ROOT / "config" / "examples" / "gallery.yaml"
CURSOR = "Landmark-Next-Cursor"


# -- the service the API is tested against --------------------------------------------------
class FakeService:
    """A ServiceBackend in memory: jobs in a dict, each with a record log in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.statuses: dict[str, dict[str, Any]] = {}
        self.specs: dict[str, JobSpec] = {}
        self.fail_stats = False

    async def submit(self, job: JobSpec, priority: int) -> dict[str, Any]:
        job_id = f"{job.name}-{len(self.statuses) + 1}"
        self.specs[job_id] = job
        self.statuses[job_id] = {
            "id": job_id,
            "name": job.name,
            "priority": priority,
            "state": JobState.QUEUED.value,
            "submitted_at": datetime.now(UTC).isoformat(),
            "started_at": None,
            "ended_at": None,
            "done": 0,
            "failed": 0,
            "pending": 0,
            "known": 0,
            "rate": 0.0,
            "eta_s": None,
            "verdict": "ok",
            "cache_hits": 0,
            "share": None,
            "error": None,
        }
        return dict(self.statuses[job_id])

    def jobs(self) -> list[dict[str, Any]]:
        return [dict(status) for status in reversed(self.statuses.values())]

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self._status(job_id))

    def _status(self, job_id: str) -> dict[str, Any]:
        try:
            return self.statuses[job_id]
        except KeyError:
            raise UnknownJobError(job_id) from None

    async def pause(self, job_id: str) -> dict[str, Any]:
        return self._move(job_id, JobState.PAUSED)

    async def resume(self, job_id: str) -> dict[str, Any]:
        return self._move(job_id, JobState.RUNNING)

    async def cancel(self, job_id: str) -> dict[str, Any]:
        return self._move(job_id, JobState.CANCELLED)

    def _move(self, job_id: str, state: JobState) -> dict[str, Any]:
        status = self._status(job_id)
        if JobState(status["state"]).finished:
            raise JobStateError(f"job {job_id} is {status['state']}: it cannot be {state}")
        status["state"] = state.value
        return dict(status)

    def spec(self, job_id: str) -> JobSpec:
        self._status(job_id)
        return self.specs[job_id]

    def record_log(self, job_id: str) -> Path:
        self._status(job_id)
        return self.folder / f"{job_id}.jsonl"

    def stats(self) -> dict[str, Any]:
        if self.fail_stats:
            raise RuntimeError("secret internals")
        counts = {state.value: 0 for state in JobState}
        for status in self.statuses.values():
            counts[status["state"]] += 1
        return {
            "uptime_s": 12.5,
            "jobs": counts,
            "throughput": 3.25,
            "latency_ms": {"p50": 120.0, "p95": 300.0, "p99": 450.5},
            "memory": {"fraction": 0.41, "verdict": "ok"},
            "actors": [{"name": "actor-0", "node": "n1", "state": "ok", "jobs": [], "pages": 4}],
        }

    # what the tests do to a job
    def set(self, job_id: str, **values: Any) -> None:
        self.statuses[job_id].update(values)

    def append(self, job_id: str, records: list[dict[str, Any]], partial: str = "") -> None:
        with self.record_log(job_id).open("a", encoding="utf-8") as log:
            for record in records:
                log.write(json.dumps(record) + "\n")
            log.write(partial)


def record(number: int, *, failed: bool = False) -> dict[str, Any]:
    """A record as the record log holds it (Record.to_json_dict's keys)."""
    return {
        "id": f"item-{number}",
        "source": "http://127.0.0.1:8765/",
        "position": number,
        "status": "failed" if failed else "ok",
        "fields": {"prompt": f"=cat {number}", "seed": number, "created": None},
        "errors": [{"phase": "extract", "reason": "no Prompt label", "field": "prompt"}]
        if failed
        else [],
        "attempts": 1,
        "timings": {"total_ms": 12.0},
        "strategies": {},
        "actor": "actor-0",
        "download": None,
        "cached": False,
    }


# -- serving a real app on a real port ------------------------------------------------------
@contextlib.contextmanager
def serving(app: web.Application) -> Iterator[str]:
    """``app`` on a free port of 127.0.0.1, its loop in a thread; yields the base URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


class Answer:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


def call(
    base: str,
    path: str,
    method: str = "GET",
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(base + path, data=data, method=method)
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Answer(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Answer(error.code, error.headers, error.read())


def gallery() -> dict[str, Any]:
    return yaml.safe_load(GALLERY.read_text(encoding="utf-8"))


def submit(base: str, job: dict[str, Any] | str, query: str = "", **headers: str) -> Answer:
    if isinstance(job, dict):
        body, kind = json.dumps(job), "application/json"
    else:
        body, kind = job, "application/yaml"
    return call(base, "/jobs" + query, "POST", body, {"Content-Type": kind, **headers})


def submitted(base: str, service: FakeService, records: int = 0) -> str:
    answer = submit(base, gallery())
    assert answer.status == 201, answer.text
    job_id = answer.json()["id"]
    service.set(job_id, state="running")
    service.append(job_id, [record(n, failed=n % 4 == 3) for n in range(records)])
    return job_id
