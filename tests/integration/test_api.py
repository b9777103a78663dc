"""The Python API as a user's program calls it: ``import landmark`` from a folder of their own
that has modules named like ours (``config.py``, ``actors.py``), a run, its records back."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import landmark
from landmark.benchmarks.site import GallerySite, SiteConfig

pytestmark = [pytest.mark.browser, pytest.mark.ray]

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "examples" / "gallery.yaml"
ITEMS = 12
PROGRAM = """
import json, sys
import landmark

job = landmark.load_job(sys.argv[1], overrides={"sources.urls": [sys.argv[2]]})
result = landmark.run(job, out=sys.argv[3], overrides={"budget.actors": 1})
records = list(result)
print(json.dumps({"completed": result.completed, "ids": [r["id"] for r in records],
                  "statuses": sorted({r["status"] for r in records}),
                  "config_is_ours": __import__("config").MINE}))
"""


def test_api_runs_from_a_folder_with_its_own_config_module(tmp_path):
    program_dir = tmp_path / "user_project"
    program_dir.mkdir()
    (program_dir / "config.py").write_text("MINE = True\n")
    (program_dir / "actors.py").write_text("raise ImportError('the user’s own actors.py')\n")
    (program_dir / "use_landmark.py").write_text(textwrap.dedent(PROGRAM))
    out = tmp_path / "out"

    with GallerySite(SiteConfig(items=ITEMS)) as site:
        result = subprocess.run(
            [sys.executable, "use_landmark.py", str(EXAMPLE), site.url, str(out)],
            cwd=program_dir,  # the user's folder comes first on sys.path
            capture_output=True,
            text=True,
            timeout=300,
        )
        truth = {item["id"] for item in site.truth()}

    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["completed"] is True
    assert report["config_is_ours"] is True
    assert sorted(report["ids"]) == sorted(truth)
    assert report["statuses"] == ["ok"]
    assert (out / "summary.json").is_file()


def test_validate_lists_problems_and_accepts_a_mapping(tmp_path):
    job = landmark.load_job(EXAMPLE, {"output.dir": str(tmp_path / "out")})
    assert landmark.validate(job) == []
    assert landmark.validate(EXAMPLE, {"budget.actors": 0}) == [
        "budget.actors: Input should be greater than or equal to 1 (got 0)"
    ]
    problems = landmark.validate({"name": "x", "sources": {"urls": ["http://127.0.0.1/"]}})
    assert problems == ["fields: required but missing"]
    with pytest.raises(landmark.JobFileError, match="lable"):
        landmark.load_job({**job.model_dump(exclude_unset=True), "fields": [{"lable": "x"}]})


def test_no_generic_top_level_package_is_importable_from_the_install():
    """What the install put on sys.path: `landmark`, and none of our folder names."""
    from importlib.metadata import distribution

    dist = distribution("landmark")
    top = {Path(str(f)).parts[0] for f in dist.files or []}
    assert not top & {"actors", "config", "coordinator", "benchmarks", "cluster"}, top
    assert (Path(landmark.__file__).parent / "py.typed").is_file()


def test_run_refuses_a_second_address_in_one_process(ray_session, tmp_path):
    """One Ray connection per process: an address that would be silently ignored is an error."""
    job = landmark.load_job(EXAMPLE, {"output.dir": str(tmp_path / "out")})
    with pytest.raises(landmark.RunFailedError, match=r"already connected to Ray at .*shutdown"):
        landmark.run(job, address="127.0.0.1:1")
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_run_with_an_override_of_the_results_name_writes_that_format(ray_session, tmp_path):
    """A job loaded once, then run with ``output.results: x.csv``: a CSV, not JSON lines
    under a .csv name, and its records read back through the RunResult."""
    with GallerySite(SiteConfig(items=6)) as site:
        job = landmark.load_job(EXAMPLE, {"sources.urls": [site.url]})
        result = landmark.run(
            job, out=tmp_path / "out", overrides={"output.results": "x.csv", "budget.actors": 1}
        )
        truth = {item["id"] for item in site.truth()}
    assert result.results_path == tmp_path / "out" / "x.csv"
    assert result.results_path.read_text().startswith("id,source,position,status")
    assert {record["id"] for record in result} == truth
