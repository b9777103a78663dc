"""Records into the format a user asked for, and back: the one place that knows the formats.

The store appends every record to a JSON-lines log (``OutputSpec.record_log``), because
appending is what makes a run resumable and crash-safe. A job whose results are
``.jsonl`` reads that log as its results; for ``.csv`` or ``.json`` the driver calls
:func:`export_results` when the run ends (completed, stopped short or interrupted), so
the user sees what was done in the format they named. :func:`export` is the reusable
part (an HTTP service can hand it any iterable of records and a destination).

Every format is written streaming — one record in memory at a time, JSON as ``[``, the
items, ``]`` — into a temporary file in the destination's folder, fsynced, then moved
over the destination with ``os.replace``: a reader sees the old file or the new one,
never half of one, and an export that fails leaves the previous one in place.

CSV layout: a header that depends on the job, not on the records (so it is the same in
every run, whichever records come first): the record's scalar keys (:data:`LEADING`),
one column per job field in the job's order (``fields.NAME`` when a field's name is
also one of the record's own keys), then the record's structured keys
(:data:`TRAILING`). Lists and dicts are JSON text in a cell, ``None`` an empty cell,
booleans ``true``/``false``. Values outside those columns (a field the job does not
name) are not written: the log keeps everything.

Formula injection: values come from untrusted pages, and a spreadsheet runs a cell that
starts with ``=``, ``+``, ``-``, ``@`` (or a tab / carriage return) as a formula
(``=HYPERLINK(...)``, DDE payloads). Such a text cell is written with a leading ``'``,
which spreadsheets show as text (OWASP's advice); plain numbers such as ``-12.5`` are
left alone. So that the prefix is reversible, a text already starting with ``'`` gets
one too, and :func:`read_records` removes exactly one leading ``'`` from every CSV cell.
``export(..., guard_formulas=False)`` writes the values untouched.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from landmark.config.job import JobSpec, OutputFormat
from landmark.coordinator.store import read_results

LEADING = ("id", "source", "position", "status", "attempts", "cached", "actor")
TRAILING = ("errors", "timings", "strategies", "download", "blocked")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")
PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
SNIFF_BYTES = 4096


# -- writing --------------------------------------------------------------------------------
def export_results(job: JobSpec, out_dir: Path | str) -> Path:
    """The job's results file made from its record log (nothing to do for jsonl results,
    which are the log itself); returns the results' path."""
    output = job.output
    out_dir = Path(out_dir)
    dest = out_dir / output.results
    if output.record_log == output.results:
        return dest
    log = out_dir / output.record_log
    if not log.exists():
        raise ExportError(
            f"no record log at {log} to make {dest.name} from (with ray://, the Coordinator "
            "writes it on the head: read it there, or use --store redis://…)"
        )
    try:
        export(read_results(log), dest, output.kind, [field.name for field in job.fields])
    except (OSError, ValueError) as error:
        raise ExportError(f"could not write {dest} from {log}: {error}") from None
    return dest


class ExportError(RuntimeError):
    """The results file could not be made; the record log, the truth, is untouched."""


def export(
    records: Iterable[dict[str, Any]],
    dest: Path | str,
    fmt: OutputFormat | str,
    field_names: Sequence[str] | None = None,
    *,
    guard_formulas: bool = True,
) -> int:
    """Write ``records`` (dicts shaped like ``Record.to_json_dict``) to ``dest`` in ``fmt``,
    atomically; returns how many were written. ``field_names`` orders the CSV's field
    columns (default: the first record's fields)."""
    fmt = OutputFormat(fmt)
    if fmt == OutputFormat.CSV:
        return _atomic_write(
            Path(dest), lambda file: _write_csv(file, records, field_names, guard_formulas)
        )
    write = _write_jsonl if fmt == OutputFormat.JSONL else _write_json_array
    return _atomic_write(Path(dest), lambda file: write(file, records))


