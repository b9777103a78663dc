"""``landmark bench service``: many small jobs on one warm ``landmark serve`` against as many
one-shot ``landmark run``s, and what the HTTP API costs while a job runs.

Why: the service exists so that a small job does not pay for Ray, actors and browsers every
time. This measures that claim from the outside, as a user meets it: the service and every
run are the real commands in subprocesses of their own (each in a session of its own, so that
its Ray goes with it), the jobs are the example job aimed at the Gallery site (served by a
process of its own, so it shares no GIL with the polling and timing here), and every job's
records are scored against the site's truth: a fast answer with a lost record is a failure.

Three phases, each bounded, each cleaned up whatever happens:

1. **service**: start ``landmark serve``, wait until ``/stats`` says ready (warm), submit
   every job at once and poll ``GET /jobs`` until all are finished.
2. **api**: on the same service, one bigger job (link mode, a slow site) and, while it runs,
   sequential ``GET /jobs/{id}`` and ``GET /stats`` calls timed at the client. Then it is
   cancelled and the service is stopped with SIGTERM.
3. **separate**: the same job file through ``landmark run`` once per job, one after another
   (a 2-core machine cannot hold that many local Rays at once), each starting its own Ray.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import psutil
import yaml

from landmark.benchmarks.scoring import score
from landmark.benchmarks.site import SiteConfig, start_site_process
from landmark.config.loading import load_job
from landmark.coordinator.client import FINISHED, Client, ServiceError

EXAMPLE = Path(str(resources.files("landmark.config").joinpath("examples/gallery.yaml")))
LANDMARK = str(Path(sys.executable).with_name("landmark"))
MODES = ("service", "separate")
SERVICE_POLL_S = 0.1  # GET /jobs, for first records and ends of the service's jobs
RUN_POLL_S = 0.05  # a separate run's record log
WARM_BOUND_S = 180.0  # start until /stats says ready: Ray, the pool, its actors
JOB_BOUND_S = 300.0  # a batch or a run may take this long, plus PER_ITEM_S per item
PER_ITEM_S = 1.0
FIRST_RECORDS_BOUND_S = 120.0  # the API phase's job, until its first records
STOP_GRACE_S = 120.0  # SIGTERM/SIGINT to exit: in-flight batches finish, Ray shuts down
REAP_GRACE_S = 10.0  # a process's leftovers (Ray's), after it exited, before SIGKILL
API_LATENCY_MS = 20.0
REQUEST_TIMEOUT_S = 30.0
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours its log lines


@dataclass(frozen=True, slots=True)
class Params:
    jobs: int = 50
    items: int = 20
    api_items: int = 400
    api_calls: int = 200
    actors: str = "auto"
    quick: bool = False

    @classmethod
    def from_args(cls, args: Any) -> Params:
        """The command's options over the full sizes, or over the quick ones (5 jobs, a job of
        100 items and 50 calls each for the API)."""
        quick = bool(getattr(args, "quick", False))
        base = cls(jobs=5, api_items=100, api_calls=50, quick=True) if quick else cls()
        return cls(
            jobs=getattr(args, "jobs", None) or base.jobs,
            items=getattr(args, "items", None) or base.items,
            api_items=getattr(args, "api_items", None) or base.api_items,
            api_calls=getattr(args, "api_calls", None) or base.api_calls,
            actors=str(getattr(args, "actors", None) or base.actors),
            quick=quick,
        )

    @property
    def job_bound_s(self) -> float:
        """How long one phase's jobs may take together before they count as hung."""
        return JOB_BOUND_S + PER_ITEM_S * self.jobs * self.items


