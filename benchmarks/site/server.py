"""The Gallery site's HTTP server (aiohttp): pages, APIs, images, ground truth and stats.

The ``asyncio.sleep`` calls here are the point: they are the latency the site
injects, not waits of ours. Memory stays bounded whatever the request rate:
one attempt counter per item, one counter per route, and no per-request log unless a
test asks for one (``log_requests``: the last ``REQUEST_LOG_KEPT`` requests' paths and
headers, at ``/_requests``). ``robots_txt`` serves a robots.txt; without it there is none
(404), as before.
"""

from __future__ import annotations

import asyncio
from array import array
from collections import Counter, deque
from collections.abc import Callable

from aiohttp import web

from landmark.benchmarks.site.config import DEFAULT_PORT, HOST, SiteConfig
from landmark.benchmarks.site.data import (
    class_prefix,
    failing_attempts,
    item_at,
    latency_ms,
    list_latency_ms,
    position_of,
    truth_item,
)
from landmark.benchmarks.site.images import MEDIA_SIZE, THUMB_SIZE, item_png
from landmark.benchmarks.site.pages import error_html, gallery_html, item_html

MAX_PAGE = 1000
SHUTDOWN_TIMEOUT = 1.0  # seconds in-flight (delayed) requests get when the site stops
IMAGE_HEADERS = {"Cache-Control": "public, max-age=86400"}
REQUEST_LOG_KEPT = 10_000


class SiteError(RuntimeError):
    """The site could not start (typically: the port is taken)."""


class SiteState:
    """Per-item attempt counters (fault injection is per attempt) and per-route counts."""

    def __init__(self, config: SiteConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        self.attempts = array("I", bytes(4 * self.config.items))
        self.attempt_total = 0
        self.items_attempted = 0
        self.failures_served = 0
        self.requests: Counter[str] = Counter()
        # (path with query, headers): only when asked, so the usual hot path keeps nothing
        self.request_log: deque[dict] | None = (
            deque(maxlen=REQUEST_LOG_KEPT) if self.config.log_requests else None
        )

    def next_attempt(self, position: int) -> int:
        attempt = min(self.attempts[position] + 1, 2**32 - 1)
        self.attempts[position] = attempt
        self.attempt_total += 1
        self.items_attempted += attempt == 1
        return attempt

    def stats(self) -> dict:
        return {
            "requests": dict(self.requests),
            "requests_total": sum(self.requests.values()),
            "item_attempts": self.attempt_total,
            "items_attempted": self.items_attempted,
            # positions opened more than once: a resumed run must not reopen finished ones
            "repeated": {str(p): n for p, n in enumerate(self.attempts) if n > 1},
            "failures_served": self.failures_served,
        }


STATE = web.AppKey("state", SiteState)


def create_app(config: SiteConfig) -> web.Application:
    app = web.Application(middlewares=[_count_requests])
    app[STATE] = SiteState(config)
    app.router.add_get("/", _gallery, name="gallery")
    app.router.add_get("/item/{id}", _item_page, name="item_page")
    app.router.add_get("/api/items", _api_items, name="api_items")
    app.router.add_get("/api/item/{id}", _api_item, name="api_item")
    app.router.add_get("/api/truth", _api_truth, name="api_truth")
    app.router.add_get("/api/config", _api_config, name="api_config")
    app.router.add_get("/api/stats", _api_stats, name="api_stats")
    app.router.add_post("/api/reset", _api_reset, name="api_reset")
    app.router.add_get("/thumb/{id}.png", _thumb, name="thumb")
    app.router.add_get("/media/{id}.png", _media, name="media")
    app.router.add_get("/_requests", _request_log, name="request_log")
    if config.robots_txt is not None:
        app.router.add_get("/robots.txt", _robots_txt, name="robots_txt")
    return app


@web.middleware
async def _count_requests(request: web.Request, handler: Callable) -> web.StreamResponse:
    state = request.app[STATE]
    name = request.match_info.route.name
    state.requests[name or "unmatched"] += 1
    if state.request_log is not None and name != "request_log":
        state.request_log.append({"path": request.path_qs, "headers": dict(request.headers)})
    return await handler(request)


async def _request_log(request: web.Request) -> web.Response:
    """The logged requests, oldest first: ``[{"path", "headers"}]`` (a header repeated is
    shown once). 404 when the site was started without ``log_requests``."""
    log = request.app[STATE].request_log
    if log is None:
        return web.json_response({"error": "start the site with log_requests"}, status=404)
    return web.json_response(list(log))


async def _robots_txt(request: web.Request) -> web.Response:
    return web.Response(text=request.app[STATE].config.robots_txt or "", content_type="text/plain")


async def _gallery(request: web.Request) -> web.Response:
    return web.Response(text=gallery_html(request.app[STATE].config), content_type="text/html")


async def _api_items(request: web.Request) -> web.Response:
    config = request.app[STATE].config
    offset = _int_query(request, "offset", 0, 0, config.items)
    limit = _int_query(request, "limit", config.page_size, 1, MAX_PAGE)
    await _delay(list_latency_ms(config, offset))
    items = []
    for position in range(offset, min(offset + limit, config.items)):
        item = item_at(config, position)
        items.append({"id": item.id, "title": item.title, "position": position})
    return web.json_response({"items": items, "total": config.items})


async def _api_item(request: web.Request) -> web.Response:
    state = request.app[STATE]
    position = _position(request)
    if position is None:
        return web.json_response({"error": "no such item"}, status=404)
    if not await _attempt_succeeds(state, position):
        return web.json_response({"error": "injected failure"}, status=500)
    item = item_at(state.config, position)
    rows = [{"label": row.label, "value": row.value, "hidden": row.hidden} for row in item.rows()]
    return web.json_response(
        {
            "id": item.id,
            "title": item.title,
            "position": position,
            "image": item.image_path,
            "rows": rows,
        }
    )


async def _item_page(request: web.Request) -> web.Response:
    state = request.app[STATE]
    position = _position(request)
    if position is None:
        return _html_error(404, "No such item")
    if not await _attempt_succeeds(state, position):
        return _html_error(500, "Could not load item")
    item = item_at(state.config, position)
    return web.Response(text=item_html(state.config, item), content_type="text/html")


async def _api_truth(request: web.Request) -> web.Response:
    config = request.app[STATE].config
    offset = _int_query(request, "offset", 0, 0, config.items)
    limit = _int_query(request, "limit", config.items, 0, config.items)
    base_url = f"{request.scheme}://{request.host}/"
    end = min(offset + limit, config.items)
    return web.json_response([truth_item(config, p, base_url) for p in range(offset, end)])


async def _api_config(request: web.Request) -> web.Response:
    config = request.app[STATE].config
    return web.json_response({**config.model_dump(), "class_prefix": class_prefix(config.seed)})


async def _api_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].stats())


