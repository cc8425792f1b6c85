"""price_protection — 价保 refunds for in-event markdowns (SPEC §3).

When the merchant marks a product down during the event after the buyer paid, the buyer
may claim the difference; the merchant pays, or the platform deducts it from the
merchant's payout when the merchant refuses.

The rule is pure: :func:`parse` reads the request into :class:`ProtectionInput`,
:func:`decide` computes the refund. Offers are looked up in the registry by their
``type`` and handled only through their stage and group (see :mod:`pricecalc.offers`), so
a plugin's offer type is priced by the same loop as the built-in ones.

The computation (docs/rules.md explains it for operators):

- ``net(t)`` per line = the line's gross at the unit prices of ``t`` minus its
  largest-remainder share of the order-level discount at ``t``;
- ``paid_net`` = gross at ``unit_price`` minus the line's share of
  ``paid_merchant_discount``, or ``net(paid_at)`` when that is not given;
- ``reference = min(paid_net, net(paid_at))``;
- ``lowest`` = the minimum of ``net(t)`` over the candidate times (every offer's change
  time in ``(paid_at, min(event.end, claimed_at)]``: a markdown scheduled after the claim
  is not paid in advance, a later claim pays it), earliest time on a tie; with no
  candidate time ``lowest = reference`` and ``lowest_at`` is ``None``;
- ``entitled = max(0, reference − lowest)`` capped at ``paid_net``;
  ``refund = max(0, entitled − already_refunded)``, and 0 on a rejected claim.

Pricing the lines at each time — the offers indexed once and swept in order — is
:mod:`pricecalc.rules.pricebook` (:class:`~pricecalc.rules.pricebook.PriceBook`);
docs/performance.md §5 has its cost and figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import attrs

from pricecalc.decision import Outcome, Reason
from pricecalc.errors import InvalidInput, PolicyError
from pricecalc.fields import (
    MONEY_OUT,
    Fields,
    amount_field,
    boolean_field,
    choice_field,
    count_field,
    identifier,
    iso,
    items_field,
    mapping_field,
    object_field,
    result_field,
    shape,
    stored_identifier,
    text_field,
    time_field,
)
from pricecalc.history import PastDecision
from pricecalc.i18n import msg
from pricecalc.money import ZERO, allocate, fmt, parse_amount
from pricecalc.offers import check_keys
from pricecalc.registry import SETTLEMENT, MoneyFigure, ReasonCode, Rule, RuleContext
from pricecalc.rules.pricebook import Line, ListedOffer, PriceBook

KIND = "price_protection"
RULE_SET = "chaozhigou-standard"
VERSION = "1.0.0"

ELIGIBLE_STATUSES = ("paid", "shipped", "completed")
INELIGIBLE_STATUSES = ("refunding", "refunded", "cancelled")
ORDER_STATUSES = ELIGIBLE_STATUSES + INELIGIBLE_STATUSES

PAID_OUTSIDE_EVENT = "PAID_OUTSIDE_EVENT"
CLAIM_EXPIRED = "CLAIM_EXPIRED"
ORDER_NOT_ELIGIBLE = "ORDER_NOT_ELIGIBLE"
NO_PRICE_DROP = "NO_PRICE_DROP"
ALREADY_REFUNDED = "ALREADY_REFUNDED"

#: The input as :meth:`ProtectionInput.from_fields` reads it (SPEC §3), in SPEC order.
INPUT = shape(
    ("order_id", text_field(identifier=True)),
    ("paid_at", time_field()),
    (
        "claimed_at",
        time_field(required=False).also("Not before paid_at; absent, it is now."),
    ),
    ("order_status", choice_field(ORDER_STATUSES)),
    (
        "event",
        object_field(
            shape(
                ("start", time_field()),
                ("end", time_field()),
                description="The event's closed window; end is not before start (a date "
                "alone as end is the end of that day).",
            )
        ),
    ),
    ("claim_days", count_field(minimum=0, required=False)),
    (
        "lines",
        items_field(
            shape(
                ("line_id", text_field(identifier=True)),
                ("sku", text_field(identifier=True)),
                ("quantity", count_field(minimum=1)),
                ("unit_price", amount_field(positive=True)),
                description="Each line_id once in an order.",
            ),
            required=True,
            non_empty=True,
        ),
    ),
    (
        "paid_merchant_discount",
        amount_field(required=False).also("At most the goods total of the lines."),
    ),
    (
        "offers",
        items_field(
            shape(
                ("type", text_field()),
                closed=False,
                description="An offer: its type (an installed offer type: coupon, "
                "flash_sale, … and plugins') and that type's own fields, which its parser "
                "checks.",
            ),
            required=True,
        ),
    ),
    (
        "already_refunded",
        mapping_field(
            amount_field(),
            checks="Refunds already paid, by line_id: each key a line_id of this order.",
        ),
    ),
    ("merchant_refused", boolean_field(required=False)),
)
INPUT_KEYS = INPUT.names

#: A result's time: ISO 8601 with its offset (SPEC §1 output).
_TIME_OUT = {"type": "string"}
#: The result as :func:`decide` writes it.
RESULT = shape(
    ("order_id", result_field({"type": "string"})),
    ("refund_total", result_field(MONEY_OUT)),
    (
        "lines",
        result_field(
            {
                "type": "array",
                "items": shape(
                    ("line_id", result_field({"type": "string"})),
                    ("paid_net", result_field(MONEY_OUT)),
                    ("lowest_net", result_field(MONEY_OUT)),
                    ("lowest_at", result_field({"type": ["string", "null"]})),
                    (
                        "lowest_offers",
                        result_field(
                            {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["index", "type"],
                                    "properties": {
                                        "index": {"type": "integer", "minimum": 0},
                                        "type": {"type": "string"},
                                    },
                                },
                            }
                        ),
                    ),
                    ("entitled", result_field(MONEY_OUT)),
                    ("already_refunded", result_field(MONEY_OUT)),
                    (
                        "already_refunded_given",
                        result_field({"anyOf": [MONEY_OUT, {"type": "null"}]}),
                    ),
                    ("already_refunded_recorded", result_field(MONEY_OUT)),
                    ("refund", result_field(MONEY_OUT)),
                    closed=False,
                ).json_schema(),
            }
        ),
    ),
    ("payer", result_field({"const": "merchant"})),
    ("settlement", result_field({"enum": ["merchant_pays", "deduct_from_payout"]})),
    ("claimed_at", result_field(_TIME_OUT)),
    ("claim_deadline", result_field(_TIME_OUT)),
)
Settlement = Literal["merchant_pays", "deduct_from_payout"]


# -- input ----------------------------------------------------------------------------


@attrs.frozen
class Event:
    """The campaign's closed window ``start ≤ t ≤ end``."""

    start: datetime
    end: datetime

    @classmethod
    def from_fields(cls, fields: Fields) -> Event:
        check_keys(fields, {"start", "end"})
        start, end = fields.time("start"), fields.time("end", end=True)
        if end < start:
            raise InvalidInput(
                fields.at("end"),
                fields.raw("end"),
                msg("must not be before start {start}", start=iso(start)),
            )
        return cls(start, end)

    def contains(self, t: datetime) -> bool:
        return self.start <= t <= self.end

    def describe(self) -> str:
        return f"{iso(self.start)} – {iso(self.end)}"


