"""BrowserActor: the BrowserWorker as an async Ray actor.

All Playwright calls run in the actor's default concurrency group (one event
loop). ``stats`` and ``ping`` live in a separate ``control`` group, so a
coordinator can ask how an actor is doing while its pages are busy; they only
read counters and never touch Playwright objects.

Workers are created with ``max_restarts=0, max_task_retries=0``: when one dies
the coordinator, which owns the ledger, decides what reruns and starts a
replacement warm from the learner snapshot it kept.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import ray

from actors.learner import PerformanceLearner
from actors.worker import BrowserWorker
from config.job import JobSpec
from config.records import Container, Record


@ray.remote(max_restarts=0, max_task_retries=0, concurrency_groups={"control": 2})
class BrowserActor:
    def __init__(
        self,
        job: JobSpec,
        name: str,
        out_dir: str | None = None,
        learner_snapshot: dict[str, Any] | None = None,
        metrics: Any = None,
    ) -> None:
        learner = PerformanceLearner()
        if learner_snapshot:
            learner.load(learner_snapshot)
        self._worker = BrowserWorker(
            job, name, out_dir=Path(out_dir) if out_dir else None, learner=learner
        )
        self._metrics = metrics
        self._name = name

    async def start(self) -> dict[str, Any]:
        await self._worker.start()
        if self._metrics is not None:
            await self._metrics.register.remote(self._name, [os.getpid()])
        return {"name": self._name, "pid": os.getpid()}

    async def discover(self, source: str) -> AsyncIterator[list[Container]]:
        """A streaming generator: each chunk of containers as discovery finds it."""
        async for chunk in self._worker.discover(source):
            yield chunk

    async def extract(self, batch: list[Container]) -> list[Record]:
        return await self._worker.extract(batch)

    async def recycle(self, reason: str) -> None:
        self._worker.request_recycle(reason)

    async def learner_snapshot(self) -> dict[str, Any]:
        return self._worker.learner.snapshot()

    async def close(self) -> None:
        if self._metrics is not None:
            await self._metrics.unregister.remote(self._name)
        await self._worker.close()

    @ray.method(concurrency_group="control")
    async def stats(self) -> dict[str, Any]:
        return self._worker.stats()

    @ray.method(concurrency_group="control")
    async def ping(self) -> str:
        return self._name
