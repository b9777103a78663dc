"""A real ``landmark serve`` service for tests: the pool on the session's Ray, the HTTP API on a
free loopback port, its event loop in a thread of the test process (as ``serve`` runs it in
its main thread), and jobs that are the example job aimed at a test site."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from landmark.config.job import BudgetSpec
from landmark.coordinator.api import build_app
from landmark.coordinator.client import Client
from landmark.coordinator.pool import Pool
from landmark.coordinator.service import Service

EXAMPLE = Path(str(resources.files("landmark.config").joinpath("examples/gallery.yaml")))
CALL_S = 120.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def gallery_job(url: str, name: str, **sections: Any) -> dict[str, Any]:
    """The example job as a mapping, aimed at ``url``; ``sections`` update its sections."""
    job = yaml.safe_load(EXAMPLE.read_text())
    job["name"] = name
    job["sources"] = {"urls": [url]}
    for section, values in sections.items():
        job[section] = {**job.get(section, {}), **values}
    return job


class ServedService:
    """Start with :meth:`start`, end with :meth:`stop` (bounded, like every call here)."""

    def __init__(self, data: Path, *, actors: int = 1, pages: int = 4) -> None:
        self.service = Service(data, Pool(actors, BudgetSpec(actors=actors)), pages)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runners: list[Any] = []

    def call(self, coroutine, timeout_s: float = CALL_S) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)

    def start(self) -> ServedService:
        self.thread.start()
        self.call(self.service.start())
        self.url = self.serve()
        return self

    def serve(self, token: str | None = None) -> str:
        """One more HTTP front on the same service (say, one that wants a token)."""
        from aiohttp import web

        async def listen() -> str:
            runner = web.AppRunner(build_app(self.service, token=token), access_log=None)
            await runner.setup()
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            self.runners.append(runner)
            return f"http://127.0.0.1:{port}"

        return self.call(listen())

    def client(self, token: str | None = None, url: str | None = None) -> Client:
        return Client(url or self.url, token=token)

    def stop(self) -> None:
        async def down() -> None:
            await self.service.stop()
            for runner in self.runners:
                await runner.cleanup()

        try:
            self.call(down())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


def wait_for(condition: Callable[[], Any], what: str, timeout_s: float = CALL_S) -> Any:
    """Poll ``condition`` until it answers something true; fail saying ``what`` if it never does."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = condition()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(0.2)
