"""Following a Coordinator's run from the driver: progress, Ctrl-C, the mirror of a Redis
store's records into ``results.jsonl``, and telling a dead Coordinator from a failed run.

Every call to the Coordinator is bounded; a Coordinator that dies (SIGKILL, OOM, its
node lost) surfaces as :class:`CoordinatorDied`, which the driver answers with a new
Coordinator on the same store.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, OutOfMemoryError, RayActorError, RayTaskError

from landmark.coordinator.crew import short_error
from landmark.coordinator.store_config import StoreConfig

PROGRESS_INTERVAL_S = 0.5
PROGRESS_CALL_S = 10.0
ABORT_WAIT_S = 10.0


class CoordinatorDied(Exception):
    """The Coordinator's process is gone; the store holds what it did."""


def follow_run(coordinator: Any, view: Any, store: StoreConfig, say: Callable[[str], None]):
    """Wait for ``coordinator.run()``, updating ``view``; returns the summary."""
    from landmark.coordinator.driver import RunFailedError

    mirror = store.open_mirror()
    done = coordinator.run.remote()
    interrupts = 0
    try:
        while True:
            try:
                ready, _ = ray.wait([done], timeout=PROGRESS_INTERVAL_S)
                if mirror is not None:
                    mirror.pump()
                if ready:
                    summary = ray.get(done)
                    if mirror is not None:
                        mirror.pump()
                    return summary
                view.update(ray.get(coordinator.progress.remote(), timeout=PROGRESS_CALL_S))
            except KeyboardInterrupt:
                interrupts += 1
                _interrupted(coordinator, interrupts, say)
            except GetTimeoutError:
                continue  # a slow answer: the next one will do
    except (RayActorError, OutOfMemoryError) as error:
        raise CoordinatorDied(short_error(error)) from None
    except RayTaskError as error:
        raise RunFailedError(short_error(error)) from None
    finally:
        if mirror is not None:
            mirror.close()
        with _suppress_ray_errors():
            ray.kill(coordinator)


def _interrupted(coordinator: Any, interrupts: int, say: Callable[[str], None]) -> None:
    if interrupts == 1:
        say("stopping: finishing the batches in flight; what is left stays pending for a "
            "resume (Ctrl-C again to stop at once)")  # fmt: skip
        coordinator.stop.remote()
        return
    say("aborting: saving what was merged so far")
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    with _suppress_ray_errors():
        ray.get(coordinator.abort.remote(), timeout=ABORT_WAIT_S)
    raise KeyboardInterrupt


def _suppress_ray_errors():
    return contextlib.suppress(ray.exceptions.RayError, ValueError)
