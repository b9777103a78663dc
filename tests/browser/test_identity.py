"""The job's browser identity and robots.txt, against real Chromium and the real Gallery site
(its request log shows what arrived), without Ray.

Identity: the user agent, an extra header, the locale, a cookie from a storage state reach
the site on every request — the pages', their scripts' API calls, and the robots.txt fetch —
and page scripts see the locale and time zone. A proxy with credentials carries them all,
and the job's host fence still holds behind it. robots.txt: a disallowed item is not opened
and fails with a reason that says what to do; ``ignore`` opens it; a disallowed source fails
its discovery.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from worker_helpers import PageServer, bounded, discover_all, guarded, item_page

from landmark.actors.discovery import DiscoveryRefused
from landmark.actors.robots import fetch_rules
from landmark.actors.worker import BrowserWorker
from landmark.benchmarks.site import GallerySite, SiteConfig
from landmark.benchmarks.site.data import item_at
from landmark.benchmarks.site.runner import serve_in_thread
from landmark.config.job import JobSpec
from landmark.config.loading import load_job
from landmark.config.records import Status

pytestmark = pytest.mark.browser

EXAMPLE_JOB = Path(str(resources.files("landmark.config").joinpath("examples/gallery.yaml")))
AGENT = "LandmarkTest/1.0 (+https://example.invalid/bot)"
COOKIE = {"name": "session", "value": "logged-in-42", "domain": "127.0.0.1", "path": "/"}
TUNNEL_S = 60.0  # a proxied connection left open longer than this is closed


def link_job(url: str, tmp: Path, **overrides: Any) -> JobSpec:
    """The example job in link mode (each item its own navigation), a few items, 2 pages."""
    base = {
        "sources.urls": [url],
        "output.dir": str(tmp / "out"),
        "containers.open": "link",
        "containers.limit": 4,
        "budget.pages_per_actor": 2,
    }
    return load_job(EXAMPLE_JOB, base | overrides)


def extract_all(run, worker: BrowserWorker, source: str) -> dict[str, Any]:
    containers = [c for chunk in run(discover_all(worker, source)) for c in chunk]
    return {record.id: record for record in guarded(run, worker.extract(containers))}


def item_path(config: SiteConfig, position: int) -> str:
    return f"/item/{item_at(config, position).id}"


# -- identity ------------------------------------------------------------------------
def test_identity_reaches_the_site_on_every_request(run, worker_for, tmp_path):
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"cookies": [COOKIE]}))
    config = SiteConfig(items=6, log_requests=True)
    with GallerySite(config) as site:
        job = link_job(
            site.url,
            tmp_path,
            **{
                "browser.user_agent": AGENT,
                "browser.headers": {"X-Crawl-Run": "run-7"},
                "browser.locale": "de-DE",
                "browser.timezone": "Asia/Tokyo",
                "browser.storage_state": str(state),
            },
        )
        worker = worker_for(job)
        records = extract_all(run, worker, site.url)
        seen_by_js = guarded(run, page_identity(worker))
        log = site.request_log()

    assert [r.status for r in records.values()] == [Status.OK] * 4, records
    paths = [entry["path"] for entry in log]
    assert "/" in paths and "/robots.txt" in paths
    assert any(p.startswith("/api/items") for p in paths)  # a page script's own fetch
    assert sum(p.startswith("/item/") for p in paths) == 4
    for entry in log:
        headers = {name.lower(): value for name, value in entry["headers"].items()}
        assert headers["user-agent"] == AGENT, entry
        assert headers["x-crawl-run"] == "run-7", entry
        assert "session=logged-in-42" in headers.get("cookie", ""), entry
        if entry["path"] != "/robots.txt":  # the browser's own requests say the locale
            assert headers["accept-language"].startswith("de-DE"), entry
    assert seen_by_js == ["de-DE", "Asia/Tokyo", AGENT]


async def page_identity(worker: BrowserWorker) -> list[str]:
    """What a page script of the worker's context sees (a page of its own, borrowed)."""
    slot = await bounded(worker.session.acquire(None))
    try:
        return await slot.page.evaluate(
            "[navigator.language, Intl.DateTimeFormat().resolvedOptions().timeZone,"
            " navigator.userAgent]"
        )
    finally:
        await worker.session.release(slot)


# -- proxy ---------------------------------------------------------------------------
class ProxyLog:
    def __init__(self, username: str, password: str) -> None:
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self.expected = f"Basic {token}"
        self.entries: list[tuple[str, str, bool]] = []  # (method, target, authorised)
        self.lock = threading.Lock()

    def add(self, method: str, target: str, authorised: bool) -> None:
        with self.lock:
            self.entries.append((method, target, authorised))


