"""chaozhigou_admission — may this merchant enter 超值购 with this product? (SPEC §6)

Seed 002, 第五条 2 (merchant) and 3 (product). Every criterion is checked and every one
that fails is its own reason, naming the value and the bound; the decision is approved
(``admitted: true``) only when all pass. Bounds are inclusive: an experience score of
exactly 70 passes, a quality return rate of exactly 0.54% passes.

Input ``merchant``: ``newcomer``, ``seven_day_returns``, ``shipping_insurance``,
``authenticity_guarantee``, ``experience_score``, ``logistics_score``,
``avg_response_seconds``, ``shop_type``, ``accepts_inspection``.
Input ``product``: ``good_review_rate``, ``quality_return_rate``, ``negative_review_rate``,
``complaint_rate``, ``shipping_mode``, ``white_background``, ``product_type``.
Rates are fractions (``"0.0054"``) or percentages (``"0.54%"``), at most 100%.

Choices where the SPEC is silent:

* ``shop_type``, ``shipping_mode`` and ``product_type`` take the English ids or the
  Chinese names (``旗舰店`` → ``flagship``, ``预售`` → ``presale``, ``虚拟商品`` →
  ``virtual``); a value that is none of the known ones is not invalid input but simply not
  allowed (a shop type nobody allowed is refused with a reason that lists the allowed ones).
* A personal shop (``personal``, 个人店) is never admitted: a policy that lists it among
  ``allowed_shop_types`` is refused.
* The result lists every check, passed or not, with its value, operator and bound.

Policy section ``chaozhigou_admission`` (see :data:`POLICY_DEFAULTS`) holds every bound.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import attrs

from pricecalc import hookimpl
from pricecalc.decision import Outcome, Reason
from pricecalc.errors import PolicyError
from pricecalc.fields import (
    Declared,
    Fields,
    boolean_field,
    object_field,
    rate_field,
    result_field,
    score_field,
    shape,
    text_field,
)
from pricecalc.i18n import msg
from pricecalc.policy import PolicyView
from pricecalc.registry import ReasonCode, Rule, RuleContext
from pricecalc.toolkit import (
    fraction,
    percent,
    plain,
    policy_names,
    policy_number,
    policy_rate,
    rate,
    score,
)
from pricecalc_chaozhigou import DISTRIBUTION, __version__
from pricecalc_chaozhigou.names import (
    PERSONAL,
    PRODUCT_TYPES,
    SERVICES,
    SHIPPING_MODES,
    SHOP_TYPES,
    label,
    labels,
    product_type_id,
    shipping_mode_id,
    shop_type_id,
)

KIND = "chaozhigou_admission"
SECTION = "chaozhigou_admission"

# -- reason codes (SPEC §6) ----------------------------------------------------------------
NEWCOMER = "NEWCOMER"
SERVICE_NOT_ENABLED = "SERVICE_NOT_ENABLED"
EXPERIENCE_SCORE_LOW = "EXPERIENCE_SCORE_LOW"
LOGISTICS_SCORE_LOW = "LOGISTICS_SCORE_LOW"
RESPONSE_TOO_SLOW = "RESPONSE_TOO_SLOW"
SHOP_TYPE_NOT_ALLOWED = "SHOP_TYPE_NOT_ALLOWED"
NO_INSPECTION = "NO_INSPECTION"
GOOD_REVIEW_RATE_LOW = "GOOD_REVIEW_RATE_LOW"
QUALITY_RETURN_RATE_HIGH = "QUALITY_RETURN_RATE_HIGH"
NEGATIVE_REVIEW_RATE_HIGH = "NEGATIVE_REVIEW_RATE_HIGH"
COMPLAINT_RATE_HIGH = "COMPLAINT_RATE_HIGH"
NOT_SPOT_GOODS = "NOT_SPOT_GOODS"
NO_WHITE_BACKGROUND = "NO_WHITE_BACKGROUND"
PRODUCT_TYPE_EXCLUDED = "PRODUCT_TYPE_EXCLUDED"

CODES: tuple[str, ...] = (
    NEWCOMER,
    SERVICE_NOT_ENABLED,
    EXPERIENCE_SCORE_LOW,
    LOGISTICS_SCORE_LOW,
    RESPONSE_TOO_SLOW,
    SHOP_TYPE_NOT_ALLOWED,
    NO_INSPECTION,
    GOOD_REVIEW_RATE_LOW,
    QUALITY_RETURN_RATE_HIGH,
    NEGATIVE_REVIEW_RATE_HIGH,
    COMPLAINT_RATE_HIGH,
    NOT_SPOT_GOODS,
    NO_WHITE_BACKGROUND,
    PRODUCT_TYPE_EXCLUDED,
)

# -- policy --------------------------------------------------------------------------------
POLICY_DEFAULTS: dict[str, dict[str, Any]] = {
    SECTION: {
        # merchant (第五条 2)
        "required_services": list(SERVICES),
        "min_experience_score": 70,
        "min_logistics_score": 65,
        "max_avg_response_seconds": 40,
        "allowed_shop_types": [k for k in SHOP_TYPES if k != PERSONAL],
        # product (第五条 3)
        "min_good_review_rate": "90%",
        "max_quality_return_rate": "0.54%",
        "max_negative_review_rate": "0.33%",
        "max_complaint_rate": "0.03%",
        "allowed_shipping_modes": ["spot"],
        "excluded_product_types": list(PRODUCT_TYPES),
    }
}


@attrs.frozen
class Limits:
    """Every bound of the rule, read from the policy (and so recorded in the decision)."""

    required_services: tuple[str, ...]
    min_experience_score: Decimal
    min_logistics_score: Decimal
    max_avg_response_seconds: Decimal
    allowed_shop_types: tuple[str, ...]
    min_good_review_rate: Decimal
    max_quality_return_rate: Decimal
    max_negative_review_rate: Decimal
    max_complaint_rate: Decimal
    allowed_shipping_modes: tuple[str, ...]
    excluded_product_types: tuple[str, ...]

    @classmethod
    def from_policy(cls, policy: PolicyView) -> Limits:
        services = policy_names(policy, SECTION, "required_services")
        for service in services:
            if service not in SERVICES:
                raise PolicyError(
                    msg(
                        "policy: {section}.required_services names an unknown service "
                        "{service!r} (known: {known})",
                        section=SECTION, service=service, known=", ".join(SERVICES),
                    )
                )  # fmt: skip
        shop_types = tuple(
            shop_type_id(s) for s in policy_names(policy, SECTION, "allowed_shop_types")
        )
        if PERSONAL in shop_types:
            raise PolicyError(
                msg(
                    "policy: {section}.allowed_shop_types must not list personal (个人店): "
                    "a personal shop is never admitted to 超值购",
                    section=SECTION,
                )
            )
        return cls(
            required_services=services,
            min_experience_score=policy_number(policy, SECTION, "min_experience_score"),
            min_logistics_score=policy_number(policy, SECTION, "min_logistics_score"),
            max_avg_response_seconds=policy_number(policy, SECTION, "max_avg_response_seconds"),
            allowed_shop_types=shop_types,
            min_good_review_rate=policy_rate(policy, SECTION, "min_good_review_rate"),
            max_quality_return_rate=policy_rate(policy, SECTION, "max_quality_return_rate"),
            max_negative_review_rate=policy_rate(policy, SECTION, "max_negative_review_rate"),
            max_complaint_rate=policy_rate(policy, SECTION, "max_complaint_rate"),
            allowed_shipping_modes=tuple(
                shipping_mode_id(s) for s in policy_names(policy, SECTION, "allowed_shipping_modes")
            ),
            excluded_product_types=tuple(
                product_type_id(s) for s in policy_names(policy, SECTION, "excluded_product_types")
            ),
        )


# -- input ---------------------------------------------------------------------------------
@attrs.frozen
class MerchantInput:
    """The shop: its standing, services, scores and type (第五条 2)."""

    newcomer: bool
    seven_day_returns: bool
    shipping_insurance: bool
    authenticity_guarantee: bool
    experience_score: Decimal
    logistics_score: Decimal
    avg_response_seconds: Decimal
    shop_type: str = attrs.field(converter=shop_type_id)
    accepts_inspection: bool

    @classmethod
    def from_fields(cls, f: Fields) -> MerchantInput:
        return cls(
            newcomer=f.boolean("newcomer"),
            seven_day_returns=f.boolean("seven_day_returns"),
            shipping_insurance=f.boolean("shipping_insurance"),
            authenticity_guarantee=f.boolean("authenticity_guarantee"),
            experience_score=score(f, "experience_score"),
            logistics_score=score(f, "logistics_score"),
            avg_response_seconds=score(f, "avg_response_seconds"),
            shop_type=f.string("shop_type"),
            accepts_inspection=f.boolean("accepts_inspection"),
        )

    def services(self) -> dict[str, bool]:
        return {
            "seven_day_returns": self.seven_day_returns,
            "shipping_insurance": self.shipping_insurance,
            "authenticity_guarantee": self.authenticity_guarantee,
        }


@attrs.frozen
class ProductInput:
    """The product's 30-day metrics and listing (第五条 3)."""

    good_review_rate: Decimal
    quality_return_rate: Decimal
    negative_review_rate: Decimal
    complaint_rate: Decimal
    shipping_mode: str = attrs.field(converter=shipping_mode_id)
    white_background: bool
    product_type: str = attrs.field(converter=product_type_id)

    @classmethod
    def from_fields(cls, f: Fields) -> ProductInput:
        return cls(
            good_review_rate=rate(f, "good_review_rate"),
            quality_return_rate=rate(f, "quality_return_rate"),
            negative_review_rate=rate(f, "negative_review_rate"),
            complaint_rate=rate(f, "complaint_rate"),
            shipping_mode=f.string("shipping_mode"),
            white_background=f.boolean("white_background"),
            product_type=f.string("product_type"),
        )


