"""NoopActor: a BrowserActor stand-in that opens nothing, for measuring the coordinator alone.

It implements ``actors.protocol.WorkerActor``, as BrowserActor does, and answers at
once, so a run's speed is the speed of dispatch, Ray calls, the ledger, merge and the
store. Containers look like real click-mode
ones (each has its own ``/item/ID`` link, as a gallery card does), and records
carry six short fields like the Gallery job's, so hashing, pickling and JSON
cost what they cost in a real run.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import ray

from actors.protocol import WORKER_OPTIONS
from config.job import JobSpec
from config.records import Container, Record, Status

CHUNK = 1000  # containers per discovery chunk, as a long gallery yields them
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
        self._extracted = 0

    async def start(self) -> dict[str, Any]:
        node_id = ray.get_runtime_context().get_node_id()
        return {"name": self._name, "pid": os.getpid(), "node_id": node_id}

    async def discover(self, source: str) -> AsyncIterator[list[Container]]:
        """``containers.limit`` containers (default 100,000), in chunks of CHUNK."""
        base = source.rstrip("/")
        for start in range(0, self._count, CHUNK):
            yield [
                Container(
                    id=f"{position:010x}",
                    source=source,
                    position=position,
                    open=self._open,
                    url=f"{base}/item/{position:010x}",
                )
                for position in range(start, min(start + CHUNK, self._count))
            ]

    async def extract(self, batch: list[Container]) -> list[Record]:
        self._extracted += len(batch)
        return [_record(container) for container in batch]

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
