"""Where a run's state lives: the store protocol, the job's identity, and the record log.

A run's truth lives in a store, not in a process (see DESIGN.md, *State*). The
Coordinator records into it as it goes — containers discovered, attempts made, records
written, sources finished, the learner — in batches, and a new Coordinator (after a
crash, a Ctrl-C, a driver killed) reads it back and goes on: containers already written
are never extracted again; those leased by the dead run go back to pending with their
attempt counts.

Two backends share :class:`RunStore`: ``local_store.LocalStore`` (the embedded default,
under the output directory) and ``redis_store.RedisStore`` (for clusters and services).

Records stream (the design's contract 4): ``JsonlSink`` appends each terminal record as it
merges and keeps nothing of it, so memory does not grow with the run. The file it appends
to, the record log, is always JSON lines (``OutputSpec.record_log``): the results file for
``.jsonl`` results; for csv or json, a file under ``.landmark/`` that ``exporters.py``
turns into the results at the end of the run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from landmark.config.job import JobSpec
from landmark.config.records import Container, Record, domain_of

FLUSH_EVERY = 256


class StoreError(RuntimeError):
    """The store cannot be used; the message says which one and why (no secrets in it)."""


class StoreUnavailable(StoreError):
    """The store did not answer (Redis down): writes stay buffered and are retried."""


class JobChangedError(ValueError):
    """The output directory (or Redis job) holds a run of a different job."""


@dataclass(frozen=True, slots=True)
class JobIdentity:
    """What decides a job's output: its sources, containers, fields and downloads. Budget,
    timeouts and output settings may change between a run and its resume; these may not."""

    name: str
    what: dict[str, Any]

    @classmethod
    def of(cls, job: JobSpec, sources: list[str]) -> JobIdentity:
        what = job.model_dump(mode="json", include={"containers", "fields", "download"})
        what["sources"] = list(sources)
        return cls(job.name, what)

    @property
    def hash(self) -> str:
        canonical = json.dumps(self.what, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def differences(self, other: dict[str, Any]) -> list[str]:
        """Dotted paths where ``other`` (a stored ``what``) differs from this job."""
        return _differences(other, self.what, "")


def _differences(old: Any, new: Any, path: str) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new)):
            found += _differences(old.get(key), new.get(key), f"{path}.{key}" if path else key)
        return found
    if isinstance(old, list) and isinstance(new, list):
        found = []
        for index in range(max(len(old), len(new))):
            where = f"{path}[{index}]"
            if index >= len(new):
                found.append(f"{where}: removed (was {_short(old[index])})")
            elif index >= len(old):
                found.append(f"{where}: added ({_short(new[index])})")
            else:
                found += _differences(old[index], new[index], where)
        return found
    if old != new:
        return [f"{path}: was {_short(old)}, now {_short(new)}"]
    return []


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(slots=True)
class Prior:
    """What a store already holds for a job, seen before the run starts."""

    kind: str = "none"  # "none" | "unfinished" | "finished"
    records: int = 0
    differences: list[str] = field(default_factory=list)
    where: str = ""


@dataclass(slots=True)
class Resumed:
    """What an earlier run of the job left: the new Coordinator starts from here."""

    finished: dict[str, str] = field(default_factory=dict)  # id -> status of records written
    pending: list[tuple[Container, int]] = field(default_factory=list)  # (container, attempts)
    sources_done: set[str] = field(default_factory=set)
    learner: dict[str, Any] | None = None

    def by_status(self) -> dict[str, int]:
        return dict(Counter(self.finished.values()))


class RunStore(Protocol):
    """The state of one run of one job. Writes are buffered; :meth:`flush` makes them
    durable and raises :class:`StoreUnavailable` (keeping them) when the store is away."""

    description: str  # for progress, doctor and the summary: never a password

    def inspect(self, identity: JobIdentity) -> Prior: ...

    def reset(self) -> None:
        """Delete the run's state and records (not the record cache): ``--fresh``."""
        ...

    def open(self, identity: JobIdentity) -> Resumed: ...

    def added(self, containers: list[Container]) -> None: ...

    def leased(self, containers: list[Container], attempts: list[int]) -> None: ...

    def write(self, record: Record, line: str | None = None) -> None:
        """A terminal record; ``line`` is its JSON text when the caller has made it."""
        ...

    def source_done(self, source: str) -> None: ...

    def save_learner(self, snapshot: dict[str, Any]) -> None: ...

    def pending_writes(self) -> int: ...

    def flush(self) -> None: ...

    def finish(self, completed: bool) -> None: ...

    def close(self) -> None: ...


class RecordCache(Protocol):
    """Records by container and field spec, shared by runs (and nodes, with Redis)."""

    def get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]: ...

    def put_many(self, items: dict[str, str]) -> None:
        """Records by key, each as its JSON text."""
        ...

    def close(self) -> None: ...


def cache_spec_hash(job: JobSpec) -> str:
    """A hash of what decides a record's content: the containers' opening and the fields."""
    spec = job.model_dump(mode="json", include={"containers", "fields"})
    spec["containers"].pop("limit", None)
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def cache_key(spec_hash: str, source: str, container_id: str) -> str:
    """The container's id, on its source's host (not its port: a site moved to another port
    is the same site), under the field spec's hash."""
    host = domain_of(source).rsplit(":", 1)[0]
    return f"{spec_hash}:{host}:{container_id}"


def container_to_json(container: Container) -> dict[str, Any]:
    return {
        "id": container.id,
        "source": container.source,
        "position": container.position,
        "open": container.open,
        "url": container.url,
    }


def container_from_json(data: dict[str, Any]) -> Container:
    return Container(data["id"], data["source"], data["position"], data["open"], data.get("url"))


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

    def pending(self) -> int:
        """Records written but not yet flushed to the file."""
        return len(self._buffer)

    def write(self, record: Record, line: str | None = None) -> None:
        """Append ``record`` (``line``: its JSON text, when the caller has made it already)."""
        if self._file.closed:
            raise ValueError(f"record log {self.path} is closed; cannot write {record.id!r}")
        self._buffer.append((line or record.to_json_line()) + "\n")
        self.counts[str(record.status)] += 1
        if len(self._buffer) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if self._buffer and not self._file.closed:
            self._file.write("".join(self._buffer))
            self._buffer.clear()
        if not self._file.closed:
            self._file.flush()

    def sync(self) -> None:
        """Flush and fsync: what was written survives the machine, not only the process."""
        if self._file.closed:
            return
        had = bool(self._buffer)
        self.flush()
        if had:
            os.fsync(self._file.fileno())

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


def read_results(path: Path | str) -> Iterator[dict[str, Any]]:
    """The records of a record log (a JSON-lines results file), in order.

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


def finished_in(path: Path | str) -> dict[str, str]:
    """``{id: status}`` of the records in a record log (empty if there is none)."""
    path = Path(path)
    if not path.exists():
        return {}
    return {record["id"]: record["status"] for record in read_results(path)}
