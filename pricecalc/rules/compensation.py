"""counterfeit_compensation — 假一赔十 (SPEC §4; seed 002, 第五条 3).

When the platform confirms a counterfeit, the merchant refunds each line's paid amount
and pays compensation: the highest of every applicable :class:`CompensationStandard`.
The core ships two standards; plugins add more (the food-safety law) and simply compete:

``platform_10x``
    ``max(multiplier × base, minimum)`` — policy ``multiplier`` (10), ``minimum`` (500.00).
``consumer_law_art55``
    消费者权益保护法 第五十五条: ``max(consumer_law_multiplier × base, consumer_law_minimum)``
    — policy 3 and 500.00.

Choices where the SPEC is silent (docs/rules.md lists them too):

* ``base`` is the line's ``paid_amount``; with policy ``include_platform_subsidy = true``
  the line's optional ``platform_subsidy`` is added to it (0 when absent). The **refund**
  is always the ``paid_amount`` alone — the platform's subsidy was never the buyer's money.
* A standard's amount that is not a whole number of fen (only possible with a fractional
  policy multiplier) is rounded to the fen, ROUND_HALF_UP, by :func:`pricecalc.money.fen`.
* Ties go to the earlier standard in registration order (the built-in ones first, so
  ``platform_10x`` wins a tie), and ``standard`` names the winner.
* ``minimum_per = "order"``: the built-in standards grant ``multiplier × base`` with no
  per-line minimum; if the order's compensation total is then below the larger of the two
  built-in minimums, the top-up is spread over the lines with
  :func:`pricecalc.money.allocate`, proportional to ``paid_amount``; the result then also
  gives ``minimum_top_up``. Plugin standards keep whatever minimum they apply themselves.
* A rejected claim (``NOT_CONFIRMED``, ``ALREADY_COMPENSATED``) pays nothing: every
  amount is ``"0.00"``, each line has ``standard: null``, and no standard is consulted.
* **Once per line** (SPEC §4): a claim naming an ``order_id`` + ``line_id`` that an
  approved, not voided compensation already paid is rejected ``ALREADY_COMPENSATED`` — one
  reason per such line, naming the record that paid it — whatever the amounts say. The
  history is read from the store (``ctx.history``); a void is the way to decide again.
* A plugin standard must return a finite, non-negative :class:`~decimal.Decimal` with at
  most two decimals (or ``None``: does not apply); anything else, or an exception, is a
  :class:`pricecalc.PluginError` naming the plugin — never a silently wrong amount.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs

from pricecalc.decision import Outcome, Reason
from pricecalc.errors import InvalidInput, PluginError, PolicyError, PricecalcError, guard
from pricecalc.fields import (
    MONEY_OUT,
    Fields,
    amount_field,
    boolean_field,
    items_field,
    result_field,
    shape,
    stored_identifier,
    text_field,
)
from pricecalc.history import PastDecision
from pricecalc.i18n import N_, msg
from pricecalc.money import FEN, ZERO, allocate, fen, fmt, usual_amount
from pricecalc.policy import PolicyView
from pricecalc.registry import (
    SETTLEMENT,
    CompensationLine,
    CompensationStandard,
    MoneyFigure,
    ReasonCode,
    Rule,
    RuleContext,
)
from pricecalc.toolkit import policy_amount, policy_bool, policy_number

KIND = "counterfeit_compensation"
SECTION = "counterfeit_compensation"
NOT_CONFIRMED = "NOT_CONFIRMED"
ALREADY_COMPENSATED = "ALREADY_COMPENSATED"
MINIMUM_PER = ("line", "order")


# -- policy values -------------------------------------------------------------------------
def minimum_per(policy: PolicyView) -> str:
    """Policy ``minimum_per``: ``"line"`` (default) or ``"order"``."""
    value = policy.get(SECTION, "minimum_per")
    if value not in MINIMUM_PER:
        raise PolicyError(
            msg(
                'policy: {key} must be "line" or "order", got {value!r}',
                key=f"{SECTION}.minimum_per",
                value=value,
            )
        )
    return str(value)


# -- the built-in standards ----------------------------------------------------------------
def _multiple_with_minimum(
    line: CompensationLine, policy: PolicyView, multiplier_key: str, minimum_key: str
) -> Decimal:
    amount = fen(policy_number(policy, SECTION, multiplier_key) * line.paid)
    minimum = policy_amount(policy, SECTION, minimum_key)
    if minimum_per(policy) == "order":
        return amount  # the minimum is applied once, to the order total
    return max(amount, minimum)


def platform_10x(line: CompensationLine, policy: PolicyView) -> Decimal:
    """The platform's 假一赔十: ``max(10 × paid, 500.00)`` (policy multiplier, minimum)."""
    return _multiple_with_minimum(line, policy, "multiplier", "minimum")