@attrs.frozen
class ProtectionInput:
    """A parsed 价保 claim (SPEC §3)."""

    order_id: str
    paid_at: datetime
    claimed_at: datetime
    claimed_at_given: bool
    order_status: str
    event: Event
    claim_days: int | None
    lines: tuple[Line, ...]
    offers: tuple[ListedOffer, ...]
    paid_merchant_discount: Decimal | None = None
    already_refunded: Mapping[str, Decimal] | None = None
    merchant_refused: bool = False

    @classmethod
    def from_fields(cls, fields: Fields, ctx: RuleContext) -> ProtectionInput:
        """Read and check a request's ``input``, field by field in SPEC order."""
        check_keys(fields, INPUT_KEYS)
        order_id = fields.identifier("order_id")
        paid_at = fields.time("paid_at")
        claimed_at = fields.optional_time("claimed_at")
        if claimed_at is not None and claimed_at < paid_at:
            raise InvalidInput(
                fields.at("claimed_at"),
                fields.raw("claimed_at"),
                msg("must not be before paid_at {paid_at}", paid_at=iso(paid_at)),
            )
        if claimed_at is None and ctx.now < paid_at:
            raise InvalidInput(
                fields.at("claimed_at"),
                iso(ctx.now),
                msg(
                    "defaults to now, which is before paid_at {paid_at}; give claimed_at",
                    paid_at=iso(paid_at),
                ),
            )
        order_status = fields.choice("order_status", ORDER_STATUSES)
        event = Event.from_fields(fields.obj("event"))
        claim_days = fields.integer("claim_days", minimum=0) if fields.has("claim_days") else None
        lines = _lines(fields)
        discount = fields.optional_amount("paid_merchant_discount")
        goods = sum((line.gross for line in lines), ZERO)
        if discount is not None and discount > goods:
            raise InvalidInput(
                fields.at("paid_merchant_discount"),
                fields.raw("paid_merchant_discount"),
                msg("must not exceed the goods total {total}", total=fmt(goods)),
            )
        offers = tuple(
            ListedOffer.from_fields(index, item, ctx)
            for index, item in enumerate(fields.items("offers"))
        )
        return cls(
            order_id=order_id,
            paid_at=paid_at,
            claimed_at=ctx.now if claimed_at is None else claimed_at,
            claimed_at_given=claimed_at is not None,
            order_status=order_status,
            event=event,
            claim_days=claim_days,
            lines=lines,
            offers=offers,
            paid_merchant_discount=discount,
            already_refunded=_already_refunded(fields, [line.line_id for line in lines]),
            merchant_refused=fields.boolean("merchant_refused", False),
        )


