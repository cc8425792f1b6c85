"""The criteria of chaozhigou_admission (SPEC §6; seed 002 第五条 2, 3), one
:class:`Check` each, in the seed's order: the value found, the operator, the bound, and
the reason if it fails. Every failing criterion is its own reason; bounds are inclusive.
The reason codes are declared here with their explanations (:data:`EXPLAINED`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs

from pricecalc.registry import ReasonCode
from pricecalc.toolkit import fraction, number_text, percent
from pricecalc_chaozhigou.applicant import MerchantInput, ProductInput
from pricecalc_chaozhigou.limits import Limits
from pricecalc_chaozhigou.names import (
    PERSONAL,
    PRODUCT_TYPES,
    SERVICES,
    SHIPPING_MODES,
    SHOP_TYPES,
    label,
    labels,
)

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
        number_text(value),
        ">=",
        number_text(bound),
        f"{what} {number_text(value)} is below the minimum {number_text(bound)}",
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
            number_text(m.avg_response_seconds),
            "<=",
            number_text(limits.max_avg_response_seconds),
            f"average response time {number_text(m.avg_response_seconds)} s is above the maximum "
            f"{number_text(limits.max_avg_response_seconds)} s",
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


#: Every reason code with its one-line Chinese and English explanation.
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

#: One criterion checked (:meth:`Check.to_dict`).
CHECK_SCHEMA: dict[str, Any] = {
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

__all__ = [
    "CHECK_SCHEMA",
    "CODES",
    "EXPLAINED",
    "Check",
    "merchant_checks",
    "product_checks",
]
