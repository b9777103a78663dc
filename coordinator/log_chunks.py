"""Reading a job's record log in chunks, for the service's results endpoint: complete lines
only, from a cursor that is always at a line's start, so the chunks read in turn add up to
the whole log while it is still being written."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from landmark.coordinator.exporters import csv_cell, csv_columns

MAX_CHUNK_BYTES = 16 * 2**20  # a chunk stops after the line that crosses this


class CursorError(ValueError):
    """A cursor that is not at a line's start in this log (not one this API gave)."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """Complete lines of the record log (each with its newline), the offset after them, and
    whether complete lines were left for the next chunk."""

    lines: list[bytes]
    next_offset: int
    more: bool


def read_chunk(
    path: Path, offset: int, limit: int, max_bytes: int = MAX_CHUNK_BYTES, *, tail: bool = False
) -> Chunk:
    """Up to ``limit`` complete lines from ``offset`` (``tail``: the last ``limit``, offset
    ignored). A last line without its newline is being written: it is left for a later read,
    so the cursor only ever stands at a line's start. Blank lines are skipped."""
    try:
        file = path.open("rb")
    except FileNotFoundError:
        if offset:
            raise CursorError("beyond the end of the record log") from None
        return Chunk([], 0, False)
    with file:
        size = os.fstat(file.fileno()).st_size
        if tail:
            offset = tail_offset(file, size, limit)
        if offset > size:
            raise CursorError("beyond the end of the record log (was the job started over?)")
        if offset:
            file.seek(offset - 1)
            if file.read(1) != b"\n":
                raise CursorError("not at the start of a record (send Landmark-Next-Cursor)")
        lines: list[bytes] = []
        taken = 0
        while len(lines) < limit and taken < max_bytes:
            line = file.readline()
            if not line.endswith(b"\n"):
                return Chunk(lines, offset, False)  # the end, or a line still being written
            offset += len(line)
            if line.strip():
                lines.append(line)
                taken += len(line)
        return Chunk(lines, offset, file.readline().endswith(b"\n"))


def tail_offset(file: Any, size: int, count: int, block: int = 1 << 16) -> int:
    """The offset of the first of the last ``count`` complete lines of ``file``, read
    backwards a growing block at a time (never the whole of a big log)."""
    while True:
        start = max(0, size - block)
        file.seek(start)
        data = file.read(size - start)
        end = data.rfind(b"\n")  # the newline of the last complete line
        if end < 0 and start == 0:
            return 0
        position = end
        for _ in range(count):
            if position < 0:
                break
            position = data.rfind(b"\n", 0, position)
        if end >= 0 and position >= 0:
            return start + position + 1
        if start == 0:
            return 0
        block *= 4


def log_records(path: Path) -> Iterator[dict[str, Any]]:
    """The complete records of a record log (none if it does not exist yet)."""
    from landmark.coordinator.store import read_results

    if path.exists():
        yield from read_results(path)


def csv_text(lines: list[bytes], field_names: list[str], *, header: bool) -> str:
    """Records (JSON lines) as CSV rows with ``landmark export``'s columns and cells (the
    formula guard included); the header only for the first chunk, so chunks add up to the
    file an export would write."""
    columns = csv_columns(field_names)
    out = io.StringIO()
    writer = csv.writer(out)
    if header:
        writer.writerow(heading for heading, _ in columns)
    for line in lines:
        record = json.loads(line)
        writer.writerow(csv_cell(getter(record)) for _, getter in columns)
    return out.getvalue()