def proxy_handler(log: ProxyLog) -> type[BaseHTTPRequestHandler]:
    """A forward proxy that asks for Basic credentials: absolute-URI GETs (Chromium) and
    CONNECT tunnels (Playwright's request API) both."""

    class Proxy(BaseHTTPRequestHandler):
        def _authorised(self) -> bool:
            ok = self.headers.get("Proxy-Authorization") == log.expected
            log.add(self.command, self.path, ok)
            if not ok:
                self.send_response(407)
                self.send_header("Proxy-Authenticate", 'Basic realm="test"')
                self.send_header("Content-Length", "0")
                self.end_headers()
            return ok

        def do_GET(self) -> None:
            if not self._authorised():
                return
            target = http.client.urlsplit(self.path)
            upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            hop = {"proxy-authorization", "proxy-connection", "connection", "keep-alive"}
            headers = {k: v for k, v in self.headers.items() if k.lower() not in hop}
            upstream.request("GET", target.path + (f"?{target.query}" if target.query else ""),
                             headers=headers)  # fmt: skip
            answer = upstream.getresponse()
            body = answer.read()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in hop | {"transfer-encoding", "content-length"}:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            upstream.close()

        def do_CONNECT(self) -> None:
            if not self._authorised():
                return
            host, port = self.path.rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)), timeout=30)
            self.send_response(200, "Connection established")
            self.end_headers()
            pump(self.connection, upstream)
            upstream.close()

        def log_message(self, *args: Any) -> None:
            return

    return Proxy


def pump(client: socket.socket, upstream: socket.socket) -> None:
    """Bytes both ways until either side closes (or TUNNEL_S passes)."""
    deadline = time.monotonic() + TUNNEL_S
    sockets = [client, upstream]
    while time.monotonic() < deadline:
        readable, _, _ = select.select(sockets, [], [], 1.0)
        for source in readable:
            with contextlib.suppress(OSError):
                data = source.recv(65536)
                if data:
                    (upstream if source is client else client).sendall(data)
                    continue
            return


def test_a_proxy_with_credentials_carries_every_request(run, worker_for, tmp_path):
    """Chromium and the robots.txt fetch both go through the proxy, with its credentials;
    a page's request to another host (localhost) is still refused, proxy or not."""
    log = ProxyLog("crawler", "proxy-pass-0c1d")
    with PageServer({}) as other:
        port = other.url.rsplit(":", 1)[1].strip("/")
        # A script in the head holds the page until its request has failed (see test_worker)
        page = item_page("Proxied", f"<script src='http://localhost:{port}/x.js'></script>")
        with (
            PageServer({"/": page}) as server,
            serve_in_thread(proxy_handler(log), name="proxy") as proxy,
        ):
            job = load_job(
                {
                    "name": "proxied",
                    "sources": {"urls": [server.url]},
                    "containers": {"open": "self"},
                    "fields": [{"name": "title", "labels": ["Title"], "relation": "next"}],
                    "budget": {"pages_per_actor": 1},
                    "output": {"dir": str(tmp_path / "out")},
                    "browser": {
                        "proxy": {
                            "server": proxy,
                            "username": "crawler",
                            "password": "proxy-pass-0c1d",
                        }
                    },
                }
            )
            worker = worker_for(job)
            [chunk] = run(discover_all(worker, server.url))
            [record] = guarded(run, worker.extract(chunk))
        leaked = list(other.requests)

    assert record.status == Status.OK, record
    assert record.fields == {"title": "Proxied"}
    host = server.url.removeprefix("http://").rstrip("/")
    through = [(method, target) for method, target, ok in log.entries if ok]
    assert ("GET", server.url) in through  # the page, by Chromium
    robots = [("GET", f"{server.url}robots.txt"), ("CONNECT", host)]
    assert any(entry in through for entry in robots), log.entries  # robots.txt, by the API
    assert not any("localhost" in target for _, target, _ in log.entries)
    assert leaked == []
    assert record.blocked == ["localhost"]
    assert "proxy-pass-0c1d" not in repr(job)


# -- robots.txt ----------------------------------------------------------------------
def robots_site(tmp: Path) -> tuple[SiteConfig, str, str]:
    """A site whose robots.txt has a group for our token (item 1 disallowed) and one for
    everybody else (item 2 disallowed, which is not ours to obey)."""
    base = SiteConfig(items=6)
    mine, others = item_path(base, 1), item_path(base, 2)
    text = f"User-agent: LandmarkTest\nDisallow: {mine}\n\nUser-agent: *\nDisallow: {others}\n"
    return SiteConfig(items=6, robots_txt=text, log_requests=True), mine, others


