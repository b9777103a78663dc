"""The hostile-page site: one misbehaving page per path, for ``landmark bench hostile`` and the
tests that show a run stays bounded whatever the pages do.

Every page is an ordinary item page ("Title" label, a "Download" link where a file is
involved) or an ordinary gallery, so each case runs as a normal job through the real
pipeline; what makes it hostile is what the page or its server does:

========================  ===============================================================
``/download/stall``       its Download link answers headers and ten bytes, then nothing
``/download/trickle``     its Download link sends one byte every 0.2 s, for ever
``/download/oversize``    its Download link streams 4 MiB with no Content-Length
``/spin``                 its script loops for ever once the document is parsed
``/feed/``                a gallery that never ends: every scroll to the bottom loads more
``/dialogs/{n}``          alert, confirm and prompt on load, and a ``beforeunload`` guard
``/redirect/server``      a 302 to ``localhost`` (the same server, by a name the job does
                          not allow)
``/redirect/script``      a page whose script sends it to that same ``localhost`` address
``/selfnav/``             a page that replaces itself every 150 ms; its fields never come
``/popups/{n}``           a page that opens popups on load and every 100 ms
``/bigdom``               10 MB of DOM, the labelled field at its very end
========================  ===============================================================

The waits here are the hostility itself (a body that stalls or trickles), not waits of the
crawler's. Bodies that never end stop when the site stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import sys
import threading

from aiohttp import web

from landmark.benchmarks.site.config import HOST
from landmark.benchmarks.site.runner import GallerySite
from landmark.benchmarks.site.server import SHUTDOWN_TIMEOUT, SiteError

TRICKLE_EVERY_S = 0.2
OVERSIZE_BYTES = 4 * 2**20
FEED_BATCH = 5  # cards the endless feed adds per scroll to the bottom
FEED_DELAY_MS = 250  # how long the feed "loads" each batch
BIG_DOM_BYTES = 10 * 2**20
CHUNK = 64 * 1024

CLOSING = web.AppKey("closing", asyncio.Event)
BIG_DOM = web.AppKey("big_dom", bytes)


def item_page(title: str, head: str = "", body: str = "") -> str:
    """An item page with one labelled field, "Title"; ``head``/``body`` add the hostility."""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'>{head}</head><body>"
        f"<dl><dt>Title</dt><dd>{html.escape(title)}</dd></dl>{body}</body></html>"
    )


def _page(text: str) -> web.Response:
    return web.Response(text=text, content_type="text/html")


# -- downloads -------------------------------------------------------------------------
async def _download_page(request: web.Request) -> web.Response:
    kind = request.match_info["kind"]
    link = f"<a href='/media/{kind}.png'>Download</a>"
    return _page(item_page(f"Download {kind}", body=link))


def _body(serve):
    """A media handler whose client may hang up at any moment: that ends the handler, it is
    what the crawler is expected to do (aiohttp would log each as an error)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        with contextlib.suppress(ConnectionError):  # aiohttp's reset errors are ones too
            await serve(request, response)
        return response

    return handler


@_body
async def _stall(request: web.Request, response: web.StreamResponse) -> None:
    """Promise a megabyte, send ten bytes, then nothing until the site stops."""
    response.content_length = 1_000_000
    await response.prepare(request)
    await response.write(b"x" * 10)
    await request.app[CLOSING].wait()


@_body
async def _trickle(request: web.Request, response: web.StreamResponse) -> None:
    """One byte every TRICKLE_EVERY_S: never idle long enough for an idle timeout."""
    response.enable_chunked_encoding()
    await response.prepare(request)
    closing = request.app[CLOSING]
    while not closing.is_set():
        await response.write(b"x")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closing.wait(), TRICKLE_EVERY_S)