@attrs.frozen
class AdmissionInput:
    """A validated chaozhigou_admission request: one merchant, one product."""

    merchant: MerchantInput
    product: ProductInput

    @classmethod
    def from_fields(cls, f: Fields) -> AdmissionInput:
        return cls(
            merchant=MerchantInput.from_fields(f.obj("merchant")),
            product=ProductInput.from_fields(f.obj("product")),
        )


# -- checks --------------------------------------------------------------------------------
@attrs.frozen
class Check:
    """One criterion: the value found, the bound, and the reason if it fails."""

    criterion: str
    code: str
    passed: bool
    value: Any
    operator: str
    bound: Any
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "criterion": self.criterion,
            "value": self.value,
            "operator": self.operator,
            "bound": self.bound,
            "passed": self.passed,
            "code": self.code,
        }


def _at_least(criterion: str, code: str, what: str, value: Decimal, bound: Decimal) -> Check:
    return Check(
        criterion,
        code,
        value >= bound,
        plain(value),
        ">=",
        plain(bound),
        f"{what} {plain(value)} is below the minimum {plain(bound)}",
    )


def _rate_at_least(criterion: str, code: str, what: str, value: Decimal, bound: Decimal) -> Check:
    return Check(
        criterion,
        code,
        value >= bound,
        fraction(value),
        ">=",
        fraction(bound),
        f"{what} {percent(value)} is below the minimum {percent(bound)}",
    )


