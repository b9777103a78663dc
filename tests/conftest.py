"""Shared fixtures: one event loop, one Chromium, one Ray session and one Redis for the run.

Starting Chromium (~0.5 s) or Ray (~5 s) per test would make the suite slow
enough that nobody runs it; every test shares them and opens its own context
or actors instead.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest
import redis

T = TypeVar("T")


# Set by landmark.logs.configure_logging for the Ray workers it starts; a test that runs the
# CLI in this process must not pass its -q on to the commands later tests start.
LOGGING_ENV = ("LANDMARK_LOG_LEVEL", "RAY_COLOR_PREFIX")


@pytest.fixture(autouse=True)
def _logging_env_restored() -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in LOGGING_ENV}
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def event_loop_runner() -> Iterator[Callable[[Awaitable[T]], T]]:
    """``run(coro)`` on one loop for the whole session: Playwright objects outlive a test."""
    loop = asyncio.new_event_loop()
    yield loop.run_until_complete
    loop.close()


@pytest.fixture(scope="session")
def run(event_loop_runner):
    return event_loop_runner


@pytest.fixture(scope="session")
def found_browser():
    from landmark.actors.browser import BrowserNotFoundError, find_browser
    from landmark.config.settings import Settings

    try:
        return find_browser(Settings.from_env().browser)
    except BrowserNotFoundError as error:
        pytest.fail(str(error))


@pytest.fixture(scope="session")
def browser(run, found_browser):
    """One Chromium for every browser test; each test makes its own context."""
    from playwright.async_api import async_playwright

    from landmark.actors.browser import launch_browser

    manager = async_playwright()
    playwright = run(manager.start())
    launched = run(launch_browser(playwright, found_browser))
    yield launched
    run(launched.close())
    run(playwright.stop())


@pytest.fixture
def page(run, browser):
    """A fresh page in a fresh context, closed after the test."""
    context = run(browser.new_context())
    new_page = run(context.new_page())
    yield new_page
    run(context.close())


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the session, as a run starts it: loopback only, token auth on,
    8 logical CPUs' worth of slots, no dashboard."""
    import ray

    from landmark.coordinator.ray_setup import start_local_ray

    if not ray.is_initialized():
        start_local_ray(num_cpus=8, log_to_driver=False)
    yield ray
    ray.shutdown()


class RedisServer:
    """A private ``redis-server`` on a free loopback port, with its own folder and an
    append-only file, so a test can stop it and start it again without losing data."""

    def __init__(self, binary: str, folder, password: str | None = None) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.binary = binary
        self.folder = folder
        self.password = password
        self.process = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                   "--dir", str(self.folder), "--appendonly", "yes", "--save", ""]  # fmt: skip
        if self.password:
            command += ["--requirepass", self.password]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis.from_url(self.url, socket_timeout=1).ping()
                return self
            except redis.RedisError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"redis-server on {self.port} did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        self.process = None

    def flush(self) -> None:
        redis.Redis.from_url(self.url).flushall()


def redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip(
            "redis-server is not installed and could not be: `make setup` (or .ci/run) "
            "installs Debian's redis-server; these tests need a real one"
        )
    return binary


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    """One real Redis for the session; each test that uses it starts from an empty one."""
    server = RedisServer(redis_binary(), tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def private_redis(tmp_path) -> Iterator[Callable[..., RedisServer]]:
    """``private_redis(password=None)``: a Redis of this test's own, stopped after it."""
    servers: list[RedisServer] = []

    def make(password: str | None = None) -> RedisServer:
        folder = tmp_path / f"redis-{len(servers)}"
        folder.mkdir()
        servers.append(RedisServer(redis_binary(), folder, password).start())
        return servers[-1]

    yield make
    for server in servers:
        server.stop()
