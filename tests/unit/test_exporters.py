"""Results by name: the record log is JSON lines wherever it lives, and the exporters turn it
into the csv or json a job names, atomically, and read any of the three back."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from landmark.config.job import JobSpec, OutputFormat
from landmark.config.records import Record
from landmark.coordinator.exporters import (
    ExportError,
    _read_json_array,
    csv_cell,
    csv_header,
    export,
    export_results,
    read_records,
)
from landmark.coordinator.local_store import LocalStore
from landmark.coordinator.preflight import OutputError, check_output
from landmark.coordinator.store import JobIdentity, JsonlSink
from landmark.coordinator.store_config import StoreConfig

FIELDS = ["title", "tags", "status"]  # "status" is also a record key: its column is prefixed


def record(i: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": f"c{i}",
        "source": "http://a.test/g",
        "position": i,
        "status": "ok",
        "fields": fields,
        "errors": [],
        "attempts": 1,
        "timings": {"open": 12.5},
        "strategies": {},
        "actor": "a0",
        "download": None,
        "cached": False,
    }


def job(results: str = "results.csv", **output: Any) -> JobSpec:
    return JobSpec.model_validate(
        {
            "name": "t",
            "sources": {"urls": ["http://127.0.0.1:1/"]},
            "fields": [{"name": name, "labels": [name]} for name in FIELDS],
            "output": {"results": results, **output},
        }
    )


def csv_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as file:
        return list(csv.reader(file))


# -- csv ---------------------------------------------------------------------------------------
def test_the_csv_header_is_the_records_keys_then_the_jobs_fields_then_the_rest(tmp_path):
    records = [record(0), record(1, tags=["x"], title="T")]  # the first lacks every field
    export(records, tmp_path / "r.csv", "csv", FIELDS)
    header, *rows = csv_rows(tmp_path / "r.csv")
    assert header == csv_header(FIELDS) == [
        "id", "source", "position", "status", "attempts", "cached", "actor",
        "title", "tags", "fields.status",
        "errors", "timings", "strategies", "download", "blocked",
    ]  # fmt: skip
    assert len(rows) == 2 and all(len(row) == len(header) for row in rows)
    assert dict(zip(header, rows[1], strict=True))["title"] == "T"
    assert dict(zip(header, rows[0], strict=True))["title"] == ""


def test_lists_and_dicts_are_json_in_a_cell_and_none_is_empty(tmp_path):
    one = record(0, title=None, tags=["a", "b, c"], status="live")
    one["errors"] = [{"phase": "extract", "reason": "missing", "field": "title"}]
    one["download"] = {"path": "files/c0.png", "bytes": 3}
    export([one], tmp_path / "r.csv", OutputFormat.CSV, FIELDS)
    header, row = csv_rows(tmp_path / "r.csv")
    cells = dict(zip(header, row, strict=True))
    assert cells["title"] == "" and cells["blocked"] == ""
    assert json.loads(cells["tags"]) == ["a", "b, c"]
    assert json.loads(cells["errors"]) == one["errors"]
    assert json.loads(cells["download"]) == one["download"]
    assert (cells["fields.status"], cells["status"]) == ("live", "ok")
    assert (cells["position"], cells["cached"]) == ("0", "false")
    assert cells["timings"] == '{"open": 12.5}'


def test_unicode_commas_quotes_and_newlines_survive_a_round_trip(tmp_path):
    hard = 'Ünïcødé 東京 🎨, "quoted", a\nnew line, a\r\nCRLF; tab\tend'
    export([record(0, title=hard, tags=[hard])], tmp_path / "r.csv", "csv", FIELDS)
    (back,) = list(read_records(tmp_path / "r.csv"))
    assert back["title"] == hard
    assert json.loads(back["tags"]) == [hard]
    assert back["id"] == "c0" and back["position"] == "0"  # csv values come back as text


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://evil")', '\'=HYPERLINK("http://evil")'),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("'kept", "''kept"),  # so that taking one quote off is always right
        ("-12.5", "-12.5"),  # a plain number runs nothing
        ("+3e5", "+3e5"),
        ("a=b", "a=b"),
    ],
)
def test_cells_a_spreadsheet_would_run_are_quoted_and_read_back_unquoted(tmp_path, value, cell):
    assert csv_cell(value) == cell
    assert csv_cell(value, guard=False) == value
    export([record(0, title=value)], tmp_path / "r.csv", "csv", FIELDS)
    assert next(read_records(tmp_path / "r.csv"))["title"] == value


def test_without_field_names_the_first_records_fields_are_the_columns(tmp_path):
    export([record(0, b=1, a=2)], tmp_path / "r.csv", "csv")
    assert csv_rows(tmp_path / "r.csv")[0][7:9] == ["b", "a"]


def test_an_empty_export_still_has_its_header_or_brackets(tmp_path):
    assert export([], tmp_path / "r.csv", "csv", FIELDS) == 0
    assert csv_rows(tmp_path / "r.csv") == [csv_header(FIELDS)]
    assert export(iter(()), tmp_path / "r.json", "json") == 0
    assert json.loads((tmp_path / "r.json").read_text()) == []
    assert list(read_records(tmp_path / "r.json")) == []
    assert list(read_records(tmp_path / "r.csv")) == []


# -- json and jsonl --------------------------------------------------------------------------
def test_json_and_jsonl_give_back_the_records_as_written(tmp_path):
    records = [record(i, title=f"t{i}", tags=["é", i]) for i in range(5)]
    assert export(iter(records), tmp_path / "r.json", "json") == 5
    assert json.loads((tmp_path / "r.json").read_text(encoding="utf-8")) == records
    assert list(read_records(tmp_path / "r.json")) == records
    export(records, tmp_path / "r.jsonl", "jsonl")
    assert list(read_records(tmp_path / "r.jsonl")) == records


def test_the_format_is_read_from_the_content_not_the_name(tmp_path):
    """``output.format`` may disagree with the name: read_records still reads it right."""
    records = [record(0, title="x")]
    export(records, tmp_path / "looks.jsonl", "csv", FIELDS)
    export(records, tmp_path / "looks.csv", "json")
    export(records, tmp_path / "looks.txt", "jsonl")
    assert next(read_records(tmp_path / "looks.jsonl"))["title"] == "x"
    assert list(read_records(tmp_path / "looks.csv")) == records
    assert list(read_records(tmp_path / "looks.txt")) == records


def test_a_json_array_is_read_item_by_item_even_across_small_chunks(tmp_path):
    records = [record(i, title="x" * 300 * i) for i in range(6)]
    (tmp_path / "r.json").write_text(" [ " + " , ".join(json.dumps(r) for r in records) + " ] ")
    assert list(_read_json_array(tmp_path / "r.json", chunk_chars=64)) == records
    (tmp_path / "cut.json").write_text("[" + json.dumps(records[0]) + ', {"id":')
    with pytest.raises(ValueError, match="not a complete JSON array"):
        list(_read_json_array(tmp_path / "cut.json", chunk_chars=64))


# -- atomic writes ---------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
def test_an_export_that_fails_leaves_the_previous_file_and_no_temporary(tmp_path, fmt):
    dest = tmp_path / f"r.{fmt}"
    export([record(0, title="old")], dest, fmt, FIELDS)
    before = dest.read_bytes()

    def failing():
        yield record(1, title="new")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        export(failing(), dest, fmt, FIELDS)
    assert dest.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [dest.name]


def test_an_export_replaces_the_file_and_keeps_its_permissions(tmp_path):
    dest = tmp_path / "r.csv"
    dest.write_text("old")
    dest.chmod(0o640)
    export([record(0)], dest, "csv", FIELDS)
    assert dest.stat().st_mode & 0o777 == 0o640
    assert [r["id"] for r in read_records(dest)] == ["c0"]
    export([record(0)], tmp_path / "new.csv", "csv", FIELDS)
    assert (tmp_path / "new.csv").stat().st_mode & 0o777 == 0o644


# -- the job's results and its record log ------------------------------------------------------
def test_the_record_log_is_jsonl_beside_the_state_unless_the_results_are_jsonl():
    assert job("results.csv").output.record_log == ".landmark/records-results.jsonl"
    assert job("out.json").output.record_log == ".landmark/records-out.jsonl"
    assert job("results.jsonl").output.record_log == "results.jsonl"
    assert job("results.txt", format="csv").output.kind == OutputFormat.CSV
    assert job("results.json").output.format is None  # derived, so a dump keeps following it
    config = StoreConfig.for_job(job("results.csv"), Path("/o"), None)
    assert (config.record_log, config.results) == (".landmark/records-results.jsonl", "results.csv")
    plain = StoreConfig.for_job(job("results.jsonl"), Path("/o"), None)
    assert (plain.record_log, plain.results) == ("results.jsonl", None)


def test_export_results_turns_the_log_into_the_results(tmp_path):
    spec = job("results.csv")
    with JsonlSink(tmp_path / spec.output.record_log) as sink:
        for i in range(3):
            sink.write(Record.from_json_dict(record(i, title=f"t{i}", tags=["a"])))
    assert export_results(spec, tmp_path) == tmp_path / "results.csv"
    assert [r["title"] for r in read_records(tmp_path / "results.csv")] == ["t0", "t1", "t2"]
    plain = job("results.jsonl")
    assert export_results(plain, tmp_path / "other") == tmp_path / "other" / "results.jsonl"
    assert not (tmp_path / "other").exists()  # jsonl results are the log: nothing to write


def test_export_results_without_a_log_says_where_it_is_and_keeps_the_old_file(tmp_path):
    """No log here (with ray://, the Coordinator wrote it on the head): an earlier export
    is not overwritten by an empty one, and the error says where to look."""
    (tmp_path / "results.json").write_text('[{"id": "kept"}]')
    with pytest.raises(ExportError, match=r"no record log at .*ray://"):
        export_results(job("results.json"), tmp_path)
    assert json.loads((tmp_path / "results.json").read_text()) == [{"id": "kept"}]


def test_a_broken_record_log_is_an_export_error_not_a_traceback(tmp_path):
    spec = job("results.csv")
    log = tmp_path / spec.output.record_log
    log.parent.mkdir(parents=True)
    log.write_text('{"id": "a", "status": "ok"}\n{not json}\n{"id": "b"}\n')
    with pytest.raises(ExportError, match="could not write"):
        export_results(spec, tmp_path)


def test_the_local_store_keeps_its_log_at_the_new_place_and_deletes_the_export_with_it(tmp_path):
    spec = job("results.csv")
    identity = JobIdentity("t", {"fields": FIELDS})
    config = StoreConfig.for_job(spec, tmp_path, None)
    store = config.open_store()
    assert isinstance(store, LocalStore)
    store.open(identity)
    store.write(Record.from_json_dict(record(0, title="x")))
    store.finish(completed=False)
    store.close()
    log = tmp_path / ".landmark" / "records-results.jsonl"
    assert [r["id"] for r in read_records(log)] == ["c0"]
    assert not (tmp_path / "results.csv").exists()
    prior = config.open_store().inspect(identity)
    assert (prior.kind, prior.records) == ("unfinished", 1)
    export_results(spec, tmp_path)
    config.open_store().reset()  # --fresh
    assert not log.exists() and not (tmp_path / "results.csv").exists()


def test_check_output_makes_the_state_folder_and_refuses_one_that_is_a_file(tmp_path):
    names = ("results.csv", "summary.json", ".landmark/records-results.jsonl")
    check_output(tmp_path / "a", names)
    assert (tmp_path / "a" / ".landmark").is_dir()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / ".landmark").write_text("")
    with pytest.raises(OutputError, match=r"\.landmark is a file, not a folder"):
        check_output(tmp_path / "b", names)
    (tmp_path / "c" / "results.csv").mkdir(parents=True)
    with pytest.raises(OutputError, match=r"results\.csv is a folder"):
        check_output(tmp_path / "c", names, create=False)


# -- validation --------------------------------------------------------------------------------
def test_validate_refuses_a_results_name_of_no_known_format(tmp_path):
    path = tmp_path / "job.json"
    data = {
        "name": "t",
        "sources": {"urls": ["http://127.0.0.1:1/"]},
        "fields": [{"name": "prompt", "labels": ["Prompt"]}],
        "output": {"dir": str(tmp_path / "out"), "results": "results.txt"},
    }
    path.write_text(json.dumps(data))
    done = subprocess.run(
        [sys.executable, "-m", "landmark.coordinator.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert ".txt" in done.stderr and "results.txt" in done.stderr
    assert "Traceback" not in done.stderr
    data["output"]["format"] = "csv"  # an explicit format makes any name fine
    path.write_text(json.dumps(data))
    ok = subprocess.run(
        [sys.executable, "-m", "landmark.coordinator.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr


def test_csv_text_is_what_the_csv_module_reads(tmp_path):
    """A sanity check of the dialect: RFC 4180 quoting, CRLF rows, UTF-8 without a BOM."""
    export([record(0, title='a "b"')], tmp_path / "r.csv", "csv", FIELDS)
    raw = (tmp_path / "r.csv").read_bytes()
    assert raw.startswith(b"id,source,") and b'"a ""b"""' in raw and raw.endswith(b"\r\n")
    assert list(csv.reader(io.StringIO(raw.decode())))[1][7] == 'a "b"'


def test_a_json_array_after_a_long_run_of_blanks_is_still_read(tmp_path):
    (tmp_path / "r.json").write_text(" " * 200 + '[{"id": "c0"}]')
    assert list(_read_json_array(tmp_path / "r.json", chunk_chars=64)) == [{"id": "c0"}]
    (tmp_path / "blank.json").write_text(" " * 200)
    assert list(_read_json_array(tmp_path / "blank.json", chunk_chars=64)) == []
