"""robots.txt, obeyed before a job's page is opened (``politeness.robots_txt: obey``).

Why it lives in the actor, next to the browser: the rules must be read as the site sees
the crawler. So robots.txt is fetched through the browser context's own request API
(``context.request``), with the job's proxy, user agent, extra headers and cookies, and
checked right before each navigation of a job page (a source page in discovery, an item
page in link and self mode), where no second copy of the URL list can drift from it.

- **Once per origin per actor**: the parsed rules are kept for ``ttl_s`` (an hour). Pages
  that want the same origin at once share one fetch. Only hosts the job may visit are
  fetched (an off-site link is refused by the browser anyway), so the cache stays small.
- **Status codes, as RFC 9309 (2.3.1) and Google's crawlers read them**: 2xx is parsed;
  any other 4xx (401 and 403 included) means there are no rules, so everything is
  allowed; 429, 5xx, a network error, a timeout (the job's navigation timeout), a
  redirect loop or a redirect off the job's hosts make robots.txt *unreachable*, and an
  unreachable robots.txt means "crawl nothing there" until it can be read. Such a refusal
  (:class:`RobotsUnreachable`) is retryable and counts against the host like any failed
  request, so a host that is down is still given up on; it is not cached (the next page
  asks again), and it is said in the actor's stats and log. When robots.txt was read
  before, that copy is kept in force instead (RFC 9309 2.4). Redirects are followed five
  times, to the job's own hosts only (this fetch is not behind the browser's host
  fence); bodies past 500 KiB are ignored.
- **The user-agent token matched** is the first product token of ``browser.user_agent``
  (``LandmarkBot`` for ``LandmarkBot/1.0 (+https://example.org/bot)``). Without
  ``browser.user_agent`` the browser sends its own Chrome User-Agent, which names no
  crawler, so only the ``User-agent: *`` group applies; errors then say ``"*"``.
- Matching is the standard library's ``urllib.robotparser``: the first rule of a group
  that prefixes the path wins, in file order, and ``*``/``$`` inside paths are literal.

A disallowed URL raises :class:`RobotsDisallowed`, whose message names the origin, the
path, the token and the setting that turns this off; it is final (not retried): asking
again gets the same answer, and the host answered, so its health is not in question.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit
from urllib.robotparser import RobotFileParser

from playwright.async_api import Error as PlaywrightError

from landmark.config.records import ROBOTS_REFUSAL

if TYPE_CHECKING:
    from playwright.async_api import APIRequestContext

logger = logging.getLogger("landmark.robots")

TTL_S = 3600.0  # parsed rules are kept this long per origin
# An unreachable robots.txt is asked again at the next page (pages asking at once share one
# fetch): a host back from an outage is crawled again at once. With an earlier good copy,
# that copy is used (RFC 9309 2.4) and the file is asked again after STALE_RETRY_S.
ERROR_TTL_S = 0.0
STALE_RETRY_S = 60.0
MAX_BODY = 500 * 1024  # Google reads the first 500 KiB of a robots.txt
MAX_REDIRECTS = 5
NOTES_KEPT = 20
IGNORE_HINT = "set politeness.robots_txt: ignore to crawl it anyway"


class RobotsDisallowed(Exception):
    """robots.txt disallows the URL for the job's user agent: the page is not opened.
    Final: another attempt would get the same answer."""

    retryable = False


class RobotsUnreachable(RobotsDisallowed):
    """robots.txt could not be read, which RFC 9309 reads as "nothing allowed" for now: a
    later attempt may find it, and the cause (the host down) is the host's failure."""

    retryable = True


@dataclass(frozen=True, slots=True)
class Rules:
    """One origin's robots.txt, parsed; ``basis`` says why when it is not the file's text
    (``HTTP 403``), ``note`` what went wrong when the site could not be asked."""

    parser: RobotFileParser
    ttl_s: float = TTL_S
    basis: str | None = None
    note: str | None = None
    unreachable: bool = False  # could not be read: nothing allowed, retryable

    def allows(self, token: str, url: str) -> bool:
        return self.parser.can_fetch(token, url)


def robots_token(user_agent: str | None) -> str:
    """The product token robots.txt groups are matched against (see the module docstring)."""
    match = re.match(r"[^\s/;(),]+", (user_agent or "").strip())
    return match.group(0) if match else "*"


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme.lower()}://{host}{port}"


def _parser(text: str | None = None, *, allow_all: bool = False) -> RobotFileParser:
    parser = RobotFileParser()
    if text is None:
        parser.allow_all, parser.disallow_all = allow_all, not allow_all
    else:
        parser.parse(text.splitlines())
    return parser


def rules_from_response(origin: str, status: int, body: bytes) -> Rules:
    """The rules an answer of ``status`` with ``body`` sets, by the module docstring's table."""
    if 200 <= status < 300:
        text = body[:MAX_BODY].decode("utf-8", errors="replace").lstrip("\ufeff")
        return Rules(_parser(text))
    if 400 <= status < 500 and status != 429:
        return Rules(_parser(allow_all=True), basis=f"it answered HTTP {status}")
    return rules_after_error(origin, f"HTTP {status}")


def rules_after_error(origin: str, reason: str) -> Rules:
    """The site could not be asked: nothing allowed (RFC 9309), kept briefly, and said."""
    note = (
        f"robots.txt of {origin} could not be read ({reason}); nothing there is opened until it can"
    )
    return Rules(
        _parser(allow_all=False), ttl_s=ERROR_TTL_S, basis=reason, note=note, unreachable=True
    )