def test_robots_txt_disallowed_item_is_not_opened(run, worker_for, tmp_path):
    config, mine, others = robots_site(tmp_path)
    with GallerySite(config) as site:
        origin = site.url.rstrip("/")
        worker = worker_for(link_job(site.url, tmp_path, **{"browser.user_agent": AGENT}))
        records = extract_all(run, worker, site.url)
        paths = [entry["path"] for entry in site.request_log()]

    refused = records[item_at(config, 1).id]
    assert refused.status == Status.FAILED and not refused.retryable
    assert [e.reason for e in refused.errors] == [
        f"robots.txt of {origin} disallows {mine} for user agent "
        '"LandmarkTest" (set politeness.robots_txt: ignore to crawl it anyway)'
    ]
    others_ok = [r.status for r in records.values() if r is not refused]
    assert others_ok == [Status.OK] * 3  # item 2 among them: the "*" group is not ours
    assert mine not in paths and others in paths
    assert paths.count("/robots.txt") == 1  # once per origin, for the whole worker
    assert worker.stats()["robots"] == {"fetched": 1, "disallowed": 1, "notes": {}}


def test_robots_txt_ignore_opens_everything(run, worker_for, tmp_path):
    config, mine, _ = robots_site(tmp_path)
    with GallerySite(config) as site:
        job = link_job(
            site.url,
            tmp_path,
            **{"browser.user_agent": AGENT, "politeness.robots_txt": "ignore"},
        )
        records = extract_all(run, worker_for(job), site.url)
        paths = [entry["path"] for entry in site.request_log()]

    assert [r.status for r in records.values()] == [Status.OK] * 4
    assert mine in paths and "/robots.txt" not in paths


def test_a_disallowed_source_fails_its_discovery(run, worker_for, tmp_path):
    """Without a user agent of the job's own only the "*" group applies, and here it
    disallows everything: the gallery page itself is never opened."""
    config = SiteConfig(items=6, robots_txt="User-agent: *\nDisallow: /\n", log_requests=True)
    with GallerySite(config) as site:
        url = site.url
        worker = worker_for(link_job(url, tmp_path))
        with pytest.raises(DiscoveryRefused) as refused:
            run(discover_all(worker, url))
        paths = [entry["path"] for entry in site.request_log()]

    assert str(refused.value) == (
        f"discovery of {url} refused: robots.txt of {url.rstrip('/')} disallows / "
        'for user agent "*" (set politeness.robots_txt: ignore to crawl it anyway)'
    )
    assert not refused.value.retryable
    assert paths == ["/robots.txt"]


def answer(status: int, location: str | None = None, body: str = ""):
    """A PageServer route answering ``status`` (with a Location, and a text body)."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        if location is not None:
            handler.send_header("Location", location)
        handler.send_header("Content-Type", "text/plain")
        handler.end_headers()
        handler.wfile.write(body.encode())

    return route


def test_robots_txt_fetch_follows_redirects_on_the_jobs_hosts_only(run, browser):
    """Through a real context's request API: a redirect on the site is followed; one to
    another host is not (that request would bypass the browser's host fence), so robots.txt
    is unreachable and nothing there is allowed, with a note; a 403 means no rules."""
    rules_text = "User-agent: *\nDisallow: /private\n"
    with PageServer({}) as elsewhere:
        pages = {
            "/robots.txt": answer(301, "/real-robots.txt"),
            "/real-robots.txt": answer(200, body=rules_text),
        }
        with (
            PageServer(pages) as site,
            PageServer({"/robots.txt": answer(302, f"{elsewhere.url}robots.txt")}) as leaving,
            PageServer({"/robots.txt": answer(403)}) as forbidden,
        ):
            context = run(browser.new_context())
            try:
                origins = [s.url.rstrip("/") for s in (site, leaving, forbidden)]
                fetched = [
                    guarded(run, fetch_rules(context.request, origin, 10, on_site(origins)))
                    for origin in origins
                ]
            finally:
                run(context.close())

    redirected, off_site, refused = fetched
    assert not redirected.allows("*", f"{origins[0]}/private/1")
    assert redirected.allows("*", f"{origins[0]}/public/1") and redirected.note is None
    assert off_site.unreachable and not off_site.allows("*", f"{origins[1]}/public/1")
    assert "redirected off the job's hosts" in off_site.note
    assert elsewhere.requests == []
    assert refused.allows("*", f"{origins[2]}/anything") and not refused.unreachable


def on_site(origins: list[str]):
    return lambda url: any(url.startswith(f"{origin}/") for origin in origins)
