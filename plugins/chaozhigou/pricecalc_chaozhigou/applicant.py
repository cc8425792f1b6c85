"""The applicant of chaozhigou_admission (SPEC §6): one merchant with one product, read
from the request into frozen values, and :data:`INPUT`, the input as it is declared.

Input ``merchant`` (第五条 2): ``newcomer``, ``seven_day_returns``, ``shipping_insurance``,
``authenticity_guarantee``, ``experience_score``, ``logistics_score``,
``avg_response_seconds``, ``shop_type``, ``accepts_inspection``.
Input ``product`` (第五条 3): ``good_review_rate``, ``quality_return_rate``,
``negative_review_rate``, ``complaint_rate``, ``shipping_mode``, ``white_background``,
``product_type``. Rates are fractions (``"0.0054"``) or percentages (``"0.54%"``), at
most 100%. ``shop_type``, ``shipping_mode`` and ``product_type`` take the English ids or
the Chinese names (:mod:`pricecalc_chaozhigou.names`).
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from pricecalc.fields import (
    Declared,
    Fields,
    boolean_field,
    object_field,
    rate_field,
    score_field,
    shape,
    text_field,
)
from pricecalc.toolkit import rate, score
from pricecalc_chaozhigou.names import (
    PRODUCT_TYPES,
    SHIPPING_MODES,
    SHOP_TYPES,
    product_type_id,
    shipping_mode_id,
    shop_type_id,
)


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

__all__ = ["INPUT", "AdmissionInput", "MerchantInput", "ProductInput"]
