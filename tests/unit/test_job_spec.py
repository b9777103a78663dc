"""The job spec: defaults, validation, and the messages a user sees for a bad file."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from landmark.config.fields import Relation
from landmark.config.job import JobSpec, OpenMode
from landmark.config.loading import JobFileError, load_job
from landmark.config.units import parse_duration, parse_limit, parse_size

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "examples" / "gallery.yaml"


def minimal(**extra) -> dict:
    job = {
        "name": "t",
        "sources": {"urls": ["http://127.0.0.1:1/"]},
        "fields": [{"name": "prompt", "labels": ["Prompt"]}],
    }
    job.update(extra)
    return job


def write(tmp_path: Path, data: dict | str, suffix: str = ".yaml") -> Path:
    path = tmp_path / f"job{suffix}"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def problems(tmp_path: Path, data: dict | str, suffix: str = ".json") -> list[str]:
    with pytest.raises(JobFileError) as caught:
        load_job(write(tmp_path, data, suffix))
    return caught.value.problems


def test_example_job_is_valid_and_uses_every_relation_it_needs():
    job = load_job(EXAMPLE)
    assert job.containers.open is OpenMode.CLICK
    assert {f.relation for f in job.fields} == {Relation.NEXT, Relation.ATTR}
    assert job.budget.memory_shed.fraction == pytest.approx(0.85)


def test_defaults_are_documented_and_sane():
    job = JobSpec.model_validate(minimal())
    assert job.timeouts.wait == timedelta(seconds=10)
    assert job.retries.max_attempts == 3
    assert job.budget.memory_throttle.fraction < job.budget.memory_shed.fraction < 0.95
    sections = (job.budget, job.timeouts, job.retries, job.output, job.browser, job.containers)
    for model in (type(job), type(job.fields[0]), *map(type, sections)):
        for name, info in model.model_fields.items():
            assert info.description or info.is_required() or model is JobSpec, (model, name)


@pytest.mark.parametrize(
    ("budget", "first", "adaptive"),
    [
        ({}, 4, True),  # the default: 4 pages at first, the page governor takes them up to 8
        ({"pages_per_actor": 2}, 2, False),  # --pages 2: exactly 2, nothing to govern
        ({"pages_per_actor": 16}, 4, True),
        ({"pages_per_actor": 6, "pages_at_start": 6}, 6, False),  # a fixed count
    ],
)
def test_pages_at_start_and_the_most_pages_decide_whether_pages_are_governed(
    budget, first, adaptive
):
    job = JobSpec.model_validate({**minimal(), "budget": budget})
    assert (job.budget.first_pages, job.budget.adaptive_pages) == (first, adaptive)


def test_unknown_key_names_the_key_and_its_path(tmp_path):
    data = minimal()
    data["fields"][0]["lable"] = "x"
    found = problems(tmp_path, data)
    assert found == [
        "fields[0].lable: unknown key (check the spelling; see config/job.py for the keys)"
    ]


def test_wrong_type_names_the_expected_type(tmp_path):
    found = problems(tmp_path, minimal(budget={"actors": "many"}))
    assert len(found) == 1
    assert found[0].startswith("budget.actors: ")
    assert "integer" in found[0] and "'many'" in found[0]


def test_several_problems_are_all_reported(tmp_path):
    data = minimal(retries={"max_attempts": 0})
    data["fields"][0]["relation"] = "beside"
    found = problems(tmp_path, data)
    assert any(p.startswith("fields[0].relation:") for p in found)
    assert any(p.startswith("retries.max_attempts:") for p in found)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"fields": [{"name": "x"}]}, "needs labels"),
        ({"fields": [{"name": "x", "labels": ["X"], "pattern": "no group"}]}, "exactly one group"),
        ({"fields": [{"name": "x", "labels": ["X"], "relation": "attr"}]}, "no 'attr'"),
        ({"fields": [{"name": "x", "labels": ["X"], "label_regex": "("}]}, "regular expression"),
        ({"sources": {"urls": ["ftp://x"]}}, "ftp: is not allowed"),
        ({"sources": {}}, "at least one URL"),
        ({"budget": {"memory_throttle": "90%", "memory_shed": "80%"}}, "must not exceed"),
        ({"budget": {"memory_shed": "120%"}}, "percentage"),
        ({"timeouts": {"wait": "soon"}}, "duration"),
    ],
)
def test_semantic_errors_say_why(tmp_path, change, fragment):
    found = problems(tmp_path, minimal(**change))
    assert any(fragment in p for p in found), found


def test_yaml_syntax_error_and_missing_file(tmp_path):
    assert "not valid" in problems(tmp_path, "name: [unclosed", ".yaml")[0]
    with pytest.raises(JobFileError, match="no such file"):
        load_job(tmp_path / "absent.yaml")


def test_sources_file_is_read_relative_to_the_job(tmp_path):
    (tmp_path / "urls.txt").write_text("# list\nhttp://127.0.0.1:1/a\n\nhttp://127.0.0.1:1/b\n")
    job = load_job(write(tmp_path, minimal(sources={"file": "urls.txt"}), ".json"))
    assert job.source_urls() == ["http://127.0.0.1:1/a", "http://127.0.0.1:1/b"]
    missing = minimal(sources={"file": "nope.txt"})
    assert "no such file" in problems(tmp_path, missing)[0]


def test_overrides_are_validated_like_the_file(tmp_path):
    path = write(tmp_path, minimal(), ".json")
    assert load_job(path, {"budget.actors": 3}).budget.actors == 3
    with pytest.raises(JobFileError, match=r"budget\.actors"):
        load_job(path, {"budget.actors": 0})


def test_units():
    assert parse_duration("250ms") == timedelta(milliseconds=250)
    assert parse_duration(2) == timedelta(seconds=2)
    assert parse_duration("2m") == timedelta(minutes=2)
    assert parse_size("1.5GiB") == int(1.5 * 2**30)
    assert parse_limit("75%").resolve(200) == 150
    assert parse_limit("4GB").resolve(10**12) == 4 * 10**9
    for bad in ("-1", "fast", True):
        with pytest.raises(ValueError):
            parse_duration(bad)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "landmark.coordinator.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_validate_command_exit_codes_and_no_traceback(tmp_path):
    good = run_cli("validate", str(EXAMPLE))
    assert good.returncode == 0, good.stderr
    assert "valid job 'gallery'" in good.stdout
    bad_path = write(tmp_path, minimal(budget={"actorz": 2}), ".json")
    bad = run_cli("validate", str(bad_path))
    assert bad.returncode == 2
    assert str(bad_path) in bad.stderr and "budget.actorz: unknown key" in bad.stderr
    assert "Traceback" not in bad.stderr
    wrong_type = run_cli("validate", str(write(tmp_path, minimal(name=["x"]), ".json")))
    assert wrong_type.returncode == 2 and "name: " in wrong_type.stderr
    assert "string" in wrong_type.stderr and "Traceback" not in wrong_type.stderr


def test_id_pattern_needs_one_group_and_scope_joins_the_panel():
    from landmark.config.job import ContainerSpec

    with pytest.raises(ValueError, match="id_pattern must have exactly one group"):
        ContainerSpec(id_pattern=r"/item/\w+")
    spec = ContainerSpec(panel_selector="dialog", scope=".details", id_pattern=r"/item/(\w+)")
    assert spec.label_root(OpenMode.CLICK) == "dialog .details"
    assert spec.label_root(OpenMode.LINK) == ".details"
    assert ContainerSpec(panel_selector="dialog").label_root(OpenMode.SELF) is None
    assert spec.id_from_value("http://h:1/item/abc") == "abc"
    assert spec.id_from_value("http://h:1/other") is None
