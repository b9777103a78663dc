"""Scoring extracted fields against a dataset's truth: precision, recall and F1 per field.

The counting follows the published evaluation of the dataset the suite uses (Zyte's
product extraction benchmark, ``evaluate.py``), so that our figures sit beside theirs on
the same terms. Per page and field, with ``true`` the set of accepted values and ``pred``
the one extracted value (or none):

- no prediction: a false negative if the page has a true value, else nothing;
- a prediction among the true values: a true positive;
- any other prediction: a false positive, and a false negative as well when the page has
  a true value (a wrong price is both a wrong answer and a missed one).

Normalisation is the same for every system and written here, never per site:

- price: a decimal number (``1.299,00`` and ``1,299.00`` are both 1299);
- availability: the schema.org name, from a URL (``https://schema.org/InStock``) or a
  text (``In stock``, ``out-of-stock``), compared without case, spaces or punctuation;
- brand: letters and digits only, without case ("De’Longhi" is "DeLonghi");
- sku and others: whitespace collapsed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

Normaliser = Callable[[Any], Any]


def as_decimal(value: Any) -> Decimal | None:
    """A price as a number: the last separator followed by one or two digits is decimal."""
    if isinstance(value, int | float):
        return Decimal(str(value))
    text = re.sub(r"[^\d.,]", "", str(value))
    match = re.fullmatch(r"(.*?)(?:[.,](\d{1,2}))?", text)
    if not match or not re.sub(r"[.,]", "", match.group(1) or ""):
        return None
    whole = re.sub(r"[.,]", "", match.group(1))
    try:
        return Decimal(f"{whole}.{match.group(2) or '0'}")
    except InvalidOperation:
        return None


def as_availability(value: Any) -> str:
    text = str(value).strip().rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"[^a-z]", "", text.lower())


def as_text(value: Any) -> str:
    return " ".join(str(value).split())


def as_name(value: Any) -> str:
    """A name without case or punctuation: "De’Longhi" is "DeLonghi", "R.K." is "RK"."""
    return re.sub(r"[\W_]+", "", str(value).casefold())


NORMALISERS: dict[str, Normaliser] = {
    "price": as_decimal,
    "availability": as_availability,
    "brand": as_name,
}


def normaliser(field: str) -> Normaliser:
    return NORMALISERS.get(field, as_text)


def first_value(value: Any) -> Any:
    """A list field counts by its first item: the datasets give one value per page."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def count(true: Iterable[Any], pred: Any, norm: Normaliser) -> tuple[int, int, int]:
    """(tp, fp, fn) for one page and field. Any answer given counts, even one that does not
    normalise ("Call us" for a price): it is wrong, as in ``evaluate.py``."""
    accepted = {norm(value) for value in true} - {None, ""}
    answer = first_value(pred)
    if answer is None:
        return (0, 0, 1) if accepted else (0, 0, 0)
    if norm(answer) in accepted:
        return 1, 0, 0
    return 0, 1, 1 if accepted else 0


@dataclass(slots=True)
class FieldScore:
    """Sums over the pages of a site (or of all sites) for one field."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    support: int = 0  # pages with a true value

    def add(self, true: list[Any], pred: Any, field: str) -> tuple[int, int, int]:
        counted = count(true, pred, normaliser(field))
        self.tp += counted[0]
        self.fp += counted[1]
        self.fn += counted[2]
        self.support += bool([value for value in true if value not in (None, "")])
        return counted

    def merge(self, other: FieldScore) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.support += other.support

    @property
    def precision(self) -> float:
        if self.fp == self.fn == 0:
            return 1.0
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        if self.fp == self.fn == 0:
            return 1.0
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "support": self.support,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
        }
