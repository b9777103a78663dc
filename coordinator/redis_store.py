"""The Redis store: a run's state in Redis, for clusters and for runs any process may lose.

Keys, namespaced by job (``landmark:job:NAME:...``), as Browsertrix and Crawlee keep
theirs:

    meta        hash   the job's identity (what, hash), status, runs
    owner       string the token of the coordinator that owns the job (expires if unrenewed)
    released    list   pushed when an owner lets go, so a waiting coordinator wakes
    containers  hash   id -> the container (JSON)
    attempts    hash   id -> tries so far
    pending     zset   id, scored by priority then discovery order
    leased      hash   id -> lease expiry (unix seconds)
    done        hash   id -> status: every container with its record written
    records     stream one entry per record (field ``r``, JSON)
    sources     set    sources whose discovery finished
    learner     hash   domain -> that domain's learner snapshot (JSON)

Writes are buffered and sent once a second in one ``MULTI``; a record is written by a Lua
script that adds it to the stream only if ``HSETNX done`` says it is new, so a batch sent
twice (a connection lost during ``EXEC``) never duplicates a record, and only while the
writer owns the job: one coordinator at a time, and a dying one is fenced off. When Redis is away,
:meth:`RedisStore.flush` raises :class:`StoreUnavailable` and keeps the batch for the
next try. The driver mirrors the stream into the record log (:class:`ResultsMirror`), the
JSON-lines file the results are exported from (``results.jsonl`` itself by default).

The record cache and the driver's mirror of the records stream are in ``redis_records``.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from landmark.config.records import Container, Record
from landmark.coordinator.store import (
    JobIdentity,
    Prior,
    Resumed,
    StoreError,
    StoreUnavailable,
    container_from_json,
    container_to_json,
)
from landmark.coordinator.store_config import redact_url

SOCKET_TIMEOUT_S = 5.0
OWNER_TTL_MS = 15_000  # a coordinator that stops refreshing its claim loses it after this
RECORDS_PER_CALL = 1_000
# KEYS: done, records, owner, leased, pending; ARGV: owner token, then (id, status, record
# JSON) triples. New records only, and only from the coordinator that owns the job (a fence
# for zombies); each container leaves the leased and pending sets in the same step.
WRITE_RECORDS = """
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return -1 end
local written = 0
for i = 2, #ARGV, 3 do
  redis.call('HDEL', KEYS[4], ARGV[i])
  redis.call('ZREM', KEYS[5], ARGV[i])
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
    redis.call('XADD', KEYS[2], '*', 'r', ARGV[i + 2])
    written = written + 1
  end
end
return written
"""
# KEYS: owner; ARGV: token, ttl ms. Renew our claim (or take it back after it expired
# during an outage); 0 when another coordinator holds it.
CLAIM = """
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
# KEYS: owner, released; ARGV: token. Let go, and wake whoever waits for the job.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('LPUSH', KEYS[2], '1')
  redis.call('PEXPIRE', KEYS[2], 60000)
end
return 1
"""
DOWN = (redis.ConnectionError, redis.TimeoutError, OSError)


def connect(url: str) -> redis.Redis:
    try:
        return redis.Redis.from_url(
            url,
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=SOCKET_TIMEOUT_S,
            decode_responses=True,
        )
    except ValueError as error:
        raise StoreError(f"not a usable Redis URL {redact_url(url)}: {error}") from None


def redis_health(url: str) -> tuple[bool, str]:
    """(healthy, one line): PING and the server's version, for ``landmark doctor``."""
    try:
        client = connect(url)
        client.ping()
        version = client.info("server").get("redis_version", "?")
    except (StoreError, redis.RedisError, OSError) as error:
        return False, f"NOT answering ({type(error).__name__}: {error})"
    return True, f"answers PING (Redis {version})"


def job_prefix(name: str) -> str:
    return f"landmark:job:{name}"


