"""Pages nobody here wrote: label order as priority, decoys in navigation and filter
lists, disagreeing candidates, list fields and an element's own text (product.html)."""

from __future__ import annotations

from typing import Any

import pytest
from test_landmarks import field, open_fixture, resolve

from landmark.actors.extraction import Finished, finish_field, finish_value
from landmark.config.fields import FieldSpec

pytestmark = pytest.mark.browser

PAGE = "http://127.0.0.1/product"


def read(run, page, root: str | None, *fields: FieldSpec, **plan: Any) -> dict[str, Any]:
    counted = open_fixture(run, page, "product.html")
    return resolve(run, counted, root, *fields, **plan)


def finished(spec: FieldSpec, raw: dict[str, Any]) -> tuple[Any, str | None]:
    if raw["value"] is None:
        return None, raw["error"]
    return finish_value(spec, raw["value"], PAGE)


def test_label_order_is_a_priority(run, page):
    vendor_first = field("by", "Vendor", "Publisher")
    publisher_first = field("by", "Publisher", "Vendor")
    assert read(run, page, None, vendor_first)["by"]["value"] == "Northwind Press"
    assert read(run, page, None, publisher_first)["by"]["value"] == "Contoso Books"


def test_navigation_and_filter_links_rank_below_main_content(run, page):
    # "Publisher" comes first in <nav>, then as a filter link whose neighbour is
    # "Top Rated 5 stars and up"; "Language" is in a plain list of links.
    found = read(run, page, None, field("publisher", "Publisher"), field("language", "Language"))
    assert found["publisher"]["value"] == "Contoso Books"
    assert found["language"]["value"] == "German"


def test_a_decoy_is_still_used_when_nothing_better_exists(run, page):
    fmt = field("format", "Format")
    assert read(run, page, None, fmt)["format"]["value"] == "Hardcover"
    assert read(run, page, "#filters", fmt)["format"]["value"] == "Paperback"  # no rival


def test_candidates_that_disagree_are_noted_as_ambiguous(run, page):
    price = field("price", "Price", relation="after", type="number")
    two = read(run, page, "#two-prices", price)["price"]
    assert (two["value"], two["others"]) == ("12.00", ["14.50"])  # the first, and its rival
    done = finish_field(price, two, PAGE)
    assert done.value == 12.0 and done.error is None
    assert done.note.startswith("ambiguous: 'price' also gives '14.5' (kept '12.0')")
    same = read(run, page, "#same-price", price)["price"]
    assert same["value"] == "9.99" and "others" not in same
    assert finish_field(price, same, PAGE).note is None


def test_rivals_that_agree_once_finished_are_no_ambiguity():
    price = field("price", "Price", relation="after", pattern=r"([\d.]+)", type="number")
    raw = {"value": "$12.00", "others": ["12.00 USD"], "label": "price"}
    assert finish_field(price, raw, PAGE).note is None


def test_a_cached_path_never_outranks_a_higher_label(run, page):
    publisher_only = field("by", "Publisher")
    found = read(run, page, "#product", publisher_only)["by"]
    assert found["value"] == "Contoso Books"
    both = field("by", "Vendor", "Publisher")
    cached = read(run, page, "#product", both, cached_paths={"by": found["path"]})["by"]
    assert cached["value"] == "Northwind Press"


def test_many_one_value_per_repeated_element(run, page):
    authors = field("authors", "Authors", relation="cell", many=True)
    editions = field("editions", "Editions", relation="cell", many=True, type="date")
    raw = read(run, page, None, authors, editions)
    assert finished(authors, raw["authors"]) == (
        ["Ada Lovelace", "Grace Hopper", "Alan Turing"],
        None,
    )
    assert finished(editions, raw["editions"]) == (["2008", "2010-06", "2021-03-04"], None)


