"""Records into the format a user asked for, and back: the one place that knows the formats.

The store appends every record to a JSON-lines log (``OutputSpec.record_log``), because
appending is what makes a run resumable and crash-safe. A job whose results are
``.jsonl`` reads that log as its results; for ``.csv`` or ``.json`` the driver calls
:func:`export_results` when the run ends (completed, stopped short or interrupted), so
the user sees what was done in the format they named. :func:`export` is the reusable
part (an HTTP service can hand it any iterable of records and a destination).

Every format is written streaming — one record in memory at a time (a row group of
``PARQUET_BATCH`` for Parquet), JSON as ``[``, the items, ``]`` — into a temporary
file in the destination's folder, fsynced, then moved over the destination with
``os.replace``: a reader sees the old file or the new one, never half of one, and an
export that fails leaves the previous one in place.

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

Two more formats, for ``landmark export`` (and any caller of :func:`export`), each through
an optional package so that a run never needs them: ``xlsx`` (``openpyxl``, the
``landmark[xlsx]`` extra) and ``parquet`` (``pyarrow``, ``landmark[parquet]``). A missing
one is a :class:`MissingExtraError` that says what to install, raised before anything is
written. Both are written to a temporary file and moved into place like the others.

Excel (``xlsx``): one sheet, ``records``, with the CSV's columns and header. Numbers and
booleans are Excel numbers and booleans (NaN and infinities, which Excel cannot hold, are
text); ``None`` an empty cell; everything else is the CSV cell's text (lists and dicts as
JSON text, the same formula guard, so a cell reads the same in both) stored as a text
cell: openpyxl would otherwise store a text starting with ``=`` as a formula, which
Excel runs, and ``#N/A`` as an error value. Characters the format cannot hold (the
control characters other than tab, newline and carriage return) become U+FFFD, and a
cell holds at most 32,767 characters (Excel's limit: openpyxl cuts longer text; the
record log keeps it whole).

Parquet: the CSV's columns, with types. The record's own columns have the same type in
every run (``RECORD_KINDS``, export_parquet.py: ``position``, ``attempts`` ``int64``, ``cached``
``bool``, ``blocked`` a list of strings, ``errors``, ``timings``, ``strategies`` and
``download`` JSON text, the rest strings). A field column's type comes from its values,
seen in a first pass over the records (so a re-iterable is read twice, the second time
only as many records as the first saw; a one-shot iterator is spooled to a temporary
file first): all booleans, all integers (within int64) or all numbers make ``bool``,
``int64`` or ``float64``; all lists of scalars make a list column of their elements'
type (same rule); anything else is ``string``, texts as they are and every other value
(a dict, a nested list, a mix of kinds) as JSON text. A column with no value at all is
``string``; ``None`` is null. No formula guard: nothing runs a Parquet cell.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from landmark.config.job import JobSpec, OutputFormat
from landmark.coordinator.store import read_results

LEADING = ("id", "source", "position", "status", "attempts", "cached", "actor")
TRAILING = ("errors", "timings", "strategies", "download", "blocked")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")
PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
SNIFF_BYTES = 4096


class ExportFormat(StrEnum):
    """What :func:`export` writes: the run's own formats (``OutputFormat``'s values) and two
    that need an optional package (not run formats, so that a run never needs them)."""

    JSONL = "jsonl"
    CSV = "csv"
    JSON = "json"
    XLSX = "xlsx"
    PARQUET = "parquet"


# format -> (the module it needs, what to call the format, the extra that installs it)
EXTRAS = {
    ExportFormat.XLSX: ("openpyxl", "Excel", "xlsx"),
    ExportFormat.PARQUET: ("pyarrow.parquet", "Parquet", "parquet"),
}


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


class MissingExtraError(ExportError):
    """The format needs an optional package that is not installed (the message says which
    ``pip install`` brings it)."""


def require(fmt: ExportFormat | str) -> None:
    """Import what ``fmt`` needs, or say how to install it: called before anything is read
    or written, so a missing package costs nothing."""
    if (needs := EXTRAS.get(ExportFormat(fmt))) is None:
        return
    module, label, extra = needs
    try:
        importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise MissingExtraError(
            f"{label} export needs {package}: pip install 'landmark[{extra}]'"
        ) from None


def export(
    records: Iterable[dict[str, Any]],
    dest: Path | str,
    fmt: ExportFormat | OutputFormat | str,
    field_names: Sequence[str] | None = None,
    *,
    guard_formulas: bool = True,
) -> int:
    """Write ``records`` (dicts shaped like ``Record.to_json_dict``) to ``dest`` in ``fmt``
    (any :class:`ExportFormat`), atomically; returns how many were written. This is the
    reusable entry: a service can hand it any iterable of records. ``field_names`` orders
    the field columns of csv, xlsx and parquet (default: the first record's fields).
    Raises :class:`MissingExtraError` before writing when ``fmt``'s package is missing."""
    fmt, dest = ExportFormat(fmt), Path(dest)
    require(fmt)
    if fmt == ExportFormat.XLSX:
        from landmark.coordinator.export_xlsx import write_xlsx

        return _atomic_replace(
            dest, lambda temp: write_xlsx(temp, records, field_names, guard_formulas)
        )
    if fmt == ExportFormat.PARQUET:
        from landmark.coordinator.export_parquet import write_parquet

        with _replayable(records, dest.parent) as again:
            return _atomic_replace(dest, lambda temp: write_parquet(temp, again, field_names))
    if fmt == ExportFormat.CSV:
        return _atomic_write(
            dest, lambda file: _write_csv(file, records, field_names, guard_formulas)
        )
    write = _write_jsonl if fmt == ExportFormat.JSONL else _write_json_array
    return _atomic_write(dest, lambda file: write(file, records))


def _atomic_write(dest: Path, write: Callable[[IO[str]], int]) -> int:
    """``write`` text (UTF-8, newlines untouched) into a temporary file, then move it over
    ``dest`` (:func:`_atomic_replace`)."""

    def to_path(temp: Path) -> int:
        with temp.open("w", encoding="utf-8", newline="") as file:
            return write(file)

    return _atomic_replace(dest, to_path)


def _atomic_replace(dest: Path, write: Callable[[Path], int]) -> int:
    """``write`` a temporary file beside ``dest`` (given its path, since the xlsx and
    parquet writers open files themselves), fsync it, then move it over ``dest``: a reader
    sees the old file or the new one, and a failure leaves the old one and no temporary."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    mode = dest.stat().st_mode & 0o777 if dest.exists() else 0o644  # mkstemp's is 0600
    handle, temp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(handle)
    try:
        count = write(Path(temp))
        _fsync(temp)
        os.chmod(temp, mode)
        os.replace(temp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return count


def _fsync(path: str) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


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
    columns, records = columns_for(records, field_names)
    writer = csv.writer(file)
    writer.writerow(heading for heading, _ in columns)
    count = 0
    for record in records:
        writer.writerow(csv_cell(getter(record), guard) for _, getter in columns)
        count += 1
    return count


def columns_for(
    records: Iterable[dict[str, Any]], field_names: Sequence[str] | None
) -> tuple[list[tuple[str, Callable[[dict], Any]]], Iterator[dict[str, Any]]]:
    """The columns (:func:`csv_columns`) and the records to write: without ``field_names``,
    the first record's fields, peeked at and put back (one pass, any iterable)."""
    iterator = iter(records)
    first = next(iterator, None)
    if field_names is None:
        field_names = list((first or {}).get("fields") or {})
    return csv_columns(field_names), _chain(first, iterator)


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


@contextlib.contextmanager
def _replayable(records: Iterable[dict[str, Any]], folder: Path) -> Iterator[Iterable[dict]]:
    """``records`` in a form that can be read twice: as they are if they can already (a
    list, a :class:`RecordLog`), else spooled to a temporary JSON-lines file in
    ``folder`` (deleted after), so memory stays one record whatever the count."""
    if not isinstance(records, Iterator):
        yield records
        return
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile("w+", encoding="utf-8", dir=folder) as spool:
        _write_jsonl(spool, records)
        yield _Spool(spool)


class _Spool:
    def __init__(self, file: IO[str]) -> None:
        self.file = file

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.file.seek(0)
        return (json.loads(line) for line in self.file)


class RecordLog:
    """A record log that is read again from the start on each iteration: what
    :func:`export` needs to read a big log twice (parquet) without holding it."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return read_results(self.path)


def record_field_names(records: Iterable[dict[str, Any]]) -> list[str]:
    """Every field name in ``records``, in the order first seen: the columns when the job
    that made them is not at hand."""
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record.get("fields") or {}))
    return list(names)


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