def _lines(fields: Fields) -> tuple[Line, ...]:
    """The non-empty list of lines, each ``line_id`` once."""
    lines = tuple(Line.from_fields(item) for item in fields.items("lines", non_empty=True))
    first: dict[str, int] = {}
    for index, line in enumerate(lines):
        if line.line_id in first:
            raise InvalidInput(
                f"{fields.at('lines')}[{index}].line_id",
                line.line_id,
                msg(
                    "repeats the line_id of {other}",
                    other=f"{fields.at('lines')}[{first[line.line_id]}]",
                ),
            )
        first[line.line_id] = index
    return lines


def _already_refunded(fields: Fields, line_ids: Sequence[str]) -> dict[str, Decimal] | None:
    """``already_refunded: {line_id: amount}``; a line_id not in the order is refused."""
    given = fields.mapping("already_refunded")
    if given is None:
        return None
    amounts: dict[str, Decimal] = {}
    for key in given.data:
        line_id = identifier(key, given.at(str(key)))  # the line's id as the lines read it
        if line_id not in line_ids:
            raise InvalidInput(
                given.at(str(key)),
                key,
                msg("is not a line of this order ({lines})", lines=", ".join(line_ids)),
            )
        amounts[line_id] = given.amount(key)
    return amounts


def parse(fields: Fields, ctx: RuleContext) -> ProtectionInput:
    """Read a 价保 request; :class:`pricecalc.InvalidInput` names any bad field."""
    return ProtectionInput.from_fields(fields, ctx)


# -- decision -------------------------------------------------------------------------


@attrs.frozen
class LineOutcome:
    """One line's numbers (SPEC §3 result ``lines``)."""

    line_id: str
    paid_net: Decimal
    lowest_net: Decimal
    lowest_at: datetime | None
    lowest_offers: tuple[ListedOffer, ...]
    entitled: Decimal
    already_refunded: Decimal
    refund: Decimal
    already_refunded_given: Decimal | None = None
    already_refunded_recorded: Decimal = ZERO

    def to_dict(self) -> dict[str, Any]:
        given = self.already_refunded_given
        return {
            "line_id": self.line_id,
            "paid_net": fmt(self.paid_net),
            "lowest_net": fmt(self.lowest_net),
            "lowest_at": None if self.lowest_at is None else iso(self.lowest_at),
            "lowest_offers": [o.ref() for o in self.lowest_offers],
            "entitled": fmt(self.entitled),
            "already_refunded": fmt(self.already_refunded),
            "already_refunded_given": None if given is None else fmt(given),
            "already_refunded_recorded": fmt(self.already_refunded_recorded),
            "refund": fmt(self.refund),
        }


