"""A wrong ``--address`` fails in seconds with a sentence that names it, instead of Ray
retrying an address that never answers for minutes (observed: still retrying at 617 s)."""

from __future__ import annotations

import socket
import time

import pytest

from landmark.coordinator.ray_setup import RayStartError, probe_address


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the block ends


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_nothing_listening_fails_in_seconds_naming_the_address(scheme):
    address = f"{scheme}127.0.0.1:{closed_port()}"
    started = time.monotonic()
    with pytest.raises(RayStartError, match=f"cannot reach the Ray cluster at '{address}'"):
        probe_address(address, timeout_s=2)
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("address", ["not-an-address", "127.0.0.1", "host:port", ":6379"])
def test_something_that_is_not_an_address_says_what_one_looks_like(address):
    with pytest.raises(RayStartError, match="not an address; give host:port"):
        probe_address(address)


def test_a_listening_head_and_auto_pass():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        probe_address(f"127.0.0.1:{server.getsockname()[1]}")
    probe_address("auto")
