"""Records in Redis outside a run's state: the record cache, shared by every run and node
that uses the same Redis, and the driver's mirror of a job's records stream in its record
log (``results.jsonl``, or ``.landmark/records-NAME.jsonl`` for csv/json results)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from landmark.config.records import Record
from landmark.coordinator.redis_store import DOWN, RECORDS_PER_CALL, connect, job_prefix
from landmark.coordinator.store import JsonlSink, finished_in
from landmark.coordinator.store_config import redact_url

MIRROR_BATCH = 2_000
# ARGV: ttl s, then (key, record JSON) pairs: the record cache, written in bulk.
CACHE_PUT = """
for i = 2, #ARGV, 2 do
  redis.call('SET', ARGV[i], ARGV[i + 1], 'EX', ARGV[1])
end
return 1
"""


class RedisRecordCache:
    """Records by key under ``landmark:cache:``, each with the job's TTL."""

    def __init__(self, url: str, ttl_s: float) -> None:
        self.url = url
        self.ttl_s = max(1, int(ttl_s))
        self._client = connect(url)
        self._put = self._client.register_script(CACHE_PUT)

    def get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        if not keys:
            return {}
        try:
            values = self._client.mget([f"landmark:cache:{key}" for key in keys])
        except DOWN:
            return {}  # a cache that is away is a miss, never a failure
        return {key: json.loads(value) for key, value in zip(keys, values, strict=True) if value}

    def put_many(self, items: dict[str, str]) -> None:
        """One script call per thousand records (one reply each, not one per record)."""
        pairs = [part for key, text in items.items() for part in (f"landmark:cache:{key}", text)]
        step = 2 * RECORDS_PER_CALL
        try:
            with self._client.pipeline(transaction=False) as pipe:
                for start in range(0, len(pairs), step):
                    self._put(args=[self.ttl_s, *pairs[start : start + step]], client=pipe)
                pipe.execute()
        except DOWN:
            return

    def close(self) -> None:
        self._client.close()


class ResultsMirror:
    """The driver's copy of the records stream in the record log: appended as records
    arrive, each id once (a restarted driver skips what the file already holds)."""

    def __init__(self, url: str, out_dir: Path | str, log_name: str, job_name: str) -> None:
        self.url = url
        self.path = Path(out_dir) / log_name
        self._seen = set(finished_in(self.path))
        self._sink = JsonlSink(self.path, flush_every=MIRROR_BATCH)
        self._client = connect(url)
        self._stream = f"{job_prefix(job_name)}:records"
        self._cursor = "0-0"
        self.trouble: str | None = None

    def pump(self) -> int:
        """Copy what the stream has that the file lacks; 0 when Redis is away."""
        copied = 0
        try:
            while True:
                answer = self._client.xread({self._stream: self._cursor}, count=MIRROR_BATCH)
                if not answer:
                    break
                for entry_id, fields in answer[0][1]:
                    self._cursor = entry_id
                    data = json.loads(fields["r"])
                    if data["id"] in self._seen:
                        continue
                    self._seen.add(data["id"])
                    self._sink.write(Record.from_json_dict(data))
                    copied += 1
        except DOWN as error:
            self.trouble = f"Redis {redact_url(self.url)}: {error}"
            return copied
        self.trouble = None
        self._sink.sync()
        return copied

    def close(self) -> None:
        self._sink.close()
        self._client.close()
