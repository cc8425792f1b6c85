"""shipping_check — was the order shipped within 48 hours of payment? (SPEC §6)

Seed 002, 第五条 1(2): 物流发货需在支付后48小时内进行发货 (珠宝行业不受此时间限制).

Input ``paid_at``, ``shipped_at`` (ISO 8601; without an offset a time is Beijing time) and
``category``. ``deadline = paid_at + max_hours`` (48, *configurable*); shipping at the
deadline itself is on time (the window is closed, SPEC §1), one second later is
``SHIPPED_LATE``. Jewelry (``jewelry``, ``珠宝``; *configurable*) has no deadline.

Result: ``paid_at``, ``shipped_at`` and ``deadline`` in Beijing time (``deadline`` is
``null`` for an exempt category), ``hours_taken`` (hours between payment and shipping, two
decimals, ROUND_HALF_UP: ``"49.50"``), ``max_hours``, ``category``, ``exempt``, ``late``.

Choices where the SPEC is silent:

* ``category`` is optional; without one the order is not exempt.
* Categories match without regard to case or surrounding space (``Jewelry`` is jewelry).
* ``shipped_at`` before ``paid_at`` is invalid input.
* Lateness is judged on the exact times, not on the rounded ``hours_taken``: shipped 48 h
  and 1 s after payment shows ``"48.00"`` hours and is late; the message gives both times.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import attrs

from pricecalc import hookimpl
from pricecalc.decision import Outcome, Reason
from pricecalc.errors import InvalidInput, PolicyError
from pricecalc.fields import (
    BEIJING,
    Declared,
    Fields,
    iso,
    result_field,
    shape,
    text_field,
    time_field,
)
from pricecalc.i18n import msg
from pricecalc.registry import ReasonCode, Rule, RuleContext
from pricecalc.toolkit import norm, number_text, policy_names, policy_number
from pricecalc_chaozhigou import DISTRIBUTION, __version__

KIND = "shipping_check"
SECTION = "shipping_check"
SHIPPED_LATE = "SHIPPED_LATE"
CODES: tuple[str, ...] = (SHIPPED_LATE,)

POLICY_DEFAULTS: dict[str, dict[str, Any]] = {
    SECTION: {
        # hours after payment by which the order must ship (第五条 1(2)); may be a decimal.
        "max_hours": 48,
        # categories with no shipping deadline (珠宝行业不受此时间限制).
        "exempt_categories": ["jewelry", "珠宝"],
    }
}

_MICROSECONDS_PER_HOUR = Decimal(3_600_000_000)
_HOURS_STEP = Decimal("0.01")


def hours_between(start: datetime, end: datetime) -> Decimal:
    """Hours from ``start`` to ``end``, to two decimals, ROUND_HALF_UP (a named step)."""
    microseconds = (end - start) // timedelta(microseconds=1)
    return (Decimal(microseconds) / _MICROSECONDS_PER_HOUR).quantize(
        _HOURS_STEP, rounding=ROUND_HALF_UP
    )


def _allowed_time(hours: Decimal, where: str) -> timedelta:
    microseconds = hours * _MICROSECONDS_PER_HOUR
    if microseconds != microseconds.to_integral_value():
        raise PolicyError(
            msg(
                "policy: {where} must be a whole number of microseconds, got {hours}",
                where=where, hours=hours,
            )
        )  # fmt: skip
    return timedelta(microseconds=int(microseconds))


@attrs.frozen
class ShippingInput:
    """A validated shipping_check request: payment and shipping times, and the category."""

    paid_at: datetime
    shipped_at: datetime
    category: str | None = None

    @classmethod
    def from_fields(cls, f: Fields) -> ShippingInput:
        """Parse the ``input`` object; shipping before payment is invalid input."""
        paid_at = f.time("paid_at")
        shipped_at = f.time("shipped_at")
        if shipped_at < paid_at:
            raise InvalidInput(
                f.at("shipped_at"),
                f.raw("shipped_at"),
                msg("must not be before paid_at ({paid_at})", paid_at=iso(paid_at)),
            )
        return cls(paid_at=paid_at, shipped_at=shipped_at, category=f.optional_string("category"))


def shipping_check(inp: ShippingInput, ctx: RuleContext) -> Outcome:
    """Late when shipped after ``paid_at + max_hours``, unless the category is exempt."""
    max_hours = policy_number(ctx.policy, SECTION, "max_hours", positive=True)
    exempt_categories = {norm(c) for c in policy_names(ctx.policy, SECTION, "exempt_categories")}
    exempt = inp.category is not None and norm(inp.category) in exempt_categories
    hours = hours_between(inp.paid_at, inp.shipped_at)
    shipped = inp.shipped_at.astimezone(BEIJING)
    deadline = (inp.paid_at + _allowed_time(max_hours, f"{SECTION}.max_hours")).astimezone(BEIJING)
    late = not exempt and inp.shipped_at > deadline
    reasons: tuple[Reason, ...] = ()
    if late:
        reasons = (
            Reason(
                SHIPPED_LATE,
                f"shipped at {iso(shipped)}, {hours} hours after payment, after the deadline "
                f"{iso(deadline)} ({number_text(max_hours)} hours after payment)",
            ),
        )
    return Outcome(
        result={
            "paid_at": iso(inp.paid_at.astimezone(BEIJING)),
            "shipped_at": iso(shipped),
            "category": inp.category,
            "exempt": exempt,
            "max_hours": number_text(max_hours),
            "deadline": None if exempt else iso(deadline),
            "hours_taken": str(hours),
            "late": late,
        },
        reasons=reasons,
    )


#: The input as :meth:`ShippingInput.from_fields` reads it.
INPUT = shape(
    ("paid_at", time_field()),
    ("shipped_at", time_field()),
    ("category", text_field(required=False)),
    ("order_id", Declared("raw", {}, False, "Not read by the rule: names the order.")),
    description="shipped_at must not be before paid_at.",
)


def _parse(fields: Fields, ctx: RuleContext) -> ShippingInput:
    return ShippingInput.from_fields(fields)


EXPLAINED = (
    ReasonCode(SHIPPED_LATE, "付款后48小时内未发货", "not shipped within 48 hours of payment"),
)

#: The result as :func:`shipping_check` writes it.
RESULT = shape(
    ("paid_at", result_field({"type": "string"})),
    ("shipped_at", result_field({"type": "string"})),
    ("category", result_field({"type": ["string", "null"]})),
    ("exempt", result_field({"type": "boolean"})),
    ("max_hours", result_field({"type": "string"})),
    ("deadline", result_field({"type": ["string", "null"]})),
    ("hours_taken", result_field({"type": "string"})),
    ("late", result_field({"type": "boolean"})),
)


RULE = Rule(
    kind=KIND,
    rule_set=DISTRIBUTION,
    version=__version__,
    parse=_parse,
    decide=shipping_check,
    description="Ship within 48 hours of payment; jewelry exempt (SPEC §6; seed 002 第五条 1(2)).",
    # order_id is not read, but names the order a check is about (the bundled campaign
    # and real files carry it).
    input_fields=frozenset({"paid_at", "shipped_at", "category", "order_id"}),
    inputs=INPUT,
    results=RESULT,
    codes=EXPLAINED,
    label="发货时效",
)


@hookimpl
def pricecalc_rules() -> Iterable[Rule]:
    return [RULE]


@hookimpl
def pricecalc_policy_defaults() -> Mapping[str, Mapping[str, Any]]:
    return copy.deepcopy(POLICY_DEFAULTS)


__all__ = ["CODES", "POLICY_DEFAULTS", "RULE", "ShippingInput", "hours_between", "shipping_check"]
