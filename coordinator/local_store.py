"""The local store: a run's state under its output directory, like Scrapy's ``JOBDIR``.

    OUT/results.jsonl            the record log: the truth for what is finished
    OUT/.landmark/state.sqlite   the job's identity, containers, attempts, sources, learner
    OUT/.landmark/cache.sqlite   the record cache (kept by --fresh and by a new run)

The record log is always JSON lines: the results file itself when the job asks for
``.jsonl``, else ``OUT/.landmark/records-NAME.jsonl``, from which the driver exports the
results (``results.csv``, ``results.json``) at the end of the run (``exporters.py``).

The record log alone says which containers are finished: a record is there or it is
not (a line cut short by a crash does not count, and is cut off before appending). The
SQLite file holds what the log cannot: containers discovered but not finished, and
how often each was tried. Nothing marks a container done in SQLite, so no crash can make
the two disagree: a record lost in a buffer only means its container runs again.

Both are written in batches by :meth:`LocalStore.flush` (the Coordinator calls it about
once a second, and before it ends): one SQLite transaction in WAL mode, then the log's
buffer written out and fsynced.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from landmark.config.records import Container, Record
from landmark.coordinator.store import (
    JobIdentity,
    JsonlSink,
    Prior,
    Resumed,
    StoreError,
    finished_in,
)

STATE_DIR = ".landmark"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL, source TEXT NOT NULL, position INTEGER NOT NULL,
    open TEXT NOT NULL, url TEXT, attempts INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sources (url TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS learner (id INTEGER PRIMARY KEY CHECK (id = 0), body TEXT NOT NULL);
"""


def _connect(path: Path) -> sqlite3.Connection:
    try:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error as error:
        raise StoreError(f"cannot open the run state {path}: {error}") from None
    return connection