def _atomic_write(dest: Path, write: Callable[[IO[str]], int]) -> int:
    """``write`` into a temporary file beside ``dest``, then move it over ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    mode = dest.stat().st_mode & 0o777 if dest.exists() else 0o644  # mkstemp's is 0600
    handle, temp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            count = write(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp, mode)
        os.replace(temp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return count


def _write_jsonl(file: IO[str], records: Iterable[dict[str, Any]]) -> int:
    count = 0
    for record in records:
        file.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        count += 1
    return count


def _write_json_array(file: IO[str], records: Iterable[dict[str, Any]]) -> int:
    """One JSON array, an item per line, streamed: ``[``, the items, ``]``."""
    count = 0
    file.write("[")
    for record in records:
        file.write(",\n" if count else "\n")
        file.write(json.dumps(record, ensure_ascii=False, default=str))
        count += 1
    file.write("\n]\n" if count else "]\n")
    return count


def _write_csv(
    file: IO[str],
    records: Iterable[dict[str, Any]],
    field_names: Sequence[str] | None,
    guard: bool,
) -> int:
    iterator = iter(records)
    first = next(iterator, None)
    if field_names is None:
        field_names = list((first or {}).get("fields") or {})
    columns = csv_columns(field_names)
    writer = csv.writer(file)
    writer.writerow(heading for heading, _ in columns)
    count = 0
    for record in _chain(first, iterator):
        writer.writerow(csv_cell(getter(record), guard) for _, getter in columns)
        count += 1
    return count


def _chain(first: dict[str, Any] | None, rest: Iterator[dict[str, Any]]):
    if first is not None:
        yield first
        yield from rest


def csv_columns(field_names: Sequence[str]) -> list[tuple[str, Callable[[dict], Any]]]:
    """(heading, how to read its value from a record) for every column, in order."""
    own = set(LEADING) | set(TRAILING)
    columns = [(key, _top(key)) for key in LEADING]
    for name in field_names:
        heading = f"fields.{name}" if name in own else name
        columns.append((heading, _field(name)))
    columns += [(key, _top(key)) for key in TRAILING]
    return columns


def csv_header(field_names: Sequence[str]) -> list[str]:
    """The CSV's header for a job with these fields."""
    return [heading for heading, _ in csv_columns(field_names)]


def _top(key: str) -> Callable[[dict], Any]:
    return lambda record: record.get(key)


def _field(name: str) -> Callable[[dict], Any]:
    return lambda record: (record.get("fields") or {}).get(name)


def csv_cell(value: Any, guard: bool = True) -> str:
    """One value as a CSV cell's text (see the module's notes on formulas)."""
    if value is None:
        return ""
    if isinstance(value, bool | list | dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    if not isinstance(value, str):
        return str(value)
    if guard and value.startswith(FORMULA_START) and not PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


# -- reading --------------------------------------------------------------------------------
def read_records(path: Path | str) -> Iterator[dict[str, Any]]:
    """The records of a results file in any of the formats, streamed: dicts as written for
    jsonl and json; for csv, one dict per row with every value a string (``""`` for
    none), a formula guard's ``'`` taken off. The format is read from the file's first
    character (``{`` JSON lines, ``[`` JSON, else CSV), not from its name, so a name that
    does not match its format (``output.format`` given) is still read right."""
    path = Path(path)
    kind = _sniff(path)
    if kind == OutputFormat.JSONL:
        return read_results(path)
    if kind == OutputFormat.JSON:
        return _read_json_array(path)
    return _read_csv(path)


def _sniff(path: Path) -> OutputFormat:
    with path.open(encoding="utf-8-sig") as file:
        start = file.read(SNIFF_BYTES).lstrip()
    if start.startswith("{"):
        return OutputFormat.JSONL
    if start.startswith("["):
        return OutputFormat.JSON
    return OutputFormat.CSV


def _read_csv(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8-sig", newline="") as file:
        for row in csv.DictReader(file):
            yield {key: _unguard(value) for key, value in row.items() if key is not None}


def _unguard(value: str | None) -> str:
    if value is None:
        return ""  # a short row: its missing cells are empty
    return value[1:] if value.startswith("'") else value


def _read_json_array(path: Path, chunk_chars: int = 1 << 16) -> Iterator[dict[str, Any]]:
    """The items of a JSON array, decoded one at a time from a buffer that holds about one
    item (plus a chunk), not the whole file."""
    decoder = json.JSONDecoder()
    with path.open(encoding="utf-8-sig") as file:
        buffer, eof = "", False
        opened = closed = False
        while not closed:
            if not eof and len(buffer) < chunk_chars:
                more = file.read(chunk_chars)
                eof = not more
                buffer += more
            buffer = buffer.lstrip()
            if not buffer and not eof:
                continue  # only blanks so far: read on
            if not opened:
                if not buffer:
                    return  # an empty file: no records
                if not buffer.startswith("["):
                    raise ValueError(f"{path}: not a JSON array of records")
                buffer, opened = buffer[1:], True
                continue
            if buffer.startswith(","):
                buffer = buffer[1:]
                continue
            if buffer.startswith("]"):
                closed = True
                continue
            try:
                item, end = decoder.raw_decode(buffer)
            except json.JSONDecodeError:
                if eof:
                    raise ValueError(f"{path}: not a complete JSON array") from None
                more = file.read(chunk_chars)  # an item longer than the buffer: read on
                eof = not more
                buffer += more
                continue
            yield item
            buffer = buffer[end:]
