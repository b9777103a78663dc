"""landmark end to end: the example job (config/examples/gallery.yaml) through ``run_job``.

It runs in its own worker process (``benchmarks.contenders.worker``) that
starts Ray once, so Ray's start-up is paid once per scenario and reported as
``startup_s``, and the worker's process tree (driver, raylet, GCS, actors,
their browsers) is exactly what the harness samples for memory. The run's
wall time starts at ``run_job``: it includes starting the actors and their
browsers, as every other contender's wall includes launching its browser.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

from landmark.benchmarks.contenders.fields import EXAMPLE_JOB
from landmark.benchmarks.contenders.spec import ItemResult, Outcome, RunSpec

MAX_ACTORS = 8


def start_ray() -> float:
    """Start the local Ray this worker will reuse; seconds it took."""
    from landmark.coordinator.ray_setup import init_ray

    began = time.monotonic()
    init_ray(None, MAX_ACTORS)
    return time.monotonic() - began


def job_overrides(spec: RunSpec) -> dict[str, Any]:
    overrides: dict[str, Any] = {
        "sources.urls": list(spec.sources),
        "containers.open": spec.mode,
        "containers.limit": spec.items,
        "budget.actors": spec.actors,
        "budget.pages_per_actor": spec.pages,
        "budget.max_in_flight": max(64, spec.actors * spec.pages),
        "budget.domain_concurrency": max(32, spec.actors * spec.pages),
        "output.dir": spec.out_dir,
    }
    if not spec.adaptive_pages:
        overrides["budget.pages_at_start"] = spec.pages  # a fixed setting: exactly its pages
    if spec.memory_throttle is not None:
        overrides["budget.memory_throttle"] = spec.memory_throttle
    if spec.memory_shed is not None:
        overrides["budget.memory_shed"] = spec.memory_shed
    return overrides


def run_landmark(spec: RunSpec) -> Outcome:
    from landmark.config.loading import load_job
    from landmark.coordinator.driver import run_job
    from landmark.coordinator.store import read_results

    out_dir = Path(spec.out_dir)
    shutil.rmtree(out_dir, ignore_errors=True)
    job = load_job(EXAMPLE_JOB, job_overrides(spec))
    started = time.monotonic()
    with FirstLine(out_dir / job.output.record_log) as first:
        summary = run_job(job, job.source_urls(), out_dir=out_dir, show_progress=False)
    wall = time.monotonic() - started
    records = [_item(record) for record in read_results(out_dir / job.output.results)]
    summary.pop("actors", None)  # per-actor detail: large, and the learner dump with it
    summary.pop("learner", None)
    return Outcome(
        label=spec.label,
        kind=spec.kind,
        records=records,
        wall_s=wall,
        first_record_s=None if first.at is None else round(first.at - started, 3),
        extra={"summary": summary},
    )


class FirstLine:
    """When a record log gets its first complete line, watched from a thread: the run's
    records are read from disk after it ends, so their own creation says nothing of when
    the first one came. Polled every ``POLL_S`` (the figure's resolution)."""

    POLL_S = 0.02

    def __init__(self, path: Path) -> None:
        self.path = path
        self.at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> FirstLine:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _watch(self) -> None:
        while not self._stop.wait(self.POLL_S):
            try:
                with self.path.open("rb") as log:
                    if b"\n" in log.read(1 << 16):
                        self.at = time.monotonic()
                        return
            except FileNotFoundError:
                continue


def _item(record: dict[str, Any]) -> ItemResult:
    """The latency is the time the container had a page, as every other contender measures
    it: the record's total less its wait for a free page in its actor (``queued``)."""
    errors = record.get("errors") or []
    timings = record.get("timings") or {}
    return ItemResult(
        id=record["id"],
        fields=record.get("fields") or {},
        latency_ms=float(timings.get("total", 0.0)) - float(timings.get("queued", 0.0)),
        ok=record.get("status") != "failed",
        error=errors[0].get("reason") if errors else None,
    )