class LocalStore:
    def __init__(
        self,
        out_dir: Path | str,
        log_name: str = "results.jsonl",
        *,
        export_name: str | None = None,
    ) -> None:
        """``log_name``: the record log; ``export_name``: the results exported from it (when
        they are another file), deleted with the log so no stale export outlives it."""
        self.out_dir = Path(out_dir)
        self.log_path = self.out_dir / log_name
        self.export_path = self.out_dir / export_name if export_name else None
        self.state_path = self.out_dir / STATE_DIR / "state.sqlite"
        self.description = f"local ({self.out_dir / STATE_DIR})"
        self._db: sqlite3.Connection | None = None
        self._lock: Any = None
        self._sink: JsonlSink | None = None
        self._added: list[tuple[str, int, str]] = []
        self._attempts: dict[str, int] = {}
        self._sources: list[str] = []
        self._learner: str | None = None
        self._seq = 0

    # -- before a run ----------------------------------------------------------------------
    def inspect(self, identity: JobIdentity) -> Prior:
        """What the output directory holds, read without changing anything."""
        records = len(finished_in(self.log_path))
        where = str(self.out_dir)
        if not self.state_path.exists():
            return Prior("none", records, where=where)
        db = _connect(self.state_path)
        try:
            db.executescript(SCHEMA)
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        finally:
            db.close()
        if "what" not in meta:
            return Prior("none", records, where=where)
        kind = "finished" if meta.get("status") == "finished" else "unfinished"
        differences = identity.differences(json.loads(meta["what"]))
        if meta.get("name") != identity.name:
            differences.insert(0, f"name: was {meta.get('name')!r}, now {identity.name!r}")
        return Prior(kind, records, differences, where)

    def reset(self) -> None:
        """Delete the records (log and export) and the run state; the record cache stays."""
        self._delete_records()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.state_path}{suffix}").unlink(missing_ok=True)

    # -- the run ---------------------------------------------------------------------------
    def open(self, identity: JobIdentity) -> Resumed:
        """Start or resume the run of ``identity`` (the driver has checked it matches).

        Blocks until no other process holds the run: a Coordinator whose driver was just
        killed may write for a few more seconds, and two writers would duplicate records.
        Call it off the event loop, under a deadline."""
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = (self.state_path.parent / "lock").open("a")
        fcntl.flock(self._lock, fcntl.LOCK_EX)  # released by close(), or by the OS at death
        db = self._db = _connect(self.state_path)
        db.executescript(SCHEMA)
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        resumed = Resumed()
        if meta.get("what") == json.dumps(identity.what, sort_keys=True):
            resumed = self._read_back()
        else:  # a new run: whatever was there belongs to another (already confirmed) run
            db.executescript("DELETE FROM containers; DELETE FROM sources; DELETE FROM learner;")
            self._delete_records()
        runs = int(meta.get("runs", "0")) + 1
        self._set_meta(
            name=identity.name,
            what=json.dumps(identity.what, sort_keys=True),
            hash=identity.hash,
            status="running",
            runs=str(runs),
            started=str(time.time()),
        )
        self._sink = JsonlSink(self.log_path, fresh=not resumed.finished)
        row = db.execute("SELECT COALESCE(MAX(seq), -1) FROM containers").fetchone()
        self._seq = row[0] + 1
        return resumed

    def _read_back(self) -> Resumed:
        assert self._db is not None
        finished = finished_in(self.log_path)
        pending = []
        for cid, source, position, how, url, attempts in self._db.execute(
            "SELECT id, source, position, open, url, attempts FROM containers ORDER BY seq"
        ):
            container = Container(cid, source, position, how, url)
            if container.id not in finished:
                pending.append((container, attempts))
        sources = {url for (url,) in self._db.execute("SELECT url FROM sources")}
        row = self._db.execute("SELECT body FROM learner WHERE id = 0").fetchone()
        learner = json.loads(row[0]) if row else None
        return Resumed(finished, pending, sources, learner)

    def _delete_records(self) -> None:
        self.log_path.unlink(missing_ok=True)
        if self.export_path is not None:
            self.export_path.unlink(missing_ok=True)

    def _set_meta(self, **values: str) -> None:
        assert self._db is not None
        self._db.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            list(values.items()),
        )

    def added(self, containers: list[Container]) -> None:
        for c in containers:
            self._added.append((c.id, self._seq, c.source, c.position, c.open, c.url))
            self._seq += 1

    def leased(self, containers: list[Container], attempts: list[int]) -> None:
        for container, tries in zip(containers, attempts, strict=True):
            self._attempts[container.id] = tries

    def write(self, record: Record, line: str | None = None) -> None:
        assert self._sink is not None
        self._sink.write(record, line)

    def source_done(self, source: str) -> None:
        self._sources.append(source)

    def save_learner(self, snapshot: dict[str, Any]) -> None:
        self._learner = json.dumps(snapshot, separators=(",", ":"))

    def pending_writes(self) -> int:
        waiting = len(self._added) + len(self._attempts) + len(self._sources)
        return waiting + (self._sink.pending() if self._sink else 0)

    def flush(self) -> None:
        """One transaction for the state, then the records to disk (fsynced)."""
        db = self._db
        if db is None:
            return
        if self._added or self._attempts or self._sources or self._learner:
            with db:
                db.execute("BEGIN")
                db.executemany(
                    "INSERT OR IGNORE INTO containers "
                    "(id, seq, source, position, open, url, attempts) VALUES (?, ?, ?, ?, ?, ?, 0)",
                    self._added,
                )
                db.executemany(
                    "UPDATE containers SET attempts = ? WHERE id = ?",
                    [(tries, cid) for cid, tries in self._attempts.items()],
                )
                db.executemany(
                    "INSERT OR IGNORE INTO sources (url) VALUES (?)",
                    [(url,) for url in self._sources],
                )
                if self._learner is not None:
                    db.execute(
                        "INSERT INTO learner (id, body) VALUES (0, ?) "
                        "ON CONFLICT(id) DO UPDATE SET body = excluded.body",
                        (self._learner,),
                    )
            self._added.clear()
            self._attempts.clear()
            self._sources.clear()
            self._learner = None
        if self._sink is not None:
            self._sink.sync()

    def finish(self, completed: bool) -> None:
        """Mark the run finished (a new run replaces it) or stopped (the next one resumes)."""
        self.flush()
        if self._db is not None:
            self._set_meta(status="finished" if completed else "stopped", ended=str(time.time()))

    def close(self) -> None:
        if self._sink is not None:
            self._sink.close()
            self._sink = None
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def saved_field_names(out_dir: Path | str) -> list[str] | None:
    """The job's field names, in its order, from the identity kept for resumes (read-only:
    a run may be writing); None when there is no state or it cannot be read."""
    state = Path(out_dir) / STATE_DIR / "state.sqlite"
    if not state.is_file():
        return None
    try:
        uri = f"{state.resolve().as_uri()}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'what'").fetchone()
        return [field["name"] for field in json.loads(row[0])["fields"]]
    except (sqlite3.Error, TypeError, KeyError, ValueError):
        return None


class LocalRecordCache:
    """Records by key in ``OUT/.landmark/cache.sqlite``, each with an expiry time."""

    def __init__(self, out_dir: Path | str, ttl_s: float) -> None:
        path = Path(out_dir) / STATE_DIR / "cache.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.ttl_s = ttl_s
        self._db = _connect(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, body TEXT, expires REAL)"
        )
        with self._db:  # expired records go once per run, not on every write
            self._db.execute("DELETE FROM cache WHERE expires <= ?", (time.time(),))
        self._empty_at_open = self._db.execute("SELECT 1 FROM cache LIMIT 1").fetchone() is None

    def get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        # Empty when the run began: nothing to find, since this run writes records only for
        # containers it already knows, which it never looks up again.
        if self._empty_at_open:
            return {}
        found: dict[str, dict[str, Any]] = {}
        now = time.time()
        for start in range(0, len(keys), 500):  # SQLite's bound on parameters per statement
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, body FROM cache WHERE key IN ({marks}) AND expires > ?",
                [*chunk, now],
            )
            found.update((key, json.loads(body)) for key, body in rows)
        return found

    def put_many(self, items: dict[str, str]) -> None:
        expires = time.time() + self.ttl_s
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO cache VALUES (?, ?, ?)",
                [(key, text, expires) for key, text in items.items()],
            )

    def close(self) -> None:
        self._db.close()