@dataclass(slots=True)
class JobRow:
    """One job in one mode. ``first_record_s`` and ``end_s`` count from the batch's first
    submit (service) or from the run's process start (separate)."""

    mode: str
    name: str
    items: int
    state: str = ""
    running_s: float | None = None  # service: the first poll that saw it past "queued"
    first_record_s: float | None = None
    end_s: float | None = None
    records: int = 0
    lost: int = 0
    duplicates: int = 0
    unknown: int = 0
    accuracy: float = 0.0
    wrong: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def failure(self) -> str | None:
        """Why this job does not count as right, or None: every item once, every field right."""
        if self.error:
            return f"{self.mode} {self.name}: {self.error}"
        if self.lost or self.duplicates or self.unknown or self.accuracy < 1.0:
            return (
                f"{self.mode} {self.name}: {self.records}/{self.items} records, lost "
                f"{self.lost}, duplicated {self.duplicates}, unknown {self.unknown}, accuracy "
                f"{self.accuracy:.4f} {'; '.join(self.wrong[:2])}".rstrip()
            )
        return None


Say = Callable[[str], None]


def run_service_bench(params: Params, say: Say) -> dict[str, Any]:
    """Every phase in turn; the results document (without the machine and the command, which
    the harness adds). A phase that breaks is a failure in the document, not a traceback: the
    others still run and every process is still ended."""
    scratch = Path(tempfile.mkdtemp(prefix="landmark-svcbench-"))
    rows: list[JobRow] = []
    failures: list[str] = []
    service: dict[str, Any] = {}
    try:
        with start_site_process(SiteConfig(items=params.items)) as site:
            truth = site.truth()
            try:
                service = _service_phases(params, site.url, truth, scratch, say, rows)
            except Exception as error:
                failures.append(f"service: {type(error).__name__}: {error}")
                say(f"service phase failed: {error}")
            try:
                _separate_runs(params, site.url, truth, scratch, say, rows)
            except Exception as error:
                failures.append(f"separate: {type(error).__name__}: {error}")
                say(f"separate runs failed: {error}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    failures = [row.failure for row in rows if row.failure] + failures
    failures += service.pop("failures", [])
    summary = {mode: summarise(rows, mode) for mode in MODES}
    summary["service"].update(service.pop("timings", {}))
    return {
        "quick": params.quick,
        "params": {
            **asdict(params),
            "service_poll_s": SERVICE_POLL_S,
            "run_poll_s": RUN_POLL_S,
            "api_latency_ms": API_LATENCY_MS,
            "api_mode": "link",
            "cores": os.cpu_count(),
        },
        "summary": summary,
        "api": service.get("api", {}),
        "runs": [asdict(row) for row in rows],
        "failures": failures,
    }


# -- phases 1 and 2: one warm service -------------------------------------------------------


def _service_phases(
    params: Params, url: str, truth: list[dict], scratch: Path, say: Say, rows: list[JobRow]
) -> dict[str, Any]:
    """Start the service, run the batch and the API timing on it, stop it; what the summary
    and the document need beyond the rows (appended to ``rows`` as they are known)."""
    port = _free_port()
    command = [LANDMARK, "serve", "--port", str(port), "--data", str(scratch / "service")]
    server = _Child([*command, "--actors", params.actors], scratch, scratch / "serve.log")
    found: dict[str, Any] = {"failures": [], "timings": {}}
    try:
        client = Client(f"http://127.0.0.1:{port}", timeout_s=REQUEST_TIMEOUT_S)
        warm_s = _wait_warm(client, server)
        found["timings"]["warm_up_s"] = round(warm_s, 2)
        say(f"service: warm in {warm_s:.1f}s; {params.jobs} jobs x {params.items} items at once")
        submit_s = _batch(client, params, url, truth, rows, server)
        found["timings"]["submit_s"] = round(submit_s, 3)
        say(f"service: batch done; {_line(summarise(rows, 'service'))}")
        try:
            found["api"] = _api_overhead(client, params, server)
            say(f"api: {_api_line(found['api'])}")
        except Exception as error:
            found["failures"].append(f"api: {type(error).__name__}: {error}")
            say(f"api phase failed: {error}")
    except Exception as error:
        raise RuntimeError(f"{error} (the service's log: {_tail(server.log_path)})") from error
    finally:
        ended = server.stop(signal.SIGTERM, STOP_GRACE_S)
        found["timings"]["service_exit"] = ended
        if ended != "exit 0":
            found["failures"].append(f"service: after SIGTERM, {ended}")
    return found


def _wait_warm(client: Client, server: _Child) -> float:
    """Seconds from the service's start until ``/stats`` says it is ready (its pool is up
    and its jobs taken back): from then on a job starts at once."""
    deadline = server.began + WARM_BOUND_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"landmark serve exited with {server.process.returncode}")
        server.watch()
        with contextlib.suppress(ServiceError):
            if client.stats().get("ready"):
                return time.monotonic() - server.began
        time.sleep(0.2)
    raise TimeoutError(f"landmark serve did not answer within {WARM_BOUND_S:g}s")


