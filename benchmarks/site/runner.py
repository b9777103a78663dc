"""Ways to run the Gallery site: in a background thread, in a subprocess, or in the foreground.

Tests use ``GallerySite`` (a thread: cheap, same process). Benchmarks use
``start_site_process`` so the site does not share a GIL with the code being
measured. ``run_site`` is the foreground server behind ``landmark site`` and
``python -m landmark.benchmarks.site``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import TextIO

from aiohttp import web

import landmark
from landmark.benchmarks.site.config import DEFAULT_PORT, SiteConfig, site_config_to_args
from landmark.benchmarks.site.data import truth
from landmark.benchmarks.site.server import SiteError, serve, start_site

READY_PREFIX = "serving "
# The folder that holds the ``landmark`` package (a checkout's root, or site-packages): on
# a child's PYTHONPATH it imports the same landmark, never our folders as top-level names.
PROJECT_ROOT = Path(landmark.__file__).resolve().parent.parent


class GallerySite:
    """The site on a free port in a background thread; a context manager."""

    def __init__(self, config: SiteConfig | None = None, port: int = 0) -> None:
        self.config = config or SiteConfig()
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/``"""
        if self._url is None:
            raise RuntimeError("the gallery site is not running; call start() or use `with`")
        return self._url

    def start(self) -> GallerySite:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="gallery-site", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            future = asyncio.run_coroutine_threadsafe(self._start_site(), loop)
            self._runner, self._url = future.result(timeout=30)
        except BaseException:
            self._stop_loop()
            raise
        return self

    async def _start_site(self) -> tuple[web.AppRunner, str]:
        """On the site's own loop: listen, and say where (the hostile site serves others)."""
        return await start_site(self.config, self._port)

    def stop(self) -> None:
        if self._loop is None:
            return
        if self._runner is not None:
            cleanup = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
            cleanup.result(timeout=30)
            self._runner = None
        self._stop_loop()
        self._url = None

    def truth(self) -> list[dict]:
        return truth(self.config, self.url)

    def request_log(self) -> list[dict]:
        """``[{"path", "headers"}]`` the site received (needs ``log_requests=True``)."""
        with urllib.request.urlopen(f"{self.url}_requests", timeout=30) as response:
            return json.load(response)

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()

    def __enter__(self) -> GallerySite:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()


class SiteProcess:
    """A site served by ``python -m landmark.benchmarks.site`` in a child process."""

    def __init__(
        self, process: subprocess.Popen[str], url: str, config: SiteConfig, stderr: TextIO
    ) -> None:
        self.process = process
        self.url = url
        self.config = config
        self._stderr = stderr

    @property
    def pid(self) -> int:
        return self.process.pid

    def truth(self) -> list[dict]:
        return truth(self.config, self.url)

    def stop(self, timeout: timedelta = timedelta(seconds=10)) -> None:
        """SIGTERM (a clean exit), then SIGKILL if it has not gone by ``timeout``."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout.total_seconds())
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdout, self._stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> SiteProcess:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()


def start_site_process(
    config: SiteConfig | None = None,
    port: int = 0,
    timeout: timedelta = timedelta(seconds=30),
) -> SiteProcess:
    """Start the site in a child process and return once it listens (its first stdout line)."""
    config = config or SiteConfig()
    command = [sys.executable, "-m", "landmark.benchmarks.site", "--port", str(port)]
    command += site_config_to_args(config)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    # Closed by SiteProcess.stop(): it must outlive this function.
    stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL, text=True, env=env
    )
    try:
        line = _first_line(process, timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait()
        stderr.seek(0)
        detail = stderr.read().strip().splitlines()[-5:]
        stderr.close()
        raise SiteError("the gallery site process did not start: " + " | ".join(detail)) from None
    return SiteProcess(process, line.removeprefix(READY_PREFIX).strip(), config, stderr)


def _first_line(process: subprocess.Popen[str], timeout: timedelta) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout.total_seconds()
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(timeout=deadline - time.monotonic()):
                line = process.stdout.readline()
                if not line.startswith(READY_PREFIX):
                    raise SiteError(f"unexpected first line {line!r}")
                return line
    raise SiteError(f"no ready line within {timeout.total_seconds():g}s")


def run_site(config: SiteConfig, port: int = DEFAULT_PORT, out: TextIO | None = None) -> int:
    """Serve in the foreground until Ctrl-C or SIGTERM; print "serving URL" first. Exit status."""
    out = out or sys.stdout

    def ready(url: str) -> None:
        print(f"{READY_PREFIX}{url}", file=out, flush=True)

    # A parent that ignores SIGINT (a background shell job) would pass that on: take Ctrl-C back.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)

    async def main() -> None:
        stop = asyncio.Event()
        with contextlib.suppress(NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await serve(config, port, on_ready=ready, stop=stop)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        return 0
    except SiteError as error:
        print(f"landmark site: {error}", file=sys.stderr)
        return 1
    return 0


@contextlib.contextmanager
def serve_in_thread(handler: type[BaseHTTPRequestHandler], name: str = "http") -> Iterator[str]:
    """A small standard-library HTTP server on a free 127.0.0.1 port, in a thread, for the
    ``with`` block (fixture pages, fake services); yields its base URL, no trailing slash."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