def test_many_splits_a_text_on_its_separator(run, page):
    keywords = field("keywords", "Keywords", relation="cell", many=True)
    default = field("translator", "Translator", relation="cell", many=True)
    own_separator = field("translator", "Translator", relation="cell", many=True, separator=";")
    raw = read(run, page, None, keywords, default)
    assert finished(keywords, raw["keywords"]) == (["crawling", "extraction", "metadata"], None)
    assert finished(default, raw["translator"]) == (["Smith", "John"], None)
    raw = read(run, page, None, own_separator)
    assert finished(own_separator, raw["translator"]) == (["Smith, John"], None)


def test_many_through_css_and_an_empty_list(run, page):
    crumbs = FieldSpec(name="crumbs", css="#crumbs li", many=True)
    series = field("series", "Series", relation="cell", many=True)
    raw = read(run, page, None, crumbs, series)
    assert finished(crumbs, raw["crumbs"]) == (["Books", "Language", "English only"], None)
    assert finished(series, raw["series"]) == (None, "value empty")


def test_text_own_leaves_children_out(run, page):
    whole = FieldSpec(name="title", css="#title")
    own = FieldSpec(name="title", css="#title", text="own")
    series = field("series", "Series title")
    series_own = field("series", "Series title", text="own")
    assert read(run, page, None, whole)["title"]["value"] == "The Art of Crawling A Field Guide"
    assert read(run, page, None, own)["title"]["value"] == "The Art of Crawling"
    assert read(run, page, None, series)["series"]["value"] == "Field Guides Vol. 3"
    assert read(run, page, None, series_own)["series"]["value"] == "Field Guides"


def test_direction_marks_around_a_labels_colon_are_invisible(run, page):
    found = read(run, page, None, field("asin", "ASIN"))["asin"]
    assert found["value"] == "B07FW264WL"


def test_a_label_link_beside_its_value_link_and_an_article_footer_are_main_content(run, page):
    imprint = field("imprint", "Imprint", relation="after")
    posted = field("posted", "Posted by")
    found = read(run, page, None, imprint, posted)
    assert found["imprint"]["value"] == "Contoso Classics"
    assert found["posted"]["value"] == "Ada"


def test_lists_split_by_br_phrases_and_lists_of_one(run, page):
    lines = field("lines", "Lines", relation="cell", many=True)
    phrase = field("phrase", "Phrase", relation="cell", many=True)
    one = field("one", "One", relation="cell", many=True)
    raw = read(run, page, "#lists", lines, phrase, one)
    assert finished(lines, raw["lines"]) == (["Ada Lovelace", "Grace Hopper"], None)
    assert finished(phrase, raw["phrase"]) == (["Free delivery"], None)  # one text, no commas
    assert finished(one, raw["one"]) == (["Lovelace, Ada"], None)  # not split on its comma


def test_many_reads_attributes_of_head_elements(run, page):
    tags = FieldSpec(
        name="tags", css='meta[name="tag"]', relation="attr", attr="content", many=True
    )
    raw = read(run, page, None, tags)
    assert finished(tags, raw["tags"]) == (["crawling", "metadata"], None)


def test_text_own_never_falls_back_to_a_childs_link(run, page):
    maker = field("maker", "Maker", relation="cell", text="own")
    assert read(run, page, "#lists", maker)["maker"]["error"] == "value empty"
    whole = field("maker", "Maker", relation="cell")
    assert read(run, page, "#lists", whole)["maker"]["value"] == "Acme"


def test_a_default_fills_an_absent_field_but_never_hides_a_wrong_job(run, page):
    absent = FieldSpec(name="stock", css="#no-notice", map={".": "OutOfStock"}, default="InStock")
    broken = FieldSpec(name="sold", css="#stock[", default="InStock")
    raw = read(run, page, None, absent, broken)
    assert finish_field(absent, raw["stock"], PAGE) == Finished("InStock")
    assert finish_field(broken, raw["sold"], PAGE) == Finished(
        error="invalid css selector: #stock["
    )


def test_many_next_takes_the_run_of_links_after_the_label(run, page):
    tags = field("tags", "Tags", many=True)
    one = field("tags", "Tags")
    assert finished(tags, read(run, page, None, tags)["tags"]) == (
        ["crawling", "metadata", "ray"],
        None,
    )
    assert read(run, page, None, one)["tags"]["value"] == "crawling"  # one value: the first