def _batch(
    client: Client, params: Params, url: str, truth: list[dict], rows: list[JobRow], server: _Child
) -> float:
    """Submit every job at once, watch them to their ends, score their records; the seconds
    the submits took."""
    jobs: dict[str, JobRow] = {}
    t0 = time.monotonic()
    for index in range(params.jobs):
        name = f"svc-{index}"
        row = JobRow("service", name, params.items)
        rows.append(row)
        jobs[client.submit(job_mapping(url, name))["id"]] = row
    submit_s = time.monotonic() - t0
    _watch(client, jobs, t0, params.job_bound_s, server)
    for job_id, row in jobs.items():
        if row.error is None and row.state != "done":
            row.error = f"ended {row.state}"
        if row.error is None:
            _score(row, truth, client.results(job_id))
    return submit_s


def _watch(
    client: Client, jobs: dict[str, JobRow], t0: float, bound_s: float, server: _Child
) -> None:
    """Poll ``GET /jobs`` every SERVICE_POLL_S: a job's first record is the first poll that
    sees a record of it (done or failed), its end the first that sees it finished."""
    pending = set(jobs)
    while pending and time.monotonic() - t0 < bound_s:
        polled = time.monotonic()
        statuses = client.status()
        seen = time.monotonic() - t0
        for status in statuses:
            row = jobs.get(status.get("id", ""))
            if row is None:
                continue
            row.state = status.get("state", "")
            if row.running_s is None and row.state not in ("", "queued"):
                row.running_s = round(seen, 3)
            if row.first_record_s is None and (status.get("done") or 0) + (
                status.get("failed") or 0
            ):
                row.first_record_s = round(seen, 3)
            if row.end_s is None and row.state in FINISHED:
                row.end_s = round(seen, 3)
                pending.discard(status["id"])
        server.watch()
        time.sleep(max(0.0, SERVICE_POLL_S - (time.monotonic() - polled)))
    for job_id in pending:
        jobs[job_id].error = f"still {jobs[job_id].state} after {bound_s:g}s"


def _api_overhead(client: Client, params: Params, server: _Child) -> dict[str, Any]:
    """Client-side latency of the status endpoints while a bigger job extracts (its first
    records seen), then the job cancelled."""
    config = SiteConfig(items=params.api_items, latency_ms=API_LATENCY_MS)
    with start_site_process(config) as site:
        job_id = client.submit(job_mapping(site.url, "svc-api", open_mode="link"))["id"]
        try:
            before = _first_records(client, job_id, server)
            by_id = _time_calls(f"{client.server}/jobs/{job_id}", params.api_calls)
            stats = _time_calls(f"{client.server}/stats", params.api_calls)
            after = client.status(job_id)
        finally:
            with contextlib.suppress(ServiceError):
                client.cancel(job_id)
    return {
        "job_status": _latencies(by_id),
        "stats": _latencies(stats),
        "items": params.api_items,
        "records_before": before.get("done", 0) + before.get("failed", 0),
        "records_after": after.get("done", 0) + after.get("failed", 0),
        "state_after": after.get("state"),
        "running_throughout": after.get("state") == "running",
    }