class RedisStore:
    KEYS = ("meta", "containers", "attempts", "pending", "leased", "done", "records",
            "sources", "learner", "owner", "released")  # fmt: skip
    CLAIM_WAIT_S = 4.0  # per BLPOP: below the socket timeout

    def __init__(
        self,
        url: str,
        out_dir: Path | str,
        log_name: str,
        claim_ttl_ms: int = OWNER_TTL_MS,
        *,
        export_name: str | None = None,
    ) -> None:
        """``log_name``: the local mirror of the records; ``export_name``: the results
        exported from it (when they are another file), deleted with it by :meth:`reset`."""
        self.url = url
        self.claim_ttl_ms = claim_ttl_ms
        self.description = f"redis ({redact_url(url)})"
        self.out_dir = Path(out_dir)
        self.log_path = self.out_dir / log_name
        self.export_path = self.out_dir / export_name if export_name else None
        self._client: redis.Redis | None = None
        self._prefix = ""
        self._batch = _Batch()
        self._seq = 0
        self._token = secrets.token_hex(8)
        self._scripts: dict[str, Any] = {}

    def _key(self, name: str) -> str:
        return f"{self._prefix}:{name}"

    def _redis(self) -> redis.Redis:
        if self._client is None:
            self._client = connect(self.url)
        return self._client

    def _call(self, method: str, *args: Any, **options: Any) -> Any:
        """One command now, with Redis being away as StoreUnavailable (no password shown)."""
        try:
            return getattr(self._redis(), method)(*args, **options)
        except DOWN as error:
            raise StoreUnavailable(f"Redis {redact_url(self.url)}: {error}") from None

    # -- before a run ------------------------------------------------------------------------
    def inspect(self, identity: JobIdentity) -> Prior:
        self._prefix = job_prefix(identity.name)
        meta = self._call("hgetall", self._key("meta"))
        where = f"{self.description} job {identity.name!r}"
        if "what" not in meta:
            return Prior("none", 0, where=where)
        records = self._call("hlen", self._key("done"))
        kind = "finished" if meta.get("status") == "finished" else "unfinished"
        return Prior(kind, records, identity.differences(json.loads(meta["what"])), where)

    def reset(self) -> None:
        """Delete the job's state and records in Redis, the local mirror and the results
        exported from it (not the cache)."""
        self._delete_keys()
        self.log_path.unlink(missing_ok=True)
        if self.export_path is not None:
            self.export_path.unlink(missing_ok=True)

    def _delete_keys(self) -> None:
        self._call("delete", *(self._key(k) for k in self.KEYS))

    # -- the run -------------------------------------------------------------------------------
    def open(self, identity: JobIdentity) -> Resumed:
        """Take over the job: records written stay; leased containers go back to pending.

        Blocks until this store owns the job: while a coordinator that is dying still holds
        it, its claim runs out within ``OWNER_TTL_MS``. Call it off the event loop, under a
        deadline."""
        self._prefix = job_prefix(identity.name)
        client = self._redis()
        for name, script in (("write", WRITE_RECORDS), ("claim", CLAIM), ("release", RELEASE)):
            self._scripts[name] = client.register_script(script)
        self._claim()
        meta = self._call("hgetall", self._key("meta"))
        what = json.dumps(identity.what, sort_keys=True)
        resumed = Resumed()
        if meta.get("what") == what:
            resumed = self._read_back()
        else:  # a new run (the driver has confirmed it and cleared the mirror)
            self._delete_keys()
        runs = int(meta.get("runs", "0")) + 1
        self._call(
            "hset",
            self._key("meta"),
            mapping={"name": identity.name, "what": what, "hash": identity.hash,
                     "status": "running", "runs": runs, "started": time.time()},
        )  # fmt: skip
        return resumed

    def _claim(self) -> None:
        """Own the job, waiting on the ``released`` list until the holder lets go or its
        claim expires (a blocking pop with a timeout: no polling)."""
        owner, released = self._key("owner"), self._key("released")
        while not self._call_script("claim", [owner], [self._token, self.claim_ttl_ms]):
            left_ms = self._call("pttl", owner)
            wait = min(self.CLAIM_WAIT_S, max(0.1, left_ms / 1000 if left_ms > 0 else 0.1))
            self._call("blpop", [released], timeout=wait)

    def _call_script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        try:
            return self._scripts[name](keys=keys, args=args)
        except DOWN as error:
            raise StoreUnavailable(f"Redis {redact_url(self.url)}: {error}") from None

    def _read_back(self) -> Resumed:
        finished = self._call("hgetall", self._key("done"))
        bodies = self._call("hgetall", self._key("containers"))
        attempts = self._call("hgetall", self._key("attempts"))
        pending = []
        for cid, body in bodies.items():
            if cid not in finished:
                pending.append((container_from_json(json.loads(body)), int(attempts.get(cid, 0))))
        pending.sort(key=lambda entry: entry[0].position)
        client = self._redis()
        with client.pipeline(transaction=True) as pipe:  # the dead run's leases come back
            pipe.delete(self._key("leased"))
            if pending:
                scores = {c.id: i for i, (c, _) in enumerate(pending)}
                pipe.zadd(self._key("pending"), scores)
            try:
                pipe.execute()
            except DOWN as error:
                raise StoreUnavailable(f"Redis {redact_url(self.url)}: {error}") from None
        self._seq = len(bodies)
        sources = set(self._call("smembers", self._key("sources")))
        learner = _merge_learner(self._call("hvals", self._key("learner")))
        return Resumed(finished, pending, sources, learner)

    def added(self, containers: list[Container]) -> None:
        batch = self._batch
        for container in containers:
            body = json.dumps(container_to_json(container), separators=(",", ":"))
            batch.containers[container.id] = body
            batch.scores[container.id] = self._seq
            self._seq += 1

    def leased(self, containers: list[Container], attempts: list[int]) -> None:
        expiry = time.time() + 600.0  # advisory: a takeover returns every lease anyway
        for container, tries in zip(containers, attempts, strict=True):
            self._batch.leased[container.id] = expiry
            self._batch.attempts[container.id] = tries

    def write(self, record: Record, line: str | None = None) -> None:
        self._batch.records += (record.id, str(record.status), line or record.to_json_line())

    def source_done(self, source: str) -> None:
        self._batch.sources.add(source)

    def save_learner(self, snapshot: dict[str, Any]) -> None:
        self._batch.learner.update(_split_learner(snapshot))

    def pending_writes(self) -> int:
        return self._batch.size()

    def flush(self) -> None:
        """Send every buffered write in one MULTI (a few commands, whatever the number of
        records); on failure keep them all for the next try."""
        batch = self._batch
        if not batch.size():
            return
        try:
            with self._redis().pipeline(transaction=True) as pipe:
                self._queue(pipe, batch)
                answers = pipe.execute()
        except DOWN as error:
            self._client = None  # reconnect next time
            raise StoreUnavailable(f"Redis {redact_url(self.url)}: {error}") from None
        except redis.RedisError as error:
            raise StoreError(f"Redis {redact_url(self.url)} refused a write: {error}") from None
        if answers[0] != 1 or -1 in answers:
            raise StoreError(
                f"another coordinator took job {self._prefix.rsplit(':', 1)[-1]!r} over in "
                f"{self.description}; this one stops writing"
            )
        self._batch = _Batch()

    def _queue(self, pipe: Any, batch: _Batch) -> None:
        """The batch as pipeline commands, in the order the run made them: discovered,
        leased, written."""
        key = self._key
        self._scripts["claim"](keys=[key("owner")], args=[self._token, self.claim_ttl_ms],
                               client=pipe)  # fmt: skip
        if batch.containers:
            pipe.hset(key("containers"), mapping=batch.containers)
            pipe.zadd(key("pending"), batch.scores)
        if batch.leased:
            pipe.zrem(key("pending"), *batch.leased)
            pipe.hset(key("leased"), mapping=batch.leased)
            pipe.hset(key("attempts"), mapping=batch.attempts)
        record_keys = [key(k) for k in ("done", "records", "owner", "leased", "pending")]
        step = 3 * RECORDS_PER_CALL
        for start in range(0, len(batch.records), step):
            chunk = [self._token, *batch.records[start : start + step]]
            self._scripts["write"](keys=record_keys, args=chunk, client=pipe)
        if batch.sources:
            pipe.sadd(key("sources"), *batch.sources)
        if batch.learner:
            pipe.hset(key("learner"), mapping=batch.learner)

    def finish(self, completed: bool) -> None:
        self.flush()
        status = "finished" if completed else "stopped"
        self._call("hset", self._key("meta"), mapping={"status": status, "ended": time.time()})

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(StoreUnavailable, redis.RedisError, KeyError):
                self._call_script("release", [self._key("owner"), self._key("released")],
                                  [self._token])  # fmt: skip
            self._client.close()
            self._client = None


