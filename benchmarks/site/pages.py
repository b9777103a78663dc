"""HTML for the gallery page and the standalone item pages.

The gallery page is rendered once per config (CSS and JS inline, so a page
load is one request); item pages are rendered per request from ``data``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from html import escape
from pathlib import Path

from landmark.benchmarks.site.config import SiteConfig
from landmark.benchmarks.site.data import Item, Row, class_prefix
from landmark.benchmarks.site.images import MEDIA_SIZE, THUMB_SIZE

HERE = Path(__file__).parent
ROW_HEIGHT = 140  # px per grid row: card height 132 + 2 x 4 margin (gallery.css)
CARD_WIDTH = 180  # px per grid column, at least
CHECK_INTERVAL_MS = 100


@lru_cache(maxsize=64)
def gallery_html(config: SiteConfig) -> str:
    prefix = class_prefix(config.seed)
    settings = {
        "prefix": prefix,
        "page_size": config.page_size,
        "virtualize": config.virtualize,
        "row_height": ROW_HEIGHT,
        "card_width": CARD_WIDTH,
        "thumb_size": THUMB_SIZE,
        "media_size": MEDIA_SIZE,
        "check_interval_ms": CHECK_INTERVAL_MS,
        "panel": config.panel,
    }
    script = (HERE / "gallery.js").read_text(encoding="utf-8")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Gallery</title>
<style>{_css(prefix)}</style></head>
<body><div class="{prefix}-app">
<main class="{prefix}-main"><h1 class="{prefix}-header">Gallery</h1>
<div class="{prefix}-scroller"><div class="{prefix}-grid"></div>
<div class="{prefix}-status" aria-live="polite">Loading…</div></div></main>
<aside class="{prefix}-side"></aside></div>
<script type="application/json" id="gallery-config">{_json_in_html(settings)}</script>
<script>{script}</script></body></html>"""


def item_html(config: SiteConfig, item: Item) -> str:
    """A standalone item page: the same rows as the panel, server-rendered, no dialog."""
    prefix = class_prefix(config.seed)
    rows = "\n".join(_row_html(prefix, row) for row in item.rows())
    title = escape(item.title)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} · Gallery</title>
<style>{_css(prefix)}</style></head>
<body><main class="{prefix}-item" data-item="{item.id}">
<p><a href="/">Back to the gallery</a></p>
<h1 class="{prefix}-heading">{title}</h1>
<img class="{prefix}-preview" src="{item.image_path}" width="{MEDIA_SIZE}" height="{MEDIA_SIZE}"
 alt="{title}">
<div class="{prefix}-body">
{rows}
<a class="{prefix}-dl" href="{item.image_path}" download>Download</a>
</div></main></body></html>"""


def error_html(status: int, message: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>HTTP {status}</title></head>
<body><div role="alert">{escape(message)}: HTTP {status}</div></body></html>"""


def _row_html(prefix: str, row: Row) -> str:
    attrs = f'class="{prefix}-row"'
    if row.hidden == "attribute":
        attrs += " hidden"
    elif row.hidden == "aria":
        attrs = f'class="{prefix}-row {prefix}-ghost" aria-hidden="true"'
    return (
        f'<div {attrs}><span class="{prefix}-label">{escape(row.label)}</span>'
        f'<span class="{prefix}-value">{escape(row.value)}</span></div>'
    )


@lru_cache(maxsize=64)
def _css(prefix: str) -> str:
    return (HERE / "gallery.css").read_text(encoding="utf-8").replace("__H__", prefix)


def _json_in_html(value: object) -> str:
    return json.dumps(value).replace("</", "<\\/")
