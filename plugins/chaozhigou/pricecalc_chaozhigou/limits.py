"""The bounds of chaozhigou_admission (SPEC §6; seed 002 第五条 2, 3): the policy section
``chaozhigou_admission`` with its defaults (:data:`POLICY_DEFAULTS`), read once per
decision into :class:`Limits` — and so recorded in the decision.

A policy that names an unknown service, or allows a personal shop (个人店), is refused:
a personal shop is never admitted.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs

from pricecalc.errors import PolicyError
from pricecalc.i18n import msg
from pricecalc.policy import PolicyView
from pricecalc.toolkit import policy_names, policy_number, policy_rate
from pricecalc_chaozhigou.names import (
    PERSONAL,
    PRODUCT_TYPES,
    SERVICES,
    SHOP_TYPES,
    product_type_id,
    shipping_mode_id,
    shop_type_id,
)

SECTION = "chaozhigou_admission"

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


__all__ = ["POLICY_DEFAULTS", "SECTION", "Limits"]
