"""Shared pieces of the Ray + Chromium tests: the example job aimed at a test site, a finished
run read back from disk, and the processes of this session's Ray.

Every run goes through the same doors a user does (the example job file,
``run_job``, the results and summary files), so these tests check what a user
would get, not internals.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import psutil
import pytest

from landmark.benchmarks.scoring import Score, score
from landmark.config.job import JobSpec
from landmark.config.loading import load_job
from landmark.coordinator.store import read_results

EXAMPLE_JOB = Path(str(resources.files("landmark.config").joinpath("examples/gallery.yaml")))


@dataclass
class FinishedRun:
    """What a run left on disk, scored against the site's truth."""

    summary: dict[str, Any]
    records: list[dict[str, Any]]
    score: Score

    @property
    def ids(self) -> list[str]:
        return [record["id"] for record in self.records]

    def by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self.records:
            counts[record["status"]] = counts.get(record["status"], 0) + 1
        return counts


@pytest.fixture
def gallery_job(tmp_path) -> Callable[..., JobSpec]:
    """``gallery_job(url, **dotted_overrides)``: the example job aimed at ``url``, output in
    this test's tmp_path."""

    def make(url: str, **overrides: Any) -> JobSpec:
        base = {"sources.urls": [url], "output.dir": str(tmp_path / "out")}
        return load_job(EXAMPLE_JOB, base | overrides)

    return make


@pytest.fixture
def read_run() -> Callable[[JobSpec, list[dict[str, Any]]], FinishedRun]:
    """``read_run(job, truth)``: the summary and results a finished run wrote, scored."""

    def read(job: JobSpec, truth: list[dict[str, Any]]) -> FinishedRun:
        out = job.output.dir
        summary = json.loads((out / job.output.summary).read_text())
        records = list(read_results(out / job.output.results))
        return FinishedRun(summary, records, score(truth, records))

    return read


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def session_processes() -> Callable[[str], list[psutil.Process]]:
    return find_session_processes


@pytest.fixture
def browser_main() -> Callable[[psutil.Process], psutil.Process | None]:
    return find_browser_main


def find_session_processes(title: str) -> list[psutil.Process]:
    """Ray workers of *this* test session (descendants of this process) whose title starts with
    ``title``, e.g. "ray::BrowserActor". Other Ray sessions on the machine are not touched."""
    found = []
    for process in psutil.Process(os.getpid()).children(recursive=True):
        try:
            cmdline = " ".join(process.cmdline())
        except psutil.Error:
            continue
        if cmdline.startswith(title):
            found.append(process)
    return found


def find_browser_main(root: psutil.Process) -> psutil.Process | None:
    """The main Chromium process under ``root`` (its parent is not itself a Chromium)."""
    try:
        descendants = root.children(recursive=True)
    except psutil.Error:
        return None
    for process in descendants:
        try:
            name = process.name().lower()
            parent = process.parent()
            parent_name = parent.name().lower() if parent else ""
        except psutil.Error:
            continue
        if "chrom" in name and "crashpad" not in name and "chrom" not in parent_name:
            return process
    return None
