"""Money conventions (SPEC §1): parsing, formatting, rounding and allocation.

pricecalc.money is the only module that rounds; these tests pin every accepted and refused
amount form, the HALF_UP steps (independent of the ambient decimal context), and the
largest-remainder allocation as properties.
"""

from __future__ import annotations

import decimal
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, strategies as st

from pricecalc.errors import InvalidInput
from pricecalc.money import (
    allocate,
    allocate_fen,
    fen,
    fmt,
    fmt_rate,
    parse_amount,
    parse_rate,
    rate_of,
)
from pricecalc.serialize import loads

FIELD = "input.list_price"


# -- parsing -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("199", Decimal("199.00")),
        ("199.9", Decimal("199.90")),
        ("199.00", Decimal("199.00")),
        (199, Decimal("199.00")),
        (Decimal("199.9"), Decimal("199.90")),
        ("0.01", Decimal("0.01")),
    ],
)
def test_accepted_amount_forms(value: Any, expected: Decimal) -> None:
    """SPEC §1: "199", "199.9", "199.00" (and ints, Decimals) are amounts in yuan."""
    parsed = parse_amount(value, FIELD)
    assert parsed == expected
    assert str(parsed) == str(expected)  # quantized to the fen: "199.90", not "199.9"


def test_json_number_is_read_as_an_exact_decimal() -> None:
    """SPEC §1: the JSON number 199.9 is accepted, parsed with parse_float=Decimal."""
    data = loads('{"list_price": 199.9}')
    assert data["list_price"] == Decimal("199.9")
    assert not isinstance(data["list_price"], float)
    assert parse_amount(data["list_price"], FIELD) == Decimal("199.90")


@pytest.mark.parametrize(
    ("value", "shown", "problem"),
    [
        ("199.001", "'199.001'", "more than two decimals"),
        ("-1", "'-1'", "must not be negative"),
        ("NaN", "'NaN'", "plain decimal number"),
        ("Infinity", "'Infinity'", "plain decimal number"),
        ("1e3", "'1e3'", "plain decimal number"),
        ("", "''", "plain decimal number"),
        (True, "true", "must be an amount"),
        (Decimal("NaN"), "NaN", "finite"),
        (Decimal("1E+3"), "1E+3", "without an exponent"),
        (-1, "-1", "must not be negative"),
        ("1 000", "'1 000'", "plain decimal number"),
        ("1" + "0" * 40, "'1" + "0" * 40 + "'", "too large"),
    ],
)
def test_refused_amount_forms_name_field_and_value(value: Any, shown: str, problem: str) -> None:
    """SPEC §1: "199.001", "-1", "NaN", "Infinity", "1e3", "", true are invalid input;
    the message names the field and the value as written."""
    with pytest.raises(InvalidInput) as caught:
        parse_amount(value, FIELD)
    message = str(caught.value)
    assert message.startswith(f"{FIELD}: ")
    assert problem in message
    assert f"(got {shown})" in message
    assert caught.value.field == FIELD


def test_json_exponent_number_is_refused() -> None:
    """SPEC §1: exponent notation is refused even when it arrives as a JSON number."""
    data = loads('{"list_price": 1e3}')
    with pytest.raises(InvalidInput, match=r"input\.list_price: must be written without"):
        parse_amount(data["list_price"], FIELD)


def test_zero_is_refused_only_when_positive_is_required() -> None:
    """SPEC §2 needs positive prices: zero is an amount, but not a positive one."""
    assert parse_amount("0", FIELD) == Decimal("0.00")
    expected = r"input\.list_price: must be greater than 0 \(got '0'\)"
    with pytest.raises(InvalidInput, match=expected):
        parse_amount("0", FIELD, positive=True)


def test_negative_zero_is_plain_zero() -> None:
    """SPEC §1: "-0" is zero; no negative zero is carried into results."""
    parsed = parse_amount("-0.00", FIELD)
    assert parsed == 0
    assert not parsed.is_signed()
    assert fmt(parsed) == "0.00"


