"""The per-domain circuit breaker: closed → open → half-open → closed (or open again)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from landmark.config.job import RetrySpec
from landmark.coordinator.breaker import BreakerState, CircuitBreaker


def failing(breaker: CircuitBreaker, domain: str, n: int, now: float) -> None:
    for i in range(n):
        breaker.record(domain, False, f"HTTP 503 #{i}", now)


def test_opens_after_consecutive_failures_only() -> None:
    breaker = CircuitBreaker(failures=3, cooldown_s=10)
    failing(breaker, "a.test", 2, 0.0)
    breaker.record("a.test", True, None, 0.0)  # a success resets the run
    failing(breaker, "a.test", 2, 0.0)
    assert breaker.state("a.test") is BreakerState.CLOSED and breaker.allow("a.test", 0.0)
    failing(breaker, "a.test", 1, 1.0)
    assert breaker.state("a.test") is BreakerState.OPEN and breaker.opened_count == 1
    assert not breaker.allow("a.test", 5.0)
    assert breaker.allow("b.test", 5.0)  # other domains unaffected


def test_why_names_the_state_and_last_reasons() -> None:
    breaker = CircuitBreaker(failures=3, cooldown_s=10)
    assert breaker.why("a.test") == "circuit for a.test is closed"
    breaker.record("a.test", False, "timeout waiting for panel", 0.0)
    breaker.record("a.test", False, None, 0.0)
    breaker.record("a.test", False, "HTTP 503", 0.0)
    why = breaker.why("a.test", now=4.0)
    assert why.startswith("circuit for a.test is open after 3 consecutive failures")
    assert "timeout waiting for panel; unknown failure; HTTP 503" in why
    assert why.endswith("next probe in 6.0 s")


def test_half_open_lets_one_probe_and_success_closes() -> None:
    breaker = CircuitBreaker(failures=2, cooldown_s=10)
    failing(breaker, "a.test", 2, 0.0)
    assert not breaker.allow("a.test", 9.9)
    assert breaker.allow("a.test", 10.0)  # the probe
    assert breaker.state("a.test") is BreakerState.HALF_OPEN
    assert not breaker.allow("a.test", 10.5)  # only one probe at a time
    breaker.record("a.test", True, None, 11.0)
    assert breaker.state("a.test") is BreakerState.CLOSED
    assert breaker.allow("a.test", 11.0) and breaker.allow("a.test", 11.0)


def test_probe_failure_reopens_for_another_cooldown() -> None:
    breaker = CircuitBreaker(failures=2, cooldown_s=10)
    failing(breaker, "a.test", 2, 0.0)
    assert breaker.allow("a.test", 10.0)
    breaker.record("a.test", False, "still 503", 10.5)
    assert breaker.state("a.test") is BreakerState.OPEN and breaker.opened_count == 2
    assert not breaker.allow("a.test", 20.0)
    assert breaker.allow("a.test", 20.5)
    assert "still 503" in breaker.why("a.test")


def test_lost_probe_is_replaced_after_a_cooldown() -> None:
    breaker = CircuitBreaker(failures=1, cooldown_s=10)
    failing(breaker, "a.test", 1, 0.0)
    assert breaker.allow("a.test", 10.0)
    assert not breaker.allow("a.test", 19.0)
    assert breaker.allow("a.test", 20.0)  # the first probe never reported


def test_late_results_while_open_change_nothing() -> None:
    breaker = CircuitBreaker(failures=2, cooldown_s=10)
    failing(breaker, "a.test", 2, 0.0)
    breaker.record("a.test", True, None, 1.0)  # started before the breaker opened
    assert breaker.state("a.test") is BreakerState.OPEN and not breaker.allow("a.test", 2.0)
    assert breaker.open_domains() == ["a.test"]


def test_from_spec_and_bad_settings() -> None:
    breaker = CircuitBreaker.from_spec(
        RetrySpec(breaker_failures=4, breaker_cooldown=timedelta(seconds=7))
    )
    assert (breaker.failures, breaker.cooldown_s) == (4, 7.0)
    with pytest.raises(ValueError, match="failures >= 1"):
        CircuitBreaker(failures=0, cooldown_s=1)