def consumer_law_art55(line: CompensationLine, policy: PolicyView) -> Decimal:
    """消费者权益保护法 第五十五条: ``max(3 × paid, 500.00)`` (policy consumer_law_*)."""
    return _multiple_with_minimum(line, policy, "consumer_law_multiplier", "consumer_law_minimum")


STANDARDS: tuple[CompensationStandard, ...] = (
    CompensationStandard(
        name="platform_10x",
        compute=platform_10x,
        description="假一赔十: ten times the paid amount, at least 500.00 (seed 002 第五条 3)",
        label="平台假一赔十",
    ),
    CompensationStandard(
        name="consumer_law_art55",
        compute=consumer_law_art55,
        description="消费者权益保护法 第五十五条: three times the paid amount, at least 500.00",
        label="消费者权益保护法第55条",
    ),
)


def _order_minimum(policy: PolicyView) -> Decimal:
    return max(
        policy_amount(policy, SECTION, "minimum"),
        policy_amount(policy, SECTION, "consumer_law_minimum"),
    )


# -- input ---------------------------------------------------------------------------------
@attrs.frozen
class ClaimLine:
    """One order line of a claim. ``paid_amount`` is what the buyer paid for the line."""

    line_id: str
    paid_amount: Decimal
    platform_subsidy: Decimal | None = None
    category: str | None = None
    loss: Decimal | None = None


@attrs.frozen
class CompensationInput:
    """A validated counterfeit_compensation request."""

    order_id: str
    confirmed: bool
    lines: tuple[ClaimLine, ...] = attrs.field(validator=attrs.validators.min_len(1))
    merchant_refused: bool = False

    @classmethod
    def from_fields(cls, f: Fields) -> CompensationInput:
        """Parse the ``input`` object; :class:`pricecalc.InvalidInput` names the field.

        Invalid: a missing field, no lines, a duplicate ``line_id``, a ``paid_amount``
        below 0.01, a negative ``platform_subsidy`` or ``loss``.
        """
        order_id = f.identifier("order_id")
        confirmed = f.boolean("confirmed")
        lines: list[ClaimLine] = []
        seen: dict[str, str] = {}
        for item in f.items("lines", non_empty=True):
            line_id = item.identifier("line_id")
            if line_id in seen:
                raise InvalidInput(
                    item.at("line_id"),
                    line_id,
                    msg("duplicates the line id of {other}", other=seen[line_id]),
                )
            seen[line_id] = item.path
            paid = item.amount("paid_amount")
            if paid < FEN:
                raise InvalidInput(
                    item.at("paid_amount"), item.raw("paid_amount"), N_("must be at least 0.01")
                )
            lines.append(
                ClaimLine(
                    line_id=line_id,
                    paid_amount=paid,
                    platform_subsidy=item.optional_amount("platform_subsidy"),
                    category=item.optional_string("category"),
                    loss=item.optional_amount("loss"),
                )
            )
        return cls(
            order_id=order_id,
            confirmed=confirmed,
            lines=tuple(lines),
            merchant_refused=f.boolean("merchant_refused", False),
        )


#: The input as :meth:`CompensationInput.from_fields` reads it (SPEC §4).
INPUT = shape(
    ("order_id", text_field(identifier=True)),
    ("confirmed", boolean_field()),
    (
        "lines",
        items_field(
            shape(
                ("line_id", text_field(identifier=True)),
                ("paid_amount", amount_field()),
                ("platform_subsidy", amount_field(required=False)),
                ("category", text_field(required=False)),
                ("loss", amount_field(required=False)),
                closed=False,
                description="paid_amount is at least 0.01; line ids are unique in a claim.",
            ),
            required=True,
            non_empty=True,
        ),
    ),
    ("merchant_refused", boolean_field(required=False)),
)


def _parse(fields: Fields, ctx: RuleContext) -> CompensationInput:
    return CompensationInput.from_fields(fields)