def test_a_python_float_is_a_type_error() -> None:
    """SPEC §1: a Python float passed to the API is refused with TypeError (inexact)."""
    with pytest.raises(TypeError, match=r"input\.list_price: a float \(199\.9\) is not accepted"):
        parse_amount(199.9, FIELD)


# -- formatting and rounding ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (Decimal("30"), "30.00"),
        (Decimal("0.1"), "0.10"),
        (Decimal("199.90"), "199.90"),
        (Decimal("-10"), "-10.00"),
        (Decimal("-0.01"), "-0.01"),
        (Decimal("-0.00"), "0.00"),
        (Decimal("1234567.89"), "1234567.89"),
    ],
)
def test_fmt_gives_exactly_two_decimals(amount: Decimal, text: str) -> None:
    """SPEC §1: every amount in output is a string with exactly two decimals; SPEC §2: a
    negative difference stays negative ("-10.00"), and there is no "-0.00"."""
    assert fmt(amount) == text


def test_fmt_refuses_to_round_silently() -> None:
    """SPEC §1: rounding happens only at named steps, so output never rounds."""
    with pytest.raises(ValueError, match="sub-fen digits"):
        fmt(Decimal("1.005"))


@pytest.mark.parametrize(
    ("exact", "rounded"),
    [
        ("0.005", "0.01"),
        ("0.015", "0.02"),
        ("0.025", "0.03"),  # HALF_EVEN would give 0.02
        ("2.675", "2.68"),
        ("0.004", "0.00"),
        ("-0.025", "-0.03"),  # half away from zero
    ],
)
def test_fen_rounds_half_up_whatever_the_ambient_context(exact: str, rounded: str) -> None:
    """SPEC §1: ROUND_HALF_UP (四舍五入) to the fen, never through the ambient context."""
    with decimal.localcontext() as ctx:
        ctx.rounding = decimal.ROUND_HALF_EVEN
        assert fen(Decimal(exact)) == Decimal(rounded)
        ctx.rounding = decimal.ROUND_DOWN
        assert fen(Decimal(exact)) == Decimal(rounded)


@pytest.mark.parametrize(
    ("part", "whole", "text"),
    [
        ("30.00", "199.00", "0.1508"),  # SPEC §2 example
        ("20.00", "199.00", "0.1005"),  # SPEC §2 example
        ("0.01", "200.00", "0.0001"),  # exactly 0.00005: a tie, rounded up
        ("0.05", "200.00", "0.0003"),  # exactly 0.00025: HALF_EVEN would give 0.0002
        ("0.01", "300.00", "0.0000"),  # 0.0000333… rounds down
        ("50.00", "100.00", "0.5000"),
        ("1.00", "0", "0.0000"),  # no list price: rate 0 rather than a division by zero
        ("-0.01", "1000.00", "0.0000"),  # a tiny negative rate is 0.0000, never "-0.0000"
        ("-10.00", "100.00", "-0.1000"),
    ],
)
def test_rates_have_four_decimals_half_up(part: str, whole: str, text: str) -> None:
    """SPEC §1: rates are strings with 4 decimals, ROUND_HALF_UP: "0.1508"."""
    with decimal.localcontext() as ctx:
        ctx.rounding = decimal.ROUND_HALF_EVEN
        assert fmt_rate(rate_of(Decimal(part), Decimal(whole))) == text


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0.54%", Decimal("0.0054")), ("0.0054", Decimal("0.0054")), ("90%", Decimal("0.9"))],
)
def test_rates_as_fractions_or_percentages(value: str, expected: Decimal) -> None:
    """SPEC §6: a rate is a fraction ("0.0054") or a percentage with a sign ("0.54%")."""
    assert parse_rate(value, "input.rate") == expected


# -- allocation ----------------------------------------------------------------------------
def D(text: str) -> Decimal:
    return Decimal(text)


def test_allocation_example() -> None:
    """SPEC §1: 10.00 over three lines of 10.00 → 3.34, 3.33, 3.33."""
    assert allocate(D("10.00"), [D("10.00")] * 3) == [D("3.34"), D("3.33"), D("3.33")]


