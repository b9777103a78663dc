"""robots.txt rules without a browser: which status code means what (Google's table), which
user-agent token is matched, and the per-origin cache (one fetch shared by concurrent
callers, kept for its TTL, a failed fetch kept briefly)."""

from __future__ import annotations

import asyncio

import pytest

from landmark.actors.robots import (
    ERROR_TTL_S,
    STALE_RETRY_S,
    TTL_S,
    RobotsDisallowed,
    RobotsTxt,
    RobotsUnreachable,
    Rules,
    origin_of,
    robots_token,
    rules_after_error,
    rules_from_response,
)

ORIGIN = "http://127.0.0.1:8765"
TEXT = b"User-agent: LandmarkTest\nDisallow: /private/\n\nUser-agent: *\nDisallow: /all-bots/\n"


@pytest.mark.parametrize(
    ("status", "allowed", "ttl", "unreachable"),
    [  # RFC 9309 2.3.1.3-4: 4xx "unavailable" allows all; 5xx "unreachable" allows nothing
        (401, True, TTL_S, False),
        (403, True, TTL_S, False),
        (404, True, TTL_S, False),
        (410, True, TTL_S, False),
        (429, False, ERROR_TTL_S, True),  # "too many requests" is the server's trouble
        (500, False, ERROR_TTL_S, True),
        (503, False, ERROR_TTL_S, True),
    ],
)
def test_status_codes_without_rules(status, allowed, ttl, unreachable):
    rules = rules_from_response(ORIGIN, status, b"User-agent: *\nDisallow: /\n")
    assert rules.allows("LandmarkTest", f"{ORIGIN}/item/1") is allowed
    assert rules.ttl_s == ttl
    assert rules.unreachable is unreachable
    assert (rules.note is not None) is unreachable
    assert rules.basis == f"HTTP {status}" or rules.basis == f"it answered HTTP {status}"


def test_a_network_error_allows_nothing_for_a_minute_and_says_so():
    rules = rules_after_error(ORIGIN, "connect ECONNREFUSED")
    assert not rules.allows("*", f"{ORIGIN}/anything")
    assert rules.unreachable and rules.ttl_s == ERROR_TTL_S
    assert "could not be read (connect ECONNREFUSED)" in rules.note


def test_the_first_product_token_is_matched():
    assert robots_token("LandmarkTest/1.0 (+https://example.org/bot)") == "LandmarkTest"
    assert robots_token(None) == "*"
    rules = rules_from_response(ORIGIN, 200, TEXT)
    # our own group applies, and only it: the "*" group's rule is not ours
    assert not rules.allows(robots_token("LandmarkTest/1.0"), f"{ORIGIN}/private/x")
    assert rules.allows(robots_token("LandmarkTest/1.0"), f"{ORIGIN}/all-bots/x")
    # without a user agent of the job's own, only the "*" group applies
    assert rules.allows("*", f"{ORIGIN}/private/x")
    assert not rules.allows("*", f"{ORIGIN}/all-bots/x")


def test_origin_keeps_scheme_host_and_port():
    assert origin_of("HTTP://Example.COM:8080/a?b") == "http://example.com:8080"
    assert origin_of("https://example.com/") == "https://example.com"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_fetch_per_origin_shared_and_kept_for_its_ttl():
    clock = FakeClock()
    robots = RobotsTxt("LandmarkTest/1.0", clock=clock)
    fetched: list[str] = []
    release = asyncio.Event()

    async def fetch(origin: str) -> Rules:
        fetched.append(origin)
        await release.wait()  # every caller arrives while the first fetch is under way
        return rules_from_response(origin, 200, TEXT)

    async def scenario() -> None:
        checks = [robots.check(f"{ORIGIN}/item/{n}", fetch) for n in range(5)]
        gathered = asyncio.gather(*checks)
        await asyncio.sleep(0)  # let them all start (no waiting on time: one loop turn)
        release.set()
        async with asyncio.timeout(10):
            await gathered
        with pytest.raises(RobotsDisallowed) as refused:
            await robots.check(f"{ORIGIN}/private/x?page=2", fetch)
        assert str(refused.value) == (
            f'robots.txt of {ORIGIN} disallows /private/x?page=2 for user agent "LandmarkTest" '
            "(set politeness.robots_txt: ignore to crawl it anyway)"
        )
        assert fetched == [ORIGIN]
        clock.now += TTL_S + 1  # stale: read again
        await robots.check(f"{ORIGIN}/item/1", fetch)
        assert fetched == [ORIGIN, ORIGIN]
        await robots.check("http://127.0.0.1:9999/", fetch)  # another origin, its own fetch
        assert fetched == [ORIGIN, ORIGIN, "http://127.0.0.1:9999"]

    asyncio.run(scenario())
    assert robots.stats()["disallowed"] == 1 and robots.stats()["fetched"] == 3


def test_a_failed_fetch_is_tried_again_soon_and_noted():
    clock = FakeClock()
    robots = RobotsTxt(None, clock=clock)
    answers = [rules_after_error(ORIGIN, "HTTP 503"), rules_from_response(ORIGIN, 200, TEXT)]

    async def fetch(origin: str) -> Rules:
        return answers.pop(0)

    async def scenario() -> None:
        with pytest.raises(RobotsUnreachable) as unreachable:  # nothing, for now
            await robots.check(f"{ORIGIN}/all-bots/a", fetch)
        assert unreachable.value.retryable
        assert str(unreachable.value) == (
            f"robots.txt of {ORIGIN} could not be read (HTTP 503), so /all-bots/a is not "
            "opened until it can (RFC 9309; set politeness.robots_txt: ignore to crawl it anyway)"
        )
        clock.now += ERROR_TTL_S + 1
        with pytest.raises(RobotsDisallowed, match=r"disallows /all-bots/a") as refused:
            await robots.check(f"{ORIGIN}/all-bots/a", fetch)
        assert not refused.value.retryable

    asyncio.run(scenario())
    assert answers == []
    assert "HTTP 503" in robots.stats()["notes"][ORIGIN]


def test_an_unreadable_robots_txt_keeps_the_copy_read_before():
    """RFC 9309 2.4: once read, an unreachable robots.txt leaves the last copy in force,
    and the file is asked again after a minute rather than at every page."""
    clock = FakeClock()
    robots = RobotsTxt("LandmarkTest/1.0", ttl_s=10, clock=clock)
    answers = [rules_from_response(ORIGIN, 200, TEXT), rules_after_error(ORIGIN, "HTTP 502")]

    async def fetch(origin: str) -> Rules:
        return answers.pop(0)

    async def scenario() -> None:
        await robots.check(f"{ORIGIN}/public", fetch)
        clock.now += 11  # stale: asked again, and the site is down
        await robots.check(f"{ORIGIN}/public", fetch)  # the old copy allows it
        with pytest.raises(RobotsDisallowed) as refused:
            await robots.check(f"{ORIGIN}/private/x", fetch)
        assert not refused.value.retryable
        clock.now += STALE_RETRY_S - 1
        await robots.check(f"{ORIGIN}/public", fetch)  # not asked again yet

    asyncio.run(scenario())
    assert answers == [] and robots.stats()["fetched"] == 2
    assert "could not be read again" in robots.stats()["notes"][ORIGIN]
