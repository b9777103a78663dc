"""landmarks.js in a real Chromium: every relation, the decoys, the waits, one call each."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from landmark.actors.extraction import (
    LANDMARKS_JS,
    Settled,
    ensure_installed,
    field_plan,
    resolve_now,
    settle_and_resolve,
)
from landmark.config.fields import FieldSpec

pytestmark = pytest.mark.browser

FIXTURES = Path(__file__).parent / "fixtures"


class CountingPage:
    """A page whose evaluate calls are counted: the one-round-trip contract made checkable."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.calls = 0

    async def evaluate(self, expression: str, arg: Any = None) -> Any:
        self.calls += 1
        return await self.page.evaluate(expression, arg)


def field(name: str, *labels: str, **options: Any) -> FieldSpec:
    return FieldSpec(name=name, labels=list(labels), **options)


def open_fixture(run, page, name: str) -> CountingPage:
    run(page.goto((FIXTURES / name).as_uri()))
    run(ensure_installed(page))
    return CountingPage(page)


def resolve(run, counted: CountingPage, root: str | None, *fields: FieldSpec, **plan: Any):
    """Resolve without waiting and insist it took exactly one evaluate call."""
    before = counted.calls
    settled = run(resolve_now(counted, root, field_plan(list(fields), **plan)))
    assert counted.calls - before == 1
    return settled.fields


def settle(run, counted: CountingPage, root: str | None, *fields: FieldSpec, **options: Any):
    before = counted.calls
    settled = run(
        settle_and_resolve(
            counted,
            root,
            field_plan(list(fields)),
            timeout=options.get("timeout", timedelta(seconds=10)),
            quiet=options.get("quiet", timedelta(milliseconds=150)),
            error_selector=options.get("error_selector", "[role=alert]"),
        )
    )
    assert counted.calls - before == 1
    return settled


def values(fields: dict[str, dict]) -> dict[str, str | None]:
    return {name: raw["value"] for name, raw in fields.items()}


# -- relations -------------------------------------------------------------------------


def test_next_relation_label_variants_nested_spans_and_media(run, page):
    counted = open_fixture(run, page, "relations.html")
    got = resolve(
        run,
        counted,
        "#next",
        field("created", "  creation   TIME: "),
        field("prompt", "Prompt"),
        field("model", "model"),
        field("seed", "Seed:"),
        field("preview", "Preview"),
        field("source", "Source"),
    )
    assert values(got) == {
        "created": "2025-03-05 14:03:22",
        "prompt": "a quiet harbor at dawn",
        "model": "Flux.1 dev",
        "seed": "42",
        "preview": "file:///media/p1.png",
        "source": "file:///items/p1",
    }
    assert {raw["strategy"] for raw in got.values()} == {"landmark"}
    assert got["created"]["path"] == [0, 0]


def test_after_relation_same_text_node_and_following_text(run, page):
    counted = open_fixture(run, page, "relations.html")
    after = {"relation": "after"}
    got = resolve(
        run,
        counted,
        "#after",
        field("isbn", "ISBN-13", **after),
        field("publisher", "publisher", **after),
        field("summary", "Summary", **after),
        field("pages", "Pages", **after),
        field("edition", "Edition", **after),
        field("temperature", "Temperature", **after),
        field("isbn10", "ISBN", **after),
    )
    assert values(got) == {
        "isbn": "978-0-306-40615-7",
        "publisher": "Gallery Press",
        "summary": "a very short book",
        "pages": "321",
        "edition": "second",
        "temperature": "-5",
        "isbn10": None,  # "ISBN-13" is not the label "ISBN" followed by a separator
    }


def test_cell_relation_definition_lists(run, page):
    counted = open_fixture(run, page, "relations.html")
    cell = {"relation": "cell"}
    got = resolve(
        run,
        counted,
        "#dl",
        field("created", "Creation Time", **cell),
        field("seed", "Seed", **cell),
        field("width", "Width", **cell),
        field("steps", "Steps", **cell),
    )
    assert values(got) == {
        "created": "Mar 5, 2025, 2:03:22 PM",
        "seed": "1234",
        "width": "512",  # two terms share one description
        "steps": None,
    }
    assert got["steps"]["error"] == "value empty"