async def fetch_rules(
    request: APIRequestContext,
    origin: str,
    timeout_s: float,
    allowed: Callable[[str], bool] = lambda url: True,
) -> Rules:
    """``origin``/robots.txt through a browser context's request API, within ``timeout_s``
    in all. Redirects are followed here, up to MAX_REDIRECTS and only to URLs ``allowed``
    (the job's hosts): this request does not go through the browser's host fence."""
    url = f"{origin}/robots.txt"
    try:
        async with asyncio.timeout(timeout_s + 1.0):  # Playwright's own timeout comes first
            for _hop in range(MAX_REDIRECTS + 1):
                status, body, location = await _get(request, url, timeout_s)
                if location is None:
                    return rules_from_response(origin, status, body)
                url = urljoin(url, location)
                if not allowed(url):
                    return rules_after_error(origin, f"redirected off the job's hosts, to {url}")
            return rules_after_error(origin, f"more than {MAX_REDIRECTS} redirects")
    except TimeoutError:
        return rules_after_error(origin, f"no answer within {timeout_s:g}s")
    except PlaywrightError as error:
        text = str(error).strip()
        if "has been closed" in text:  # our context went away (a recycle): not the site's fault
            raise
        first = text.splitlines()[0] if text else "network error"
        return rules_after_error(origin, re.sub(r"^APIRequestContext\.\w+: ", "", first))


async def _get(
    request: APIRequestContext, url: str, timeout_s: float
) -> tuple[int, bytes, str | None]:
    """One GET, redirects not followed: the status, the body of a 2xx, a redirect's target."""
    response = await request.get(
        url, timeout=timeout_s * 1000, max_redirects=0, fail_on_status_code=False
    )
    try:
        location = response.headers.get("location")
        if 300 <= response.status < 400 and location:
            return response.status, b"", location
        return response.status, (await response.body() if response.ok else b""), None
    finally:
        await response.dispose()


Fetch = Callable[[str], Awaitable[Rules]]


class RobotsTxt:
    """The robots.txt rules one actor has read, per origin, with a time to live."""

    def __init__(
        self, user_agent: str | None, *, ttl_s: float = TTL_S, clock=time.monotonic
    ) -> None:
        self.token = robots_token(user_agent)
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, Rules]] = {}
        self._fetching: dict[str, asyncio.Future[Rules]] = {}
        self._good: dict[str, Rules] = {}  # the last copy read, per origin
        self.fetched = 0
        self.disallowed = 0
        self.notes: dict[str, str] = {}

    async def check(self, url: str, fetch: Fetch) -> None:
        """Raise RobotsDisallowed if ``url`` may not be opened; ``fetch(origin)`` reads the
        origin's rules when they are not known (or are stale)."""
        origin = origin_of(url)
        rules = await self.rules(origin, fetch)
        if rules.allows(self.token, url):
            return
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if rules.unreachable:
            raise RobotsUnreachable(
                f"robots.txt of {origin} could not be read ({rules.basis}), so {path[:200]} "
                f"is not opened until it can (RFC 9309; {IGNORE_HINT})"
            )
        self.disallowed += 1
        why = f" ({rules.basis})" if rules.basis else ""
        raise RobotsDisallowed(
            f"{ROBOTS_REFUSAL}{origin}{why} disallows {path[:200]} for user agent "
            f'"{self.token}" ({IGNORE_HINT})'
        )

    async def rules(self, origin: str, fetch: Fetch) -> Rules:
        """The cached rules of ``origin``, else one fetch shared by every caller meanwhile.
        A caller that gives up (its deadline) leaves the fetch running for the others."""
        kept = self._cache.get(origin)
        if kept is not None and kept[0] > self._clock():
            return kept[1]
        task = self._fetching.get(origin)
        if task is None:
            task = asyncio.ensure_future(self._fetch_and_keep(origin, fetch))
            task.add_done_callback(_retrieved)
            self._fetching[origin] = task
        return await asyncio.shield(task)

    async def _fetch_and_keep(self, origin: str, fetch: Fetch) -> Rules:
        try:
            rules = await fetch(origin)
        finally:
            self._fetching.pop(origin, None)
        self.fetched += 1
        ttl_s = min(rules.ttl_s, self._ttl_s)
        if not rules.unreachable:
            self._good[origin] = rules
        elif origin in self._good:  # read before: that copy stays in force for now
            rules, ttl_s = self._good[origin], STALE_RETRY_S
            self._note(
                origin,
                f"robots.txt of {origin} could not be read again; the copy read before is used",
            )
            self._cache[origin] = (self._clock() + ttl_s, rules)
            return rules
        self._cache[origin] = (self._clock() + ttl_s, rules)
        if rules.note is not None:
            self._note(origin, rules.note)
        return rules

    def _note(self, origin: str, note: str) -> None:
        if self.notes.get(origin) != note:  # said once, not at every page of an outage
            logger.warning("%s", note)
        if origin in self.notes or len(self.notes) < NOTES_KEPT:
            self.notes[origin] = note

    def stats(self) -> dict[str, Any]:
        return {"fetched": self.fetched, "disallowed": self.disallowed, "notes": dict(self.notes)}


def _retrieved(task: asyncio.Future) -> None:
    """Read a shared fetch's outcome, so one nobody awaited any more is not logged as lost."""
    if not task.cancelled():
        task.exception()
