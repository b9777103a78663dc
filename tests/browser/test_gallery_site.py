"""The Gallery site in real Chromium: container scrolling, the detail panel, virtualisation.

Every wait polls on an interval (polling=50) or uses a locator: a page that is
not in front stalls requestAnimationFrame, and so would these tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from landmark.benchmarks.site import GallerySite, SiteConfig, class_prefix

pytestmark = pytest.mark.browser

ROW_HEIGHT = 140  # benchmarks/site/pages.py
WAIT_MS = 15_000

SCROLL_TO_END = """(p) => {
  const s = document.querySelector(`.${p}-scroller`);
  s.scrollTop = s.scrollHeight;
  return document.querySelectorAll('[data-id]').length;
}"""
MORE_CARDS_OR_DONE = """([p, n]) =>
  document.querySelectorAll('[data-id]').length > n
  || document.querySelector(`.${p}-status`).hasAttribute('data-complete')"""
# The cards in the DOM cover the scroller's viewport (or end with the last item);
# 8 px of slack for the cards' margins.
VIEWPORT_COVERED = """([p, lastId]) => {
  const s = document.querySelector(`.${p}-scroller`);
  const cards = s.querySelectorAll('[data-id]');
  if (!cards.length) return false;
  const box = s.getBoundingClientRect();
  const last = cards[cards.length - 1];
  const top = cards[0].getBoundingClientRect().top;
  const bottom = last.getBoundingClientRect().bottom;
  return top <= box.top + 8 && (bottom >= box.bottom - 8 || last.dataset.id === lastId);
}"""
# What the scroller shows now; then scroll down by ``step`` px (0: stay), saving a round trip.
SNAPSHOT = """([p, step]) => {
  const s = document.querySelector(`.${p}-scroller`);
  const grid = document.querySelector(`.${p}-grid`);
  const state = {
    ids: [...s.querySelectorAll('[data-id]')].map((card) => card.dataset.id),
    atBottom: s.scrollTop + s.clientHeight >= s.scrollHeight - 1,
    clientHeight: s.clientHeight,
    scrollHeight: s.scrollHeight,
    columns: getComputedStyle(grid).gridTemplateColumns.split(' ').length,
    windowScroll: document.scrollingElement.scrollTop,
  };
  s.scrollTop += step;
  return state;
}"""
# Visible label -> value pairs of the open panel, labels normalised as the job does.
PANEL_VALUES = """(id) => {
  const panel = document.querySelector(`[role=dialog][data-item="${id}"]`);
  const values = {};
  for (const label of panel.querySelectorAll('span')) {
    if (!label.nextElementSibling || label.closest('[hidden], [aria-hidden=true]')) continue;
    if (!label.checkVisibility()) continue;
    values[label.textContent.trim().toLowerCase().replace(/:$/, '')] =
      label.nextElementSibling.textContent.trim();
  }
  values.download = panel.querySelector('a[download]').href;
  values.hidden_rows = panel.querySelectorAll('[hidden], [aria-hidden=true]').length;
  return values;
}"""
PANEL_READY = "[role=dialog][data-item='{id}']:not([aria-busy])"


@pytest.fixture
def gallery(request) -> Iterator[GallerySite]:
    with GallerySite(SiteConfig(**request.param)) as site:
        yield site


async def load_everything(page, site: GallerySite) -> list[str]:
    """Scroll the container (never the window) to its end until every card has loaded."""
    prefix = class_prefix(site.config.seed)
    for _ in range(site.config.items // site.config.page_size + 10):
        count = await page.evaluate(SCROLL_TO_END, prefix)
        await page.wait_for_function(
            MORE_CARDS_OR_DONE, arg=[prefix, count], polling=50, timeout=WAIT_MS
        )
        state = await page.evaluate(SNAPSHOT, [prefix, 0])
        if len(state["ids"]) >= site.config.items:
            break
    assert state["windowScroll"] == 0
    return state["ids"]


@pytest.mark.parametrize("gallery", [{"items": 1000, "page_size": 50}], indirect=True)
def test_scrolling_the_container_loads_all_1000_cards(run, page, gallery):
    async def scenario():
        await page.goto(gallery.url)
        return await load_everything(page, gallery)

    ids = run(scenario())
    assert len(set(ids)) == 1000
    assert ids == [row["id"] for row in gallery.truth()]


@pytest.mark.parametrize(
    "gallery", [{"items": 60, "label_variants": True, "missing_rate": 0.3}], indirect=True
)
def test_panel_shows_the_truth_and_hides_the_decoy(run, page, gallery):
    truth = gallery.truth()

    async def open_and_read(row):
        await page.click(f"[data-id='{row['id']}']")
        await page.wait_for_selector(PANEL_READY.format(id=row["id"]), timeout=WAIT_MS)
        return await page.evaluate(PANEL_VALUES, row["id"])

    async def scenario():
        await page.goto(gallery.url)
        seen = [await open_and_read(row) for row in truth[:12]]
        await page.keyboard.press("Escape")
        closed = await page.locator("[role=dialog]").count()
        await open_and_read(truth[0])
        await page.click("[role=dialog] [aria-label=Close]")
        return seen, closed, await page.locator("[role=dialog]").count()

    seen, closed_by_escape, closed_by_button = run(scenario())
    for row, values in zip(truth[:12], seen, strict=True):
        fields = row["fields"]
        by_field = {
            "created": values.get("creation time")
            or values.get("created")
            or values.get("created at")
            or values.get("generated on"),
            "prompt": values.get("prompt") or values.get("text prompt"),
            "model": values.get("model") or values.get("model name"),
            "seed": values.get("seed"),
            "dimensions": values.get("dimensions")
            or values.get("size")
            or values.get("resolution"),
        }
        assert by_field["created"] == fields["created"].replace("T", " ")
        assert by_field["prompt"] == fields["prompt"]
        assert by_field["model"] == fields["model"]
        assert by_field["seed"] == (None if fields["seed"] is None else str(fields["seed"]))
        assert by_field["dimensions"] == fields["dimensions"]
        assert values["download"] == fields["image"]
        assert values["hidden_rows"] == 1  # the decoy was there to be ignored
    assert closed_by_escape == 0 and closed_by_button == 0


@pytest.mark.parametrize("gallery", [{"items": 30, "fail_rate": 1.0}], indirect=True)
def test_failed_item_shows_an_alert_and_a_retry_succeeds(run, page, gallery):
    row = gallery.truth()[2]

    async def scenario():
        await page.goto(gallery.url)
        await page.click(f"[data-id='{row['id']}']")
        alert = page.locator(f"[role=dialog][data-item='{row['id']}'] [role=alert]")
        text = await alert.text_content(timeout=WAIT_MS)
        await page.click(f"[data-id='{row['id']}']")
        await page.wait_for_selector(PANEL_READY.format(id=row["id"]), timeout=WAIT_MS)
        return text, await page.evaluate(PANEL_VALUES, row["id"])

    text, values = run(scenario())
    assert text == "Could not load item: HTTP 500"
    assert values["prompt"] == row["fields"]["prompt"]


@pytest.mark.parametrize(
    "gallery",
    [{"items": 24, "latency_ms": 40, "slow_rate": 0.5, "slow_factor": 20}],
    indirect=True,
)
def test_a_stale_response_does_not_overwrite_the_newer_panel(run, page, gallery):
    truth = gallery.truth()
    slow = next(row for row in truth if row["latency_ms"] > 400)
    fast = next(row for row in truth if row["latency_ms"] < 60)

    async def scenario():
        await page.goto(gallery.url)
        await page.click(f"[data-id='{slow['id']}']")
        await page.click(f"[data-id='{fast['id']}']")
        await page.wait_for_selector(PANEL_READY.format(id=fast["id"]), timeout=WAIT_MS)
        await page.wait_for_function(
            "() => window.gallery.staleResponses >= 1", polling=50, timeout=WAIT_MS
        )
        dialogs = await page.locator("[role=dialog]").count()
        return dialogs, await page.evaluate(PANEL_VALUES, fast["id"])

    dialogs, values = run(scenario())
    assert dialogs == 1
    assert values["model"] == fast["fields"]["model"]


@pytest.mark.parametrize(
    "gallery", [{"items": 1000, "page_size": 50, "virtualize": True}], indirect=True
)
def test_virtualized_list_yields_every_item_once_with_a_small_dom(run, page, gallery):
    prefix = class_prefix(gallery.config.seed)
    truth_ids = [row["id"] for row in gallery.truth()]

    async def scenario():
        await page.goto(gallery.url)
        order: list[str] = []
        seen: set[str] = set()
        max_cards, state, step = 0, {}, 0
        for _ in range(2000):
            await page.wait_for_function(
                VIEWPORT_COVERED, arg=[prefix, truth_ids[-1]], polling=50, timeout=WAIT_MS
            )
            # Steps of a screen less one row: every row passes through a covered viewport.
            state = await page.evaluate(SNAPSHOT, [prefix, step])
            assert len(state["ids"]) == len(set(state["ids"]))
            max_cards = max(max_cards, len(state["ids"]))
            order += [item for item in state["ids"] if item not in seen]
            seen.update(state["ids"])
            if state["atBottom"] and len(seen) == len(truth_ids):
                break
            step = state["clientHeight"] - ROW_HEIGHT
        return order, max_cards, state

    order, max_cards, state = run(scenario())
    assert order == truth_ids
    screen_rows = -(-state["clientHeight"] // ROW_HEIGHT)
    assert max_cards <= (3 * screen_rows + 3) * state["columns"] < 300
    assert state["scrollHeight"] >= -(-1000 // state["columns"]) * ROW_HEIGHT


@pytest.mark.parametrize("gallery", [{"items": 300, "page_size": 30}], indirect=True)
def test_a_page_that_is_not_in_front_still_scrolls_and_loads(run, page, gallery):
    async def scenario():
        background = await page.context.new_page()
        try:
            await page.goto(gallery.url)
            await background.goto(gallery.url)
            await page.bring_to_front()
            return await load_everything(background, gallery)
        finally:
            await background.close()

    ids = run(scenario())
    assert ids == [row["id"] for row in gallery.truth()]
