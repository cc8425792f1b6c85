"""Money: the one module that parses, quantizes and allocates amounts (SPEC §1).

Nobody else rounds. Amounts are CNY yuan as :class:`decimal.Decimal` with at most two
decimals (fen). Floats are refused outright (they are already inexact); every
``quantize`` names its rounding mode and never depends on the ambient context.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Sequence
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from pricecalc.errors import FloatRefused as FloatRefused, InvalidInput
from pricecalc.i18n import N_, msg

# Every quantize names its rounding mode. The hot paths (parsing the usual amount text,
# fen, rate_of, fmt, fmt_rate: dozens of calls per decision) pass it positionally, as
# Decimal.quantize(exp, rounding) allows: a keyword argument costs as much as the rounding.

FEN = Decimal("0.01")
RATE_STEP = Decimal("0.0001")
ZERO = Decimal("0.00")
HUNDRED = Decimal(100)

# A plain decimal: optional sign, ASCII digits, optional fraction. No exponent, no
# NaN/Infinity, no spaces, no thousands separators, no full-width or other digits (\d would
# take them, and so would Decimal(): "１０" is ten to Python, not to a finance file).
_DECIMAL_TEXT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")
ASCII_DIGITS = N_("must be written with ASCII digits 0-9")
# What a spreadsheet does to an amount (SPEC §1): a leading ¥/￥ and thousands grouping in
# threes ("¥1,299.00"); read as the plain amount. Any other grouping stays invalid.
_SHEET_AMOUNT = re.compile(
    r"(?P<sign>\+?)[¥￥]?(?P<whole>[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?P<rest>\.[0-9]*)?"
)


def spreadsheet_amount(text: str) -> str:
    """``"¥1,299.00"`` → ``"1299.00"``: an amount as a spreadsheet saves it, as plain text
    (SPEC §1); any other text is returned as it is, for :func:`to_decimal` to judge."""
    if "," not in text and "¥" not in text and "￥" not in text:
        return text
    match = _SHEET_AMOUNT.fullmatch(text.strip())
    if match is None:
        return text
    return f"{match['sign']}{match['whole'].replace(',', '')}{match['rest'] or ''}"


def has_other_digits(text: str) -> bool:
    """True when ``text`` holds a digit other than ASCII 0-9 (full-width ``１``, ``٣`` …)."""
    return not text.isascii() and any(ch.isdigit() for ch in text)


#: The largest amount accepted (a trillion yuan less a fen). With quantities capped at a
#: billion (``pricecalc.fields.MAX_INTEGER``) every product stays far inside the 28 digits of
#: the decimal context, so no multiplication can round silently.
MAX_AMOUNT = Decimal("999999999999.99")


class ExponentNumber(Decimal):
    """A JSON number written with an exponent (``1e3``, ``1.5e1``): refused as an amount.

    :func:`pricecalc.serialize.loads` produces it, so the refusal can name the field.
    """


def refuse_float(value: Any, field: str) -> None:
    """Raise ``TypeError`` for a Python float: money never passes through binary floats."""
    if isinstance(value, float):
        raise FloatRefused(
            f"{field}: a float ({value!r}) is not accepted for money; "
            "pass a string such as '199.90', an int, or a decimal.Decimal"
        )


def to_decimal(value: Any, field: str) -> Decimal:
    """Turn an int, a Decimal or a decimal string into an exact, finite Decimal.

    bool, float, exponent notation, NaN, Infinity and empty strings are refused.
    """
    refuse_float(value, field)
    if isinstance(value, bool) or value is None:
        raise InvalidInput(field, value, N_('must be an amount such as "199.90"'))
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, numbers.Integral):  # numpy.int64 …: exactly its integer
        return Decimal(int(value))
    if isinstance(value, ExponentNumber):
        raise InvalidInput(field, value, N_("must be written without an exponent"))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidInput(field, value, N_("must be a finite amount"))
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent > 0:  # Decimal("1E+3"), JSON 1e3
            raise InvalidInput(field, value, N_("must be written without an exponent"))
        return value
    if isinstance(value, str):
        text = value.strip()
        if has_other_digits(text):
            raise InvalidInput(
                field, value, msg('{digits} (such as "199.90")', digits=msg(ASCII_DIGITS))
            )
        if not _DECIMAL_TEXT.fullmatch(text):
            raise InvalidInput(field, value, N_('must be a plain decimal number such as "199.90"'))
        try:
            return Decimal(text)
        except InvalidOperation as exc:  # pragma: no cover - the regex already guards
            raise InvalidInput(field, value, N_("is not a number")) from exc
    raise InvalidInput(
        field, value, msg("must be an amount, not {type}", type=type(value).__name__)
    )


def usual_amount(value: Any, *, positive: bool = False) -> Decimal | None:
    """:func:`parse_amount` for the usual amount text (``"199"``, ``"199.9"``,
    ``"199.00"``), or None for anything else, which :func:`parse_amount` then checks.

    Such text is exact (two decimals at most), non-negative and within MAX_AMOUNT by its
    form; a zero where a positive amount is needed gives None (the general way names it).
    """
    if type(value) is not str or not value.isascii():
        return None
    whole, point, cents = value.partition(".")
    if not whole.isdigit() or len(whole) > 12:  # ASCII digits only (isascii above)
        return None
    if point:
        if not cents.isdigit() or len(cents) > 2:
            return None
        # Written with exactly two decimals the text is already in fen; else pad it (the
        # value is unchanged: "199.9" is "199.90"), instead of a quantize.
        in_fen = Decimal(value if len(cents) == 2 else f"{value}0")
    else:
        in_fen = Decimal(f"{value}.00")
    if in_fen or not positive:
        return in_fen
    return None


def parse_amount(
    value: Any,
    field: str,
    *,
    positive: bool = False,
) -> Decimal:
    """Parse an amount in yuan (SPEC §1): at most two decimals, never negative.

    With ``positive=True`` zero is refused too. The result keeps its exact value,
    quantized to the fen (an exact operation: no digit is lost).
    """
    usual = usual_amount(value, positive=positive)
    if usual is not None:
        return usual
    if not isinstance(value, str):
        amount = to_decimal(value, field)
    else:
        amount_text = spreadsheet_amount(value)
        try:
            amount = to_decimal(amount_text, field)
        except InvalidInput as exc:
            raise InvalidInput(field, value, exc.problem) from None
    try:
        in_fen = amount.quantize(FEN, rounding=ROUND_DOWN)
    except InvalidOperation:  # more digits than the decimal context holds
        raise InvalidInput(field, value, N_("is too large to be an amount")) from None
    if amount != in_fen:
        raise InvalidInput(
            field, value, N_("has more than two decimals (fen is the smallest unit)")
        )
    if amount > MAX_AMOUNT:
        raise InvalidInput(
            field, value, msg("is too large to be an amount (at most {limit})", limit=MAX_AMOUNT)
        )
    if amount < 0:
        raise InvalidInput(field, value, N_("must not be negative"))
    if positive and amount == 0:
        raise InvalidInput(field, value, N_("must be greater than 0"))
    if amount == 0:
        in_fen = abs(in_fen)  # "-0" is zero: never carry a negative zero
    return in_fen  # exact: checked above


def parse_rate(value: Any, field: str) -> Decimal:
    """Parse a rate: a fraction (``"0.0054"``) or a percentage with a sign (``"0.54%"``).

    A bare number is a fraction (SPEC §6). Returned as an exact fraction.
    """
    refuse_float(value, field)
    if isinstance(value, str) and value.strip().endswith("%"):
        number = to_decimal(value.strip()[:-1], field)
        rate = number / HUNDRED
    else:
        rate = to_decimal(value, field)
    if rate < 0:
        raise InvalidInput(field, value, N_("must not be negative"))
    return rate


def fen(amount: Decimal) -> Decimal:
    """Round an exact amount to the fen, ROUND_HALF_UP (四舍五入). A named rounding step."""
    return amount.quantize(FEN, ROUND_HALF_UP)


def is_fen(value: Any, *, positive: bool = False) -> bool:
    """Whether ``value`` is a finite Decimal in whole fen (no sub-fen digit), non-negative
    (positive with ``positive=True``): an exact check, nothing rounded."""
    return (
        isinstance(value, Decimal)
        and value.is_finite()
        and value == value.quantize(FEN, ROUND_DOWN)
        and (value > 0 if positive else value >= 0)
    )


def fen_count(amount: Decimal) -> int:
    """An amount already in fen as a whole number of fen (exact: ``1.23`` → ``123``)."""
    return int(amount.scaleb(2))


def from_fen_count(count: int) -> Decimal:
    """A whole number of fen as an amount (exact: ``123`` → ``1.23``)."""
    return Decimal(count).scaleb(-2)


def stored_amount(value: Any) -> Decimal | None:
    """A money field of a recorded result as an exact Decimal, perhaps negative.

    ``None`` when absent or not an amount in fen (a plugin's free text, say): such a value
    is left out of totals rather than rounded.
    """
    if value is None:
        return None
    if type(value) is str:  # what fmt wrote: the usual text, perhaps negative
        usual = usual_amount(value[1:] if value[:1] == "-" else value)
        if usual is not None:
            return -usual if value[:1] == "-" else usual
    try:
        number = to_decimal(value, "amount")
    except (InvalidInput, TypeError):
        return None
    if number != number.quantize(FEN, rounding=ROUND_DOWN):
        return None
    return number


def rate_of(part: Decimal, whole: Decimal) -> Decimal:
    """``part / whole`` to 4 decimals, ROUND_HALF_UP (SPEC §1 rates)."""
    if whole == 0:
        return Decimal("0.0000")
    return (part / whole).quantize(RATE_STEP, ROUND_HALF_UP)


def fmt(amount: Decimal) -> str:
    """Format an amount for output: a string with exactly two decimals (``"30.00"``).

    Refuses an amount that would need rounding: output never rounds silently.
    """
    text = str(amount)
    # Most amounts already carry exactly two decimals (sums and differences of fen): their
    # text is the answer as it is — plain digits, a point, two digits, exact by its form.
    if text[-3:-2] == "." and "E" not in text and text != "-0.00":
        return text
    quantized = amount.quantize(FEN, ROUND_HALF_UP)
    if quantized != amount:
        raise ValueError(f"amount {amount} has sub-fen digits; round it at a named step first")
    # Exponent -2 after the quantize: str() gives plain notation with exactly two decimals.
    return str(quantized) if quantized else "0.00"  # never print "-0.00"


def fmt_rate(rate: Decimal) -> str:
    """Format a rate with exactly four decimals (``"0.1508"``); never ``"-0.0000"``.

    A rate with more decimals is rounded here, ROUND_HALF_UP (SPEC §1: rates have four).
    """
    text = str(rate)
    if text[-5:-4] == "." and "E" not in text and text != "-0.0000":
        return text  # already four decimals (what rate_of gives): exact as it is
    quantized = rate.quantize(RATE_STEP, ROUND_HALF_UP)
    if quantized == 0:
        quantized = abs(quantized)
    return f"{quantized:.4f}"


def allocate(total: Decimal, weights: Sequence[Decimal]) -> list[Decimal]:
    """Split ``total`` over ``weights`` by the largest-remainder method in fen (SPEC §1).

    Every exact share ``total × w / Σw`` is floored to the fen; the leftover fen go one
    each to the largest remainders, ties to the earlier position. The parts sum exactly to
    ``total`` and each is within one fen of its exact share. ``total`` must be a
    non-negative amount in fen; weights must be non-negative with a positive sum (a zero
    total may be spread over zero weights).
    """
    if total < 0:
        raise ValueError(f"cannot allocate a negative total {total}")
    if total != total.quantize(FEN, rounding=ROUND_DOWN):
        raise ValueError(f"total {total} has sub-fen digits")
    if any(w < 0 for w in weights):
        raise ValueError("allocation weights must not be negative")
    if not weights:
        if total != 0:
            raise ValueError("cannot allocate a non-zero total over no lines")
        return []
    if sum(weights, Decimal(0)) == 0:
        if total != 0:
            raise ValueError("cannot allocate a non-zero total over zero weights")
        return [ZERO for _ in weights]
    # Exact integer arithmetic: weights are scaled to integers, shares compared as
    # fractions, so no step goes through the decimal context's precision.
    scale = max(0, *(-int(w.as_tuple().exponent) for w in weights))
    int_weights = [int(w.scaleb(scale)) for w in weights]
    total_fen = int(total.scaleb(2))
    return [Decimal(f).scaleb(-2) for f in allocate_fen(total_fen, int_weights)]


def allocate_fen(total_fen: int, weights: Sequence[int]) -> list[int]:
    """:func:`allocate` in whole fen: split ``total_fen`` over integer ``weights``.

    The same largest-remainder method (ties to the earlier position), for callers that
    allocate many times over the same lines and keep amounts as integer fen. ``weights``
    must be non-negative with a positive sum, ``total_fen`` non-negative.
    """
    whole = sum(weights)
    if total_fen < 0 or whole <= 0 or min(weights) < 0:
        raise ValueError(f"cannot allocate {total_fen} fen over weights {list(weights)}")
    products = [total_fen * w for w in weights]
    floors = [p // whole for p in products]
    leftover = total_fen - sum(floors)
    if leftover:
        # Largest remainders first; ties go to the earlier line (the sort is stable, also
        # with reverse=True). The leftover is about half the lines on average, and a sort
        # in C beats every selection tried in Python at any size that occurs (heapq.nlargest
        # takes twice as long at 25 to 1,000 lines: docs/performance.md §5).
        remainders = [p % whole for p in products]
        order = sorted(range(len(weights)), key=remainders.__getitem__, reverse=True)
        for i in order[:leftover]:
            floors[i] += 1
    return floors
