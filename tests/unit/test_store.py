"""Sinks stream records out; read_results reads them back, even after a crash mid-write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config.records import Container, Phase, Problem, Record, Status
from coordinator.store import (
    JsonlSink,
    MemorySeenIds,
    MemorySink,
    ResultSink,
    SeenIds,
    UniqueSink,
    read_results,
    seen_from_results,
)


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
    seen = seen_from_results(path)
    assert "c0" in seen and "c1" not in seen and len(seen) == 1
    with JsonlSink(path) as sink:  # a resumed run
        sink.write(rec(1))
    assert [r["id"] for r in read_results(path)] == ["c0", "c1"]


def test_read_results_names_a_broken_middle_line(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps({"id": "c0"}) + "\nnot json\n" + json.dumps({"id": "c2"}) + "\n")
    with pytest.raises(ValueError, match=r"results.jsonl:2: not a JSON record"):
        list(read_results(path))


def test_memory_sink_and_protocols() -> None:
    sink = MemorySink()
    assert isinstance(sink, ResultSink) and isinstance(MemorySeenIds(), SeenIds)
    sink.write(rec(0))
    sink.write(rec(1, Status.FAILED))
    sink.flush()
    sink.close()
    assert [r.id for r in sink.records] == ["c0", "c1"] and sink.counts["failed"] == 1
    assert sink.flushes == 1
    with pytest.raises(ValueError, match="closed"):
        sink.write(rec(2))


def test_unique_sink_drops_ids_already_written(tmp_path: Path) -> None:
    seen = seen_from_results(tmp_path / "none.jsonl")
    assert len(seen) == 0
    seen.add("c0")  # written by an earlier run
    inner = MemorySink()
    sink = UniqueSink(inner, seen)
    for record in [rec(0), rec(1), rec(1), rec(2)]:
        sink.write(record)
    assert [r.id for r in inner.records] == ["c1", "c2"] and sink.dropped == 2
    assert "c2" in seen and len(seen) == 3
