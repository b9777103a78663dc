"""Shared fixtures: one event loop, one Chromium and one Ray session for the whole test run.

Starting Chromium (~0.5 s) or Ray (~5 s) per test would make the suite slow
enough that nobody runs it; every test shares them and opens its own context
or actors instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest

T = TypeVar("T")


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
    from actors.browser import BrowserNotFoundError, find_browser
    from config.settings import Settings

    try:
        return find_browser(Settings.from_env().browser)
    except BrowserNotFoundError as error:
        pytest.fail(str(error))


@pytest.fixture(scope="session")
def browser(run, found_browser):
    """One Chromium for every browser test; each test makes its own context."""
    from playwright.async_api import async_playwright

    from actors.browser import launch_browser

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

    from coordinator.ray_setup import start_local_ray

    if not ray.is_initialized():
        start_local_ray(num_cpus=8, log_to_driver=False)
    yield ray
    ray.shutdown()