# -- the rule ------------------------------------------------------------------------------
def _checked(plugin: str, standard: str, line_id: str, value: Any) -> Decimal | None:
    """A standard's answer must be None or an exact, non-negative amount in fen."""
    if value is None:
        return None
    if not isinstance(value, Decimal):
        problem = f"returned {type(value).__name__} {value!r}; a decimal.Decimal is required"
    elif not value.is_finite():
        problem = f"returned {value}; a finite amount is required"
    elif value < 0:
        problem = f"returned a negative amount {value}"
    else:
        try:
            in_fen = fen(value)
        except InvalidOperation:  # too many digits to be an amount at all
            in_fen = None
        if in_fen == value:
            return in_fen  # exact: the value already was a whole number of fen
        problem = f"returned {value}, which is not an amount with at most two decimals"
    raise PluginError(plugin, f"compensation standard {standard!r} for line {line_id} {problem}")


def _best(line: CompensationLine, ctx: RuleContext, used: set[str]) -> tuple[Decimal, str]:
    """The highest compensation of every applicable standard; ties to the earlier one.
    Adds the plugin of every standard that applied to ``used``."""
    best: tuple[Decimal, str, str] | None = None
    for contributed in ctx.registry.standards:
        plugin, standard = contributed.plugin, contributed.item
        with guard(plugin, "compensation standard {!r} raised {error}", standard.name):
            computed = standard.compute(line, ctx.policy)
        value = _checked(plugin, standard.name, line.line_id, computed)
        if value is None:
            continue
        used.add(plugin)
        if best is None or value > best[0]:
            best = (value, standard.name, plugin)
    if best is None:
        raise PricecalcError(
            f"no compensation standard applies to line {line.line_id}; "
            "is the built-in plugin disabled?"
        )
    return best[0], best[1]


def compensations_paid(past: Iterable[PastDecision]) -> dict[str, PastDecision]:
    """The order lines already compensated, each with the decision that paid it: approved,
    not voided counterfeit compensations (this rule's own result layout, ``lines``)."""
    paid: dict[str, PastDecision] = {}
    for decision in past:
        if decision.kind != KIND or not decision.counts:
            continue
        for line in decision.result.get("lines", ()):
            if isinstance(line, Mapping) and isinstance(line.get("line_id"), str):
                # compared as SPEC §1 reads it: records written before normalisation count
                paid.setdefault(stored_identifier(line["line_id"]), decision)
    return paid


def _already_compensated(inp: CompensationInput, ctx: RuleContext) -> list[Reason]:
    """SPEC §4: a line is compensated once, whatever the amounts said."""
    paid = compensations_paid(ctx.history.decisions(inp.order_id))
    reasons = []
    for line in inp.lines:
        earlier = paid.get(line.line_id)
        if earlier is not None:
            payout = next(
                (
                    x.get("total")
                    for x in earlier.result.get("lines", ())
                    if stored_identifier(x.get("line_id")) == line.line_id
                ),
                None,
            )
            reasons.append(
                Reason(
                    ALREADY_COMPENSATED,
                    f"line {line.line_id} of order {inp.order_id} was already compensated by "
                    f"record {earlier.seq}"
                    + (f" (paid {payout})" if isinstance(payout, str) else "")
                    + f"; to decide it again, void record {earlier.seq} first",
                )
            )
    return reasons


def counterfeit_compensation(inp: CompensationInput, ctx: RuleContext) -> Outcome:
    """Refund plus the highest applicable compensation per line (SPEC §4), once per line."""
    settlement = "deduct_from_payout" if inp.merchant_refused else "merchant_pays"
    refused: list[Reason] = []
    if not inp.confirmed:
        refused.append(
            Reason(
                NOT_CONFIRMED,
                f"order {inp.order_id}: the platform has not confirmed a counterfeit "
                "(confirmed is false); nothing is paid",
            )
        )
    refused.extend(_already_compensated(inp, ctx))
    if refused:
        zero = fmt(ZERO)
        return Outcome(
            result={
                "order_id": inp.order_id,
                "lines": [
                    {
                        "line_id": line.line_id,
                        "refund": zero,
                        "compensation": zero,
                        "total": zero,
                        "standard": None,
                    }
                    for line in inp.lines
                ],
                "refund_total": zero,
                "compensation_total": zero,
                "payout_total": zero,
                "payer": "merchant",
                "settlement": settlement,
            },
            reasons=tuple(refused),
        )

    include_subsidy = policy_bool(ctx.policy, SECTION, "include_platform_subsidy")
    per = minimum_per(ctx.policy)
    compensations: list[Decimal] = []
    standards: list[str] = []
    used: set[str] = set()
    for line in inp.lines:
        base = line.paid_amount
        if include_subsidy and line.platform_subsidy is not None:
            base += line.platform_subsidy
        amount, name = _best(
            CompensationLine(line.line_id, base, category=line.category, loss=line.loss),
            ctx,
            used,
        )
        compensations.append(amount)
        standards.append(name)

    top_up = ZERO
    if per == "order":
        floor = _order_minimum(ctx.policy)
        subtotal = sum(compensations, ZERO)
        if subtotal < floor:
            top_up = floor - subtotal
            shares = allocate(top_up, [line.paid_amount for line in inp.lines])
            compensations = [c + s for c, s in zip(compensations, shares, strict=True)]

    lines = []
    for line, compensation, standard in zip(inp.lines, compensations, standards, strict=True):
        lines.append(
            {
                "line_id": line.line_id,
                "refund": fmt(line.paid_amount),
                "compensation": fmt(compensation),
                "total": fmt(line.paid_amount + compensation),
                "standard": standard,
            }
        )
    refund_total = sum((line.paid_amount for line in inp.lines), ZERO)
    compensation_total = sum(compensations, ZERO)
    result: dict[str, Any] = {
        "order_id": inp.order_id,
        "lines": lines,
        "refund_total": fmt(refund_total),
        "compensation_total": fmt(compensation_total),
        "payout_total": fmt(refund_total + compensation_total),
        "payer": "merchant",
        "settlement": settlement,
    }
    if per == "order":
        result["minimum_top_up"] = fmt(top_up)
    return Outcome(result=result, plugins=frozenset(used))


