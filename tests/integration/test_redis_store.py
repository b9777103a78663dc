"""The Redis store against a real redis-server: state that another process takes over, writes
that survive Redis going away and coming back, records never written twice, and a password
that never shows."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis

from landmark.config.records import Container, Phase, Record, Status
from landmark.coordinator.redis_records import RedisRecordCache, ResultsMirror
from landmark.coordinator.redis_store import RedisStore, redis_health
from landmark.coordinator.store import JobIdentity, StoreError, StoreUnavailable, read_results

IDENTITY = JobIdentity("job", {"sources": ["http://a.test/g"], "fields": [{"name": "t"}]})


def containers(n: int) -> list[Container]:
    return [
        Container(f"c{i}", "http://a.test/g", i, "link", f"http://a.test/i/{i}") for i in range(n)
    ]


def ok(c: Container) -> Record:
    return Record(id=c.id, source=c.source, position=c.position, status=Status.OK, fields={"t": 1})


def test_another_process_takes_the_job_over(redis_url, tmp_path: Path) -> None:
    first = RedisStore(redis_url, tmp_path, "results.jsonl", claim_ttl_ms=500)
    assert first.inspect(IDENTITY).kind == "none"
    first.open(IDENTITY)
    items = containers(5)
    first.added(items)
    first.leased(items[:3], [1, 2, 1])
    first.write(ok(items[0]))
    first.write(Record.failure(items[1], Phase.OPEN, "HTTP 404", retryable=False))
    first.source_done("http://a.test/g")
    first.save_learner({"timings": [["a.test", "settle", [0.2]]], "strategies": []})
    first.flush()
    first.write(ok(items[2]))  # merged, never flushed: the coordinator died here

    second = RedisStore(redis_url, tmp_path, "results.jsonl")
    started = time.monotonic()
    prior = second.inspect(IDENTITY)
    assert (prior.kind, prior.records, prior.differences) == ("unfinished", 2, [])
    resumed = second.open(IDENTITY)  # waits for the dead one's claim to run out
    assert 0.2 < time.monotonic() - started < 5
    assert resumed.finished == {"c0": "ok", "c1": "failed"}
    assert [(c.id, n) for c, n in resumed.pending] == [("c2", 1), ("c3", 0), ("c4", 0)]
    assert resumed.sources_done == {"http://a.test/g"}
    assert resumed.learner == {"timings": [["a.test", "settle", [0.2]]], "strategies": []}
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert client.hlen("landmark:job:job:leased") == 0  # the dead run's leases came back
    assert client.zcard("landmark:job:job:pending") == 3
    second.write(ok(items[2]))
    second.finish(completed=True)
    assert second.inspect(IDENTITY).kind == "finished"

    mirror = ResultsMirror(redis_url, tmp_path, "results.jsonl", "job")
    assert mirror.pump() == 3
    assert [r["id"] for r in read_results(tmp_path / "results.jsonl")] == ["c0", "c1", "c2"]
    mirror.close()
    again = ResultsMirror(redis_url, tmp_path, "results.jsonl", "job")  # a restarted driver
    assert again.pump() == 0
    again.close()


def test_a_batch_sent_twice_writes_each_record_once(redis_url, tmp_path: Path) -> None:
    store = RedisStore(redis_url, tmp_path, "results.jsonl")
    store.open(IDENTITY)
    batch = [ok(c) for c in containers(3)]
    for record in batch:
        store.write(record)
    replay = store._batch
    store.flush()
    store._batch = replay  # the connection died during EXEC: the batch goes again
    store.flush()
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert client.xlen("landmark:job:job:records") == 3
    assert client.hlen("landmark:job:job:done") == 3


def test_writes_wait_for_redis_to_come_back(redis_server, redis_url, tmp_path: Path) -> None:
    store = RedisStore(redis_url, tmp_path, "results.jsonl")
    store.open(IDENTITY)
    redis_server.stop()
    try:
        store.write(ok(containers(1)[0]))
        with pytest.raises(StoreUnavailable) as raised:
            store.flush()
        assert store.pending_writes() > 0  # kept for the next try
        assert "127.0.0.1" in str(raised.value)
    finally:
        redis_server.start()
    store.flush()
    assert store.pending_writes() == 0
    assert redis.Redis.from_url(redis_url).hlen("landmark:job:job:done") == 1


def test_cache_serves_records_until_they_expire(redis_url) -> None:
    cache = RedisRecordCache(redis_url, ttl_s=60)
    cache.put_many({"k1": '{"id": "c1"}', "k2": '{"id": "c2"}'})
    assert cache.get_many(["k1", "k2", "k3"]) == {"k1": {"id": "c1"}, "k2": {"id": "c2"}}
    ttl = redis.Redis.from_url(redis_url).ttl("landmark:cache:k1")
    assert 0 < ttl <= 60


def test_a_password_never_shows(private_redis, tmp_path: Path) -> None:
    server = private_redis("canary-pw-3141")
    url = server.url
    store = RedisStore(url, tmp_path, "results.jsonl")
    assert "canary-pw-3141" not in store.description
    healthy, detail = redis_health(url)
    assert healthy and "canary-pw-3141" not in detail
    server.stop()
    with pytest.raises(StoreUnavailable) as raised:
        store.inspect(IDENTITY)
    assert "canary-pw-3141" not in str(raised.value)
    healthy, detail = redis_health(url)
    assert not healthy and "canary-pw-3141" not in detail
    assert json.dumps({"store": store.description}).count("***") == 1


def test_a_zombie_coordinator_cannot_write_after_a_takeover(redis_url, tmp_path: Path) -> None:
    zombie = RedisStore(redis_url, tmp_path, "results.jsonl", claim_ttl_ms=300)
    zombie.open(IDENTITY)
    successor = RedisStore(redis_url, tmp_path, "results.jsonl")
    successor.open(IDENTITY)  # the zombie stopped renewing: its claim ran out
    zombie.write(ok(containers(1)[0]))
    with pytest.raises(StoreError, match="another coordinator took job 'job' over"):
        zombie.flush()
    assert redis.Redis.from_url(redis_url).hlen("landmark:job:job:done") == 0
    successor.close()
    third = RedisStore(redis_url, tmp_path, "results.jsonl")
    started = time.monotonic()
    third.open(IDENTITY)  # a clean close wakes the next one at once
    assert time.monotonic() - started < 2
