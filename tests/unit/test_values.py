"""finish_value, normalise_label and field_plan: the pure-Python half of extraction."""

from __future__ import annotations

import pytest

from landmark.actors.extraction import field_plan, finish_default, finish_value, normalise_label
from landmark.config.fields import FieldSpec

PAGE = "https://gallery.example/items/42?tab=info"


def spec(type_: str = "string", pattern: str | None = None) -> FieldSpec:
    return FieldSpec(name="value", labels=["Value"], type=type_, pattern=pattern)


# -- strings and patterns ----------------------------------------------------------------


def test_string_is_whitespace_collapsed():
    assert finish_value(spec(), "  a quiet\n\tharbor\u00a0 at dawn ", PAGE) == (
        "a quiet harbor at dawn",
        None,
    )


def test_pattern_takes_its_group():
    assert finish_value(spec("integer", r"seed (\d+)"), "model x, seed 1234", PAGE) == (1234, None)
    assert finish_value(spec(pattern=r"by (\w+)"), "a photo by alice", PAGE) == ("alice", None)


def test_pattern_that_does_not_match_is_an_error():
    assert finish_value(spec(pattern=r"seed (\d+)"), "no seed here", PAGE) == (
        None,
        "pattern did not match",
    )
    optional = spec(pattern=r"seed(?: (\d+))?")
    assert finish_value(optional, "seed", PAGE) == (None, "pattern did not match")


def test_empty_value_is_an_error():
    assert finish_value(spec(), "   ", PAGE) == (None, "value empty")


# -- lists (many: true) ----------------------------------------------------------------------


def many(type_: str = "string", **options) -> FieldSpec:
    return FieldSpec(name="value", labels=["Value"], type=type_, many=True, **options)


def test_many_splits_text_and_keeps_element_items_whole():
    assert finish_value(many(), "red, green ;blue | teal", PAGE) == (
        ["red", "green", "blue", "teal"],
        None,
    )
    assert finish_value(many(), ["Lovelace, Ada", " Hopper, Grace "], PAGE) == (
        ["Lovelace, Ada", "Hopper, Grace"],
        None,
    )
    assert finish_value(many(separator=r"\s+and\s+"), "Ada and Grace", PAGE) == (
        ["Ada", "Grace"],
        None,
    )


def test_many_types_and_patterns_apply_per_item_and_a_bad_item_is_named():
    sizes = many("integer", pattern=r"(\d+) cm")
    assert finish_value(sizes, ["40 cm", "60 cm"], PAGE) == ([40, 60], None)
    assert finish_value(many("integer"), "1, 2, x", PAGE) == (None, "item 3: not an integer: 'x'")
    assert finish_value(many(), " , ;", PAGE) == (None, "value empty")


def test_map_turns_a_text_into_a_value_of_your_own():
    stock = FieldSpec(
        name="stock", css="#stock", map={"sold out|unavailable": "OutOfStock", ".": "InStock"}
    )
    assert finish_value(stock, "Currently UNAVAILABLE online", PAGE) == ("OutOfStock", None)
    assert finish_value(stock, "Only 2 left", PAGE) == ("InStock", None)
    strict = FieldSpec(name="stock", css="#stock", map={"^in stock$": "InStock"})
    assert finish_value(strict, "Back soon", PAGE) == (None, "no map entry matches 'Back soon'")


def test_a_default_is_typed_and_checked_when_the_job_is_read():
    count = FieldSpec(name="count", css="#n", type="integer", default="0")
    assert finish_default(count, PAGE) == (0, None)
    tags = FieldSpec(name="tags", css="#t", many=True, default="none")
    assert finish_default(tags, PAGE) == (["none"], None)
    with pytest.raises(ValueError, match="default 'zero' is not of type integer"):
        FieldSpec(name="count", css="#n", type="integer", default="zero")
    with pytest.raises(ValueError, match="not a valid regular expression"):
        FieldSpec(name="stock", css="#s", map={"([": "x"})


def test_direction_marks_are_invisible_in_labels_and_values():
    assert normalise_label("ASIN\u200f:\u200e ") == "asin"
    assert finish_value(spec(), "B07\u200eFW264WL", PAGE) == ("B07FW264WL", None)


def test_a_single_field_given_a_list_reads_it_as_one_text():
    assert finish_value(spec(), ["a", "b"], PAGE) == ("a b", None)


# -- numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("42", 42),
        ("+7", 7),
        ("-3", -3),
        ("\u22125", -5),
        ("1,234,567", 1234567),
        ("1 234", 1234),
        ("1\u202f234", 1234),
        ("12'345", 12345),
        (" 0012 ", 12),
    ],
)
def test_integers(raw, expected):
    assert finish_value(spec("integer"), raw, PAGE) == (expected, None)


