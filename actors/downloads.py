"""Media downloads: streamed to disk under a size cap and two deadlines, named safely, hashed.

The file is written under a temporary name and renamed when complete, so a crash never
leaves a half file that looks whole; and every way a download can fail — HTTP error,
reset, a body that stalls (``idle``), one that trickles (``timeout``), one too large
(``max_bytes``) — removes the part file and raises :class:`DownloadError`, whose message
is the reason a record carries.

A download goes out as the job's browser would send it (:class:`Identity`): its user
agent, extra headers and the context's cookies for that URL, through its proxy — a
logged-in file or a proxied job must not fetch media as somebody else, or around the proxy.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urljoin, urlsplit

import aiohttp

if TYPE_CHECKING:
    from landmark.config.browser_spec import BrowserSpec

CHUNK = 64 * 1024
MAX_REDIRECTS = 5
REDIRECTS = {301, 302, 303, 307, 308}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


async def _no_identity(url: str) -> Identity:
    return Identity()


class DownloadError(Exception):
    """A download that did not produce a whole file; ``str()`` is the reason for the record."""


@dataclass(frozen=True)
class Identity:
    """Who a download says it is, and the way out (aiohttp's headers and proxy options)."""

    headers: dict[str, str] = field(default_factory=dict, repr=False)  # cookies in there
    proxy: str | None = None
    proxy_headers: dict[str, str] = field(default_factory=dict, repr=False)


def identity_of(spec: BrowserSpec, cookie_header: str = "") -> Identity:
    """The job's browser identity for aiohttp; a socks5 proxy (which aiohttp cannot use)
    is refused rather than bypassed."""
    headers = dict(spec.headers)
    if spec.user_agent:
        headers["User-Agent"] = spec.user_agent
    if spec.locale and not any(name.lower() == "accept-language" for name in headers):
        headers["Accept-Language"] = spec.locale
    if cookie_header:
        headers["Cookie"] = cookie_header
    if spec.proxy is None:
        return Identity(headers)
    if spec.proxy.server.lower().startswith("socks5"):
        raise DownloadError("downloads cannot go through a socks5 proxy; use an http(s) proxy")
    server = spec.proxy.server if "://" in spec.proxy.server else f"http://{spec.proxy.server}"
    auth = {}
    if spec.proxy.username is not None:
        password = spec.proxy.password.get_secret_value() if spec.proxy.password else ""
        auth["Proxy-Authorization"] = aiohttp.encode_basic_auth(spec.proxy.username, password)
    return Identity(headers, server, auth)


def safe_file_name(container_id: str, url: str) -> str:
    """``{id}-{last path segment}`` with anything but [A-Za-z0-9._-] replaced; never hidden."""
    tail = unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or "download"
    name = _UNSAFE.sub("_", f"{container_id}-{tail}").strip("._") or "download"
    return name[:200]


@dataclass(frozen=True)
class Route:
    """Where a download may go and as whom: ``allowed(url)`` is the job's host fence (a
    redirect is checked at every hop, as the browser checks a page's), ``identity_for(url)``
    the headers, cookies and proxy for that URL (cookies differ per host)."""

    allowed: Callable[[str], bool] = lambda url: True
    identity_for: Callable[[str], Awaitable[Identity]] = field(default=_no_identity)


async def download_to_file(
    url: str,
    folder: Path,
    container_id: str,
    max_bytes: int,
    *,
    idle_s: float = 20.0,
    total_s: float = 60.0,
    route: Route | None = None,
) -> dict[str, Any]:
    """Stream ``url`` into ``folder``; returns path, bytes and sha256, or raises DownloadError.
    ``route`` says which hosts a redirect may lead to and who to be on each (default: any
    host, no identity: for tests and tools, never for a job's pages)."""
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    target = folder / safe_file_name(container_id, url)
    partial = target.with_name(target.name + ".part")
    try:
        async with asyncio.timeout(total_s):
            written, digest = await _stream(url, partial, max_bytes, idle_s, route or Route())
    except aiohttp.ServerTimeoutError:  # before TimeoutError: it is one too
        partial.unlink(missing_ok=True)
        raise DownloadError(f"download of {url} stalled: no data for {idle_s:g}s") from None
    except TimeoutError:
        partial.unlink(missing_ok=True)
        raise DownloadError(
            f"download of {url} took longer than {total_s:.3g}s (a body that trickles in)"
        ) from None
    except (aiohttp.ClientError, OSError) as error:
        partial.unlink(missing_ok=True)
        raise DownloadError(f"download of {url} failed: {error or type(error).__name__}") from None
    except BaseException:  # too large, or cancelled with its container: leave nothing behind
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, target)
    return {"path": str(target), "bytes": written, "sha256": digest}


async def _stream(
    url: str, partial: Path, max_bytes: int, idle_s: float, route: Route
) -> tuple[int, str]:
    timeout = aiohttp.ClientTimeout(sock_connect=idle_s, sock_read=idle_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for _hop in range(MAX_REDIRECTS + 1):
            identity = await route.identity_for(url)
            async with _get(session, url, identity) as response:
                target = _redirect_target(url, response)
                if target is None:
                    return await _save(url, response, partial, max_bytes)
            if not route.allowed(target):
                raise DownloadError(
                    f"download of {url} redirected off the job's hosts, to {target} "
                    "(add its host to browser.allow_domains)"
                )
            url = target
    raise DownloadError(f"download of {url}: more than {MAX_REDIRECTS} redirects")


def _redirect_target(url: str, response: aiohttp.ClientResponse) -> str | None:
    location = response.headers.get("Location")
    if response.status in REDIRECTS and location:
        return urljoin(url, location)
    return None


async def _save(
    url: str, response: aiohttp.ClientResponse, partial: Path, max_bytes: int
) -> tuple[int, str]:
    if response.status >= 400:
        raise DownloadError(f"HTTP {response.status} downloading {url}")
    declared = response.content_length
    if declared is not None and declared > max_bytes:
        raise _too_large(url, max_bytes, declared)
    digest = hashlib.sha256()
    written = 0
    with partial.open("wb") as sink:
        async for chunk in response.content.iter_chunked(CHUNK):
            written += len(chunk)
            if written > max_bytes:
                raise _too_large(url, max_bytes)
            sink.write(chunk)
            digest.update(chunk)
    return written, digest.hexdigest()


def _get(session: aiohttp.ClientSession, url: str, identity: Identity):
    """One GET as ``identity`` (its headers and proxy, never the environment's), redirects
    not followed: each hop is checked against the job's hosts and gets its own cookies."""
    return session.get(
        url,
        headers=identity.headers,
        proxy=identity.proxy,
        proxy_headers=identity.proxy_headers or None,
        allow_redirects=False,
    )


def _too_large(url: str, max_bytes: int, declared: int | None = None) -> DownloadError:
    """Announced too large (``declared``), or found so while counting an unannounced body."""
    size = f"is {declared:,} bytes," if declared is not None else "grew"
    return DownloadError(
        f"download of {url} {size} over download.max_bytes ({max_bytes:,} bytes); not kept"
    )