def claim_days(inp: ProtectionInput, ctx: RuleContext) -> int:
    """The claim period: the request's ``claim_days``, else the policy's."""
    if inp.claim_days is not None:
        return inp.claim_days
    value = ctx.policy.get("price_protection", "claim_days")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PolicyError(
            msg(
                "policy: {key} must be a whole number of days ≥ 0, got {value!r}",
                key="price_protection.claim_days",
                value=value,
            )
        )
    return value


def markdowns_until(inp: ProtectionInput) -> datetime:
    """The last moment a markdown counts for this claim: ``min(event.end, claimed_at)``.

    A markdown scheduled after the claim is not paid in advance; a later claim pays it.
    """
    return min(inp.event.end, inp.claimed_at)


def lines_outcome(
    inp: ProtectionInput, recorded: Mapping[str, Decimal] | None = None
) -> list[LineOutcome]:
    """Every line's paid_net, lowest net, entitlement and refund before any rejection.

    A line's ``already_refunded`` is the larger of the amount the request gives and the
    approved, not voided refunds ``recorded`` for it in the audit store (SPEC §3: a caller
    can add to the store's history, never erase it); the result shows both."""
    recorded = recorded or {}
    given_all = inp.already_refunded or {}
    found = PriceBook(inp.lines, inp.offers, inp.paid_at, markdowns_until(inp)).sweep()
    if inp.paid_merchant_discount is None:
        paid_nets = list(found.at_paid)
    else:
        grosses = [line.gross for line in inp.lines]
        shares = allocate(inp.paid_merchant_discount, grosses)
        paid_nets = [g - s for g, s in zip(grosses, shares, strict=True)]

    out = []
    for i, line in enumerate(inp.lines):
        # An offer the buyer skipped at purchase creates no refund.
        reference = min(paid_nets[i], found.at_paid[i])
        lowest = found.lowest[i]
        lowest_net = reference if lowest is None else lowest.net
        entitled = min(max(ZERO, reference - lowest_net), paid_nets[i])
        given = given_all.get(line.line_id)
        in_store = recorded.get(line.line_id, ZERO)
        paid_before = in_store if given is None else max(given, in_store)
        out.append(
            LineOutcome(
                line_id=line.line_id,
                paid_net=paid_nets[i],
                lowest_net=lowest_net,
                lowest_at=None if lowest is None else lowest.at,
                lowest_offers=() if lowest is None else lowest.offers,
                entitled=entitled,
                already_refunded=paid_before,
                refund=max(ZERO, entitled - paid_before),
                already_refunded_given=given,
                already_refunded_recorded=in_store,
            )
        )
    return out


def refunds_paid(past: Iterable[PastDecision]) -> dict[str, Decimal]:
    """The refunds already paid per order line: the ``lines[].refund`` of every approved,
    not voided price-protection decision (this rule's own result layout)."""
    paid: dict[str, Decimal] = {}
    for decision in past:
        if decision.kind != KIND or not decision.counts:
            continue
        for line in decision.result.get("lines", ()):
            amount = parse_amount(line["refund"], f"audit record {decision.seq} refund")
            # compared as SPEC §1 reads it: a record written before normalisation counts
            line_id = stored_identifier(line["line_id"])
            paid[line_id] = paid.get(line_id, ZERO) + amount
    return paid


def _recorded(inp: ProtectionInput, ctx: RuleContext) -> dict[str, Decimal]:
    """The approved, not voided refunds in the store for this order's lines — always read,
    whatever the request gives (SPEC §3)."""
    recorded = refunds_paid(ctx.history.decisions(inp.order_id))
    return {line.line_id: recorded[line.line_id] for line in inp.lines if line.line_id in recorded}


def _line_list(lines: Sequence[LineOutcome], show: Any, limit: int = 5) -> str:
    shown = [f"{line.line_id}: {show(line)}" for line in lines[:limit]]
    if len(lines) > limit:
        shown.append(f"and {len(lines) - limit} more")
    return "; ".join(shown)