@dataclass(slots=True)
class _Batch:
    """Writes since the last flush, merged by key: one command each when flushed."""

    containers: dict[str, str] = field(default_factory=dict)  # id -> container JSON
    scores: dict[str, int] = field(default_factory=dict)  # id -> discovery order
    leased: dict[str, float] = field(default_factory=dict)  # id -> lease expiry
    attempts: dict[str, int] = field(default_factory=dict)
    records: list[str] = field(default_factory=list)  # id, status, JSON; id, status, JSON...
    sources: set[str] = field(default_factory=set)
    learner: dict[str, str] = field(default_factory=dict)

    def size(self) -> int:
        return (
            len(self.containers) + len(self.leased) + len(self.records) // 3
            + len(self.sources) + len(self.learner)
        )  # fmt: skip


def _split_learner(snapshot: dict[str, Any]) -> dict[str, str]:
    """A learner snapshot cut by domain, so runs on other domains do not overwrite it."""
    parts: dict[str, dict[str, list]] = {}
    for row in snapshot.get("timings", []):
        parts.setdefault(row[0], {"timings": [], "strategies": []})["timings"].append(row)
    for row in snapshot.get("strategies", []):
        parts.setdefault(row[0], {"timings": [], "strategies": []})["strategies"].append(row)
    return {domain: json.dumps(part, separators=(",", ":")) for domain, part in parts.items()}


def _merge_learner(values: list[str]) -> dict[str, Any] | None:
    if not values:
        return None
    merged: dict[str, list] = {"timings": [], "strategies": []}
    for value in values:
        part = json.loads(value)
        merged["timings"] += part.get("timings", [])
        merged["strategies"] += part.get("strategies", [])
    return merged
