"""Scoring extraction output against the Gallery site's ground truth.

Accuracy counts fields, not records: a record with four of five fields right
scores 4/5. A field the site left out must come back missing (None); filling it
with anything is wrong. A container with no record at all scores zero.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Score:
    items: int = 0
    records: int = 0
    duplicates: int = 0
    fields_total: int = 0
    fields_correct: int = 0
    missing_expected: int = 0
    missing_reported: int = 0
    unknown_ids: int = 0
    wrong: list[str] = field(default_factory=list)  # a few examples, for the report

    @property
    def accuracy(self) -> float:
        return self.fields_correct / self.fields_total if self.fields_total else 0.0

    @property
    def lost(self) -> int:
        return self.items - self.records


def score(
    truth: list[dict[str, Any]],
    records: Iterable[dict[str, Any]],
    fields: list[str] | None = None,
    examples: int = 5,
) -> Score:
    expected = {item["id"]: item for item in truth}
    result = Score(items=len(expected))
    seen: set[str] = set()
    for record in records:
        item = expected.get(record["id"])
        if item is None:
            result.unknown_ids += 1
            continue
        if record["id"] in seen:
            result.duplicates += 1
            continue
        seen.add(record["id"])
        result.records += 1
        for name in fields or list(item["fields"]):
            want = item["fields"].get(name)
            got = record.get("fields", {}).get(name)
            result.fields_total += 1
            if want is None:
                result.missing_expected += 1
                result.missing_reported += got is None
            if got == want:
                result.fields_correct += 1
            elif len(result.wrong) < examples:
                result.wrong.append(f"{record['id']}.{name}: got {got!r}, want {want!r}")
    missed = len(expected) - len(seen)
    result.fields_total += missed * len(fields or _field_names(truth))
    return result


def _field_names(truth: list[dict[str, Any]]) -> list[str]:
    return list(truth[0]["fields"]) if truth else []
