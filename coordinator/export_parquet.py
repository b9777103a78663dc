"""Parquet export: the CSV's columns, with types (see :mod:`~coordinator.exporters` for
the rules). Imported only when asked for: pyarrow is an extra."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from landmark.coordinator.exporters import columns_for

PARQUET_BATCH = 1024  # rows per write: memory stays about one batch, not the run
INT64 = (-(2**63), 2**63 - 1)
# The record's own columns have one Parquet type in every run, as the CSV has one header;
# only the field columns' types come from their values.
RECORD_KINDS = {
    "id": "string", "source": "string", "position": "int", "status": "string",
    "attempts": "int", "cached": "bool", "actor": "string",
    "errors": "json", "timings": "json", "strategies": "json", "download": "json",
    "blocked": "list",  # of host names
}  # fmt: skip


def write_parquet(
    path: Path, records: Iterable[dict[str, Any]], field_names: Sequence[str] | None
) -> int:
    """Two passes over a re-iterable: the first decides each column's type, the second
    writes the first pass's records in row groups of :data:`PARQUET_BATCH`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns, first_pass = columns_for(records, field_names)
    types = [ColumnType.of_column(heading) for heading, _ in columns]
    count = 0
    for record in first_pass:
        for (_, getter), seen in zip(columns, types, strict=True):
            seen.see(getter(record))
        count += 1
    resolved = [seen.resolve() for seen in types]
    schema = pa.schema([(h, arrow) for (h, _), (arrow, _) in zip(columns, resolved, strict=True)])
    with pq.ParquetWriter(path, schema) as writer:
        rows = itertools.islice(iter(records), count)  # not what was appended since
        while batch := list(itertools.islice(rows, PARQUET_BATCH)):
            data = {
                heading: [convert(getter(record)) for record in batch]
                for (heading, getter), (_, convert) in zip(columns, resolved, strict=True)
            }
            writer.write_table(pa.Table.from_pydict(data, schema=schema))
    return count


class ColumnType:
    """The kinds of value one column has held, and the Parquet type they make (the
    module's notes give the rules)."""

    def __init__(self, kind: str | None = None) -> None:
        """``kind``: a type fixed in advance (the values are not looked at), else None."""
        self.fixed = kind is not None
        self.kinds: set[str] = {kind} if kind else set()
        self.items: set[str] = {"string"} if kind == "list" else set()  # its lists' elements

    @classmethod
    def of_column(cls, heading: str) -> ColumnType:
        return cls(RECORD_KINDS.get(heading))

    def see(self, value: Any) -> None:
        if value is None or self.fixed:
            return
        if isinstance(value, list):
            items = {_scalar_kind(item) for item in value if item is not None}
            if None not in items:
                self.kinds.add("list")
                self.items |= items
                return
        self.kinds.add(_scalar_kind(value) or "json")

    def resolve(self) -> tuple[Any, Callable[[Any], Any]]:
        """(the pyarrow type, what turns a value into one of that type)."""
        import pyarrow as pa

        if self.kinds == {"list"}:
            item_type, convert = _scalar_type(self.items)
            return pa.list_(item_type), lambda v: None if v is None else [convert(x) for x in v]
        if self.kinds & {"list", "json"}:
            return pa.string(), _as_text
        return _scalar_type(self.kinds)


def _scalar_kind(value: Any) -> str | None:
    """``bool``, ``int`` (if int64 holds it), ``float``, ``string``; None for the rest."""
    kind = type(value)
    if kind is int and not INT64[0] <= value <= INT64[1]:
        return "string"
    return {bool: "bool", int: "int", float: "float", str: "string"}.get(kind)


def _scalar_type(kinds: set[str]) -> tuple[Any, Callable[[Any], Any]]:
    import pyarrow as pa

    if kinds == {"bool"}:
        return pa.bool_(), _same
    if kinds == {"int"}:
        return pa.int64(), _same
    if kinds and kinds <= {"int", "float"}:
        return pa.float64(), _same
    return pa.string(), _as_text


def _same(value: Any) -> Any:
    return value


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)
