"""robots.txt, obeyed before a job's page is opened (``politeness.robots_txt: obey``).

Why it lives in the actor, next to the browser: the rules must be read as the site sees
the crawler. So robots.txt is fetched through the browser context's own request API
(``context.request``), with the job's proxy, user agent, extra headers and cookies, and
checked right before each navigation of a job page (a source page in discovery, an item
page in link and self mode), where no second copy of the URL list can drift from it.

- **Once per origin per actor**: the parsed rules are kept for ``ttl_s`` (an hour); a
  fetch that failed is kept a minute only, so a passing outage is read again soon. Pages
  that want the same origin at once share one fetch. Only hosts the job may visit are
  fetched (an off-site link is refused by the browser anyway), so the cache stays small.
- **Status codes, as Google documents them**: 2xx is parsed; 401 and 403 disallow
  everything; any other 4xx allows everything (there are no rules); 429, 5xx, a network
  error or a timeout (the job's navigation timeout) allow, with a note in the actor's
  stats and log: the site could not say otherwise, and a flaky robots.txt must not stop
  a job. Redirects are followed five times, to the job's own hosts only (this fetch is
  not behind the browser's host fence); bodies past 500 KiB are ignored.
- **The user-agent token matched** is the first product token of ``browser.user_agent``
  (``LandmarkBot`` for ``LandmarkBot/1.0 (+https://example.org/bot)``). Without
  ``browser.user_agent`` the browser sends its own Chrome User-Agent, which names no
  crawler, so only the ``User-agent: *`` group applies; errors then say ``"*"``.
- Matching is the standard library's ``urllib.robotparser``: the first rule of a group
  that prefixes the path wins, in file order, and ``*``/``$`` inside paths are literal.

A disallowed URL raises :class:`RobotsDisallowed`, whose message names the origin, the
path, the token and the setting that turns this off; it is final (not retried): asking
again gets the same answer.
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
ERROR_TTL_S = 60.0  # a failed fetch (allowed, with a note) is tried again after this
MAX_BODY = 500 * 1024  # Google reads the first 500 KiB of a robots.txt
MAX_REDIRECTS = 5
NOTES_KEPT = 20
IGNORE_HINT = "set politeness.robots_txt: ignore to crawl it anyway"


class RobotsDisallowed(Exception):
    """robots.txt disallows the URL for the job's user agent: the page is not opened.
    Final: another attempt would get the same answer."""

    retryable = False


@dataclass(frozen=True, slots=True)
class Rules:
    """One origin's robots.txt, parsed; ``basis`` says why when it is not the file's text
    (``HTTP 403``), ``note`` what went wrong when the site could not be asked."""

    parser: RobotFileParser
    ttl_s: float = TTL_S
    basis: str | None = None
    note: str | None = None

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
    if status in (401, 403):
        return Rules(_parser(allow_all=False), basis=f"it answered HTTP {status}")
    if 400 <= status < 500 and status != 429:
        return Rules(_parser(allow_all=True), basis=f"it answered HTTP {status}")
    return rules_after_error(origin, f"HTTP {status}")


def rules_after_error(origin: str, reason: str) -> Rules:
    """The site could not be asked: everything allowed, kept briefly, and said."""
    note = f"robots.txt of {origin} could not be read ({reason}); its pages are treated as allowed"
    return Rules(_parser(allow_all=True), ttl_s=ERROR_TTL_S, basis=reason, note=note)


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
        return rules_after_error(origin, text.splitlines()[0] if text else "network error")


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
        self.disallowed += 1
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
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
        self._cache[origin] = (self._clock() + ttl_s, rules)
        if rules.note is not None:
            logger.warning("%s", rules.note)
            if origin in self.notes or len(self.notes) < NOTES_KEPT:
                self.notes[origin] = rules.note
        return rules

    def stats(self) -> dict[str, Any]:
        return {"fetched": self.fetched, "disallowed": self.disallowed, "notes": dict(self.notes)}


def _retrieved(task: asyncio.Future) -> None:
    """Read a shared fetch's outcome, so one nobody awaited any more is not logged as lost."""
    if not task.cancelled():
        task.exception()
