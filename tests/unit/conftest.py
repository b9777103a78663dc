"""Fixtures of the unit tests: the HTTP API over the in-memory service, and a guard that no
unit test starts Ray."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_service import FakeService, serving

from landmark.coordinator.api import build_app


@pytest.fixture
def service(tmp_path: Path) -> FakeService:
    return FakeService(tmp_path)


@pytest.fixture
def server(service: FakeService) -> Iterator[str]:
    with serving(build_app(service, token=None)) as base:
        yield base


@pytest.fixture(autouse=True)
def no_ray_started() -> Iterator[None]:
    """Ray's API starts a default Ray when called without one (``ray.kill`` on a fake handle
    did) at Ray's own settings, not the loopback-only start the runs use; in a session that
    ran the unit tests first (``pytest tests/unit tests/integration``), ``ray_session`` then
    took it over, and the Ray tests after it ran on that. A unit test that does so fails here, by
    name; a Ray that was already up (the integration tests' session) is not its doing."""
    running_before = _ray_running()
    yield
    if not running_before and _ray_running():
        sys.modules["ray"].shutdown()
        pytest.fail("this unit test started Ray (a Ray API called without a Ray): fake it")


def _ray_running() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()
