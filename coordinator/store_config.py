"""Which store a run uses, chosen on the command line or by ``LANDMARK_REDIS_URL``, and
opened where the Coordinator runs: a small picklable description, not a connection."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from config.job import JobSpec
from coordinator.store import RecordCache, RunStore


def redact_url(url: str) -> str:
    """A URL safe to print: any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True, slots=True)
class StoreConfig:
    out_dir: Path
    job_name: str = ""
    results: str = "results.jsonl"
    redis_url: str | None = None
    cache: bool = True
    cache_ttl_s: float = 86_400.0

    @classmethod
    def for_job(cls, job: JobSpec, out_dir: Path, redis_url: str | None) -> StoreConfig:
        return cls(
            out_dir=Path(out_dir),
            job_name=job.name,
            results=job.output.results,
            redis_url=redis_url,
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
            from coordinator.redis_store import RedisStore

            return RedisStore(self.redis_url, self.out_dir, self.results)
        from coordinator.local_store import LocalStore

        return LocalStore(self.out_dir, self.results)

    def open_mirror(self):
        """With Redis, the driver copies the records stream into ``results.jsonl``."""
        if not self.redis_url:
            return None
        from coordinator.redis_records import ResultsMirror

        return ResultsMirror(self.redis_url, self.out_dir, self.results, self.job_name)

    def open_cache(self) -> RecordCache | None:
        if not self.cache:
            return None
        if self.redis_url:
            from coordinator.redis_records import RedisRecordCache

            return RedisRecordCache(self.redis_url, self.cache_ttl_s)
        from coordinator.local_store import LocalRecordCache

        return LocalRecordCache(self.out_dir, self.cache_ttl_s)