def _first_records(client: Client, job_id: str, server: _Child) -> dict[str, Any]:
    deadline = time.monotonic() + FIRST_RECORDS_BOUND_S
    while time.monotonic() < deadline:
        status = client.status(job_id)
        if (status.get("done") or 0) + (status.get("failed") or 0) > 0:
            return status
        if status.get("state") in FINISHED:
            raise RuntimeError(f"the API job ended {status.get('state')} with no records")
        server.watch()
        time.sleep(SERVICE_POLL_S)
    raise TimeoutError(f"the API job had no record after {FIRST_RECORDS_BOUND_S:g}s")


def _time_calls(url: str, calls: int) -> list[float]:
    """Milliseconds per sequential GET, request to last byte, as a script would see it."""
    took = []
    for _ in range(calls):
        began = time.perf_counter()
        with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT_S) as response:
            response.read()
        took.append((time.perf_counter() - began) * 1000)
    return took


# -- phase 3: separate runs -------------------------------------------------------------------


def _separate_runs(
    params: Params, url: str, truth: list[dict], scratch: Path, say: Say, rows: list[JobRow]
) -> None:
    """``landmark run`` once per job, one after another, on the same job file."""
    job = scratch / "job.yaml"
    job.write_text(yaml.safe_dump(job_mapping(url, "separate")), encoding="utf-8")
    record_log = load_job(job).output.record_log
    bound_s = JOB_BOUND_S + PER_ITEM_S * params.items
    for index in range(params.jobs):
        row = JobRow("separate", f"run-{index}", params.items)
        rows.append(row)
        _one_run(row, params, job, scratch / row.name, record_log, bound_s)
        if row.error is None:
            _score(row, truth, _read_records(scratch / row.name / "out" / record_log))
        say(
            f"separate {row.name}: {row.end_s}s, first record {row.first_record_s}s, "
            f"{row.records} records{'' if row.failure is None else ' FAILED'}"
        )


def _one_run(
    row: JobRow, params: Params, job: Path, folder: Path, record_log: str, bound_s: float
) -> None:
    """Run it to its end (or its bound), timing its first complete record line and its exit."""
    folder.mkdir(parents=True)
    out = folder / "out"
    command = [LANDMARK, "run", str(job), "--out", str(out), "-q"]
    if params.actors != "auto":
        command += ["--actors", params.actors]
    run = _Child(command, folder, folder / "run.log")
    log, watched = out / record_log, 0.0
    try:
        while run.process.poll() is None and time.monotonic() - run.began < bound_s:
            if row.first_record_s is None and _has_line(log):
                row.first_record_s = round(time.monotonic() - run.began, 3)
            if time.monotonic() - watched > 1.0:
                run.watch()
                watched = time.monotonic()
            time.sleep(RUN_POLL_S)
        elapsed = round(time.monotonic() - run.began, 3)
        if run.process.poll() is None:
            row.error = f"still running after {bound_s:g}s"
        else:
            row.end_s = elapsed
            if row.first_record_s is None and _has_line(log):
                row.first_record_s = elapsed
    finally:
        row.state = run.stop(signal.SIGINT, STOP_GRACE_S)
    if row.error is None and row.state != "exit 0":
        row.error = f"{row.state} (its log: {_tail(run.log_path)})"


def _has_line(path: Path) -> bool:
    """A first complete record: the log holds a newline (records are whole lines)."""
    try:
        with path.open("rb") as file:
            return b"\n" in file.read(1 << 16)
    except OSError:
        return False


def _read_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


# -- shared ---------------------------------------------------------------------------------


def job_mapping(url: str, name: str, open_mode: str = "click") -> dict[str, Any]:
    """The example job aimed at ``url``, with the record cache off: every job of the batch
    reads the same items, and a cache hit would measure the cache, not the extraction."""
    job = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    job["name"] = name
    job["sources"] = {"urls": [url]}
    job["containers"] = {**job["containers"], "open": open_mode}
    job["cache"] = False
    return job