def _decide(inp: CompensationInput, ctx: RuleContext) -> Outcome:
    return counterfeit_compensation(inp, ctx)


def by_standard(result: Mapping[str, Any]) -> dict[str, Decimal]:
    """A result's ``lines[].compensation`` summed by each line's winning ``standard`` (a
    line without a standard paid no compensation): the report's breakdown."""
    out: dict[str, Decimal] = {}
    lines = result.get("lines")
    for line in lines if isinstance(lines, list) else ():
        if not isinstance(line, Mapping) or not isinstance(line.get("standard"), str):
            continue
        value = usual_amount(line.get("compensation"))
        if value is not None:
            out[line["standard"]] = out.get(line["standard"], ZERO) + value
    return out


#: SPEC §10: the purchase price returned, the compensation, and their sum — the payout,
#: settled as the result's ``settlement`` says.
FIGURES = (
    MoneyFigure(
        "counterfeit_refunds",
        "假一赔十退款",
        "counterfeit refunds",
        "refund_total",
    ),
    MoneyFigure(
        "counterfeit_compensation",
        "假一赔十赔偿",
        "counterfeit compensation",
        "compensation_total",
        by=by_standard,
        by_labels={standard.name: standard.label for standard in STANDARDS},
    ),
    MoneyFigure(
        "counterfeit_payouts",
        "假一赔十赔付合计",
        "counterfeit payouts",
        "payout_total",
        feeds=SETTLEMENT,
        summed=False,
    ),
)
EXPLAINED = (
    ReasonCode(NOT_CONFIRMED, "平台未确认为假货", "the platform has not confirmed a counterfeit"),
    ReasonCode(ALREADY_COMPENSATED, "该订单行已赔付过", "this order line was already compensated"),
)

#: The result as :func:`counterfeit_compensation` writes it (SPEC §4).
RESULT = shape(
    ("order_id", result_field({"type": "string"})),
    (
        "lines",
        result_field(
            {
                "type": "array",
                "items": shape(
                    ("line_id", result_field({"type": "string"})),
                    ("refund", result_field(MONEY_OUT)),
                    ("compensation", result_field(MONEY_OUT)),
                    ("total", result_field(MONEY_OUT)),
                    ("standard", result_field({"type": ["string", "null"]})),
                    closed=False,
                ).json_schema(),
            }
        ),
    ),
    ("refund_total", result_field(MONEY_OUT)),
    ("compensation_total", result_field(MONEY_OUT)),
    ("payout_total", result_field(MONEY_OUT)),
    ("payer", result_field({"const": "merchant"})),
    ("settlement", result_field({"enum": ["merchant_pays", "deduct_from_payout"]})),
)


RULE = Rule(
    kind=KIND,
    rule_set="chaozhigou-standard",
    version="1.0.0",
    parse=_parse,
    decide=_decide,
    description="假一赔十: refund plus the highest applicable compensation standard (SPEC §4).",
    input_fields=frozenset({"order_id", "confirmed", "lines", "merchant_refused"}),
    inputs=INPUT,
    results=RESULT,
    figures=FIGURES,
    codes=EXPLAINED,
    label="假一赔十",
)

__all__ = [
    "RULE",
    "STANDARDS",
    "ClaimLine",
    "CompensationInput",
    "consumer_law_art55",
    "counterfeit_compensation",
    "platform_10x",
]
