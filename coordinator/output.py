"""Where a run's records go: the store (durable), the record cache, and the run's counters —
and what to do while the store is away.

The Coordinator hands every terminal record to :meth:`RunOutput.write`; the store buffers
it and the housekeeping loop calls :meth:`RunOutput.flush` about once a second. When the
store does not answer, the writes stay buffered and :attr:`RunOutput.trouble` says so;
the Coordinator decides what that means for dispatch.
"""

from __future__ import annotations

import asyncio
import time

from landmark.config.job import JobSpec
from landmark.config.records import Container, Record, Status
from landmark.coordinator.run_stats import RunStats
from landmark.coordinator.store import (
    JobIdentity,
    RecordCache,
    Resumed,
    RunStore,
    StoreUnavailable,
    cache_key,
    cache_spec_hash,
)
from landmark.coordinator.store_config import StoreConfig


class RunOutput:
    def __init__(self, job: JobSpec, config: StoreConfig, stats: RunStats) -> None:
        self.job = job
        self.description = config.description
        self.store: RunStore = config.open_store()
        self.cache: RecordCache | None = config.open_cache()
        self.stats = stats
        self.trouble: str | None = None  # why the store is not answering, while it is not
        self._spec_hash = cache_spec_hash(job)
        self._to_cache: dict[str, str] = {}
        self._down_since: float | None = None

    def open(self, identity: JobIdentity) -> Resumed:
        """The store's view of the job (blocking: run it off the event loop)."""
        return self.store.open(identity)

    # -- records ---------------------------------------------------------------------------
    def cached(self, containers: list[Container]) -> tuple[list[Record], list[Container]]:
        """The cache's records for ``containers`` (marked ``cached``), and the rest."""
        if self.cache is None or not containers:
            return [], containers
        keys = {cache_key(self._spec_hash, c.source, c.id): c for c in containers}
        hits = self.cache.get_many(list(keys))
        records, rest = [], []
        for key, container in keys.items():
            data = hits.get(key)
            if data is None:
                rest.append(container)
                continue
            record = Record.from_json_dict(data)
            record.id, record.source = container.id, container.source
            record.position, record.cached = container.position, True
            record.attempts, record.timings, record.actor = 0, {}, None
            records.append(record)
        return records, rest

    def write(self, record: Record) -> None:
        line = record.to_json_line()
        self.store.write(record, line)
        self.stats.wrote(record)
        if self.cache is not None and not record.cached and record.status != Status.FAILED:
            self._to_cache[cache_key(self._spec_hash, record.source, record.id)] = line

    # -- durability ------------------------------------------------------------------------
    def flush(self) -> bool:
        """Make what was written durable; False (and ``trouble`` set) while the store is away."""
        try:
            self._flush_now()
        except StoreUnavailable as error:
            self._down_since = self._down_since or time.monotonic()
            self.trouble = f"store unavailable for {self.outage_s():.0f}s: {error}"
            return False
        self._down_since = None
        self.trouble = None
        return True

    def _flush_now(self) -> None:
        if self._to_cache and self.cache is not None:
            self.cache.put_many(self._to_cache)
            self._to_cache = {}
        self.store.flush()

    def outage_s(self) -> float:
        """How long the store has been away (0 while it answers)."""
        return time.monotonic() - self._down_since if self._down_since is not None else 0.0

    def pending_writes(self) -> int:
        return self.store.pending_writes()

    async def finish(self, completed: bool) -> None:
        """The last writes, retried with backoff while the store is away (up to
        ``timeouts.store_outage``): a run that ends during an outage still loses nothing."""
        deadline = time.monotonic() + self.job.timeouts.store_outage.total_seconds()
        delay = 0.25
        while True:
            try:
                self._flush_now()
                self.store.finish(completed=completed)
                self.trouble = None
                return
            except StoreUnavailable as error:
                if time.monotonic() + delay > deadline:
                    raise
                self.trouble = f"store unavailable at the end of the run: {error}"
                # Nothing to wait on but the store itself: try again after a backoff.
                await asyncio.sleep(delay)
                delay = min(2 * delay, 5.0)

    def close(self) -> None:
        self.store.close()
        if self.cache is not None:
            self.cache.close()
