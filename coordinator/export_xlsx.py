"""Excel export: one sheet with the CSV's columns (see :mod:`~coordinator.exporters` for
the layout and the flattening). Imported only when asked for: openpyxl is an extra."""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from landmark.coordinator.exporters import columns_for, csv_cell

XLSX_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # openpyxl's ILLEGAL_CHARACTERS_RE
XLSX_SHEET = "records"


def write_xlsx(
    path: Path,
    records: Iterable[dict[str, Any]],
    field_names: Sequence[str] | None,
    guard: bool,
) -> int:
    """One sheet, the CSV's columns, written row by row (openpyxl's write-only mode keeps
    no row in memory)."""
    from openpyxl import Workbook

    columns, records = columns_for(records, field_names)
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(XLSX_SHEET)
    sheet.append([_xlsx_text(sheet, heading) for heading, _ in columns])
    count = 0
    try:
        for record in records:
            sheet.append([xlsx_cell(sheet, getter(record), guard) for _, getter in columns])
            count += 1
    except BaseException:
        with contextlib.suppress(Exception):
            workbook.save(path)  # closes openpyxl's own temporary file; ours is deleted after
        raise
    workbook.save(path)
    return count


def xlsx_cell(sheet: Any, value: Any, guard: bool = True) -> Any:
    """One value as an Excel cell: numbers and booleans as they are, ``None`` empty, the
    rest as the CSV cell's text (JSON for lists and dicts, the formula guard) in a text
    cell (see the module's notes)."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return _xlsx_text(sheet, csv_cell(value, guard))


def _xlsx_text(sheet: Any, text: str) -> Any:
    """A cell that holds ``text`` as text whatever it starts with: openpyxl guesses a type
    from the value (``=…`` a formula, ``#N/A`` an error), so the type is set after."""
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(sheet, value=XLSX_ILLEGAL.sub("\ufffd", text))
    cell.data_type = "s"
    return cell
