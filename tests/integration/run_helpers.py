"""Running a job the way a user's program does (``run_job``), in the foreground or in a
thread a test can interrupt, kill things under, and wait for."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from landmark.coordinator.driver import run_job

RUN_TIMEOUT_S = 600.0


def run_to_end(job, **options: Any) -> dict[str, Any]:
    return run_job(job, job.source_urls(), out_dir=job.output.dir, show_progress=False, **options)


@contextmanager
def background_run(job, **options: Any) -> Iterator[dict[str, Any]]:
    """``run_job`` in a thread; on exit, wait for it and re-raise what it raised."""
    outcome: dict[str, Any] = {}

    def drive() -> None:
        try:
            outcome["summary"] = run_to_end(job, **options)
        except BaseException as error:  # handed to the test thread below
            outcome["error"] = error

    driver = threading.Thread(target=drive, name="run_job", daemon=True)
    outcome["thread"] = driver
    driver.start()
    try:
        yield outcome
    finally:  # even when the test failed: the next test must not share Ray with this run
        driver.join(RUN_TIMEOUT_S)
    assert not driver.is_alive(), f"the run did not finish within {RUN_TIMEOUT_S}s"
    if "error" in outcome:
        raise outcome["error"]


def wait_until(condition: Callable[[], bool], outcome: dict[str, Any], what: str) -> None:
    """Block until ``condition()`` while the run goes on; fail if the run ends first."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    driver = outcome["thread"]
    while time.monotonic() < deadline:
        assert driver.is_alive(), f"the run ended before {what}: {outcome}"
        if condition():
            return
        driver.join(0.05)
    raise AssertionError(f"{what} was not reached within {RUN_TIMEOUT_S}s")


def wait_for_coordinator(job, outcome: dict[str, Any]):
    """The running job's Coordinator, once it is registered under its name."""
    import ray

    from landmark.coordinator.ray_setup import NAMESPACE, coordinator_name

    found: list[Any] = []

    def named() -> bool:
        try:
            found.append(ray.get_actor(coordinator_name(job.name), namespace=NAMESPACE))
        except ValueError:
            return False
        return True

    wait_until(named, outcome, "the coordinator's start")
    return found[-1]


def progress(coordinator) -> dict[str, Any]:
    import ray

    return ray.get(coordinator.progress.remote(), timeout=30)