@pytest.mark.parametrize(
    ("total", "weights", "parts"),
    [
        ("0.01", ["1", "1"], ["0.01", "0.00"]),  # a tie goes to the earlier line
        ("0.02", ["5", "5", "5"], ["0.01", "0.01", "0.00"]),
        ("20.00", ["120.00", "80.00"], ["12.00", "8.00"]),  # SPEC §3 shares
        ("50.00", ["120.00", "80.00"], ["30.00", "20.00"]),
        ("0.05", ["1", "2"], ["0.02", "0.03"]),  # remainders 2/3 > 1/3: the later line
        ("0.00", ["3", "4"], ["0.00", "0.00"]),
        ("0.00", ["0", "0"], ["0.00", "0.00"]),
        ("7.00", ["0", "1"], ["0.00", "7.00"]),
    ],
)
def test_allocation_largest_remainder(total: str, weights: list[str], parts: list[str]) -> None:
    """SPEC §1: floor every exact share, leftover fen to the largest remainders, ties to
    the earlier line."""
    assert allocate(D(total), [D(w) for w in weights]) == [D(p) for p in parts]


@pytest.mark.parametrize(
    ("total", "weights", "problem"),
    [
        ("-1.00", ["1"], "negative total"),
        ("1.001", ["1"], "sub-fen"),
        ("1.00", [], "no lines"),
        ("1.00", ["0", "0"], "zero weights"),
        ("1.00", ["1", "-1"], "must not be negative"),
    ],
)
def test_allocation_refuses_what_cannot_be_split(
    total: str, weights: list[str], problem: str
) -> None:
    """SPEC §1: allocation splits a non-negative amount in fen over non-negative weights."""
    with pytest.raises(ValueError, match=problem):
        allocate(D(total), [D(w) for w in weights])


fen_amounts = st.integers(min_value=0, max_value=10**9).map(lambda n: Decimal(n).scaleb(-2))
weight_lists = st.lists(
    st.integers(min_value=0, max_value=10**7).map(lambda n: Decimal(n).scaleb(-2)),
    min_size=1,
    max_size=12,
).filter(lambda ws: sum(ws) > 0)


@given(total=fen_amounts, weights=weight_lists)
def test_allocation_parts_sum_exactly_and_stay_within_a_fen(
    total: Decimal, weights: list[Decimal]
) -> None:
    """SPEC §1: parts always sum exactly to the whole and each is within 1 fen of its exact
    share; every part is a non-negative amount in fen; the result is deterministic."""
    parts = allocate(total, weights)
    assert len(parts) == len(weights)
    assert sum(parts, Decimal(0)) == total
    whole = sum((Fraction(w) for w in weights), Fraction(0))
    for part, weight in zip(parts, weights, strict=True):
        exact = Fraction(total) * Fraction(weight) / whole
        assert abs(Fraction(part) - exact) < Fraction(1, 100)
        assert part >= 0
        assert part == part.quantize(Decimal("0.01"))
    assert allocate(total, weights) == parts


@given(total=fen_amounts, weight=st.integers(1, 10**6), n=st.integers(1, 10))
def test_allocation_equal_weights_favour_earlier_lines(total: Decimal, weight: int, n: int) -> None:
    """SPEC §1: ties go to the earlier line, so equal weights give non-increasing parts
    differing by at most one fen."""
    parts = allocate(total, [Decimal(weight)] * n)
    assert parts == sorted(parts, reverse=True)
    assert parts[0] - parts[-1] <= Decimal("0.01")