@pytest.mark.parametrize("raw", ["12.5", "1,23", "12,34,567", "seven", "4 2", "--1", "1e3"])
def test_not_integers(raw):
    value, error = finish_value(spec("integer"), raw, PAGE)
    assert value is None
    assert error is not None and error.startswith("not an integer") and raw.strip() in error


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("7.5", 7.5),
        ("-0.25", -0.25),
        (".5", 0.5),
        ("1,234.5", 1234.5),
        ("1e3", 1000.0),
        ("42", 42.0),
    ],
)
def test_numbers(raw, expected):
    assert finish_value(spec("number"), raw, PAGE) == (expected, None)


@pytest.mark.parametrize("raw", ["nan", "inf", "7,5", "1.2.3", "abc", "1e999"])
def test_not_numbers(raw):
    value, error = finish_value(spec("number"), raw, PAGE)
    assert value is None
    assert error is not None and "number" in error


# -- urls ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/media/42.png", "https://gallery.example/media/42.png"),
        ("full.png", "https://gallery.example/items/full.png"),
        ("//cdn.example/x.png", "https://cdn.example/x.png"),
        ("http://other.example/a?b=1", "http://other.example/a?b=1"),
    ],
)
def test_urls_are_made_absolute(raw, expected):
    assert finish_value(spec("url"), raw, PAGE) == (expected, None)


@pytest.mark.parametrize("raw", ["javascript:alert(1)", "data:image/png;base64,AAAA", "mailto:a@b"])
def test_non_http_urls_are_rejected(raw):
    value, error = finish_value(spec("url"), raw, PAGE)
    assert value is None
    assert error is not None and error.startswith("not an http(s) URL")


# -- datetimes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2025-03-05T14:03:22", "2025-03-05T14:03:22"),
        ("2025-03-05T14:03:22Z", "2025-03-05T14:03:22+00:00"),
        ("2025-03-05T14:03:22.250+02:00", "2025-03-05T14:03:22.250000+02:00"),
        ("2025-03-05 14:03:22", "2025-03-05T14:03:22"),
        ("2025-03-05 14:03", "2025-03-05T14:03:00"),
        ("2025-03-05 14:03:22 UTC", "2025-03-05T14:03:22+00:00"),
        ("2025-03-05 14:03:22 -0500", "2025-03-05T14:03:22-05:00"),
        ("2025/03/05 14:03", "2025-03-05T14:03:00"),
        ("2025-03-05", "2025-03-05"),
        ("Mar 5, 2025, 2:03:22 PM", "2025-03-05T14:03:22"),
        ("Mar 5, 2025, 2:03 PM", "2025-03-05T14:03:00"),
        ("March 5, 2025 at 12:15 am", "2025-03-05T00:15:00"),
        ("Mar 5, 2025, 12:00:00 PM UTC", "2025-03-05T12:00:00+00:00"),
        ("5 March 2025 14:03", "2025-03-05T14:03:00"),
        ("5 March 2025 14:03:22 Z", "2025-03-05T14:03:22+00:00"),
        ("5th Mar 2025", "2025-03-05"),
        ("March 5, 2025", "2025-03-05"),
        ("Wednesday, March 5, 2025", "2025-03-05"),
        ("Sept 30, 2024 09:15:00 GMT+5:30", "2024-09-30T09:15:00+05:30"),
    ],
)
def test_datetimes(raw, expected):
    assert finish_value(spec("datetime"), raw, PAGE) == (expected, None)


@pytest.mark.parametrize(
    "raw",
    [
        "yesterday",
        "March 32, 2025",
        "2025-02-30",
        "2025-13-01 10:00",
        "Smarch 5, 2025",
        "Mar 5, 2025, 13:00 PM",
        "12:00",
        "March 5, 2025 UTC",
    ],
)
def test_unparseable_datetimes_name_the_text(raw):
    value, error = finish_value(spec("datetime"), raw, PAGE)
    assert value is None
    assert error == f"not a date/time: {raw!r}"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2008", "2008"),
        ("2010-06", "2010-06"),
        ("June 2010", "2010-06"),
        ("Jun. 2010", "2010-06"),
        ("06/2010", "2010-06"),
        ("14/06/2010", "2010-06-14"),  # day first: 14 cannot be a month
        ("06/14/2010", "2010-06-14"),  # month first: 14 cannot be a month
        ("14.06.2010 09:30", "2010-06-14T09:30:00"),
        ("05/05/2010", "2010-05-05"),
    ],
)
def test_partial_and_numeric_dates_keep_the_precision_written(raw, expected):
    """Publication dates are often a year or a month: ISO 8601 writes them as such, not as
    an invented first of January (they used to be 'not a date/time')."""
    assert finish_value(spec("datetime"), raw, PAGE) == (expected, None)
    assert finish_value(spec("date"), raw, PAGE) == (expected[:10], None)


