"""The service's jobs on disk: what was submitted and where each job stands, so a restarted
service resumes every unfinished job from its store.

    DATA/jobs/<id>/job.json     the job as submitted (secrets included: the file is 0600)
    DATA/jobs/<id>/meta.json    priority, state, times, error
    DATA/jobs/<id>/out/         the job's output folder: its store, record log, summary

The store in ``out/`` is the truth for records (exactly once, across restarts); the meta
file only says which jobs to bring back and how they were last seen.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from landmark.config.job import JobSpec
from landmark.coordinator.service_types import JobState, UnknownJobError

logger = logging.getLogger("landmark.serve")


class JobMeta(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    priority: int = Field(ge=0, le=9)
    order: int  # submission order, for fair tie-breaks after a restart too
    state: JobState = JobState.QUEUED
    submitted_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: str | None = None
    restarts: int = 0  # Coordinators started for it after the first (deaths, service restarts)


class JobRegistry:
    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)

    def create(self, job: JobSpec, priority: int, order: int) -> JobMeta:
        now = datetime.now(UTC)
        job_id = f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        meta = JobMeta(id=job_id, name=job.name, priority=priority, order=order, submitted_at=now)
        folder = self.root / job_id
        (folder / "out").mkdir(parents=True)
        _write_private(folder / "job.json", json.dumps(_plain(job.model_dump()), indent=2))
        self.save(meta)
        return meta

    def save(self, meta: JobMeta) -> None:
        path = self.root / meta.id / "meta.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(meta.model_dump_json(indent=2))
        tmp.replace(path)  # a crash leaves the old file or the new one, never half of one

    def load_all(self) -> list[tuple[JobMeta, JobSpec]]:
        """Every job on disk, oldest first; unreadable folders are skipped (and said)."""
        out = []
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            try:
                meta = JobMeta.model_validate_json((folder / "meta.json").read_text())
                job = JobSpec.model_validate_json((folder / "job.json").read_text())
            except (OSError, ValueError) as error:
                logger.warning("skipping %s: %s", folder, str(error).splitlines()[0])
                continue
            out.append((meta, job))
        return sorted(out, key=lambda pair: pair[0].order)

    def out_dir(self, job_id: str) -> Path:
        folder = self.root / job_id
        if not folder.is_dir():
            raise UnknownJobError(job_id)
        return folder / "out"


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _plain(value: Any) -> Any:
    """The job as JSON that validates back to the same job: secrets revealed (pydantic's
    JSON masks them), durations in seconds, paths and enums as their values."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(item) for item in value]
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value