def decide(inp: ProtectionInput, ctx: RuleContext) -> Outcome:
    """Decide a 价保 claim (SPEC §3). Pure: the clock comes in through ``ctx.now``."""
    days = claim_days(inp, ctx)
    deadline = inp.event.end + timedelta(days=days)
    lines = lines_outcome(inp, _recorded(inp, ctx))

    reasons: list[Reason] = []
    if not inp.event.contains(inp.paid_at):
        reasons.append(
            Reason(
                PAID_OUTSIDE_EVENT,
                f"paid at {iso(inp.paid_at)}, outside the event {inp.event.describe()}",
            )
        )
    if inp.claimed_at > deadline:
        claimed = "claimed" if inp.claimed_at_given else "claimed (now)"
        reasons.append(
            Reason(
                CLAIM_EXPIRED,
                f"{claimed} at {iso(inp.claimed_at)}, after the claim deadline {iso(deadline)} "
                f"(event end {iso(inp.event.end)} + {days} days)",
            )
        )
    if inp.order_status not in ELIGIBLE_STATUSES:
        reasons.append(
            Reason(
                ORDER_NOT_ELIGIBLE,
                f"order status {inp.order_status!r} is not eligible for price protection "
                f"(eligible: {', '.join(ELIGIBLE_STATUSES)})",
            )
        )
    entitled = sum((line.entitled for line in lines), ZERO)
    payable = sum((line.refund for line in lines), ZERO)
    if entitled == 0:
        if inp.claimed_at < inp.event.end:
            bound = f"the claim at {iso(inp.claimed_at)}"
        else:
            bound = f"the event end {iso(inp.event.end)}"
        reasons.append(
            Reason(
                NO_PRICE_DROP,
                f"no line sold lower between payment {iso(inp.paid_at)} and {bound}: "
                "the lowest net is not below the price paid ("
                + _line_list(lines, lambda x: f"paid {fmt(x.paid_net)}, lowest {fmt(x.lowest_net)}")
                + ")",
            )
        )
    elif payable == 0:
        reasons.append(
            Reason(
                ALREADY_REFUNDED,
                f"entitled to {fmt(entitled)} in total, all of it already refunded ("
                + _line_list(
                    lines,
                    lambda x: f"entitled {fmt(x.entitled)}, already {fmt(x.already_refunded)}",
                )
                + ")",
            )
        )
    if reasons:
        lines = [attrs.evolve(line, refund=ZERO) for line in lines]
    settlement: Settlement = "deduct_from_payout" if inp.merchant_refused else "merchant_pays"
    result = {
        "order_id": inp.order_id,
        "refund_total": fmt(sum((line.refund for line in lines), ZERO)),
        "lines": [line.to_dict() for line in lines],
        "payer": "merchant",
        "settlement": settlement,
        "claimed_at": iso(inp.claimed_at),
        "claim_deadline": iso(deadline),
    }
    # The plugins whose offer types priced this claim took part (SPEC §7: their versions
    # are recorded); the built-in types are the rule's own plugin's.
    used = frozenset(listed.plugin for listed in inp.offers)
    return Outcome(result=result, reasons=tuple(reasons), plugins=used)


#: SPEC §10: the refund, settled as the result's ``settlement`` says.
FIGURES = (
    MoneyFigure(
        "price_protection_refunds",
        "价保退款",
        "price protection refunds",
        "refund_total",
        feeds=SETTLEMENT,
    ),
)
EXPLAINED = (
    ReasonCode(PAID_OUTSIDE_EVENT, "下单付款不在活动期内", "paid outside the event"),
    ReasonCode(CLAIM_EXPIRED, "已超过价保申请期限", "claimed after the claim period ended"),
    ReasonCode(
        ORDER_NOT_ELIGIBLE,
        "订单状态不可价保(退款中、已退款或已取消)",
        "order not eligible (refunding, refunded or cancelled)",
    ),
    ReasonCode(
        NO_PRICE_DROP,
        "付款后商家没有降价，无可退差价",
        "no merchant markdown after payment: nothing to refund",
    ),
    ReasonCode(ALREADY_REFUNDED, "差价已全部退过", "the price difference was already refunded"),
)

RULE = Rule(
    kind=KIND,
    rule_set=RULE_SET,
    version=VERSION,
    parse=parse,
    decide=decide,
    description="价保: refund the in-event markdown after payment (SPEC §3)",
    input_fields=INPUT_KEYS,
    inputs=INPUT,
    results=RESULT,
    figures=FIGURES,
    codes=EXPLAINED,
    label="价保",
)
