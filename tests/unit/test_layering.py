"""Imports run one way: config <- actors <- coordinator <- benchmarks; cluster/ stands alone.

Checked on the source, so a lazy import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ["config", "actors", "coordinator", "benchmarks"]
RAY_TRACE = "_ray_trace_ctx"  # a parameter Ray adds to every actor method


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", LAYERS[:-1])
def test_no_package_imports_one_above_it(package: str) -> None:
    above = set(LAYERS[LAYERS.index(package) + 1 :]) | {"cluster", "tests"}
    offending = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & above)
        for path in (ROOT / package).rglob("*.py")
        if imported_packages(path) & above
    }
    assert offending == {}, f"{package} must not import {sorted(above)}"


def test_cluster_stands_alone() -> None:
    offending = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & set(LAYERS))
        for path in (ROOT / "cluster").rglob("*.py")
        if imported_packages(path) & set(LAYERS)
    }
    assert offending == {}


def test_the_detector_sees_a_lazy_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from benchmarks.site import x\n    import benchmarks\n")
    assert imported_packages(sample) == {"benchmarks"}


def test_every_worker_actor_keeps_the_protocol() -> None:
    """BrowserActor and the benchmarks' NoopActor take the same calls the Coordinator makes."""
    from landmark.actors.browser_actor import BrowserActor
    from landmark.actors.protocol import WorkerActor
    from landmark.benchmarks.noop_actor import NoopActor

    wanted = {
        name: inspect.signature(member)
        for name, member in vars(WorkerActor).items()
        if callable(member) and (not name.startswith("_") or name == "__init__")
    }
    for actor in (BrowserActor, NoopActor):
        cls = actor.__ray_actor_class__  # the class as written, before Ray wraps it
        for name, signature in wanted.items():
            mine = [p for p in inspect.signature(getattr(cls, name)).parameters if p != RAY_TRACE]
            assert mine == list(signature.parameters), (actor, name)


def test_the_coordinator_starts_without_loading_playwright() -> None:
    """The Coordinator imports the BrowserActor's module for its class; Playwright loads in
    the actors' processes only, so a run's first actor is asked for a tenth of a second
    sooner and the Coordinator's process stays small."""
    probe = "import sys, landmark.coordinator.actor; print('playwright' in sys.modules)"
    shown = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert shown.stdout.strip() == "False", shown.stdout + shown.stderr
