"""Sinks stream records out; read_results reads them back, even after a crash mid-write; the
local store keeps a run's state so another process can resume it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from landmark.config.records import Container, Phase, Problem, Record, Status
from landmark.coordinator.local_store import LocalRecordCache, LocalStore
from landmark.coordinator.store import JobIdentity, JsonlSink, finished_in, read_results
from landmark.coordinator.store_config import StoreUrlError, check_store_url, redact_url


def rec(i: int, status: str = Status.OK, **fields: object) -> Record:
    return Record(
        id=f"c{i}", source="http://a.test/g", position=i, status=status, fields=dict(fields)
    )


def test_jsonl_round_trip_keeps_unicode_and_drops_retryable(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "run" / "results.jsonl"
    records = [
        rec(0, prompt="a café at dusk, 東京"),
        rec(1, Status.PARTIAL),
        Record.failure(Container("c2", "http://a.test/g", 2, "click"), Phase.WAIT, "timed out"),
    ]
    records[1].errors.append(Problem(Phase.EXTRACT, "missing", field="seed"))
    with JsonlSink(path) as sink:
        for record in records:
            sink.write(record)
        assert sink.counts == {"ok": 1, "partial": 1, "failed": 1} and sink.written == 3
    assert "東京" in path.read_text(encoding="utf-8")  # ensure_ascii=False
    back = list(read_results(path))
    assert [r["id"] for r in back] == ["c0", "c1", "c2"]
    assert back[0]["fields"] == {"prompt": "a café at dusk, 東京"}
    assert back[1]["errors"] == [{"phase": "extract", "reason": "missing", "field": "seed"}]
    assert back[2]["status"] == "failed" and "retryable" not in back[2]


def test_jsonl_buffers_until_flush_every_or_flush(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    sink = JsonlSink(path, flush_every=3)
    sink.write(rec(0))
    sink.write(rec(1))
    assert path.read_text() == ""  # buffered
    sink.write(rec(2))
    assert len(path.read_text().splitlines()) == 3
    sink.write(rec(3))
    sink.flush()
    assert len(path.read_text().splitlines()) == 4
    sink.close()
    sink.close()  # idempotent
    with pytest.raises(ValueError, match="is closed"):
        sink.write(rec(4))


def test_jsonl_appends_and_heals_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    with JsonlSink(path) as sink:
        sink.write(rec(0))
    with path.open("a", encoding="utf-8") as file:
        file.write('{"id": "c1", "sta')  # the process died mid-write
    assert [r["id"] for r in read_results(path)] == ["c0"]
    assert finished_in(path) == {"c0": "ok"}
    with JsonlSink(path) as sink:  # a resumed run
        sink.write(rec(1))
    assert [r["id"] for r in read_results(path)] == ["c0", "c1"]


def test_read_results_names_a_broken_middle_line(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps({"id": "c0"}) + "\nnot json\n" + json.dumps({"id": "c2"}) + "\n")
    with pytest.raises(ValueError, match=r"results.jsonl:2: not a JSON record"):
        list(read_results(path))


def identity(**fields: object) -> JobIdentity:
    what = {"sources": ["http://a.test/g"], "fields": [{"name": "title", "labels": ["Title"]}]}
    what.update(fields)
    return JobIdentity("job", what)


def containers(n: int) -> list[Container]:
    return [
        Container(f"c{i}", "http://a.test/g", i, "click", f"http://a.test/i/{i}") for i in range(n)
    ]


def test_a_new_store_resumes_what_a_dead_one_left(tmp_path: Path) -> None:
    first = LocalStore(tmp_path)
    assert first.inspect(identity()).kind == "none"
    resumed = first.open(identity())
    assert resumed.finished == {} and resumed.pending == []
    items = containers(5)
    first.added(items)
    first.leased(items[:3], [1, 1, 2])
    first.write(rec(0))
    first.write(Record.failure(items[1], Phase.OPEN, "HTTP 404", retryable=False))
    first.source_done("http://a.test/g")
    first.save_learner({"timings": [["a.test", "settle", [0.1]]], "strategies": []})
    first.flush()
    first.write(rec(2))  # merged but never flushed: the process dies here
    first._lock.close()  # no close(): a SIGKILL gives none; the OS drops the lock

    second = LocalStore(tmp_path)
    prior = second.inspect(identity())
    assert (prior.kind, prior.records, prior.differences) == ("unfinished", 2, [])
    resumed = second.open(identity())
    assert resumed.finished == {"c0": "ok", "c1": "failed"}
    assert [(c.id, tries) for c, tries in resumed.pending] == [("c2", 2), ("c3", 0), ("c4", 0)]
    assert resumed.sources_done == {"http://a.test/g"}
    assert resumed.learner == {"timings": [["a.test", "settle", [0.1]]], "strategies": []}
    second.write(rec(2))
    second.finish(completed=True)
    second.close()
    assert [r["id"] for r in read_results(tmp_path / "results.jsonl")] == ["c0", "c1", "c2"]
    assert LocalStore(tmp_path).inspect(identity()).kind == "finished"


def test_a_changed_job_is_named_field_by_field(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.open(identity())
    store.flush()
    store.close()
    changed = identity(fields=[{"name": "title", "labels": ["Heading"]}])
    prior = LocalStore(tmp_path).inspect(changed)
    assert prior.differences == ['fields[0].labels[0]: was "Title", now "Heading"']


def test_reset_deletes_results_and_state_but_not_the_cache(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.open(identity())
    store.write(rec(0))
    store.finish(completed=True)
    store.close()
    cache = LocalRecordCache(tmp_path, ttl_s=60)
    cache.put_many({"k": '{"id": "c0"}'})
    LocalStore(tmp_path).reset()
    assert not (tmp_path / "results.jsonl").exists()
    assert LocalStore(tmp_path).inspect(identity()).kind == "none"
    later = LocalRecordCache(tmp_path, ttl_s=60)  # the next run
    assert later.get_many(["k", "missing"]) == {"k": {"id": "c0"}}


def test_cached_records_expire(tmp_path: Path) -> None:
    cache = LocalRecordCache(tmp_path, ttl_s=-1)  # already expired when written
    cache.put_many({"k": '{"id": "c0"}'})
    assert LocalRecordCache(tmp_path, ttl_s=60).get_many(["k"]) == {}


def test_a_record_survives_the_round_trip_through_json() -> None:
    record = rec(3, Status.PARTIAL, prompt="x")
    record.errors.append(Problem(Phase.EXTRACT, "missing", field="seed"))
    record.cached = True
    assert Record.from_json_dict(json.loads(json.dumps(record.to_json_dict()))) == record


def test_a_second_writer_waits_for_the_first(tmp_path: Path) -> None:
    """A coordinator whose driver was killed may write for a few more seconds: the next one
    waits for it to let go, so two never write the same results."""
    import threading

    first = LocalStore(tmp_path)
    first.open(identity())
    opened = threading.Event()

    def second_open() -> None:
        LocalStore(tmp_path).open(identity())
        opened.set()

    waiter = threading.Thread(target=second_open, daemon=True)
    waiter.start()
    assert not opened.wait(0.5), "the second store opened while the first held the run"
    first.close()
    assert opened.wait(10)


@pytest.mark.parametrize(
    "url",
    ["notaurl", "http://u:canary-pw@x/", "redis://:canary-pw@[::1", "redis://h:99999", "redis://"],
)
def test_a_store_url_that_is_not_redis_is_refused_without_its_password(url):
    with pytest.raises(StoreUrlError) as raised:
        check_store_url(url)
    assert "canary-pw" not in str(raised.value)
    assert "not a Redis URL" in str(raised.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("redis://user:pw@[::1]:6379", "redis://user:***@[::1]:6379"),
        ("redis://:pw@[::1", "redis://:***@[::1"),
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
    ],
)
def test_redacted_urls_keep_everything_but_the_password(url, shown):
    assert redact_url(url) == shown
    assert check_store_url("unix:///run/redis.sock")