def _score(row: JobRow, truth: list[dict], records: Iterable[dict[str, Any]]) -> None:
    result = score(truth, records)
    row.records, row.lost, row.duplicates = result.records, result.lost, result.duplicates
    row.unknown, row.wrong = result.unknown_ids, result.wrong
    row.accuracy = round(result.accuracy, 4)


class _Child:
    """A command in a session of its own, its output in a log file. Its descendants (Ray's
    GCS, raylet, workers, their browsers) are noted while it runs: once it has exited they
    are no longer its children, and one left behind is still ours to end."""

    def __init__(self, command: list[str], cwd: Path, log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.began = time.monotonic()
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RAY_ADDRESS": ""},  # a local Ray of its own, never a cluster's
            start_new_session=True,
        )
        self.seen: dict[int, psutil.Process] = {}

    def watch(self) -> None:
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.Error:
            return
        for child in children:
            self.seen.setdefault(child.pid, child)

    def stop(self, signum: int, grace_s: float) -> str:
        """Ask first (``signum``: Ray shuts down cleanly), SIGKILL the session after
        ``grace_s``; then end whatever it left behind. How it ended: ``exit N``, or
        ``killed after N s``, plus the leftovers that had to be killed."""
        self.watch()
        ended = ""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                _kill_group(self.process.pid)
                self.process.wait(REAP_GRACE_S)
                ended = f"killed after {grace_s:g}s"
        ended = ended or f"exit {self.process.returncode}"
        left = _reap(list(self.seen.values()), self.process.pid)
        self._log.close()
        return ended + (f", {left} leftover process(es) killed" if left else "")


def _reap(processes: list[psutil.Process], group: int) -> int:
    """Give the leftovers REAP_GRACE_S to exit by themselves, then SIGKILL them and the
    session's process group; how many had to be killed."""
    _, alive = psutil.wait_procs(processes, timeout=REAP_GRACE_S)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    _kill_group(group)
    return len(alive)


