"""subsidy_split — the three price layers of 超值购 (SPEC §2; seed 002, 第五条 1(1)(3)).

原价 ``list_price`` → 报名价 ``registration_price`` (after the merchant's subsidy) →
补贴价 ``subsidy_price`` (what the consumer pays, after the platform's subsidy).

The rule splits the subsidy between merchant and platform and checks the registration
against the campaign's price rules. A rejected split still reports every amount exactly as
computed: a negative difference stays negative (``"-10.00"``), so the operator sees by
how much a price is off. No amount here needs rounding (differences and multiples of
fen are exact); the two rates are rounded by :func:`pricecalc.money.rate_of`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs

from pricecalc.decision import Outcome, Reason
from pricecalc.errors import InvalidInput
from pricecalc.fields import (
    MONEY_OUT,
    RATE_OUT,
    Fields,
    amount_field,
    count_field,
    items_field,
    result_field,
    shape,
    text_field,
)
from pricecalc.i18n import N_
from pricecalc.money import ZERO, fmt, fmt_rate, rate_of
from pricecalc.registry import MoneyFigure, ReasonCode, Rule, RuleContext

KIND = "subsidy_split"

# Rejection codes, in SPEC §2 order (reasons are always listed in this order).
REGISTRATION_ABOVE_LIST = "REGISTRATION_ABOVE_LIST"
ABOVE_30D_LOWEST = "ABOVE_30D_LOWEST"
ABOVE_OTHER_PLATFORM = "ABOVE_OTHER_PLATFORM"
FLOOR_BELOW_COST = "FLOOR_BELOW_COST"
FLOOR_ABOVE_REGISTRATION = "FLOOR_ABOVE_REGISTRATION"
BELOW_FLOOR = "BELOW_FLOOR"
PLATFORM_SUBSIDY_NEGATIVE = "PLATFORM_SUBSIDY_NEGATIVE"

CODES = (
    REGISTRATION_ABOVE_LIST,
    ABOVE_30D_LOWEST,
    ABOVE_OTHER_PLATFORM,
    FLOOR_BELOW_COST,
    FLOOR_ABOVE_REGISTRATION,
    BELOW_FLOOR,
    PLATFORM_SUBSIDY_NEGATIVE,
)


@attrs.frozen
class OtherPlatformPrice:
    """The same product's price in another platform's campaign (百亿补贴, 拼团 …)."""

    platform: str
    price: Decimal


@attrs.frozen
class SubsidyInput:
    """A validated subsidy_split request; every amount is per unit, in yuan.

    ``subsidy_price`` is always set: when the request gives ``platform_subsidy`` instead,
    it is ``registration_price − platform_subsidy``.
    """

    list_price: Decimal
    registration_price: Decimal
    subsidy_price: Decimal
    floor_price: Decimal
    cost_price: Decimal
    lowest_price_30d: Decimal | None = None
    other_platform_prices: tuple[OtherPlatformPrice, ...] = ()
    quantity: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    product_id: str | None = None
    category: str | None = None

    @classmethod
    def from_fields(cls, f: Fields) -> SubsidyInput:
        """Parse and validate the ``input`` object (SPEC §2 "Invalid input").

        Raises :class:`pricecalc.InvalidInput` naming the field: a missing field, a
        non-positive list/registration/subsidy price, a negative cost or floor, both or
        neither of ``subsidy_price`` / ``platform_subsidy``, a quantity below 1.
        """
        list_price = f.amount("list_price", positive=True)
        registration_price = f.amount("registration_price", positive=True)
        has_subsidy_price = f.has("subsidy_price")
        has_platform_subsidy = f.has("platform_subsidy")
        if has_subsidy_price and has_platform_subsidy:
            raise InvalidInput(
                f.at("platform_subsidy"),
                f.raw("platform_subsidy"),
                N_("give exactly one of subsidy_price or platform_subsidy, not both"),
            )
        if has_subsidy_price:
            subsidy_price = f.amount("subsidy_price", positive=True)
        elif has_platform_subsidy:
            platform_subsidy = f.amount("platform_subsidy")
            subsidy_price = registration_price - platform_subsidy
            if subsidy_price <= 0:
                raise InvalidInput(
                    f.at("platform_subsidy"),
                    f.raw("platform_subsidy"),
                    f"leaves a subsidy price of {fmt(subsidy_price)} "
                    f"(registration price {fmt(registration_price)} minus the platform "
                    "subsidy); the consumer must pay more than 0",
                )
        else:
            raise InvalidInput(
                f.at("subsidy_price"),
                None,
                N_("is required unless platform_subsidy is given (give exactly one of them)"),
            )
        others = tuple(
            OtherPlatformPrice(
                platform=item.string("platform"),
                price=item.amount("price", positive=True),
            )
            for item in f.items("other_platform_prices", required=False)
        )
        return cls(
            list_price=list_price,
            registration_price=registration_price,
            subsidy_price=subsidy_price,
            floor_price=f.amount("floor_price"),
            cost_price=f.amount("cost_price"),
            lowest_price_30d=f.optional_amount("lowest_price_30d", positive=True),
            other_platform_prices=others,
            quantity=f.integer("quantity", 1, minimum=1),
            product_id=f.optional_identifier("product_id"),
            category=f.optional_string("category"),
        )

    @property
    def lowest_other_platform(self) -> OtherPlatformPrice | None:
        """The lowest other-platform price; on a tie the one listed first."""
        lowest: OtherPlatformPrice | None = None
        for other in self.other_platform_prices:
            if lowest is None or other.price < lowest.price:
                lowest = other
        return lowest


def _parse(fields: Fields, ctx: RuleContext) -> SubsidyInput:
    return SubsidyInput.from_fields(fields)


def _reasons(inp: SubsidyInput, other: OtherPlatformPrice | None) -> list[Reason]:
    """Every failing SPEC §2 check, in SPEC order, each naming its value and bound
    (``other``: the lowest other-platform price)."""
    reg = inp.registration_price
    out: list[Reason] = []
    if reg > inp.list_price:
        out.append(
            Reason(
                REGISTRATION_ABOVE_LIST,
                f"registration price {fmt(reg)} is above the list price {fmt(inp.list_price)}",
            )
        )
    if inp.lowest_price_30d is not None and reg > inp.lowest_price_30d:
        out.append(
            Reason(
                ABOVE_30D_LOWEST,
                f"registration price {fmt(reg)} is above the lowest price of the last "
                f"30 days {fmt(inp.lowest_price_30d)}",
            )
        )
    if other is not None and reg > other.price:
        out.append(
            Reason(
                ABOVE_OTHER_PLATFORM,
                f"registration price {fmt(reg)} is above the lowest other-platform price "
                f"{fmt(other.price)} ({other.platform})",
            )
        )
    if inp.floor_price < inp.cost_price:
        out.append(
            Reason(
                FLOOR_BELOW_COST,
                f"floor price {fmt(inp.floor_price)} is below the cost price {fmt(inp.cost_price)}",
            )
        )
    if inp.floor_price > reg:
        out.append(
            Reason(
                FLOOR_ABOVE_REGISTRATION,
                f"floor price {fmt(inp.floor_price)} is above the registration price {fmt(reg)}",
            )
        )
    if inp.subsidy_price < inp.floor_price:
        out.append(
            Reason(
                BELOW_FLOOR,
                f"subsidy price {fmt(inp.subsidy_price)} is below the floor price "
                f"{fmt(inp.floor_price)}",
            )
        )
    if inp.subsidy_price > reg:
        out.append(
            Reason(
                PLATFORM_SUBSIDY_NEGATIVE,
                f"subsidy price {fmt(inp.subsidy_price)} is above the registration price "
                f"{fmt(reg)} (platform subsidy {fmt(reg - inp.subsidy_price)})",
            )
        )
    return out


def subsidy_split(inp: SubsidyInput, ctx: RuleContext | None = None) -> Outcome:
    """Split the subsidy between merchant and platform and check the price rules (SPEC §2).

    Pure: the outcome depends on ``inp`` alone (the context is not used).
    """
    q = inp.quantity
    merchant_subsidy = inp.list_price - inp.registration_price
    platform_subsidy = inp.registration_price - inp.subsidy_price
    total_subsidy = inp.list_price - inp.subsidy_price
    result: dict[str, Any] = {
        "merchant_subsidy": fmt(merchant_subsidy),
        "platform_subsidy": fmt(platform_subsidy),
        "total_subsidy": fmt(total_subsidy),
        "merchant_subsidy_rate": fmt_rate(rate_of(merchant_subsidy, inp.list_price)),
        "platform_subsidy_rate": fmt_rate(rate_of(platform_subsidy, inp.list_price)),
        "consumer_pays": fmt(inp.subsidy_price),
        "merchant_receives": fmt(inp.registration_price),
        "merchant_margin": fmt(inp.registration_price - inp.cost_price),
        "max_platform_subsidy": fmt(max(ZERO, inp.registration_price - inp.floor_price)),
        "quantity": q,
        "merchant_subsidy_total": fmt(merchant_subsidy * q),
        "platform_subsidy_total": fmt(platform_subsidy * q),
        "consumer_pays_total": fmt(inp.subsidy_price * q),
        "merchant_receives_total": fmt(inp.registration_price * q),
    }
    other = inp.lowest_other_platform
    if other is not None:
        result["lowest_other_platform"] = {"platform": other.platform, "price": fmt(other.price)}
    return Outcome(result=result, reasons=tuple(_reasons(inp, other)))


#: The input as :meth:`SubsidyInput.from_fields` reads it (SPEC §2), in SPEC order.
INPUT = shape(
    ("list_price", amount_field(positive=True)),
    ("registration_price", amount_field(positive=True)),
    ("subsidy_price", amount_field(positive=True, required=False)),
    ("platform_subsidy", amount_field(required=False)),
    ("floor_price", amount_field()),
    ("cost_price", amount_field()),
    ("lowest_price_30d", amount_field(positive=True, required=False)),
    (
        "other_platform_prices",
        items_field(
            shape(
                ("platform", text_field()),
                ("price", amount_field(positive=True)),
                closed=False,
            )
        ),
    ),
    ("quantity", count_field(minimum=1, required=False)),
    ("product_id", text_field(required=False, identifier=True)),
    ("category", text_field(required=False)),
    description="Exactly one of subsidy_price or platform_subsidy is given; "
    "registration_price minus platform_subsidy must be greater than 0 (SPEC §2).",
)

#: The result as :func:`subsidy_split` writes it.
RESULT = shape(
    *(
        (name, result_field(RATE_OUT if name.endswith("_rate") else MONEY_OUT))
        for name in (
            "merchant_subsidy",
            "platform_subsidy",
            "total_subsidy",
            "merchant_subsidy_rate",
            "platform_subsidy_rate",
            "consumer_pays",
            "merchant_receives",
            "merchant_margin",
            "max_platform_subsidy",
        )
    ),
    ("quantity", result_field({"type": "integer", "minimum": 1})),
    *(
        (name, result_field(MONEY_OUT))
        for name in (
            "merchant_subsidy_total",
            "platform_subsidy_total",
            "consumer_pays_total",
            "merchant_receives_total",
        )
    ),
    (
        "lowest_other_platform",
        result_field(
            {
                "type": "object",
                "properties": {"platform": {"type": "string"}, "price": MONEY_OUT},
                "required": ["platform", "price"],
            },
            required=False,
        ),
    ),
)


def _decide(inp: SubsidyInput, ctx: RuleContext) -> Outcome:
    return subsidy_split(inp, ctx)


#: SPEC §10's figures of a split: who funds the subsidy (neither moves money on a statement).
FIGURES = (
    MoneyFigure(
        "merchant_subsidy",
        "商家补贴",
        "merchant subsidy",
        "merchant_subsidy_total",
    ),
    MoneyFigure(
        "platform_subsidy",
        "平台补贴",
        "platform subsidy",
        "platform_subsidy_total",
    ),
)
EXPLAINED = (
    ReasonCode(
        REGISTRATION_ABOVE_LIST, "报名价高于原价", "registration price above the list price"
    ),
    ReasonCode(
        ABOVE_30D_LOWEST,
        "报名价高于近30日最低成交价",
        "registration price above the lowest price of the last 30 days",
    ),
    ReasonCode(
        ABOVE_OTHER_PLATFORM,
        "报名价高于其他平台活动价",
        "registration price above another platform's campaign price",
    ),
    ReasonCode(FLOOR_BELOW_COST, "最低售卖价低于成本价", "floor price below the cost price"),
    ReasonCode(
        FLOOR_ABOVE_REGISTRATION, "最低售卖价高于报名价", "floor price above the registration price"
    ),
    ReasonCode(
        BELOW_FLOOR,
        "补贴价低于商家可接受的最低售卖价",
        "subsidy price below the merchant's floor price",
    ),
    ReasonCode(
        PLATFORM_SUBSIDY_NEGATIVE,
        "补贴价高于报名价(平台补贴为负)",
        "subsidy price above the registration price (negative platform subsidy)",
    ),
)

RULE = Rule(
    kind=KIND,
    rule_set="chaozhigou-standard",
    version="1.0.0",
    parse=_parse,
    decide=_decide,
    description="超值购 price layers: merchant and platform subsidy, rates and price checks "
    "(SPEC §2).",
    input_fields=INPUT.names,
    inputs=INPUT,
    results=RESULT,
    figures=FIGURES,
    codes=EXPLAINED,
    label="补贴分摊",
)
