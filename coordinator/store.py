"""Where records go: sinks that stream them out, and the set of ids already written.

Records stream (the design's contract 4): the coordinator writes each terminal record as
it merges and keeps nothing of it, so memory does not grow with the run. ``JsonlSink``
is the file sink; a Redis-backed store can implement the same two protocols.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from config.records import Record

FLUSH_EVERY = 256


@runtime_checkable
class ResultSink(Protocol):
    def write(self, record: Record) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class SeenIds(Protocol):
    """Ids whose record is already written, so a restarted run drops duplicates.

    In memory for one process (:class:`MemorySeenIds`); a Redis SET (``SADD`` returns
    whether the member was new, ``SISMEMBER``, ``SCARD``) backs the same three calls
    when the record of a container must survive the coordinator.
    """

    def add(self, cid: str) -> bool:
        """Remember ``cid``; True if it was new."""
        ...

    def __contains__(self, cid: object) -> bool: ...

    def __len__(self) -> int: ...


class MemorySeenIds:
    def __init__(self, ids: Iterator[str] | list[str] | None = None) -> None:
        self._ids: set[str] = set(ids or ())

    def add(self, cid: str) -> bool:
        if cid in self._ids:
            return False
        self._ids.add(cid)
        return True

    def __contains__(self, cid: object) -> bool:
        return cid in self._ids

    def __len__(self) -> int:
        return len(self._ids)


class JsonlSink:
    """One JSON line per record, appended; flushed every ``flush_every`` records, fsynced
    on close. Appending lets a resumed run add to the file its first run left."""

    def __init__(
        self, path: Path | str, flush_every: int = FLUSH_EVERY, *, fresh: bool = False
    ) -> None:
        """``fresh`` starts an empty file (a new run); otherwise records are appended."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.flush_every = max(1, flush_every)
        self.counts: Counter[str] = Counter()
        self._buffer: list[str] = []
        if not fresh:
            _drop_partial_tail(self.path)
        self._file = self.path.open("w" if fresh else "a", encoding="utf-8")

    @property
    def written(self) -> int:
        return sum(self.counts.values())

    def write(self, record: Record) -> None:
        if self._file.closed:
            raise ValueError(f"results file {self.path} is closed; cannot write {record.id!r}")
        line = json.dumps(record.to_json_dict(), ensure_ascii=False, default=str)
        self._buffer.append(line + "\n")
        self.counts[str(record.status)] += 1
        if len(self._buffer) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if self._buffer and not self._file.closed:
            self._file.write("".join(self._buffer))
            self._buffer.clear()
        if not self._file.closed:
            self._file.flush()

    def close(self) -> None:
        if self._file.closed:
            return
        self.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def __enter__(self) -> JsonlSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _drop_partial_tail(path: Path) -> None:
    """Cut a last line left without its newline by a crash, so appends start clean.

    That line's record never counted (``read_results`` skips it), so its container runs
    again; keeping the fragment would glue it to the next record.
    """
    if not path.exists():
        return
    with path.open("rb+") as file:
        end = file.seek(0, os.SEEK_END)
        position = end
        while position > 0:
            step = min(4096, position)
            file.seek(position - step)
            chunk = file.read(step)
            if position == end and chunk.endswith(b"\n"):
                return
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                file.truncate(position - step + newline + 1)
                return
            position -= step
        file.truncate(0)


class MemorySink:
    """Keeps records in a list: for tests and small embedded runs."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.counts: Counter[str] = Counter()
        self.flushes = 0
        self.closed = False

    @property
    def written(self) -> int:
        return len(self.records)

    def write(self, record: Record) -> None:
        if self.closed:
            raise ValueError(f"sink is closed; cannot write {record.id!r}")
        self.records.append(record)
        self.counts[str(record.status)] += 1

    def flush(self) -> None:
        self.flushes += 1

    def close(self) -> None:
        self.closed = True


class UniqueSink:
    """Writes each id once: records whose id ``seen`` already holds are dropped and counted."""

    def __init__(self, sink: ResultSink, seen: SeenIds) -> None:
        self.sink = sink
        self.seen = seen
        self.dropped = 0

    def write(self, record: Record) -> None:
        if self.seen.add(record.id):
            self.sink.write(record)
        else:
            self.dropped += 1

    def flush(self) -> None:
        self.sink.flush()

    def close(self) -> None:
        self.sink.close()


def read_results(path: Path | str) -> Iterator[dict[str, Any]]:
    """The records of a results file, in order.

    A last line cut short (the process died mid-write) is skipped: everything before it
    is intact, and its container is simply not done. A bad line elsewhere is an error
    naming the line.
    """
    path = Path(path)
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as error:
                if not line.endswith("\n"):
                    return  # only the last line can lack its newline
                raise ValueError(f"{path}:{number}: not a JSON record ({error})") from None


def seen_from_results(path: Path | str) -> MemorySeenIds:
    """The ids already written to a results file (empty if there is none): resume from it."""
    path = Path(path)
    if not path.exists():
        return MemorySeenIds()
    return MemorySeenIds([record["id"] for record in read_results(path)])
