"""PoolActor: one warm worker process that several jobs share, for ``landmark serve``.

A ``landmark run`` gives each job its own BrowserActors, created for it and killed at its
end. The service instead keeps a pool of these actors alive between jobs, so a job submitted
to a warm service starts in the time its browser takes to launch, not the time Ray takes
to start processes. Each job gets its own :class:`~actors.worker.BrowserWorker` inside
the actor (its own browser, context and DOM cache): a job's identity, cookies, allowed
hosts and blocked requests are its own, and closing a job frees all of it. The actor's
PerformanceLearner is shared by its jobs: what a domain's pages take to load, settle and
grow is the site's, whichever job asked, so the tenth job on a site starts with the
deadlines the first nine learned (a fresh learner waits ``timeouts.discovery_idle`` for a
gallery to end).

The Coordinator of each job talks to its share of the pool through
:class:`~coordinator.pool_view.JobView`, which adds the job's key to every call, so the
Coordinator, the Crew and the scheduler are the ones ``landmark run`` uses.

As with BrowserActor, every Playwright call runs in the default concurrency group (one
event loop); ``stats``, ``ping`` and ``jobs`` answer from the ``control`` group. A job
whose browser cannot be brought back ends the whole actor: the service replaces it, and
every job's Coordinator sees a dead actor and opens its session on the replacement.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import ray

from landmark.actors.learner import PerformanceLearner
from landmark.actors.protocol import WORKER_OPTIONS
from landmark.actors.session import SessionBroken
from landmark.actors.worker import BrowserWorker
from landmark.config.job import JobSpec
from landmark.config.records import Container, Record
from landmark.logs import configure_worker_logging


class JobNotOpenError(RuntimeError):
    """A call for a job that has no session on this actor (never opened, or closed)."""


@ray.remote(**WORKER_OPTIONS)
class PoolActor:
    def __init__(self, name: str) -> None:
        configure_worker_logging()
        self._name = name
        self._workers: dict[str, BrowserWorker] = {}
        self._learner = PerformanceLearner()  # shared by the jobs: see the module docstring
        self._learner_loaded = False
        self.jobs_served = 0

    async def open_job(
        self,
        key: str,
        job: JobSpec,
        worker_name: str,
        out_dir: str | None = None,
        learner_snapshot: dict[str, Any] | None = None,
        allowed_hosts: list[str] | None = None,
    ) -> dict[str, Any]:
        """Start ``key``'s session here (its browser), replacing one it may still have."""
        await self.close_job(key)
        if learner_snapshot and not self._learner_loaded:  # a resumed job's experience
            self._learner.load(learner_snapshot)
            self._learner_loaded = True
        worker = BrowserWorker(
            job,
            worker_name,
            out_dir=Path(out_dir) if out_dir else None,
            learner=self._learner,
            allowed_hosts=allowed_hosts,
        )
        await worker.start()
        self._workers[key] = worker
        self.jobs_served += 1
        node_id = ray.get_runtime_context().get_node_id()
        return {"name": worker_name, "pid": os.getpid(), "node_id": node_id}

    async def close_job(self, key: str) -> None:
        worker = self._workers.pop(key, None)
        if worker is not None:
            await worker.close()

    def _worker(self, key: str) -> BrowserWorker:
        try:
            return self._workers[key]
        except KeyError:
            raise JobNotOpenError(f"{self._name} has no session open for job {key}") from None

    async def discover(self, key: str, source: str) -> AsyncIterator[list[Container]]:
        async for chunk in self._worker(key).discover(source):
            yield chunk

    async def extract(self, key: str, batch: list[Container]) -> list[Record]:
        try:
            return await self._worker(key).extract(batch)
        except SessionBroken:
            ray.actor.exit_actor()  # every job's Coordinator sees it die; the service replaces it
            raise

    async def recycle(self, key: str, reason: str) -> None:
        self._worker(key).request_recycle(reason)

    async def learner_snapshot(self, key: str) -> dict[str, Any]:
        return self._worker(key).learner.snapshot()

    @ray.method(concurrency_group="control")
    async def stats(self, key: str) -> dict[str, Any]:
        return self._worker(key).stats()

    @ray.method(concurrency_group="control")
    async def ping(self) -> str:
        return self._name

    @ray.method(concurrency_group="control")
    async def jobs(self) -> dict[str, Any]:
        """The jobs with a session here, for the service's ``/stats``."""
        return {
            "name": self._name,
            "pid": os.getpid(),
            "node_id": ray.get_runtime_context().get_node_id(),
            "jobs": sorted(self._workers),
            "in_flight": {key: w.session.in_flight for key, w in self._workers.items()},
            "jobs_served": self.jobs_served,
        }
