"""Fixtures of the unit tests that serve the HTTP API over the in-memory service."""

from __future__ import annotations

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
