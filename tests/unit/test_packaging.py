"""What ``pip install .`` puts into site-packages: one ``landmark`` package with every
subpackage and data file a run needs, and no generic top-level name (``config``,
``actors``…) to collide with a user's own modules."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ["pyproject.toml", "README.md", "landmark", "actors", "benchmarks", "cluster",
           "config", "coordinator"]  # fmt: skip
GENERIC = {"actors", "benchmarks", "cluster", "config", "coordinator", "tests"}


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory) -> set[str]:
    """The file names in a wheel built from a copy of the tree (a build writes build/ and
    *.egg-info beside its sources; the checkout stays untouched)."""
    pytest.importorskip("setuptools", minversion="77")
    source = tmp_path_factory.mktemp("source")
    ignore = shutil.ignore_patterns("__pycache__", "results", "*.egg-info")
    for name in SHIPPED:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
               "--no-index", "-q", "-w", str(out), str(source)]  # fmt: skip
    built = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    [wheel] = out.glob("landmark-*.whl")
    return set(zipfile.ZipFile(wheel).namelist())


def test_one_top_level_package(wheel_names):
    top = {
        name.split("/")[0] for name in wheel_names if not name.split("/")[0].endswith(".dist-info")
    }
    assert top == {"landmark"}
    assert not {name.split("/")[1] for name in wheel_names if "/" in name} & {"tests"}


def test_every_subpackage_and_the_files_a_run_reads(wheel_names):
    for needed in [
        "landmark/__init__.py",
        "landmark/py.typed",
        "landmark/actors/session.py",
        "landmark/actors/landmarks.js",
        "landmark/actors/gallery.js",
        "landmark/coordinator/cli.py",
        "landmark/config/examples/gallery.yaml",
        "landmark/benchmarks/site/gallery.js",
        "landmark/benchmarks/accuracy/jobs/ikea.yaml",
        "landmark/cluster/grafana/landmark-dashboard.json",
    ]:
        assert needed in wheel_names, needed
    folders = {path.parent.relative_to(ROOT) for path in ROOT.glob("*/**/__init__.py")}
    packages = {str(folder) for folder in folders if folder.parts[0] in GENERIC - {"tests"}}
    for folder in packages:
        assert f"landmark/{folder}/__init__.py" in wheel_names, folder


def test_a_checkout_on_sys_path_imports_without_an_install(tmp_path):
    """A Ray job's working_dir (or PYTHONPATH) holds a checkout, not an install: the
    subpackages beside ``landmark/`` are found through its ``__path__``."""
    program = (
        "import sys\n"
        "sys.meta_path = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "import landmark.coordinator.cli, landmark.actors.session\n"
        "print(landmark.actors.session.__file__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == str(ROOT / "actors" / "session.py")


def test_import_landmark_is_cheap_and_exports_the_api_and_its_errors():
    program = (
        "import sys, landmark\n"
        "heavy = sorted(m for m in ('pydantic', 'ray', 'playwright', 'yaml') if m in sys.modules)\n"
        "print(heavy)\n"
        "assert set(landmark.__all__) <= set(dir(landmark))\n"
        "for name in landmark.__all__: getattr(landmark, name)\n"
        "assert issubclass(landmark.JobFileError, Exception)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