def test_cell_relation_row_headers_and_column_headers(run, page):
    counted = open_fixture(run, page, "relations.html")
    cell = {"relation": "cell"}
    rows = resolve(
        run,
        counted,
        "#rows",
        field("model", "Model", **cell),
        field("sampler", "Sampler", **cell),
        field("seed", "Seed", **cell),
    )
    assert values(rows) == {"model": "SDXL 1.0", "sampler": "Euler a", "seed": "777"}
    columns = resolve(
        run,
        counted,
        "#columns",
        field("name", "Name", **cell),
        field("size", "Size", **cell),
        field("created", "Created", **cell),
    )
    assert values(columns) == {"name": "cat.png", "size": "1024", "created": "2024-12-31"}


def test_attr_relation_self_ancestor_and_next_sibling(run, page):
    counted = open_fixture(run, page, "relations.html")
    got = resolve(
        run,
        counted,
        "#attr",
        field("created", "Creation Time", relation="attr", attr="data-created"),
        field("seed", "Seed", relation="attr", attr="data-seed"),
        field("size", "Download", relation="attr", attr="data-size"),
    )
    assert values(got) == {"created": "2025-03-05T14:03:22Z", "seed": "99", "size": "2048"}


def test_hidden_decoys_are_ignored(run, page):
    counted = open_fixture(run, page, "relations.html")
    got = resolve(run, counted, "#decoys", field("model", "Model"), field("seed", "Seed"))
    assert values(got) == {"model": "the real model", "seed": "5150"}


def test_display_contents_rows_split_labels_and_empty_images(run, page):
    counted = open_fixture(run, page, "relations.html")
    got = resolve(
        run,
        counted,
        "#variants",
        field("sampler", "Sampler"),
        field("created", "Creation Time"),
        field("steps", "Steps"),
    )
    assert values(got) == {"sampler": "DPM++ 2M", "created": "split label", "steps": None}
    assert got["steps"]["error"] == "value empty"


def test_missing_field_is_missing_not_a_neighbour(run, page):
    counted = open_fixture(run, page, "relations.html")
    got = resolve(
        run,
        counted,
        "#missing",
        field("created", "Creation Time"),
        field("prompt", "Prompt"),
        field("model", "Model"),
        field("empty", "Empty"),
    )
    assert values(got) == {
        "created": None,
        "prompt": "only a prompt",
        "model": "Kandinsky 3",
        "empty": None,
    }
    assert got["created"]["error"] == "label not found"
    assert got["created"]["strategy"] is None
    empty_row = resolve(run, counted, "#next", field("empty", "Empty"))
    assert empty_row["empty"] == {
        "value": None,
        "strategy": None,
        "error": "value empty",
        "path": None,
    }


@pytest.mark.parametrize("root", ["#date-first", "#modified-first"])
def test_shared_prefix_labels_take_their_own_rows(run, page, root):
    counted = open_fixture(run, page, "prefix.html")
    got = resolve(run, counted, root, field("date", "Date"))
    assert got["date"]["value"] == "2025-01-01"
    both = resolve(run, counted, root, field("date", "Date"), field("modified", "Date modified"))
    assert values(both) == {"date": "2025-01-01", "modified": "2025-02-02"}


@pytest.mark.parametrize("root", ["#only-modified", "#dl-only-modified"])
def test_a_longer_label_is_not_taken_for_a_missing_shorter_one(run, page, root):
    counted = open_fixture(run, page, "prefix.html")
    relation = "cell" if root.startswith("#dl") else "next"
    got = resolve(run, counted, root, field("date", "Date", relation=relation))
    assert got["date"]["value"] is None
    assert got["date"]["error"] == "label not found"


