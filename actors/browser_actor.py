"""BrowserActor: the BrowserWorker as an async Ray actor.

All Playwright calls run in the actor's default concurrency group (one event loop).
``stats`` and ``ping`` live in the ``control`` group, so a coordinator can ask how an
actor is doing while its pages are busy; they only read counters and never touch
Playwright objects.

Workers are created with ``max_restarts=0, max_task_retries=0`` (``WORKER_OPTIONS``):
when one dies, the coordinator, which owns the ledger, decides what reruns and starts a
replacement warm from the learner snapshot it kept. A worker whose browser cannot be
brought back ends itself, so the coordinator replaces it rather than feeding it work.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import ray

from landmark.actors.learner import PerformanceLearner
from landmark.actors.protocol import WORKER_OPTIONS
from landmark.actors.session_errors import SessionBroken
from landmark.config.job import JobSpec
from landmark.config.records import Container, Record
from landmark.logs import configure_worker_logging


@ray.remote(**WORKER_OPTIONS)
class BrowserActor:
    def __init__(
        self,
        job: JobSpec,
        name: str,
        out_dir: str | None = None,
        learner_snapshot: dict[str, Any] | None = None,
        allowed_hosts: list[str] | None = None,
    ) -> None:
        self._init_at = time.time()  # wall clock: the crew compares it with when it asked
        # Here, not at the top: the Coordinator imports this module for the class alone,
        # and Playwright (a tenth of a second) then loads in the actor's process only.
        from landmark.actors.worker import BrowserWorker

        configure_worker_logging()
        learner = PerformanceLearner()
        if learner_snapshot:
            learner.load(learner_snapshot)
        self._worker = BrowserWorker(
            job,
            name,
            out_dir=Path(out_dir) if out_dir else None,
            learner=learner,
            allowed_hosts=allowed_hosts,
        )
        self._name = name

    async def start(self) -> dict[str, Any]:
        await self._worker.start()
        node_id = ray.get_runtime_context().get_node_id()
        return {
            "name": self._name,
            "pid": os.getpid(),
            "node_id": node_id,
            "init_at": self._init_at,
            "start_s": self._worker.session.start_s,
            "nice": os.getpriority(os.PRIO_PROCESS, 0),  # its browser and driver inherit it
        }

    async def discover(self, source: str) -> AsyncIterator[list[Container]]:
        """A streaming generator: each chunk of containers as discovery finds it."""
        async for chunk in self._worker.discover(source):
            yield chunk

    async def extract(self, batch: list[Container]) -> list[Record]:
        try:
            return await self._worker.extract(batch)
        except SessionBroken:
            ray.actor.exit_actor()  # the coordinator sees a dead actor and replaces it
            raise

    async def set_pages(self, pages: int) -> int:
        """Work ``pages`` pages at once: the coordinator's page governor decides."""
        return await self._worker.set_pages(pages)

    async def recycle(self, reason: str) -> None:
        self._worker.request_recycle(reason)

    async def learner_snapshot(self) -> dict[str, Any]:
        return self._worker.learner.snapshot()

    async def close(self) -> None:
        await self._worker.close()

    @ray.method(concurrency_group="control")
    async def stats(self) -> dict[str, Any]:
        return self._worker.stats()

    @ray.method(concurrency_group="control")
    async def ping(self) -> str:
        return self._name