async def _api_reset(request: web.Request) -> web.Response:
    """Forget attempts and counts, so one running site can serve several benchmark runs."""
    request.app[STATE].reset()
    return web.json_response({"reset": True})


async def _thumb(request: web.Request) -> web.Response:
    return _png(request, THUMB_SIZE)


async def _media(request: web.Request) -> web.Response:
    return _png(request, MEDIA_SIZE)


def _png(request: web.Request, size: int) -> web.Response:
    if _position(request) is None:
        return web.Response(status=404, text="no such image")
    body = item_png(request.match_info["id"], size)
    return web.Response(body=body, content_type="image/png", headers=IMAGE_HEADERS)


async def _attempt_succeeds(state: SiteState, position: int) -> bool:
    """Count the attempt, wait its injected latency, and say whether it is one that fails."""
    attempt = state.next_attempt(position)
    await _delay(latency_ms(state.config, position, attempt))
    if attempt <= failing_attempts(state.config, position):
        state.failures_served += 1
        return False
    return True


def _position(request: web.Request) -> int | None:
    return position_of(request.app[STATE].config, request.match_info["id"])


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise web.HTTPBadRequest(text=f"{name} must be in {low}..{high}, got {value}")
    return value


def _html_error(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=error_html(status, message), content_type="text/html")


async def _delay(milliseconds: float) -> None:
    if milliseconds > 0:
        await asyncio.sleep(milliseconds / 1000)


async def start_site(config: SiteConfig, port: int = DEFAULT_PORT) -> tuple[web.AppRunner, str]:
    """Listen on 127.0.0.1:``port`` (0: a free one); return the runner and the site's URL."""
    runner = web.AppRunner(create_app(config), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        await web.TCPSite(runner, HOST, port, backlog=1024, reuse_address=True).start()
    except OSError as error:
        await runner.cleanup()
        raise SiteError(f"cannot listen on {HOST}:{port}: {error.strerror or error}") from None
    return runner, f"http://{HOST}:{runner.addresses[0][1]}/"


async def serve(
    config: SiteConfig,
    port: int = DEFAULT_PORT,
    on_ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until ``stop`` is set or the task is cancelled; ``on_ready(url)`` once listening."""
    runner, url = await start_site(config, port)
    try:
        if on_ready is not None:
            on_ready(url)
        await (stop or asyncio.Event()).wait()
    finally:
        await runner.cleanup()
