"""A job's fields: what to read from each container and how its text becomes a value
(labels and their priority, relations, css, pattern, map, type, lists, defaults)."""

from __future__ import annotations

import math
import re
from enum import StrEnum
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from landmark.config.spec_base import MAX_TEXT, Spec, Text, check_one_group, check_regex


class Relation(StrEnum):
    """Where a field's value sits relative to its landmark label."""

    AFTER = "after"  # later in the same text: "ISBN-13: 978-…"
    NEXT = "next"  # the next element after the label: <span>Prompt</span><p>value</p>
    CELL = "cell"  # the paired cell: dt → dd, th → td, td → next td
    ATTR = "attr"  # an attribute of the labelled element (or of its value element)


class FieldType(StrEnum):
    STRING = "string"
    DATE = "date"  # ISO-8601 at the precision given: 2010, 2010-06, 2010-06-14
    DATETIME = "datetime"  # the same, with a time of day when one is given
    INTEGER = "integer"
    NUMBER = "number"
    URL = "url"  # made absolute against the page URL


class TextOf(StrEnum):
    """Which text of a value element is read."""

    ALL = "all"  # the visible text of the element and everything in it
    OWN = "own"  # the element's own text nodes: <h1>Title <small>subtitle</small></h1> → Title


DEFAULT_SEPARATOR = r"\s*[,;|·•]\s*"


def _check_number(name: str, text: str, kind: FieldType) -> None:
    """The forms a page's number may take (grouped digits, a sign), and finite."""
    plain = re.sub(r"[,'_ \u00a0\u202f]", "", text.strip())
    try:
        number = (int if kind is FieldType.INTEGER else float)(plain)
    except ValueError:
        number = None
    if number is None or not math.isfinite(number):
        raise ValueError(f"field {name!r}: default {text!r} is not of type {kind.value}")


class FieldSpec(Spec):
    name: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128, description="Output key."
    )
    labels: list[Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]] = Field(
        default_factory=list,
        max_length=100,
        description="Landmark label texts, matched case-insensitively on normalised visible "
        "text (whitespace collapsed, a trailing ':' ignored). A match in the main content "
        "wins over one in navigation, an aside or a list of links; among those, an earlier "
        "label wins over a later one (label_regex comes last), then an exact match over a "
        "prefix, then the first in the page. Matches of equal standing that give other "
        "values are noted on the record as 'ambiguous' (narrow it with containers.scope).",
    )
    label_regex: Text | None = Field(
        default=None, description="A regular expression a label's text must match (searched)."
    )
    relation: Relation = Field(default=Relation.NEXT, description="Where the value sits.")
    attr: Text | None = Field(default=None, description="The attribute to read for relation attr.")
    css: Text | None = Field(
        default=None, description="A CSS selector tried when no landmark resolves the field."
    )
    pattern: Text | None = Field(
        default=None,
        description="A regular expression with one group; the group becomes the value.",
    )
    type: FieldType = Field(
        default=FieldType.STRING,
        description="string, date or datetime (made ISO-8601 at the precision written: "
        "2010, 2010-06, 2010-06-14, 2010-06-14T09:30; forms in actors/dates.py), integer, "
        "number or url (made absolute).",
    )
    formats: list[Annotated[str, Field(min_length=2, max_length=100)]] = Field(
        default_factory=list,
        max_length=20,
        description="date/datetime: strptime forms tried first, e.g. ['%d/%m/%Y'] for "
        "day-first dates; the precision kept is what a form names (%Y, %m, %d, %H).",
    )
    required: bool = Field(
        default=True, description="A required field that is missing makes the record 'partial'."
    )
    many: bool = Field(
        default=False,
        description="A list of values: one per element when the value element holds repeated "
        "elements (<li>, links, spans), else its text split on ``separator``. pattern and "
        "type apply to each item; an empty list is 'value empty'.",
    )
    separator: Text | None = Field(
        default=None,
        description="many: a regular expression that splits a text into items; default "
        f"{DEFAULT_SEPARATOR!r} (commas, semicolons, bars, bullets). Use ';' for 'Last, "
        "First' names.",
    )
    map: dict[Annotated[str, Field(min_length=1, max_length=MAX_TEXT)], Text] | None = Field(
        default=None,
        max_length=100,
        description="Text to a value of your own: the first regular expression (searched, "
        "case-insensitive) that the text matches gives the value, e.g. {'sold out|"
        "unavailable': OutOfStock, '.': InStock}. A text no entry matches is an error.",
    )
    default: Text | None = Field(
        default=None,
        description="The value when the page has none for this field (then no error): "
        "e.g. InStock when only a 'Sold out' notice would say otherwise. Typed like a value.",
    )
    text: TextOf = Field(
        default=TextOf.ALL,
        description="all: the element's whole visible text; own: only its own text nodes, "
        "without its children's (a title followed by a subtitle <span>).",
    )

    @field_validator("separator")
    @classmethod
    def _valid_separator(cls, value: str | None) -> str | None:
        if check_regex(value) is None:
            return None
        compiled = re.compile(value)
        if compiled.fullmatch(""):
            raise ValueError(f"a separator must not match an empty text: {value!r}")
        if compiled.groups:
            raise ValueError(f"a separator has no groups (write (?:...) instead): {value!r}")
        return value

    @field_validator("map")
    @classmethod
    def _valid_map(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for pattern in value or {}:
            check_regex(pattern)
        return value

    @field_validator("label_regex")
    @classmethod
    def _valid_label_regex(cls, value: str | None) -> str | None:
        return check_regex(value)

    @field_validator("pattern")
    @classmethod
    def _one_group(cls, value: str | None) -> str | None:
        return check_one_group(value, "pattern", "'seed (\\d+)'")

    @field_validator("formats")
    @classmethod
    def _date_formats(cls, formats: list[str]) -> list[str]:
        for form in formats:
            if "%Y" not in form and "%y" not in form:
                raise ValueError(f"a date format needs a year (%Y or %y): {form!r}")
        return formats

    @model_validator(mode="after")
    def _has_a_way_to_find_it(self) -> FieldSpec:
        if self.formats and self.type not in (FieldType.DATE, FieldType.DATETIME):
            raise ValueError(f"field {self.name!r}: formats are for type date or datetime")
        if not self.labels and not self.label_regex and not self.css:
            raise ValueError(f"field {self.name!r} needs labels, a label_regex or a css fallback")
        if self.relation is Relation.ATTR and not self.attr:
            raise ValueError(f"field {self.name!r} has relation 'attr' but no 'attr' name")
        if self.default is not None and self.type in (FieldType.INTEGER, FieldType.NUMBER):
            _check_number(self.name, self.default, self.type)
        if self.separator is not None and not self.many:
            raise ValueError(f"field {self.name!r}: separator is for many: true")
        if self.text is TextOf.OWN and self.relation in (Relation.AFTER, Relation.ATTR):
            raise ValueError(
                f"field {self.name!r}: text: own reads an element (relation next or cell, or "
                f"css), not relation {self.relation.value!r}"
            )
        return self
