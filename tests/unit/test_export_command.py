"""`landmark export OUT --format csv|xlsx|parquet`: a run's record log, found in its output
folder, written as a spreadsheet or a typed table, flattened as the exporters' notes say;
and a clear one-line error for each way it can go wrong, a missing optional package
included."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from openpyxl import load_workbook

from landmark.config.job import JobSpec
from landmark.config.records import Problem, Record
from landmark.coordinator.cli import EXIT_BAD_INPUT, main
from landmark.coordinator.exporters import (
    ExportError,
    MissingExtraError,
    RecordLog,
    csv_header,
    export,
    read_records,
)
from landmark.coordinator.store import JobIdentity, JsonlSink
from landmark.coordinator.store_config import StoreConfig

FIELDS = ["title", "tags", "status"]  # the job's order; "status" is also a record key
EVIL = '=HYPERLINK("http://evil.test","click")'


def make_job(results: str = "results.jsonl") -> JobSpec:
    return JobSpec.model_validate(
        {
            "name": "t",
            "sources": {"urls": ["http://a.test/g"]},
            "fields": [{"name": name, "labels": [name]} for name in FIELDS],
            "output": {"results": results},
        }
    )


def make_records() -> list[Record]:
    """Fields in another order than the job's, so the job's order is seen to win."""
    first = Record(
        "c0", "http://a.test/g", 0, "ok",
        fields={"status": "live", "tags": ["a", "b, c"], "title": EVIL},
        timings={"open": 12.5}, strategies={"title": "landmark"}, actor="a0",
    )  # fmt: skip
    second = Record(
        "c1", "http://a.test/g", 1, "partial",
        fields={"tags": [], "title": "#N/A", "status": None},
        errors=[Problem("extract", "missing", "status")], attempts=2, cached=True,
        blocked=["ads.test"],
    )  # fmt: skip
    return [first, second]


def write_run(out: Path, results: str = "results.jsonl") -> Path:
    """A run's output folder as the local store leaves it: the record log and the state
    (which keeps the job's identity, fields in order); returns the log."""
    job = make_job(results)
    config = StoreConfig.for_job(job, out, None)
    store = config.open_store()
    store.open(JobIdentity.of(job, ["http://a.test/g"]))
    for record in make_records():
        store.write(record)
    store.finish(completed=True)
    store.close()
    return out / job.output.record_log


def landmark(*args: str | Path, block: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real command in a subprocess; ``block``: a module made unimportable first."""
    prelude = f"sys.modules[{block!r}] = None; " if block else ""
    program = (
        f"import sys; {prelude}from landmark.coordinator.cli import main; "
        "sys.exit(main(sys.argv[1:]))"
    )
    return subprocess.run(
        [sys.executable, "-c", program, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def sheet_rows(path: Path) -> list[dict[str, Any]]:
    sheet = load_workbook(path).active
    header, *rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    return [dict(zip(header, row, strict=True)) for row in rows]


# -- the command, end to end -------------------------------------------------------------------
def test_xlsx_export_opened_back_with_openpyxl(tmp_path):
    write_run(tmp_path)
    done = landmark("export", tmp_path, "--format", "xlsx")
    assert done.returncode == 0, done.stderr
    dest = tmp_path / "results.xlsx"
    assert done.stdout.strip() == f"exported 2 records from {tmp_path / 'results.jsonl'} to {dest}"
    book = load_workbook(dest)
    sheet = book.active
    assert sheet.title == "records"
    header = [cell.value for cell in sheet[1]]
    assert header == csv_header(FIELDS)  # the job's field order, from the run's state
    cells = {heading: cell for heading, cell in zip(header, sheet[2], strict=True)}
    assert cells["title"].value == "'" + EVIL  # guarded as in the CSV ...
    assert cells["title"].data_type == "s"  # ... and a text cell, not a formula
    assert json.loads(cells["tags"].value) == ["a", "b, c"]  # a list: JSON text
    assert (cells["position"].value, cells["cached"].value) == (0, False)  # native types
    assert json.loads(cells["timings"].value) == {"open": 12.5}
    assert cells["blocked"].value is None and cells["fields.status"].value == "live"
    title = sheet.cell(row=3, column=header.index("title") + 1)
    assert (title.value, title.data_type) == ("#N/A", "s")  # text, not Excel's error value
    second = sheet_rows(dest)[1]
    assert (
        second["title"] == "#N/A" and second["tags"] == "[]" and second["blocked"] == '["ads.test"]'
    )
    assert json.loads(second["errors"])[0]["field"] == "status"
    sheet_xml = zipfile.ZipFile(dest).read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet_xml and "HYPERLINK" in sheet_xml  # no formula anywhere


def test_parquet_export_keeps_types(tmp_path):
    write_run(tmp_path)
    done = landmark("export", tmp_path, "--format", "parquet")
    assert done.returncode == 0, done.stderr
    table = pq.read_table(tmp_path / "results.parquet")
    assert table.column_names == csv_header(FIELDS)
    types = dict(zip(table.column_names, table.schema.types, strict=True))
    assert types["position"] == types["attempts"] == pa.int64()
    assert types["cached"] == pa.bool_()
    assert types["tags"] == types["blocked"] == pa.list_(pa.string())
    assert types["title"] == types["errors"] == types["timings"] == pa.string()
    first, second = table.to_pylist()
    assert first["title"] == EVIL  # no formula guard: nothing runs a Parquet cell
    assert first["tags"] == ["a", "b, c"] and second["tags"] == []
    assert json.loads(first["timings"]) == {"open": 12.5}
    assert second["fields.status"] is None and second["blocked"] == ["ads.test"]


def test_csv_export_of_a_csv_job_is_named_after_its_results(tmp_path):
    log = write_run(tmp_path, "items.csv")
    assert log == tmp_path / ".landmark" / "records-items.jsonl"
    done = landmark("export", tmp_path, "--format", "csv")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(f"to {tmp_path / 'items.csv'}")
    back = list(read_records(tmp_path / "items.csv"))
    assert [row["title"] for row in back] == [EVIL, "#N/A"]  # the guard comes off on reading


def test_a_missing_openpyxl_is_one_line_saying_what_to_install(tmp_path):
    write_run(tmp_path)
    done = landmark("export", tmp_path, "--format", "xlsx", block="openpyxl")
    assert done.returncode == EXIT_BAD_INPUT
    assert done.stderr == "landmark: Excel export needs openpyxl: pip install 'landmark[xlsx]'\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".landmark", "results.jsonl"]


def test_a_missing_pyarrow_stops_export_before_it_writes(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(MissingExtraError, match=r"^Parquet export needs pyarrow: pip install "):
        export([make_records()[0].to_json_dict()], tmp_path / "r.parquet", "parquet")
    assert list(tmp_path.iterdir()) == []


# -- errors: one line, exit 2 ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        ("none", ["missing", "--format", "csv"], "missing: no such folder"),
        ("empty", [".", "--format", "csv"], ": no record log here"),
        ("run", [".", "--format", "xls"], "unknown export format 'xls': use csv, xlsx or parquet"),
        ("run", ["."], "which format? --format csv, xlsx or parquet"),
        ("run", [".", "--format", "csv", "--to", "results.jsonl"], "is the record log itself"),
        ("two", [".", "--format", "csv"], "several record logs (.landmark/records-items.jsonl, "),
        ("run", ["summary.json", "--format", "csv"], "not a record log"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(tmp_path, monkeypatch, capsys, setup, args, message):
    if setup in ("run", "two"):
        write_run(tmp_path)
        (tmp_path / "summary.json").write_text("{}")
    if setup == "two":
        write_run(tmp_path, "items.csv")  # a csv run's log beside a jsonl run's
    monkeypatch.chdir(tmp_path)
    assert main(["export", *args]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("landmark: ") and err.count("\n") == 1, err
    assert message in err


def test_format_from_the_destinations_extension_and_a_log_named_directly(tmp_path, capsys):
    log = write_run(tmp_path, "items.json")
    dest = tmp_path / "elsewhere" / "out.parquet"
    assert main(["export", str(log), "--to", str(dest)]) == 0
    assert f"to {dest}" in capsys.readouterr().out
    assert pq.read_table(dest).num_rows == 2


def test_without_the_runs_state_the_columns_are_the_fields_as_first_seen(tmp_path, capsys):
    with JsonlSink(tmp_path / "results.jsonl") as sink:  # a copied folder, or a Redis run
        for record in make_records():
            sink.write(record)
    sink_only = {"id": "c2", "source": "s", "position": 2, "status": "ok", "fields": {"extra": 1}}
    with (tmp_path / "results.jsonl").open("a") as file:
        file.write(json.dumps(sink_only) + "\n")
    assert main(["export", str(tmp_path), "--format", "xlsx"]) == 0
    header = [cell.value for cell in load_workbook(tmp_path / "results.xlsx").active[1]]
    assert header[7:11] == ["fields.status", "tags", "title", "extra"]


# -- flattening, through the reusable export() ---------------------------------------------------
def test_xlsx_cells_are_text_even_unguarded_and_hold_what_excel_can(tmp_path):
    fields = {"f": "=1+2", "nan": math.nan, "ctl": "a\x01b\tc", "n": 2.5, "big": 10**20}
    record = {"id": "c0", "source": "s", "position": 0, "status": "ok", "fields": fields}
    export([record], tmp_path / "r.xlsx", "xlsx", list(fields), guard_formulas=False)
    row = load_workbook(tmp_path / "r.xlsx").active[2]
    cells = dict(zip(csv_header(list(fields)), row, strict=True))
    assert (cells["f"].value, cells["f"].data_type) == ("=1+2", "s")
    assert cells["nan"].value == "nan" and cells["n"].value == 2.5
    assert cells["ctl"].value == "a\ufffdb\tc"


def test_parquet_types_of_field_columns_come_from_their_values(tmp_path):
    rows = [
        {"num": 1, "mixed": "a", "nested": [{"k": 1}], "none": None, "big": 1, "flags": [True]},
        {"num": 2.5, "mixed": 3, "nested": [], "none": None, "big": 2**70, "flags": None},
    ]
    records = (
        {"id": f"c{i}", "source": "s", "position": i, "status": "ok", "fields": fields}
        for i, fields in enumerate(rows)
    )  # a one-shot iterator: spooled, then read twice
    assert export(records, tmp_path / "r.parquet", "parquet") == 2
    table = pq.read_table(tmp_path / "r.parquet")
    types = dict(zip(table.column_names, table.schema.types, strict=True))
    assert types["num"] == pa.float64() and types["flags"] == pa.list_(pa.bool_())
    assert types["mixed"] == types["nested"] == types["none"] == types["big"] == pa.string()
    first, second = table.to_pylist()
    assert (first["num"], second["num"]) == (1.0, 2.5)
    assert (first["mixed"], second["mixed"]) == ("a", "3")
    assert json.loads(first["nested"]) == [{"k": 1}] and second["big"] == str(2**70)
    assert [p.name for p in tmp_path.iterdir()] == ["r.parquet"]  # the spool is gone


def test_parquet_writes_only_the_records_its_first_pass_saw(tmp_path):
    """A log appended to by a running job between the two passes: the later records are
    not written (their types were not seen)."""

    class Growing:
        def __init__(self) -> None:
            self.passes = 0

        def __iter__(self):
            self.passes += 1
            count = 2 if self.passes == 1 else 3
            return iter(
                {"id": f"c{i}", "source": "s", "position": i, "status": "ok", "fields": {"x": i}}
                for i in range(count)
            )

    assert export(Growing(), tmp_path / "r.parquet", "parquet") == 2
    assert pq.read_table(tmp_path / "r.parquet").column("x").to_pylist() == [0, 1]


@pytest.mark.parametrize("fmt", ["xlsx", "parquet"])
def test_a_failed_export_leaves_the_previous_file_and_no_temporary(tmp_path, fmt):
    dest = tmp_path / f"r.{fmt}"
    export([make_records()[0].to_json_dict()], dest, fmt, FIELDS)
    before = dest.read_bytes()

    def failing():
        yield make_records()[0].to_json_dict()
        raise OSError("disk full")

    from openpyxl.worksheet._writer import ALL_TEMP_FILES  # openpyxl's own, in /tmp

    openpyxl_temporaries = list(ALL_TEMP_FILES)
    with pytest.raises(OSError, match="disk full"):
        export(failing(), dest, fmt, FIELDS)
    assert dest.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [dest.name]
    assert openpyxl_temporaries == ALL_TEMP_FILES


def test_a_broken_record_log_is_one_line_and_writes_nothing(tmp_path, capsys):
    log = tmp_path / "results.jsonl"
    log.write_text('{"id": "a", "status": "ok", "fields": {}}\n{broken}\n{"id": "b"}\n')
    with pytest.raises(ValueError, match="not a JSON record"):
        list(RecordLog(log))
    assert main(["export", str(tmp_path), "--format", "csv"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith(f"landmark: could not write {tmp_path / 'results.csv'}") and ":2:" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.jsonl"]
    assert issubclass(MissingExtraError, ExportError)  # so the CLI's exit 2 covers both