def test_shared_prefix_with_relation_after(run, page):
    counted = open_fixture(run, page, "prefix.html")
    first = resolve(run, counted, "#after-modified-first", field("date", "Date", relation="after"))
    assert first["date"]["value"] == "2025-01-01"
    only = resolve(run, counted, "#after-only-modified", field("date", "Date", relation="after"))
    assert only["date"]["value"] is None


def test_label_regex(run, page):
    counted = open_fixture(run, page, "relations.html")
    got = resolve(
        run,
        counted,
        None,
        FieldSpec(name="created", label_regex=r"^creation\s+time$"),
        FieldSpec(name="isbn", label_regex=r"^isbn(-1[03])?", relation="after"),
    )
    # Four "Creation Time" labels in the page: the first is taken, its rivals go with it.
    assert got["created"]["value"] == "2025-03-05 14:03:22"
    assert got["created"]["others"][0] == "Mar 5, 2025, 2:03:22 PM"
    assert len(got["created"]["others"]) == 3  # no more are carried
    assert got["isbn"]["value"] == "978-0-306-40615-7"
    scoped = resolve(run, counted, "#next", FieldSpec(name="created", label_regex=r"^creation"))
    assert scoped["created"]["value"] == "2025-03-05 14:03:22"


# -- strategies ------------------------------------------------------------------------


def test_css_fallback_when_no_label_exists(run, page):
    counted = open_fixture(run, page, "relations.html")
    got = resolve(
        run,
        counted,
        "#fallback",
        field("title", "Title", css="[class$=-title]"),
        field("views", css="[data-views]", relation="attr", attr="data-views"),
    )
    assert values(got) == {"title": "A hashed title", "views": "1,234"}
    assert got["title"]["strategy"] == "css"
    assert got["views"]["strategy"] == "css"


def test_strategy_order_is_respected(run, page):
    counted = open_fixture(run, page, "relations.html")
    model = field("model", "Model", css=".row:nth-child(4) span:last-child")
    css_first = resolve(run, counted, "#next", model, orders={"model": ["css", "landmark"]})
    assert css_first["model"]["value"] == "42"
    assert css_first["model"]["strategy"] == "css"
    landmark_first = resolve(run, counted, "#next", model, orders={"model": ["landmark", "css"]})
    assert landmark_first["model"]["value"] == "Flux.1 dev"
    assert landmark_first["model"]["strategy"] == "landmark"
    title = field("title", "Title", css="[class$=-title]")
    no_css = resolve(run, counted, "#fallback", title, orders={"title": ["landmark"]})
    assert no_css["title"]["value"] is None
    assert no_css["title"]["error"] == "label not found"


def test_cached_path_hit(run, page):
    counted = open_fixture(run, page, "relations.html")
    model = field("model", "Model")
    found = resolve(run, counted, "#next", model)["model"]
    assert found["strategy"] == "landmark"
    cached = resolve(run, counted, "#next", model, cached_paths={"model": found["path"]})
    assert cached["model"] == {**found, "strategy": "cached"}


def test_stale_cached_path_falls_through(run, page):
    counted = open_fixture(run, page, "relations.html")
    seed_label = [3, 0]  # in #next: the Seed row's label, not the Model row's
    model = field("model", "Model")
    stale = resolve(run, counted, "#next", model, cached_paths={"model": seed_label})
    assert stale["model"]["value"] == "Flux.1 dev"
    assert stale["model"]["strategy"] == "landmark"
    only_cache = resolve(
        run,
        counted,
        "#next",
        model,
        orders={"model": ["cached"]},
        cached_paths={"model": [99, 0]},
    )
    assert only_cache["model"]["value"] is None
    assert only_cache["model"]["error"] == "cache stale"
    # The row is gone: a path that now lands on a neighbour's label must not read its value.
    gone = resolve(run, counted, "#missing", field("seed", "Seed"), cached_paths={"seed": [1, 0]})
    assert gone["seed"]["value"] is None
    assert gone["seed"]["error"] == "label not found"


