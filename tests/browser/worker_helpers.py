"""Helpers of the browser tests: a small page server with scripted routes, workers started and
bounded the same way in every test, and a one-field job for single item pages."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from landmark.actors.worker import BrowserWorker
from landmark.config.job import JobSpec
from landmark.config.records import Container

GUARD_S = 120.0  # a worker call that would hang fails the test after this instead

Route = str | Callable[[BaseHTTPRequestHandler], None]


def self_job(url: str, tmp: Path, **overrides: Any) -> JobSpec:
    """A job whose source is one item page with a single labelled field, "Title"."""
    data: dict[str, Any] = {
        "name": "self-page",
        "sources": {"urls": [url]},
        "containers": {"open": "self"},
        "fields": [{"name": "title", "labels": ["Title"], "relation": "next"}],
        "budget": {"pages_per_actor": 1},
        "output": {"dir": str(tmp)},
    }
    for dotted, value in overrides.items():
        *parents, last = dotted.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return JobSpec.model_validate(data)


@contextmanager
def started_worker(run, job: JobSpec, found_browser) -> Iterator[BrowserWorker]:
    worker = BrowserWorker(job, "test-worker", found=found_browser)
    run(worker.start())
    try:
        yield worker
    finally:
        run(worker.close())


def guarded(run, coro: Awaitable[Any]) -> Any:
    """Run ``coro`` on the session loop, failing instead of hanging past ``GUARD_S``."""
    return run(bounded(coro))


async def bounded(coro: Awaitable[Any]) -> Any:
    """One worker call, bounded: a hang fails the test; a slow (loaded) machine does not."""
    async with asyncio.timeout(GUARD_S):
        return await coro


async def discover_all(worker: BrowserWorker, source: str) -> list[list[Container]]:
    chunks = []
    stream = aiter(worker.discover(source))
    while (chunk := await bounded(anext(stream, None))) is not None:
        chunks.append(chunk)
    return chunks


class PageServer:
    """A tiny HTTP server of fixed pages on a loopback address; counts the requests it gets."""

    def __init__(self, pages: dict[str, Route], host: str = "127.0.0.1") -> None:
        """``pages`` maps a path to its HTML, or to a function that answers the request
        itself (a body that stalls, trickles, or is too large)."""
        self.requests: list[str] = []
        self.closing = threading.Event()  # set on exit: a stalling route may stop then
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                body = pages.get(self.path)
                if callable(body):
                    with contextlib.suppress(OSError):  # the client gave up: as intended
                        body(self)
                    return
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write((body or "not found").encode())

            def log_message(self, *args: Any) -> None:
                return

        self._httpd = ThreadingHTTPServer((host, 0), Handler)
        self._httpd.closing = self.closing  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def __enter__(self) -> PageServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


def item_page(title: str, extra: str = "") -> str:
    return (
        f"<!doctype html><html><head>{extra}</head>"
        f"<body><dl><dt>Title</dt><dd>{title}</dd></dl></body></html>"
    )