def _rate_at_most(criterion: str, code: str, what: str, value: Decimal, bound: Decimal) -> Check:
    return Check(
        criterion,
        code,
        value <= bound,
        fraction(value),
        "<=",
        fraction(bound),
        f"{what} {percent(value)} is above the maximum {percent(bound)}",
    )


def merchant_checks(m: MerchantInput, limits: Limits) -> list[Check]:
    """第五条 2, in the seed's order."""
    checks = [
        Check(
            "newcomer",
            NEWCOMER,
            not m.newcomer,
            m.newcomer,
            "==",
            False,
            "the merchant is in the newcomer period (新手期); newcomers are not admitted",
        ),
    ]
    services = m.services()
    for service in limits.required_services:
        checks.append(
            Check(
                service,
                SERVICE_NOT_ENABLED,
                services[service],
                services[service],
                "==",
                True,
                f"service {service} ({SERVICES[service]}) is not enabled; it must be on",
            )
        )
    checks += [
        _at_least(
            "experience_score",
            EXPERIENCE_SCORE_LOW,
            "experience score",
            m.experience_score,
            limits.min_experience_score,
        ),
        _at_least(
            "logistics_score",
            LOGISTICS_SCORE_LOW,
            "logistics score",
            m.logistics_score,
            limits.min_logistics_score,
        ),
        Check(
            "avg_response_seconds",
            RESPONSE_TOO_SLOW,
            m.avg_response_seconds <= limits.max_avg_response_seconds,
            plain(m.avg_response_seconds),
            "<=",
            plain(limits.max_avg_response_seconds),
            f"average response time {plain(m.avg_response_seconds)} s is above the maximum "
            f"{plain(limits.max_avg_response_seconds)} s",
        ),
        Check(
            "shop_type",
            SHOP_TYPE_NOT_ALLOWED,
            m.shop_type in limits.allowed_shop_types and m.shop_type != PERSONAL,
            m.shop_type,
            "in",
            list(limits.allowed_shop_types),
            f"shop type {label(m.shop_type, SHOP_TYPES)} is not allowed; allowed: "
            f"{labels(limits.allowed_shop_types, SHOP_TYPES)}",
        ),
        Check(
            "accepts_inspection",
            NO_INSPECTION,
            m.accepts_inspection,
            m.accepts_inspection,
            "==",
            True,
            "the merchant does not accept warehouse and goods inspection (验仓验货); "
            "it is required",
        ),
    ]
    return checks