@pytest.mark.parametrize("raw", ["2010-13", "Smarch 2010", "13/2010", "June"])
def test_partial_dates_that_are_not_dates_are_errors(raw):
    assert finish_value(spec("datetime"), raw, PAGE) == (None, f"not a date/time: {raw!r}")


def test_an_ambiguous_numeric_date_asks_for_formats_and_formats_decide():
    value, error = finish_value(spec("date"), "03/04/2010", PAGE)
    assert value is None and "ambiguous date '03/04/2010'" in error and "formats" in error
    day_first = FieldSpec(name="v", labels=["V"], type="date", formats=["%d/%m/%Y"])
    assert finish_value(day_first, "03/04/2010", PAGE) == ("2010-04-03", None)
    month_only = FieldSpec(name="v", labels=["V"], type="date", formats=["%m-%Y"])
    assert finish_value(month_only, "04-2010", PAGE) == ("2010-04", None)
    timed = FieldSpec(name="v", labels=["V"], type="datetime", formats=["%d/%m/%Y %H.%M"])
    assert finish_value(timed, "03/04/2010 09.30", PAGE) == ("2010-04-03T09:30:00", None)


def test_a_date_field_drops_the_time_of_day():
    assert finish_value(spec("date"), "Mar 5, 2025, 2:03 PM", PAGE) == ("2025-03-05", None)


def test_formats_are_checked_when_the_job_is_read():
    with pytest.raises(ValueError, match="needs a year"):
        FieldSpec(name="v", labels=["V"], type="date", formats=["%d/%m"])
    with pytest.raises(ValueError, match="formats are for type date or datetime"):
        FieldSpec(name="v", labels=["V"], type="string", formats=["%Y"])


def test_datetime_through_a_pattern():
    field = spec("datetime", pattern=r"Created (.+) by")
    assert finish_value(field, "Created 2025-03-05 14:03:22 by alice", PAGE) == (
        "2025-03-05T14:03:22",
        None,
    )


# -- labels and plans ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Creation Time", "creation time"),
        ("  CREATION\n\t time:  ", "creation time"),
        ("Seed :", "seed"),
        ("Seed\uff1a", "seed"),
        ("Prompt\u00a0\u200b:", "prompt"),
        ("ISBN-13", "isbn-13"),
        ("", ""),
    ],
)
def test_normalise_label(raw, expected):
    assert normalise_label(raw) == expected


def test_field_plan_defaults():
    fields = [
        FieldSpec(name="created", labels=["Creation Time:", "Created"], type="datetime"),
        FieldSpec(
            name="image", labels=["Download"], relation="attr", attr="href", css="a[download]"
        ),
        FieldSpec(name="seed", label_regex=r"^seed\b", required=False),
        FieldSpec(name="title", css="h2"),
    ]
    plan = field_plan(fields, None, None)
    assert plan[0] == {
        "name": "created",
        "labels": ["creation time", "created"],
        "labelRegex": None,
        "relation": "next",
        "attr": None,
        "css": None,
        "order": ["landmark"],
        "cachedPath": None,
        "required": True,
        "many": False,
        "own": False,
    }
    assert plan[1]["order"] == ["landmark", "css"]
    assert (plan[1]["relation"], plan[1]["attr"]) == ("attr", "href")
    assert (plan[2]["labelRegex"], plan[2]["order"], plan[2]["required"]) == (
        r"^seed\b",
        ["landmark"],
        False,
    )
    assert plan[3]["order"] == ["css"]


def test_field_plan_orders_and_cached_paths():
    fields = [
        FieldSpec(name="created", labels=["Created"], css=".c"),
        FieldSpec(name="prompt", labels=["Prompt"], css=".p"),
    ]
    plan = field_plan(
        fields,
        {"created": ["css", "landmark", "cached"], "prompt": ["cached", "css", "landmark"]},
        {"created": [0, 2, 1]},
    )
    assert plan[0]["order"] == ["css", "landmark", "cached"]
    assert plan[0]["cachedPath"] == [0, 2, 1]
    assert plan[1]["order"] == ["css", "landmark"]  # no path: nothing to try from the cache
    assert plan[1]["cachedPath"] is None


def test_field_plan_rejects_unknown_strategies():
    with pytest.raises(ValueError, match="unknown strategies"):
        field_plan([FieldSpec(name="a", labels=["A"])], {"a": ["landmark", "xpath"]})
