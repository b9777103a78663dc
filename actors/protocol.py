"""The calls the Coordinator makes on a worker actor, and the Ray options every one gets.

``BrowserActor`` implements it with a real browser; the benchmarks' ``NoopActor``
implements it with none, to measure the coordinator alone. Both are checked against
:class:`WorkerActor` by a test, so the coordinator can take either.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from landmark.config.job import JobSpec
from landmark.config.records import Container, Record

# The coordinator owns the ledger and decides what reruns: Ray must never restart a worker
# or retry its calls on its own. ``control`` is a second concurrency group for calls that
# must answer while every page is busy; they never touch Playwright objects.
WORKER_OPTIONS: dict[str, Any] = {
    "max_restarts": 0,
    "max_task_retries": 0,
    "concurrency_groups": {"control": 2},
}


class CutShort(list):
    """The last chunk of a discovery that stopped before the gallery's end: no containers;
    ``kind`` is ``"deadline"`` (``timeouts.discovery``) or ``"limit"``
    (``containers.limit``) and ``reason`` says it in words.

    It is a list so that whoever only wants containers reads it as an empty chunk; the
    coordinator checks for it and reports the source as cut short."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__()
        self.kind = kind
        self.reason = reason

    def __repr__(self) -> str:
        return f"CutShort({self.kind!r}, {self.reason!r})"


class WorkerActor(Protocol):
    def __init__(
        self,
        job: JobSpec,
        name: str,
        out_dir: str | None = None,
        learner_snapshot: dict[str, Any] | None = None,
        allowed_hosts: list[str] | None = None,
    ) -> None: ...

    async def start(self) -> dict[str, Any]:
        """Launch what the actor needs; answers ``{"name", "pid", "node_id"}``."""
        ...

    def discover(self, source: str) -> AsyncIterator[list[Container]]:
        """A streaming generator: chunks of containers as discovery finds them; when it
        stopped short of the gallery's end, a :class:`CutShort` last."""
        ...

    async def extract(self, batch: list[Container]) -> list[Record]:
        """One record per container of ``batch``."""
        ...

    async def set_pages(self, pages: int) -> int:
        """Work ``pages`` pages at once (the page governor's step); answers the count."""
        ...

    async def recycle(self, reason: str) -> None: ...

    async def learner_snapshot(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...

    async def stats(self) -> dict[str, Any]:
        """Counters only (the ``control`` group): answers while the pages are busy."""
        ...

    async def ping(self) -> str: ...