def largest_remainder(total_fen: int, weights: list[int]) -> list[int]:
    """SPEC §1 allocation read literally: floor every exact share, then one leftover fen
    each to the lines in order of remainder, largest first, the earlier line on a tie."""
    whole = sum(weights)
    shares = [Fraction(total_fen * w, whole) for w in weights]
    floors = [s.numerator // s.denominator for s in shares]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(shares[i] - floors[i]), i))
    for i in by_remainder[: total_fen - sum(floors)]:
        floors[i] += 1
    return floors


# Small weights and totals as well as large ones: equal remainders are common.
fen_weights = st.lists(
    st.one_of(st.integers(0, 6), st.integers(0, 10**9)), min_size=1, max_size=40
).filter(lambda ws: sum(ws) > 0)


@given(total_fen=st.one_of(st.integers(0, 50), st.integers(0, 10**12)), weights=fen_weights)
def test_allocate_fen_is_the_sorted_definition(total_fen: int, weights: list[int]) -> None:
    """SPEC §1: allocate_fen (what price protection allocates with at every candidate
    time) gives exactly the largest-remainder split defined by sorting the remainders,
    ties to the earlier line."""
    assert allocate_fen(total_fen, weights) == largest_remainder(total_fen, weights)


@given(weights=weight_lists)
def test_allocating_zero_gives_zero_everywhere(weights: list[Decimal]) -> None:
    """SPEC §1: a zero total allocates 0.00 to every line."""
    assert allocate(Decimal("0.00"), weights) == [Decimal("0.00")] * len(weights)


def test_json_exponent_numbers_and_constants_are_refused() -> None:
    """JSON ``1.5e1``/``1e3`` are refused naming the field; ``NaN``/``Infinity`` do not parse
    (SPEC §1: never through float, "1e3" and "NaN" are invalid)."""
    from pricecalc.serialize import loads

    data = loads('{"a": 1.5e1, "b": 199.9}')
    with pytest.raises(InvalidInput, match=r"^input\.a: must be written without an exponent"):
        parse_amount(data["a"], "input.a")
    assert parse_amount(data["b"], "input.b") == Decimal("199.90")
    for text in ('{"a": NaN}', '{"a": Infinity}', '{"a": -Infinity}'):
        with pytest.raises(ValueError, match="is not a number"):
            loads(text)


def test_amounts_and_quantities_are_bounded() -> None:
    """Amounts above 999,999,999,999.99 and quantities above a billion are refused, so no
    product can exceed the decimal context's 28 digits and round silently."""
    from pricecalc.fields import Fields

    assert parse_amount("999999999999.99", "x") == Decimal("999999999999.99")
    with pytest.raises(
        InvalidInput, match=r"^x: is too large to be an amount \(at most 999999999999\.99\)"
    ):
        parse_amount("1000000000000.00", "x")
    with pytest.raises(InvalidInput, match=r"^input\.quantity: must be at most 1,000,000,000"):
        Fields.of({"quantity": 10**9 + 1}).integer("quantity", minimum=1)


# -- fen work in money.py alone (issue 20 point 4) ------------------------------------------


@pytest.mark.parametrize(
    ("value", "positive", "expected"),
    [
        (Decimal("1.23"), False, True),
        (Decimal("1.2"), False, True),
        (Decimal("0"), False, True),
        (Decimal("0"), True, False),
        (Decimal("1.235"), False, False),  # a sub-fen digit: refused, never rounded
        (Decimal("1.230"), False, True),  # a trailing zero is still whole fen
        (Decimal("-1.00"), False, False),
        (Decimal("NaN"), False, False),
        (Decimal("Infinity"), False, False),
        ("1.23", False, False),  # text is not an amount yet
        (1, False, False),
    ],
)
def test_is_fen_checks_exactly(value: Any, positive: bool, expected: bool) -> None:
    """SPEC §1 / issue 20 point 4: one exact fen check (the offer contract's), no rounding."""
    from pricecalc.money import is_fen

    assert is_fen(value, positive=positive) is expected


@given(st.integers(min_value=-(10**14), max_value=10**14))
def test_fen_counts_round_trip(count: int) -> None:
    """Whole fen ↔ amount, exact both ways (the price book's integer arithmetic)."""
    from pricecalc.money import fen_count, from_fen_count

    amount = from_fen_count(count)
    assert amount == Decimal(count) / 100 and fen_count(amount) == count


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("39.90", Decimal("39.90")),
        ("-12.30", Decimal("-12.30")),
        (Decimal("5"), Decimal("5")),
        ("1.234", None),  # not in fen: left out of totals rather than rounded
        ("free shipping", None),
        (None, None),
    ],
)
def test_stored_amount_reads_a_recorded_money_field(value: Any, expected: Any) -> None:
    """A recorded result's money field as an exact Decimal, or None (issue 20 point 4)."""
    from pricecalc.money import stored_amount

    assert stored_amount(value) == expected
