"""BrowserWorker: one browser, one long-lived context, a few pages — containers in, records out.

This is the BrowserActor without Ray, so it can be tested with Chromium alone and wrapped
as a Ray actor in ``browser_actor.py``. Everything here runs on one event loop:
Playwright objects belong to the loop that made them.

The work is split along its seams: ``session`` (browser, context, pages, recycling),
``discovery`` (scrolling a gallery), ``reader`` (opening and reading one container,
downloads). The worker owns what they share: the PerformanceLearner and the DomCache.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from landmark.actors.browser import FoundBrowser
from landmark.actors.discovery import Discovery
from landmark.actors.dom_cache import DomCache
from landmark.actors.learner import PerformanceLearner
from landmark.actors.reader import ContainerReader
from landmark.actors.session import BrowserSession
from landmark.config.job import JobSpec
from landmark.config.records import Container, Record, hosts_of


class BrowserWorker:
    def __init__(
        self,
        job: JobSpec,
        name: str = "worker",
        *,
        out_dir: Path | None = None,
        learner: PerformanceLearner | None = None,
        found: FoundBrowser | None = None,
        allowed_hosts: Iterable[str] | None = None,
    ) -> None:
        """``allowed_hosts``: the hosts of every source (the coordinator knows them all,
        including those listed in ``sources.file``); default: the job's inline URLs."""
        self.job = job
        self.name = name
        self.learner = learner or PerformanceLearner()
        self.cache = DomCache()
        hosts = allowed_hosts if allowed_hosts is not None else hosts_of(job.sources.urls)
        self.session = BrowserSession(
            job, found=found, allowed_hosts=hosts, learner_observe=self.learner.observe
        )
        self.discovery = Discovery(job, self.session, self.learner, self.cache)
        self.reader = ContainerReader(
            job,
            name,
            self.session,
            self.discovery,
            self.learner,
            self.cache,
            out_dir or job.output.dir,
        )

    async def start(self) -> None:
        await self.session.start()

    async def close(self) -> None:
        await self.session.close()

    def discover(self, source: str) -> AsyncIterator[list[Container]]:
        return self.discovery.discover(source)

    async def extract(self, batch: list[Container]) -> list[Record]:
        return await self.reader.extract(batch)

    async def set_pages(self, pages: int) -> int:
        return await self.session.set_pages(pages)

    def request_recycle(self, reason: str) -> None:
        self.session.request_recycle(reason)

    def browser_tree_pss(self) -> int:
        return self.session.browser_tree_pss()

    def stats(self) -> dict[str, Any]:
        counts = self.reader.counts
        return {
            "name": self.name,
            "pid": os.getpid(),
            "containers": self.reader.containers,
            "ok": counts["ok"],
            "partial": counts["partial"],
            "failed": counts["failed"],
            "discovered": self.discovery.discovered,
            **self.session.stats(),
            "cache": self.cache.stats(),
            "learner": self.learner.summary(),
        }