def product_checks(p: ProductInput, limits: Limits) -> list[Check]:
    """第五条 3, in the seed's order."""
    return [
        _rate_at_least(
            "good_review_rate",
            GOOD_REVIEW_RATE_LOW,
            "good review rate",
            p.good_review_rate,
            limits.min_good_review_rate,
        ),
        _rate_at_most(
            "quality_return_rate",
            QUALITY_RETURN_RATE_HIGH,
            "quality return rate",
            p.quality_return_rate,
            limits.max_quality_return_rate,
        ),
        _rate_at_most(
            "negative_review_rate",
            NEGATIVE_REVIEW_RATE_HIGH,
            "negative review rate",
            p.negative_review_rate,
            limits.max_negative_review_rate,
        ),
        _rate_at_most(
            "complaint_rate",
            COMPLAINT_RATE_HIGH,
            "complaint rate",
            p.complaint_rate,
            limits.max_complaint_rate,
        ),
        Check(
            "shipping_mode",
            NOT_SPOT_GOODS,
            p.shipping_mode in limits.allowed_shipping_modes,
            p.shipping_mode,
            "in",
            list(limits.allowed_shipping_modes),
            f"shipping mode {label(p.shipping_mode, SHIPPING_MODES)} is not allowed; "
            f"allowed: {labels(limits.allowed_shipping_modes, SHIPPING_MODES)}",
        ),
        Check(
            "white_background",
            NO_WHITE_BACKGROUND,
            p.white_background,
            p.white_background,
            "==",
            True,
            "the main image is not on a white background (白底图); it must be",
        ),
        Check(
            "product_type",
            PRODUCT_TYPE_EXCLUDED,
            p.product_type not in limits.excluded_product_types,
            p.product_type,
            "not in",
            list(limits.excluded_product_types),
            f"product type {label(p.product_type, PRODUCT_TYPES)} is excluded from 超值购 "
            f"(excluded: {labels(limits.excluded_product_types, PRODUCT_TYPES)})",
        ),
    ]


# -- the rule ------------------------------------------------------------------------------
def chaozhigou_admission(inp: AdmissionInput, ctx: RuleContext) -> Outcome:
    """Admit when every criterion passes; otherwise one reason per failing criterion."""
    limits = Limits.from_policy(ctx.policy)
    merchant = merchant_checks(inp.merchant, limits)
    product = product_checks(inp.product, limits)
    reasons = tuple(Reason(c.code, c.message) for c in (*merchant, *product) if not c.passed)
    return Outcome(
        result={
            "admitted": not reasons,
            "merchant_passed": all(c.passed for c in merchant),
            "product_passed": all(c.passed for c in product),
            "checks": [c.to_dict() for c in (*merchant, *product)],
        },
        reasons=reasons,
    )


def _parse(fields: Fields, ctx: RuleContext) -> AdmissionInput:
    return AdmissionInput.from_fields(fields)


