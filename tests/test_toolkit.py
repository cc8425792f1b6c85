"""How the rule authors' toolkit shows numbers (SPEC §1: exact, never rounded), and the
old name of :func:`pricecalc.toolkit.number_text` kept for plugins until 0.4."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pricecalc import toolkit
from pricecalc.toolkit import fraction, number_text, percent


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (Decimal("70"), "70"),
        (Decimal("70.0"), "70"),
        (Decimal("69.99"), "69.99"),
        (Decimal("0.50"), "0.5"),
        (Decimal("7E+1"), "70"),
        (Decimal("0.000001"), "0.000001"),
    ],
)
def test_number_text_writes_a_number_exactly_as_people_do(number: Decimal, expected: str) -> None:
    """SPEC §1: a number is shown exactly — no exponent, no trailing zeros, no rounding."""
    assert number_text(number) == expected


def test_percent_and_fraction_are_exact() -> None:
    """SPEC §1: a rate is shown exactly, as a percentage or a fraction of four decimals."""
    assert percent(Decimal("0.0054")) == "0.54%"
    assert fraction(Decimal("0.0054")) == "0.0054"
    assert fraction(Decimal("0.00545")) == "0.00545"


def test_the_old_name_plain_still_works_and_says_its_new_name() -> None:
    """``toolkit.plain`` (one of five meanings of "plain") is ``number_text`` until 0.4."""
    with pytest.warns(DeprecationWarning) as caught:
        assert toolkit.plain(Decimal("69.90")) == "69.9"
    assert [str(w.message) for w in caught] == [
        "pricecalc.toolkit.plain is now pricecalc.toolkit.number_text in pricecalc 0.3; "
        "the old name goes in 0.4"
    ]