@_body
async def _oversize(request: web.Request, response: web.StreamResponse) -> None:
    """OVERSIZE_BYTES, chunked: the size is only known by counting."""
    response.enable_chunked_encoding()
    await response.prepare(request)
    chunk = b"\0" * CHUNK
    for _ in range(OVERSIZE_BYTES // CHUNK):
        await response.write(chunk)
    await response.write_eof()


# -- scripts ---------------------------------------------------------------------------
SPIN = "<script>addEventListener('DOMContentLoaded', () => { for (;;) {} })</script>"

DIALOGS = """<script>
alert('hello'); confirm('sure?'); prompt('your name?');
addEventListener('beforeunload', (event) => {
  event.preventDefault();
  event.returnValue = 'stay';
});
</script>"""

SELF_NAVIGATING = """<script>
const hop = Number(new URLSearchParams(location.search).get('hop') || 0);
setTimeout(() => location.replace('/selfnav/?hop=' + (hop + 1)), 150);
setTimeout(() => { document.body.innerHTML = '<dl><dt>Title</dt><dd>late</dd></dl>'; }, 5000);
</script>"""

POPUPS = """<script>
for (let i = 0; i < 3; i += 1) window.open('/popups/child?' + i);
setInterval(() => window.open('/popups/child'), 100);
</script>"""


async def _spin(request: web.Request) -> web.Response:
    return _page(item_page("Never read", head=SPIN))


async def _dialogs(request: web.Request) -> web.Response:
    return _page(item_page(f"Dialogs {request.match_info['n']}", head=DIALOGS))


async def _self_navigating(request: web.Request) -> web.Response:
    return _page(f"<!doctype html><html><body>loading…{SELF_NAVIGATING}</body></html>")


async def _popups(request: web.Request) -> web.Response:
    return _page(item_page(f"Popups {request.match_info['n']}", head=POPUPS))


async def _popup_child(request: web.Request) -> web.Response:
    return _page("<!doctype html><html><body><h1>Special offer!</h1></body></html>")


async def _big_dom(request: web.Request) -> web.Response:
    return web.Response(body=request.app[BIG_DOM], content_type="text/html")


def big_dom_page(size: int = BIG_DOM_BYTES) -> bytes:
    """About ``size`` bytes of paragraphs, the labelled field last."""
    filler = "<p class='f'>filler paragraph, nothing to read here</p>\n"
    head = "<!doctype html><html><head><meta charset='utf-8'></head><body>"
    body = filler * (size // len(filler))
    return (head + body + "<dl><dt>Title</dt><dd>Found at the end</dd></dl></body></html>").encode()


# -- redirects -------------------------------------------------------------------------
def elsewhere(request: web.Request) -> str:
    """This very server under a name the job does not allow: ``localhost`` for 127.0.0.1."""
    return f"http://localhost:{request.url.port}/redirect/landing"


async def _redirect_server(request: web.Request) -> web.Response:
    raise web.HTTPFound(elsewhere(request))


async def _redirect_script(request: web.Request) -> web.Response:
    script = f"<script>location.href = {elsewhere(request)!r};</script>"
    return _page(item_page("Leaving", head=script))


async def _landing(request: web.Request) -> web.Response:
    return _page(item_page("Off site"))


# -- the endless feed ------------------------------------------------------------------
FEED = f"""<!doctype html><html><head><meta charset='utf-8'><style>
.card {{ height: 120px; border-bottom: 1px solid #ccc; }}
</style></head><body><h1>Endless feed</h1><main id="feed"></main><script>
let next = 0, loading = false;
const feed = document.getElementById('feed');
const more = () => {{
  for (let i = 0; i < {FEED_BATCH}; i += 1, next += 1) {{
    const card = document.createElement('div');
    card.className = 'card';
    card.dataset.id = 'feed-' + next;
    card.innerHTML = `<a href="/feed/item/${{next}}">Item ${{next}}</a>`;
    feed.appendChild(card);
  }}
  loading = false;
}};
addEventListener('scroll', () => {{
  const bottom = scrollY + innerHeight >= document.documentElement.scrollHeight - 200;
  if (bottom && !loading) {{ loading = true; setTimeout(more, {FEED_DELAY_MS}); }}
}});
for (let i = 0; i < 4; i += 1) more();
</script></body></html>"""


async def _feed(request: web.Request) -> web.Response:
    return _page(FEED)


async def _feed_item(request: web.Request) -> web.Response:
    return _page(item_page(f"Feed item {request.match_info['n']}"))


async def _index(request: web.Request) -> web.Response:
    links = "".join(f"<li><a href='{path}'>{path}</a></li>" for path in INDEX)
    return _page(f"<!doctype html><html><body><h1>Hostile pages</h1><ul>{links}</ul></body></html>")


INDEX = (
    "/download/stall", "/download/trickle", "/download/oversize", "/spin", "/feed/",
    "/dialogs/1", "/redirect/server", "/redirect/script", "/selfnav/", "/popups/1", "/bigdom",
)  # fmt: skip


def create_hostile_app() -> web.Application:
    app = web.Application()
    app[CLOSING] = asyncio.Event()
    app[BIG_DOM] = big_dom_page()
    app.on_shutdown.append(_closing)
    routes = [
        ("/", _index),
        ("/download/{kind}", _download_page),
        ("/media/stall.png", _stall),
        ("/media/trickle.png", _trickle),
        ("/media/oversize.png", _oversize),
        ("/spin", _spin),
        ("/feed/", _feed),
        ("/feed/item/{n}", _feed_item),
        ("/dialogs/{n}", _dialogs),
        ("/redirect/server", _redirect_server),
        ("/redirect/script", _redirect_script),
        ("/redirect/landing", _landing),
        ("/selfnav/", _self_navigating),
        ("/popups/child", _popup_child),
        ("/popups/{n}", _popups),
        ("/bigdom", _big_dom),
    ]
    for path, handler in routes:
        app.router.add_get(path, handler)
    return app


async def _closing(app: web.Application) -> None:
    """Bodies that stall or trickle end when the site stops."""
    app[CLOSING].set()


async def start_hostile_site(port: int = 0) -> tuple[web.AppRunner, str]:
    """Listen on 127.0.0.1:``port`` (0: a free one); the runner and the site's URL."""
    runner = web.AppRunner(create_hostile_app(), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        await web.TCPSite(runner, HOST, port, reuse_address=True).start()
    except OSError as error:
        await runner.cleanup()
        raise SiteError(f"cannot listen on {HOST}:{port}: {error.strerror or error}") from None
    return runner, f"http://{HOST}:{runner.addresses[0][1]}/"


class HostileSite(GallerySite):
    """The hostile site on a free port in a background thread; a context manager."""

    def __init__(self, port: int = 0) -> None:
        super().__init__(port=port)

    async def _start_site(self) -> tuple[web.AppRunner, str]:
        return await start_hostile_site(self._port)

    def truth(self) -> list[dict]:
        raise NotImplementedError("the hostile site has no ground truth: its pages misbehave")


def main(argv: list[str] | None = None) -> int:
    """``python -m landmark.benchmarks.site.hostile --port 8766``: serve it in the foreground."""
    parser = argparse.ArgumentParser(prog="python -m landmark.benchmarks.site.hostile")
    parser.add_argument("--port", type=int, default=8766, help="0 picks a free port")
    args = parser.parse_args(argv)
    with HostileSite(args.port) as site:
        print(f"serving {site.url} (Ctrl-C stops)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
