"""The service's numbers in Prometheus' text format, for ``GET /metrics``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from landmark.coordinator.service_types import JobState

Sample = tuple[dict[str, str], Any]
JOB_GAUGES = (  # (status key, metric kind, help): one sample per job, labelled job and name
    ("done", "counter", "Records done."),
    ("failed", "counter", "Records failed."),
    ("pending", "gauge", "Containers not finished yet."),
    ("known", "gauge", "Containers known (grows while discovery goes on)."),
    ("rate", "gauge", "Records per second."),
    ("eta_s", "gauge", "Seconds left, estimated."),
    ("priority", "gauge", "The job's priority."),
    ("share", "gauge", "Pages per actor given to the job."),
    ("restarts", "counter", "Times the job's run was started again."),
)
RAY_METRICS_NOTE = (
    "# Ray's own metrics (actors, tasks, object store) are served on each node's metrics "
    "export port (ray start --metrics-export-port), not here."
)


def prometheus_text(stats: Mapping[str, Any], jobs: list[Mapping[str, Any]]) -> str:
    """The service's numbers in Prometheus' text format (0.0.4): what ``/stats`` and
    ``/jobs`` say, for a scraper. A value the service does not have (None) is left out."""
    counts = stats.get("jobs") or {}
    latency = stats.get("latency_ms") or {}
    memory = stats.get("memory") or {}
    actors = stats.get("actors")
    families: list[tuple[str, str, str, list[Sample]]] = [
        ("uptime_seconds", "gauge", "Seconds since the service started.",
         [({}, stats.get("uptime_s"))]),
        ("jobs", "gauge", "Jobs by state.",
         [({"state": state.value}, counts.get(state.value, 0)) for state in JobState]),
        ("records_per_second", "gauge", "Records merged per second over the last minute.",
         [({}, stats.get("throughput"))]),
        ("latency_ms", "gauge", "Milliseconds per record over recent records.",
         [({"quantile": f"0.{key[1:]}"}, latency.get(key)) for key in ("p50", "p95", "p99")]),
        ("memory_fraction", "gauge", "Node memory in use, a fraction.",
         [({}, memory.get("fraction"))]),
        ("memory_verdict", "gauge", "The load verdict: 1 for the current one.",
         [({"verdict": str(memory["verdict"])}, 1)] if memory.get("verdict") else []),
        ("actors", "gauge", "BrowserActors in the pool.",
         [({}, len(actors))] if isinstance(actors, list) else []),
        ("actors_replaced", "counter", "BrowserActors replaced after they died.",
         [({}, stats.get("actors_replaced"))]),
        ("pages_per_actor", "gauge", "Pages each BrowserActor holds open.",
         [({}, stats.get("pages_per_actor"))]),
        ("records_last_minute", "gauge", "Records merged over the last minute.",
         [({}, stats.get("records_last_minute"))]),
    ]  # fmt: skip
    for key, kind, about in JOB_GAUGES:
        samples = [(_job_labels(job), job.get(key)) for job in jobs]
        families.append((f"job_{key}", kind, about, samples))
    states = [({**_job_labels(job), "state": str(job.get("state"))}, 1) for job in jobs]
    families.append(("job_state", "gauge", "The job's state: 1 for the current one.", states))
    out = [RAY_METRICS_NOTE]
    for name, kind, about, samples in families:
        shown = [(labels, text) for labels, value in samples if (text := _number(value))]
        if shown:
            out += [f"# HELP landmark_{name} {about}", f"# TYPE landmark_{name} {kind}"]
            out += [f"landmark_{name}{_labels(labels)} {text}" for labels, text in shown]
    return "\n".join(out) + "\n"


def _job_labels(job: Mapping[str, Any]) -> dict[str, str]:
    return {"job": str(job.get("id")), "name": str(job.get("name"))}


def _number(value: Any) -> str | None:
    """A sample's value as Prometheus writes it; None for what is not a number."""
    if isinstance(value, bool | int):
        return str(int(value))
    if not isinstance(value, float):
        return None
    if math.isnan(value):
        return "NaN"
    return repr(value) if math.isfinite(value) else ("+Inf" if value > 0 else "-Inf")


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items()) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