EXPLAINED = (
    ReasonCode(NEWCOMER, "商家处于新手期，不可报名", "the merchant is still a newcomer (新手期)"),
    ReasonCode(
        SERVICE_NOT_ENABLED,
        "未开通七天无理由、运费险或正品保障",
        "seven-day returns, shipping insurance or authenticity guarantee not on",
    ),
    ReasonCode(EXPERIENCE_SCORE_LOW, "商家体验分低于要求", "merchant experience score too low"),
    ReasonCode(LOGISTICS_SCORE_LOW, "物流体验分低于要求", "logistics score too low"),
    ReasonCode(RESPONSE_TOO_SLOW, "客服平均响应时间过长", "average response time too slow"),
    ReasonCode(
        SHOP_TYPE_NOT_ALLOWED,
        "店铺类型不可报名(如个人店)",
        "shop type not allowed (e.g. a personal shop)",
    ),
    ReasonCode(NO_INSPECTION, "未接受验仓验货", "does not accept warehouse inspection"),
    ReasonCode(GOOD_REVIEW_RATE_LOW, "商品好评率低于要求", "product good-review rate too low"),
    ReasonCode(
        QUALITY_RETURN_RATE_HIGH, "商品品质退货率过高", "product quality return rate too high"
    ),
    ReasonCode(
        NEGATIVE_REVIEW_RATE_HIGH, "商品差评率过高", "product negative-review rate too high"
    ),
    ReasonCode(COMPLAINT_RATE_HIGH, "商品投诉率过高", "product complaint rate too high"),
    ReasonCode(
        NOT_SPOT_GOODS,
        "商品不是现货(预售或阶梯发货)",
        "not spot goods (presale or tiered shipping)",
    ),
    ReasonCode(
        NO_WHITE_BACKGROUND, "商品主图不是白底图", "product image without a white background"
    ),
    ReasonCode(
        PRODUCT_TYPE_EXCLUDED,
        "商品类型不可报名(团购、虚拟、保险等)",
        "product type excluded (group buy, virtual, insurance …)",
    ),
)

#: The input as :meth:`AdmissionInput.from_fields` reads it (第五条 3).
INPUT = shape(
    (
        "merchant",
        object_field(
            shape(
                ("newcomer", boolean_field()),
                ("seven_day_returns", boolean_field()),
                ("shipping_insurance", boolean_field()),
                ("authenticity_guarantee", boolean_field()),
                ("experience_score", score_field()),
                ("logistics_score", score_field()),
                ("avg_response_seconds", score_field()),
                ("shop_type", text_field()),
                ("accepts_inspection", boolean_field()),
                closed=False,
                description="shop_type: one of " + ", ".join(SHOP_TYPES) + " (or its "
                "Chinese name).",
            )
        ),
    ),
    (
        "product",
        object_field(
            shape(
                ("good_review_rate", rate_field()),
                ("quality_return_rate", rate_field()),
                ("negative_review_rate", rate_field()),
                ("complaint_rate", rate_field()),
                ("shipping_mode", text_field()),
                ("white_background", boolean_field()),
                ("product_type", text_field()),
                closed=False,
                description="shipping_mode: one of " + ", ".join(SHIPPING_MODES) + "; "
                "product_type: a kind of product (" + ", ".join(PRODUCT_TYPES) + " are "
                "excluded by default), or its Chinese name.",
            )
        ),
    ),
    (
        "merchant_id",
        Declared("raw", {}, False, "Not read by the rule: older files named the merchant here."),
    ),
)
#: One criterion checked (:meth:`Check.to_dict`).
_CHECK = {
    "type": "object",
    "required": ["criterion", "value", "operator", "bound", "passed", "code"],
    "properties": {
        "criterion": {"type": "string"},
        "value": {},
        "operator": {"type": "string"},
        "bound": {},
        "passed": {"type": "boolean"},
        "code": {"type": "string"},
    },
}
#: The result as :func:`chaozhigou_admission` writes it.
RESULT = shape(
    ("admitted", result_field({"type": "boolean"})),
    ("merchant_passed", result_field({"type": "boolean"})),
    ("product_passed", result_field({"type": "boolean"})),
    ("checks", result_field({"type": "array", "items": _CHECK})),
)


RULE = Rule(
    kind=KIND,
    rule_set=DISTRIBUTION,
    version=__version__,
    parse=_parse,
    decide=chaozhigou_admission,
    description="超值购 admission: merchant and product criteria (SPEC §6; seed 002 第五条 2, 3).",
    # merchant_id is not read: files written before it became an envelope field (SPEC §8)
    # carry it in input, the bundled campaign among them.
    input_fields=INPUT.names,
    inputs=INPUT,
    results=RESULT,
    codes=EXPLAINED,
    label="超值购准入",
)


# -- hooks ---------------------------------------------------------------------------------
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
    "AdmissionInput",
    "Check",
    "Limits",
    "MerchantInput",
    "ProductInput",
    "chaozhigou_admission",
]
