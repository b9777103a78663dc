"""NoopActor: a BrowserActor stand-in that opens nothing, for measuring the coordinator alone
and for scripting what real actors do badly.

It implements ``actors.protocol.WorkerActor``, as BrowserActor does, and answers at
once, so a run's speed is the speed of dispatch, Ray calls, the ledger, merge and the
store. Containers look like real click-mode ones (each has its own ``/item/ID`` link, as
a gallery card does), and records carry six short fields like the Gallery job's, so
hashing, pickling and JSON cost what they cost in a real run.

A source's query string scripts misbehaviour (the coordinator's tests use it, and so can
a chaos trial): ``hang=NAMES`` (those actors never answer ``extract``), ``slow=NAMES``
with ``slow_s=X`` (they take X seconds per batch), ``delay_ms=N`` (every batch takes N
ms), ``fail=REASON`` (every container fails, retryably, with that reason),
``start_fail=NAMES`` (their ``start()`` raises; ``all`` for every actor), ``endless=MS``
(discovery never ends: ENDLESS_CHUNK containers every MS ms, past any deadline or limit, as
an actor that does not keep ``timeouts.discovery`` would). NAMES is a comma list of actor
names such as ``browser-0``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import ray

from landmark.actors.protocol import WORKER_OPTIONS
from landmark.config.job import JobSpec
from landmark.config.records import Container, Phase, Record, Status

CHUNK = 1000  # containers per discovery chunk, as a long gallery yields them
ENDLESS_CHUNK = 10
DEFAULT_COUNT = 100_000


@ray.remote(**WORKER_OPTIONS)
class NoopActor:
    def __init__(
        self,
        job: JobSpec,
        name: str,
        out_dir: str | None = None,
        learner_snapshot: dict[str, Any] | None = None,
        allowed_hosts: list[str] | None = None,
    ) -> None:
        del out_dir, learner_snapshot, allowed_hosts  # nothing to write, learn or open
        self._job = job
        self._name = name
        self._count = job.containers.limit or DEFAULT_COUNT
        self._open = job.containers.open.value
        self._script = Script.of(job.sources.urls[0] if job.sources.urls else "", name)
        self._extracted = 0
        self._in_flight = 0
        self._max_in_flight = 0

    async def start(self) -> dict[str, Any]:
        if self._script.start_fail:
            raise RuntimeError(f"{self._name}: scripted start failure")
        node_id = ray.get_runtime_context().get_node_id()
        return {"name": self._name, "pid": os.getpid(), "node_id": node_id}

    async def discover(self, source: str) -> AsyncIterator[list[Container]]:
        """``containers.limit`` containers (default 100,000), in chunks of CHUNK."""
        if self._script.endless_s is not None:
            start = 0
            while True:
                yield self._containers(source, start, start + ENDLESS_CHUNK)
                start += ENDLESS_CHUNK
                await asyncio.sleep(self._script.endless_s)
        for start in range(0, self._count, CHUNK):
            yield self._containers(source, start, min(start + CHUNK, self._count))

    def _containers(self, source: str, start: int, end: int) -> list[Container]:
        parts = urlsplit(source)
        base = urlunsplit(parts._replace(query="", fragment="")).rstrip("/")
        return [
            Container(
                id=f"{position:010x}",
                source=source,
                position=position,
                open=self._open,
                url=f"{base}/item/{position:010x}",
            )
            for position in range(start, end)
        ]

    async def extract(self, batch: list[Container]) -> list[Record]:
        self._in_flight += len(batch)
        self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            await self._script.wait()
        finally:
            self._in_flight -= len(batch)
        self._extracted += len(batch)
        if self._script.fail:
            return [_failure(container, self._script.fail) for container in batch]
        return [_record(container) for container in batch]

    async def set_pages(self, pages: int) -> int:
        return pages  # no pages: its slots are the coordinator's count alone

    async def recycle(self, reason: str) -> None:
        del reason

    async def learner_snapshot(self) -> dict[str, Any]:
        return {}

    async def close(self) -> None:
        return None

    @ray.method(concurrency_group="control")
    async def stats(self) -> dict[str, Any]:
        return {
            "name": self._name,
            "pid": os.getpid(),
            "containers": self._extracted,
            "max_in_flight": self._max_in_flight,
            "cache": {"hits": 0, "misses": 0},
            "learner": {},
        }

    @ray.method(concurrency_group="control")
    async def ping(self) -> str:
        return self._name


def _record(container: Container) -> Record:
    return Record(
        id=container.id,
        source=container.source,
        position=container.position,
        status=Status.OK,
        fields={
            "created": "2025-06-30T17:12:34",
            "prompt": "a quiet harbor at dawn misty lighthouse",
            "model": "SDXL 1.0",
            "seed": 123456789,
            "dimensions": "1024 \u00d7 768",
            "image": f"{container.source.rstrip('/')}/media/{container.id}.png",
        },
        timings={"total": 1.0},
        actor="noop",
    )


def _failure(container: Container, reason: str) -> Record:
    record = Record.failure(container, Phase.OPEN, reason, retryable=True, actor="noop")
    record.timings["total"] = 1.0
    return record


class Script:
    """What a source's query string asks this actor to do badly (see the module docstring)."""

    def __init__(self, query: dict[str, list[str]], name: str) -> None:
        def names(key: str) -> set[str]:
            return {n for value in query.get(key, []) for n in value.split(",") if n}

        self.hang = name in names("hang")
        self.slow_s = float(query.get("slow_s", ["0"])[0]) if name in names("slow") else 0.0
        self.delay_s = float(query.get("delay_ms", ["0"])[0]) / 1000
        self.fail = query.get("fail", [""])[0]
        starts = names("start_fail")
        self.start_fail = name in starts or "all" in starts
        endless = query.get("endless")
        self.endless_s = float(endless[0]) / 1000 if endless else None

    @classmethod
    def of(cls, source: str, name: str) -> Script:
        return cls(parse_qs(urlsplit(source).query), name)

    async def wait(self) -> None:
        """The scripted time an ``extract`` takes (for ever, for a hanging actor)."""
        if self.hang:
            await asyncio.Event().wait()
        if self.slow_s or self.delay_s:
            await asyncio.sleep(self.slow_s + self.delay_s)
