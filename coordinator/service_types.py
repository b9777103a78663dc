"""What the HTTP layer (``api.py``) asks of the service (``service.py``), and nothing more.

The service runs jobs on one warm pool of BrowserActors; the HTTP layer only translates
requests into these calls and their answers into JSON, CSV or Excel. Keeping the contract
this small lets the API be tested against a real service and read without Ray in mind.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from landmark.config.job import JobSpec


class JobState(StrEnum):
    QUEUED = "queued"  # accepted, waiting for a share of the pool
    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done"  # every container has its record (failed ones included)
    CANCELLED = "cancelled"
    FAILED = "failed"  # the run could not go on; ``error`` says why

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.CANCELLED, JobState.FAILED)


class UnknownJobError(KeyError):
    """No job has this id (HTTP 404)."""


class JobStateError(Exception):
    """The call does not fit the job's state, e.g. resuming a finished job (HTTP 409)."""


class ServiceBackend(Protocol):
    async def submit(self, job: JobSpec, priority: int) -> dict[str, Any]:
        """Queue ``job`` (already validated); answers its status, ``id`` included."""
        ...

    def jobs(self) -> list[dict[str, Any]]:
        """Every job's status, newest first (see :meth:`job`)."""
        ...

    def job(self, job_id: str) -> dict[str, Any]:
        """One job's status: ``id, name, priority, state, submitted_at, started_at, ended_at,
        done, failed, pending, known, rate (records/s), eta_s, verdict, cache_hits, share
        (pages per actor), error``. Raises :class:`UnknownJobError`."""
        ...

    async def pause(self, job_id: str) -> dict[str, Any]: ...

    async def resume(self, job_id: str) -> dict[str, Any]: ...

    async def cancel(self, job_id: str) -> dict[str, Any]: ...

    def spec(self, job_id: str) -> JobSpec:
        """The job as submitted (for its fields: CSV and Excel columns)."""
        ...

    def record_log(self, job_id: str) -> Path:
        """The job's record log: JSON lines, one record per line, appended as records are
        merged (about once a second); it may not exist yet."""
        ...

    def stats(self) -> dict[str, Any]:
        """The service: ``ready`` (its pool is up), ``uptime_s``, ``jobs`` (counts by
        state), ``throughput`` (records/s, the running jobs' rates summed),
        ``records_last_minute``, ``latency_ms`` (p50, p95, p99: the slowest running job's,
        each over that job's recent records), ``memory`` (the fullest node's fraction and
        verdict), ``actors`` (each pool actor: name, node, state, the jobs with a session
        there, what is in flight)."""
        ...
