"""The accuracy suite's scoring: the dataset's own counting, one normalisation for all."""

from __future__ import annotations

from decimal import Decimal

import pytest

from landmark.benchmarks.accuracy.scoring import (
    FieldScore,
    as_availability,
    as_decimal,
    as_name,
    count,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("£450", "450"),
        ("1.299,00 €", "1299"),
        ("1,299.00", "1299"),
        ("2,190.00 ARS", "2190"),
        ("7,95 EUR", "7.95"),
        ("1,299", "1299"),
        (87.11, "87.11"),
        ("free", None),
    ],
)
def test_prices_are_decimals_whatever_the_separators(text, expected):
    assert as_decimal(text) == (Decimal(expected) if expected else None)


def test_availability_and_names_compare_without_decoration():
    assert as_availability("https://schema.org/InStock") == as_availability("In stock") == "instock"
    assert as_availability("Out-of-stock") == "outofstock"
    assert as_name("De’Longhi") == as_name("DeLonghi")
    assert as_name("adidas Performance") != as_name("adidas")


def test_counting_follows_the_dataset_a_wrong_value_is_both_fp_and_fn():
    assert count(["450"], "£450", as_decimal) == (1, 0, 0)
    assert count(["450"], "£45", as_decimal) == (0, 1, 1)
    assert count(["450"], None, as_decimal) == (0, 0, 1)
    assert count([], "£45", as_decimal) == (0, 1, 0)
    assert count([], None, as_decimal) == (0, 0, 0)
    assert count(["a", "b"], ["b", "c"], str) == (1, 0, 0)  # a list counts by its first item
    assert count(["450"], "Call us", as_decimal) == (0, 1, 1)  # an answer, and a wrong one
    assert count([], "Call us", as_decimal) == (0, 1, 0)


def test_field_scores_sum_and_give_precision_recall_f1():
    score = FieldScore()
    for true, got in ((["1"], "1"), (["2"], "3"), (["4"], None), ([], "5")):
        score.add(true, got, "price")
    assert (score.tp, score.fp, score.fn, score.support) == (1, 2, 2, 3)
    assert score.precision == pytest.approx(1 / 3)
    assert score.recall == pytest.approx(1 / 3)
    assert score.f1 == pytest.approx(1 / 3)
    assert FieldScore().f1 == 1.0  # nothing to find and nothing found
