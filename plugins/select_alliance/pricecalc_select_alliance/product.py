"""select_alliance_product — may this product be promoted in Select Alliance? (SPEC §6)

Seed 000: a product's 30-day quality return rate (品退率) must be **below** its category's
threshold; some categories must also meet a 24-hour shipping rate and a customer-service
satisfaction. The platform publishes no numbers, so the thresholds are a table the user
keeps in the policy file (section ``select_alliance_product``)::

    [select_alliance_product.thresholds]          # category = quality return rate
    "女装" = "0.50%"
    [select_alliance_product.min_shipping_24h_rate] # categories that need it = minimum
    "生鲜" = "95%"
    [select_alliance_product.min_cs_satisfaction]
    "生鲜" = "90%"

All three tables are empty by default, so every category is ``NO_THRESHOLD_FOR_CATEGORY``
until the user fills them in.

Input ``category``, ``quality_return_rate``, and — when the category is in the matching
table — ``shipping_24h_rate`` and ``cs_satisfaction`` (rates: fractions or percentages).

Codes: ``QUALITY_RETURN_RATE_HIGH`` (the rate is at or above the threshold: a product
already promoted is removed at once), ``NO_THRESHOLD_FOR_CATEGORY``,
``SHIPPING_24H_RATE_LOW``, ``CS_SATISFACTION_LOW`` (each minimum is inclusive).

Choices where the SPEC is silent:

* Categories match without regard to case or surrounding space.
* A category that needs ``shipping_24h_rate`` or ``cs_satisfaction`` without the value in
  the input is invalid input (the error names the field and the minimum); for other
  categories the value, if given, is checked for form and reported but not judged.
* ``cs_satisfaction`` is a rate (客服满意率) like the others, at most 100%.
* ``remove_if_promoted`` is true when a quality or service criterion fails (seed 000:
  both lead to removal); a missing threshold alone cannot say, so it is false.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import attrs

from pricecalc import hookimpl
from pricecalc.decision import Outcome, Reason
from pricecalc.errors import InvalidInput
from pricecalc.fields import Fields, rate_field, result_field, shape, text_field
from pricecalc.i18n import msg
from pricecalc.policy import PolicyView
from pricecalc.registry import ReasonCode, Rule, RuleContext
from pricecalc_select_alliance import DISTRIBUTION, __version__
from pricecalc_select_alliance._support import fraction, norm, percent, policy_rate_table, rate

KIND = "select_alliance_product"
SECTION = "select_alliance_product"

QUALITY_RETURN_RATE_HIGH = "QUALITY_RETURN_RATE_HIGH"
NO_THRESHOLD_FOR_CATEGORY = "NO_THRESHOLD_FOR_CATEGORY"
SHIPPING_24H_RATE_LOW = "SHIPPING_24H_RATE_LOW"
CS_SATISFACTION_LOW = "CS_SATISFACTION_LOW"
CODES: tuple[str, ...] = (
    QUALITY_RETURN_RATE_HIGH,
    NO_THRESHOLD_FOR_CATEGORY,
    SHIPPING_24H_RATE_LOW,
    CS_SATISFACTION_LOW,
)
#: Codes after which a product already promoted must be taken down (seed 000).
REMOVAL_CODES = frozenset({QUALITY_RETURN_RATE_HIGH, SHIPPING_24H_RATE_LOW, CS_SATISFACTION_LOW})

POLICY_DEFAULTS: dict[str, dict[str, Any]] = {
    SECTION: {
        # {category: quality return rate}; the product's rate must be strictly below it.
        "thresholds": {},
        # {category: minimum}; only the categories listed need the metric.
        "min_shipping_24h_rate": {},
        "min_cs_satisfaction": {},
    }
}


@attrs.frozen
class Requirements:
    """What the policy asks of one category (``None``: not set for it)."""

    threshold: Decimal | None
    min_shipping_24h_rate: Decimal | None
    min_cs_satisfaction: Decimal | None

    @classmethod
    def for_category(cls, policy: PolicyView, category: str) -> Requirements:
        key = norm(category)
        return cls(
            threshold=policy_rate_table(policy, SECTION, "thresholds").get(key),
            min_shipping_24h_rate=policy_rate_table(policy, SECTION, "min_shipping_24h_rate").get(
                key
            ),
            min_cs_satisfaction=policy_rate_table(policy, SECTION, "min_cs_satisfaction").get(key),
        )


@attrs.frozen
class ProductInput:
    """A validated select_alliance_product request."""

    category: str
    quality_return_rate: Decimal
    shipping_24h_rate: Decimal | None = None
    cs_satisfaction: Decimal | None = None

    @classmethod
    def from_fields(cls, f: Fields) -> ProductInput:
        return cls(
            category=f.string("category"),
            quality_return_rate=rate(f, "quality_return_rate"),
            shipping_24h_rate=rate(f, "shipping_24h_rate") if f.has("shipping_24h_rate") else None,
            cs_satisfaction=rate(f, "cs_satisfaction") if f.has("cs_satisfaction") else None,
        )


def _parse(fields: Fields, ctx: RuleContext) -> ProductInput:
    """Parse, then insist on the metrics the category's policy entry asks for."""
    inp = ProductInput.from_fields(fields)
    needs = Requirements.for_category(ctx.policy, inp.category)
    for name, minimum, value in (
        ("shipping_24h_rate", needs.min_shipping_24h_rate, inp.shipping_24h_rate),
        ("cs_satisfaction", needs.min_cs_satisfaction, inp.cs_satisfaction),
    ):
        if minimum is not None and value is None:
            raise InvalidInput(
                fields.at(name),
                None,
                msg(
                    "is required for category {category!r} (its minimum is {minimum})",
                    category=inp.category,
                    minimum=percent(minimum),
                ),
            )
    return inp