def test_root_not_found(run, page):
    counted = open_fixture(run, page, "relations.html")
    settled = run(resolve_now(counted, "#no-such-panel", field_plan([field("model", "Model")])))
    assert not settled.root_found
    assert settled.fields["model"]["error"] == "root not found"


# -- settle --------------------------------------------------------------------------


CREATED = field("created", "Creation Time")
PROMPT = field("prompt", "Prompt")


def test_settle_waits_for_a_panel_filled_later(run, page):
    counted = open_fixture(run, page, "settle.html")
    run(page.evaluate("fillLater(300)"))
    settled = settle(run, counted, "#panel", CREATED, PROMPT)
    assert settled.state == "ready"
    assert settled.waited_ms > 0
    assert values(settled.fields) == {"created": "2025-03-05 14:03:22", "prompt": "a koi pond"}


def test_settle_reports_a_page_error(run, page):
    counted = open_fixture(run, page, "settle.html")
    run(page.evaluate("alertLater(200)"))
    settled = settle(run, counted, "#panel", CREATED, PROMPT)
    assert settled.state == "error"
    assert settled.error_text == "Could not load item a1"


def test_settle_gives_up_on_a_missing_required_field_once_quiet(run, page):
    counted = open_fixture(run, page, "settle.html")
    run(page.evaluate("partialLater(100)"))
    settled = settle(run, counted, "#panel", CREATED, PROMPT, timeout=timedelta(seconds=60))
    assert settled.state == "ready"  # not "timeout": the quiet DOM ended the wait
    assert settled.fields["prompt"]["value"] == "a koi pond"
    assert settled.fields["created"]["error"] == "label not found"


def test_settle_times_out_when_nothing_appears(run, page):
    counted = open_fixture(run, page, "settle.html")
    settled = settle(run, counted, "#panel", CREATED, PROMPT, timeout=timedelta(milliseconds=300))
    assert settled.state == "timeout"
    assert values(settled.fields) == {"created": None, "prompt": None}


def test_settle_waits_for_the_root_to_exist(run, page):
    counted = open_fixture(run, page, "settle.html")
    run(page.evaluate("panelLater(150)"))
    settled = settle(run, counted, "#late-panel", CREATED, PROMPT)
    assert settled.state == "ready"
    assert settled.root_found
    assert values(settled.fields) == {"created": "2025-03-05 14:03:22", "prompt": "late"}


def test_settle_on_a_background_page(run, page):
    counted = open_fixture(run, page, "settle.html")
    front = run(page.context.new_page())
    run(front.set_content("<p>in front</p>"))
    run(front.bring_to_front())
    run(page.evaluate("fillLater(200)"))
    settled = settle(run, counted, "#panel", CREATED, PROMPT)
    assert settled.state == "ready"
    assert values(settled.fields) == {"created": "2025-03-05 14:03:22", "prompt": "a koi pond"}


# -- installation ----------------------------------------------------------------------


def test_first_call_installs_then_one_call_each(run, page):
    run(page.goto((FIXTURES / "relations.html").as_uri()))
    counted = CountingPage(page)
    plan = field_plan([field("model", "Model")])
    first = run(resolve_now(counted, "#next", plan))
    assert counted.calls == 3  # asked, installed, asked again
    second = run(resolve_now(counted, "#next", plan))
    assert counted.calls == 4
    assert first.fields == second.fields
    assert isinstance(second, Settled)
    run(ensure_installed(page))  # idempotent: installing again changes nothing
    assert run(resolve_now(counted, "#next", plan)).fields == first.fields


def test_init_script_makes_the_first_call_the_only_one(run, browser):
    context = run(browser.new_context())
    try:
        run(context.add_init_script(script=LANDMARKS_JS))
        page = run(context.new_page())
        run(page.goto((FIXTURES / "relations.html").as_uri()))
        counted = CountingPage(page)
        got = run(resolve_now(counted, "#next", field_plan([field("model", "Model")])))
        assert counted.calls == 1
        assert got.fields["model"]["value"] == "Flux.1 dev"
    finally:
        run(context.close())
