"""``landmark export OUT --format csv|xlsx|parquet [--to FILE]``: a run's records in another
format, from its output folder alone, during the run or any time after.

The records come from the folder's record log — ``OUT/NAME.jsonl`` (or ``.ndjson``) when
the job's results are JSON lines, else ``OUT/.landmark/records-NAME.jsonl`` — and are
written by :func:`landmark.coordinator.exporters.export` (atomically, the layout and the
flattening are described there). The field columns follow the job's own field order,
read from the local store's state (``OUT/.landmark/state.sqlite`` keeps the job's
identity for resumes); without it (a Redis store, a copied folder) they are every field
name in the records, in the order first seen. ``summary.json`` names the job but not
its fields, so it is not read.

The destination defaults to ``OUT/NAME.EXT`` (``results.xlsx`` for the default job),
never the record log itself. A log being appended to by a running job is fine: a line
cut short is skipped, and a record appended after the export began is not written.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from landmark.coordinator.exporters import (
    ExportError,
    ExportFormat,
    RecordLog,
    export,
    record_field_names,
    require,
)
from landmark.coordinator.local_store import STATE_DIR, saved_field_names

FORMATS = (ExportFormat.CSV, ExportFormat.XLSX, ExportFormat.PARQUET)
KNOWN = "csv, xlsx or parquet"
LOG_SUFFIXES = (".jsonl", ".ndjson")
LOG_PREFIX = "records-"


@dataclass(frozen=True, slots=True)
class Found:
    """A record log, the output folder it belongs to, and the results' name stem."""

    out_dir: Path
    log: Path
    stem: str


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "out", type=Path, help="a run's output folder (or its record log, a .jsonl file)"
    )
    parser.add_argument(
        "--format",
        metavar="FORMAT",
        help="csv, xlsx (needs landmark[xlsx]) or parquet (needs landmark[parquet]); "
        "default: --to's extension",
    )
    parser.add_argument(
        "--to",
        type=Path,
        metavar="FILE",
        help="where to write (default: OUT/NAME.FORMAT beside the results, e.g. results.xlsx)",
    )


def export_command(args: argparse.Namespace) -> int:
    """Export, then say how many records went where. Every failure is an ExportError:
    one line, exit 2 (the CLI's handling)."""
    fmt = command_format(args.format, args.to)
    require(fmt)  # a missing package is said before the log is read
    found = find_record_log(args.out)
    dest = destination(found, fmt, args.to)
    names = saved_field_names(found.out_dir)
    try:
        if names is None:
            names = record_field_names(RecordLog(found.log))
        count = export(RecordLog(found.log), dest, fmt, names)
    except (OSError, ValueError, TypeError) as error:  # pyarrow's ArrowTypeError: a TypeError
        raise ExportError(f"could not write {dest} from {found.log}: {error}") from None
    print(f"exported {count} record{'' if count == 1 else 's'} from {found.log} to {dest}")
    return 0


def command_format(name: str | None, to: Path | None) -> ExportFormat:
    """``--format``, else the extension of ``--to``; one of :data:`FORMATS`."""
    if name is None:
        if to is None or to.suffix.lower().lstrip(".") not in FORMATS:
            raise ExportError(f"which format? --format {KNOWN}")
        name = to.suffix.lower().lstrip(".")
    if name.lower() not in FORMATS:
        raise ExportError(f"unknown export format {name!r}: use {KNOWN}")
    return ExportFormat(name.lower())


def find_record_log(out: Path) -> Found:
    """The one record log in ``out`` (or ``out`` itself when it is a file); an error that
    says what was looked for when there is none, and lists them when there are several."""
    if out.is_file():
        if out.suffix not in LOG_SUFFIXES:
            raise ExportError(f"{out}: not a record log (a .jsonl file) nor an output folder")
        return _found(out)
    if not out.is_dir():
        raise ExportError(f"{out}: no such folder (give a run's output folder)")
    logs = sorted(out.glob(f"{STATE_DIR}/{LOG_PREFIX}*.jsonl"))
    logs += sorted(p for p in out.iterdir() if p.suffix in LOG_SUFFIXES and p.is_file())
    if not logs:
        raise ExportError(
            f"{out}: no record log here (NAME.jsonl, or {STATE_DIR}/{LOG_PREFIX}NAME.jsonl): "
            "is it a run's output folder?"
        )
    if len(logs) > 1:
        listed = ", ".join(str(log.relative_to(out)) for log in logs)
        raise ExportError(f"{out}: several record logs ({listed}); name one: landmark export "
                          f"{logs[0]} --format …")  # fmt: skip
    return _found(logs[0])


def _found(log: Path) -> Found:
    """A log under the state folder belongs to the folder above it and names the results
    ``NAME`` of ``records-NAME.jsonl``; a log at the top is the results itself."""
    if log.parent.name == STATE_DIR and log.name.startswith(LOG_PREFIX):
        return Found(log.parent.parent, log, log.stem.removeprefix(LOG_PREFIX))
    return Found(log.parent, log, log.stem)


def destination(found: Found, fmt: ExportFormat, to: Path | None) -> Path:
    """``--to``, else ``NAME.EXT`` beside the results; never the record log."""
    dest = to if to is not None else found.out_dir / f"{found.stem}.{fmt}"
    if dest.resolve() == found.log.resolve():
        raise ExportError(f"{dest} is the record log itself: --to another file")
    return dest
