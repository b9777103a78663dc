"""Which store a run uses, chosen on the command line or by ``LANDMARK_REDIS_URL``, and
opened where the Coordinator runs: a small picklable description, not a connection."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from landmark.config.job import JobSpec
from landmark.coordinator.store import RecordCache, RunStore

REDIS_SCHEMES = ("redis", "rediss", "unix")
_USERINFO = re.compile(r"^([^:/?#]*://[^:@/?#]*):[^@/?#]*@")


class StoreUrlError(ValueError):
    """A ``--store`` / ``LANDMARK_REDIS_URL`` that is not a Redis URL (exit 2)."""


def redact_url(url: str) -> str:
    """A URL safe to print: any password replaced by ``***`` (even in a URL that does not
    parse, which is exactly when it gets printed in an error)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = f"{parts.username or ''}:***@" + parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return _USERINFO.sub(r"\1:***@", url)


def check_store_url(url: str) -> str:
    """The Redis URL, or a StoreUrlError saying what is wrong with it (before Ray starts)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 — raises on a port that is not a number in range
    except ValueError as error:
        raise StoreUrlError(f"not a Redis URL: {redact_url(url)} ({error})") from None
    if parts.scheme not in REDIS_SCHEMES or not (parts.hostname or parts.path):
        raise StoreUrlError(
            f"not a Redis URL: {redact_url(url)}; expected redis://[:password@]host:port[/db], "
            "rediss://… or unix:///path/to/socket"
        )
    return url


@dataclass(frozen=True, slots=True)
class StoreConfig:
    out_dir: Path
    job_name: str = ""
    record_log: str = "results.jsonl"  # the JSON-lines record log, inside out_dir
    results: str | None = None  # the exported results, when they are not the log itself
    redis_url: str | None = None
    cache: bool = True
    cache_ttl_s: float = 86_400.0

    @classmethod
    def for_job(cls, job: JobSpec, out_dir: Path, redis_url: str | None) -> StoreConfig:
        return cls(
            out_dir=Path(out_dir),
            job_name=job.name,
            record_log=job.output.record_log,
            results=None if job.output.record_log == job.output.results else job.output.results,
            redis_url=check_store_url(redis_url) if redis_url else None,
            cache=job.cache.enabled,
            cache_ttl_s=job.cache.ttl.total_seconds(),
        )

    @property
    def description(self) -> str:
        if self.redis_url:
            return f"redis ({redact_url(self.redis_url)})"
        return f"local ({self.out_dir})"

    def open_store(self) -> RunStore:
        if self.redis_url:
            from landmark.coordinator.redis_store import RedisStore

            return RedisStore(
                self.redis_url, self.out_dir, self.record_log, export_name=self.results
            )
        from landmark.coordinator.local_store import LocalStore

        return LocalStore(self.out_dir, self.record_log, export_name=self.results)

    def open_mirror(self):
        """With Redis, the driver copies the records stream into the record log."""
        if not self.redis_url:
            return None
        from landmark.coordinator.redis_records import ResultsMirror

        return ResultsMirror(self.redis_url, self.out_dir, self.record_log, self.job_name)

    def open_cache(self) -> RecordCache | None:
        if not self.cache:
            return None
        if self.redis_url:
            from landmark.coordinator.redis_records import RedisRecordCache

            return RedisRecordCache(self.redis_url, self.cache_ttl_s)
        from landmark.coordinator.local_store import LocalRecordCache

        return LocalRecordCache(self.out_dir, self.cache_ttl_s)
