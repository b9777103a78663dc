"""Fixtures of the browser tests (Chromium, no Ray)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from worker_helpers import guarded

from landmark.actors.worker import BrowserWorker
from landmark.config.job import JobSpec


@pytest.fixture
def worker_for(run, found_browser, tmp_path) -> Iterator[Callable[..., BrowserWorker]]:
    """``worker_for(job)``: a started worker, closed after the test."""
    workers: list[BrowserWorker] = []

    def make(job: JobSpec) -> BrowserWorker:
        worker = BrowserWorker(job, "test-worker", found=found_browser)
        workers.append(worker)
        guarded(run, worker.start())
        return worker

    yield make
    for worker in workers:
        run(worker.close())
