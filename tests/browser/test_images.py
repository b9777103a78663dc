"""Images: not fetched unless the job asks (``browser.load_images``), and read all the same.

No field needs an image's pixels: an image field is its URL, and a download fetches that
URL itself. Fetching them anyway cost a page its network, decoding and painting, and the
site its bandwidth: on the Gallery site, thumbnails while seeking and the panel's picture
for every container. Without them the browser never picks a ``currentSrc``, so the page's
script does what the browser would have done with ``srcset``, ``sizes`` and ``<picture>``.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from worker_helpers import PageServer, discover_all, guarded, self_job

from landmark.config.records import Status

pytestmark = pytest.mark.browser

# A 1x1 PNG: a loaded image has a box of its own, as on a real page.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)

IMAGES_PAGE = """<!doctype html><html><head><style>
  .hero { width: 40px; height: 40px; background: url(/hero.png); }
</style></head><body><dl>
  <dt>Title</dt><dd>Pictures</dd>
  <dt>Plain</dt><dd><img src="/plain.png" alt=""></dd>
  <dt>Density</dt><dd><img srcset="/d-1x.png 1x, /d-2x.png 2x"></dd>
  <dt>Fallback</dt><dd><img src="/f.png" srcset="/f-2x.png 2x"></dd>
  <dt>Compact</dt><dd><img srcset="/c-1x.png 1x,/c-2x.png 2x"></dd>
  <dt>Width</dt><dd><img srcset="/w-100.png 100w, /w-400.png 400w, /w-2000.png 2000w"
      sizes="(max-width: 10px) 10px, 300px"></dd>
  <dt>Calc</dt><dd><img srcset="/k-300.png 300w,/k-500.png 500w, /k-1400.png 1400w"
      sizes="(max-width: 10px) 100vw, calc(33vw - 20px)"></dd>
  <dt>Picture</dt><dd><picture>
      <source media="(max-width: 10px)" srcset="/p-tiny.png">
      <source type="image/x-unknown" srcset="/p-unknown.png">
      <source srcset="/p-wide.png 1x, /p-wide-2x.png 2x">
      <img src="/p-fallback.png"></picture></dd>
  <dt>Late</dt><dd><picture><img src="/late-img.png"><source srcset="/late-source.png">
      </picture></dd>
  <dt>Hidden</dt><dd><img src="/hidden.png" style="width: 0; height: 0"></dd>
</dl><div class="hero"></div></body></html>"""

FIELDS = ["Plain", "Density", "Fallback", "Compact", "Width", "Calc", "Picture", "Late", "Hidden"]
IMAGE_PATHS = [
    *("/hero.png", "/plain.png", "/d-1x.png", "/d-2x.png", "/f.png", "/f-2x.png", "/c-1x.png"),
    *("/c-2x.png", "/w-100.png", "/w-400.png", "/w-2000.png", "/k-300.png", "/k-500.png"),
    *("/k-1400.png", "/p-tiny.png", "/p-unknown.png", "/p-wide.png", "/p-wide-2x.png"),
    *("/p-fallback.png", "/late-img.png", "/late-source.png", "/hidden.png"),
]


def png_route(handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "image/png")
    handler.send_header("Content-Length", str(len(PNG)))
    handler.end_headers()
    handler.wfile.write(PNG)


def read_images(run, worker_for, tmp: Path, **overrides) -> tuple[dict, list[str]]:
    """The record's fields (None: not found) and the image requests the site saw."""
    pages = {"/": IMAGES_PAGE} | {path: png_route for path in IMAGE_PATHS}
    with PageServer(pages) as server:
        fields = [{"name": "title", "labels": ["Title"], "relation": "next"}]
        fields += [{"name": name.lower(), "labels": [name], "relation": "next"} for name in FIELDS]
        job = self_job(server.url, tmp, fields=fields, **overrides)
        worker = worker_for(job)
        [chunk] = run(discover_all(worker, server.url))
        [record] = guarded(run, worker.extract(chunk))
        images = [path for path in server.requests if path.endswith(".png")]
    assert record.status != Status.FAILED, record.errors
    fields = record.fields.items()
    return {name: value and value.removeprefix(server.url) for name, value in fields}, images


def test_images_are_not_fetched_and_image_fields_still_name_the_one_shown(
    run, worker_for, tmp_path
):
    fields, images = read_images(run, worker_for, tmp_path)

    assert images == []  # not the pictures, not the CSS background
    assert fields == {
        "title": "Pictures",
        "plain": "plain.png",
        "density": "d-1x.png",  # 1x: this screen's density
        "fallback": "f.png",  # src is the 1x of its own srcset
        "compact": "c-1x.png",  # no space after the comma: still two candidates
        "width": "w-400.png",  # the smallest at least as wide as its 300px slot
        "calc": "k-500.png",  # calc(33vw - 20px) of a 1280px viewport: 402px
        "picture": "p-wide.png",  # the first source that applies, at 1x
        "late": "late-img.png",  # a source after the <img> is never one
        "hidden": None,  # sized 0 by its style: hidden, loaded or not
    }


def test_with_load_images_the_browser_fetches_them_and_chooses_the_same(run, worker_for, tmp_path):
    blocked, _ = read_images(run, worker_for, tmp_path / "blocked")
    loaded, images = read_images(
        run, worker_for, tmp_path / "loaded", **{"browser.load_images": True}
    )

    assert loaded == blocked  # the page's choice matches the browser's own
    assert {"/hero.png", "/plain.png", "/d-1x.png", "/w-400.png", "/p-wide.png"} <= set(images)