def _optional(rate_value: Decimal | None) -> str | None:
    return None if rate_value is None else fraction(rate_value)


def select_alliance_product(inp: ProductInput, ctx: RuleContext) -> Outcome:
    """Below the category's threshold, and meeting its service minimums, if any."""
    needs = Requirements.for_category(ctx.policy, inp.category)
    cat = inp.category
    reasons: list[Reason] = []
    if needs.threshold is None:
        reasons.append(
            Reason(
                NO_THRESHOLD_FOR_CATEGORY,
                f"no quality return rate threshold is set for category {cat!r}; add it to "
                f"[{SECTION}.thresholds] in the policy file",
            )
        )
    elif inp.quality_return_rate >= needs.threshold:
        reasons.append(
            Reason(
                QUALITY_RETURN_RATE_HIGH,
                f"quality return rate {percent(inp.quality_return_rate)} is not below the "
                f"threshold {percent(needs.threshold)} for category {cat!r}; a promoted "
                "product is removed at once",
            )
        )
    if (
        needs.min_shipping_24h_rate is not None
        and inp.shipping_24h_rate is not None
        and inp.shipping_24h_rate < needs.min_shipping_24h_rate
    ):
        reasons.append(
            Reason(
                SHIPPING_24H_RATE_LOW,
                f"24-hour shipping rate {percent(inp.shipping_24h_rate)} is below the minimum "
                f"{percent(needs.min_shipping_24h_rate)} for category {cat!r}",
            )
        )
    if (
        needs.min_cs_satisfaction is not None
        and inp.cs_satisfaction is not None
        and inp.cs_satisfaction < needs.min_cs_satisfaction
    ):
        reasons.append(
            Reason(
                CS_SATISFACTION_LOW,
                f"customer service satisfaction {percent(inp.cs_satisfaction)} is below the "
                f"minimum {percent(needs.min_cs_satisfaction)} for category {cat!r}",
            )
        )
    return Outcome(
        result={
            "eligible": not reasons,
            "remove_if_promoted": any(r.code in REMOVAL_CODES for r in reasons),
            "category": cat,
            "quality_return_rate": fraction(inp.quality_return_rate),
            "threshold": _optional(needs.threshold),
            "shipping_24h_rate": _optional(inp.shipping_24h_rate),
            "min_shipping_24h_rate": _optional(needs.min_shipping_24h_rate),
            "cs_satisfaction": _optional(inp.cs_satisfaction),
            "min_cs_satisfaction": _optional(needs.min_cs_satisfaction),
        },
        reasons=tuple(reasons),
    )


EXPLAINED = (
    ReasonCode(
        QUALITY_RETURN_RATE_HIGH,
        "近30天品质退货率不低于类目阈值(已推广的须立即下架)",
        "30-day quality return rate not below the category's threshold "
        "(take a promoted product down at once)",
    ),
    ReasonCode(
        NO_THRESHOLD_FOR_CATEGORY,
        "该类目没有设定品质退货率阈值",
        "no quality return threshold set for the category",
    ),
    ReasonCode(SHIPPING_24H_RATE_LOW, "24小时发货率低于要求", "24-hour shipping rate too low"),
    ReasonCode(CS_SATISFACTION_LOW, "客服满意度低于要求", "customer service satisfaction too low"),
)

#: The input as :meth:`ProductInput.from_fields` reads it (SPEC §6).
INPUT = shape(
    ("category", text_field()),
    ("quality_return_rate", rate_field()),
    ("shipping_24h_rate", rate_field(required=False)),
    ("cs_satisfaction", rate_field(required=False)),
    description="shipping_24h_rate and cs_satisfaction are required for a category whose "
    "policy sets a minimum for them.",
)
_RATE_OR_NULL = {"type": ["string", "null"]}
#: The result as :func:`select_alliance_product` writes it.
RESULT = shape(
    ("eligible", result_field({"type": "boolean"})),
    ("remove_if_promoted", result_field({"type": "boolean"})),
    ("category", result_field({"type": "string"})),
    ("quality_return_rate", result_field({"type": "string"})),
    ("threshold", result_field(_RATE_OR_NULL)),
    ("shipping_24h_rate", result_field(_RATE_OR_NULL)),
    ("min_shipping_24h_rate", result_field(_RATE_OR_NULL)),
    ("cs_satisfaction", result_field(_RATE_OR_NULL)),
    ("min_cs_satisfaction", result_field(_RATE_OR_NULL)),
)


RULE = Rule(
    kind=KIND,
    rule_set=DISTRIBUTION,
    version=__version__,
    parse=_parse,
    decide=select_alliance_product,
    description="Select Alliance product: below the category's quality return threshold (SPEC §6).",
    input_fields=INPUT.names,
    inputs=INPUT,
    results=RESULT,
    codes=EXPLAINED,
    label="精选联盟商品",
)


@hookimpl
def pricecalc_rules() -> Iterable[Rule]:
    return [RULE]


@hookimpl
def pricecalc_policy_defaults() -> Mapping[str, Mapping[str, Any]]:
    return copy.deepcopy(POLICY_DEFAULTS)


__all__ = [
    "CODES",
    "POLICY_DEFAULTS",
    "RULE",
    "ProductInput",
    "Requirements",
    "select_alliance_product",
]