def _kill_group(group: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _tail(path: Path, lines: int = 3) -> str:
    """What a failure's reader needs from a log: the command's own last error line
    (``landmark: ...``) when there is one, since Ray's tracebacks end the log; else its end."""
    try:
        text = ANSI.sub("", path.read_text(encoding="utf-8", errors="replace")).splitlines()
    except OSError:
        return "(no log)"
    own = [line for line in text if line.startswith("landmark")]
    return own[-1][:500] if own else " | ".join(text[-lines:])[:500] or "(empty)"


# -- figures and tables ---------------------------------------------------------------------


def summarise(rows: list[JobRow], mode: str) -> dict[str, Any]:
    """One mode's totals. Service: the batch's wall is its last end (all ran at once);
    separate: the sum of the runs' walls (they ran one after another)."""
    mine = [row for row in rows if row.mode == mode]
    ends = [row.end_s for row in mine if row.end_s is not None]
    total = (max(ends) if mode == "service" else sum(ends)) if ends else None
    records = sum(row.records for row in mine)
    firsts = [row.first_record_s for row in mine if row.first_record_s is not None]
    running = [row.running_s for row in mine if row.running_s is not None]
    return {
        "jobs": len(mine),
        "finished": len(ends),
        "failed": sum(row.failure is not None for row in mine),
        "records": records,
        "total_wall_s": None if total is None else round(total, 2),
        "jobs_per_min": round(len(ends) / total * 60, 2) if total else None,
        "records_per_s": round(records / total, 2) if total else None,
        "first_record_s": _spread(firsts),
        "end_s": _spread(ends),
        **({"running_s": _spread(running)} if running else {}),
    }


def _spread(values: list[float]) -> dict[str, float | None]:
    return {
        "p50": _percentile(values, 0.50),
        "p95": _percentile(values, 0.95),
        "max": round(max(values), 3) if values else None,
    }


def _latencies(milliseconds: list[float]) -> dict[str, Any]:
    return {"calls": len(milliseconds), **{f"{k}_ms": v for k, v in _spread(milliseconds).items()}}


def _percentile(values: list[float], share: float) -> float | None:
    """Nearest rank: a value that was measured, never one between two."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(share * len(ordered)) - 1)], 3)


def table(document: dict[str, Any]) -> list[str]:
    """The comparison as Markdown: printed by the command, and the report's section."""
    summary, params = document.get("summary", {}), document.get("params", {})
    lines = [
        "| mode | jobs | total wall s | jobs/min | records/s | first record p50 / p95 s |",
        "|---|---|---|---|---|---|",
    ]
    for mode in MODES:
        part = summary.get(mode, {})
        first = part.get("first_record_s", {})
        failed = f" ({part['failed']} failed)" if part.get("failed") else ""
        lines.append(
            f"| {mode} | {part.get('jobs', 0)}{failed} | "
            f"{_num(part.get('total_wall_s'))} | {_num(part.get('jobs_per_min'))} | "
            f"{_num(part.get('records_per_s'))} | {_num(first.get('p50'))} / "
            f"{_num(first.get('p95'))} |"
        )
    service, separate = summary.get("service", {}), summary.get("separate", {})
    lines.append("")
    if service.get("total_wall_s") and separate.get("total_wall_s"):
        ratio = separate["total_wall_s"] / service["total_wall_s"]
        lines.append(f"Total wall, separate / service: **{ratio:.1f}x**.")
    lines += [
        "",
        f"{params.get('jobs')} jobs of {params.get('items')} items (the example job, click mode, "
        "record cache off). *service*: one warm `landmark serve` (warm-up "
        f"{_num(service.get('warm_up_s'))} s, not counted; submits took "
        f"{_num(service.get('submit_s'))} s), every job submitted at once; times from the "
        f"first submit, seen by polling `GET /jobs` every {params.get('service_poll_s')} s "
        "(a job's counts move when its records are merged, about once a second, so first "
        "records are that coarse); jobs were seen running p50 "
        f"{_num(service.get('running_s', {}).get('p50'))} / max "
        f"{_num(service.get('running_s', {}).get('max'))} s after it. *separate*: "
        "`landmark run` once per job, each starting its "
        f"own Ray, **one after another** ({params.get('cores')} cores cannot hold "
        f"{params.get('jobs')} local Rays at once), so the total is the sum of their walls "
        "(process start to exit); first record = the first complete line in its record log, "
        f"polled every {params.get('run_poll_s')} s.",
    ]
    if document.get("api"):
        lines += ["", _api_line(document["api"])]
    return lines


def _api_line(api: dict[str, Any]) -> str:
    by_id, stats = api.get("job_status", {}), api.get("stats", {})
    during = (
        "it ran throughout"
        if api.get("running_throughout")
        else f"it was {api.get('state_after')} by the end: the later calls met an idle service"
    )
    return (
        f"API under a running job ({api.get('items')} items, link mode, site latency "
        f"{API_LATENCY_MS:g} ms; {by_id.get('calls')} sequential calls each, timed at the "
        f"client): `GET /jobs/{{id}}` p50 {_num(by_id.get('p50_ms'))} / p95 "
        f"{_num(by_id.get('p95_ms'))} / max {_num(by_id.get('max_ms'))} ms; `GET /stats` p50 "
        f"{_num(stats.get('p50_ms'))} / p95 {_num(stats.get('p95_ms'))} / max "
        f"{_num(stats.get('max_ms'))} ms ({during}; records {api.get('records_before')} -> "
        f"{api.get('records_after')})."
    )


def _line(part: dict[str, Any]) -> str:
    first = part.get("first_record_s", {})
    return (
        f"{part.get('finished')}/{part.get('jobs')} jobs in {_num(part.get('total_wall_s'))}s, "
        f"first record p50 {_num(first.get('p50'))}s"
    )


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"
