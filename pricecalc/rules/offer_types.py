"""The four built-in offer types of price protection (SPEC §3): 直降, 秒杀, 优惠券, 满减.

Each is an ordinary :class:`~pricecalc.offers.OfferType` following the contract in
:mod:`pricecalc.offers`, registered through the ``pricecalc_offer_types`` hook
(:mod:`pricecalc.builtin`) exactly as a plugin's type would be.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import attrs

from pricecalc.fields import Fields
from pricecalc.money import ZERO
from pricecalc.offers import COMMON_KEYS, DiscountTier, OfferType, Window, check_keys

# Each type's keys, built once: a claim may list thousands of offers.
_DIRECT_DROP_KEYS = COMMON_KEYS | {"sku", "unit_price", "at"}
_FLASH_SALE_KEYS = COMMON_KEYS | {"sku", "unit_price"}
_COUPON_KEYS = COMMON_KEYS | {"amount", "threshold"}
_FULL_REDUCTION_KEYS = COMMON_KEYS | {"tiers"}
_TIER_KEYS = frozenset({"threshold", "off"})


@attrs.frozen
class DirectDrop:
    """直降 (or a plain price change): ``sku`` sells at ``unit_price`` from ``at`` on."""

    sku: str
    unit_price: Decimal
    at: datetime
    window: Window = Window()

    @classmethod
    def from_fields(cls, fields: Fields) -> DirectDrop:
        check_keys(fields, _DIRECT_DROP_KEYS)
        return cls(
            sku=fields.identifier("sku"),
            unit_price=fields.amount("unit_price", positive=True),
            at=fields.time("at"),
            window=Window.from_fields(fields),
        )

    def change_times(self) -> tuple[datetime, ...]:
        first = self.at if self.window.start is None else max(self.at, self.window.start)
        return (first,) if self.window.contains(first) else ()


@attrs.frozen
class FlashSale:
    """秒杀: ``sku`` at ``unit_price`` from ``start`` to ``end`` (both required)."""

    sku: str
    unit_price: Decimal
    window: Window

    @classmethod
    def from_fields(cls, fields: Fields) -> FlashSale:
        check_keys(fields, _FLASH_SALE_KEYS)
        return cls(
            sku=fields.identifier("sku"),
            unit_price=fields.amount("unit_price", positive=True),
            window=Window.from_fields(fields, required=True),
        )

    def change_times(self) -> tuple[datetime, ...]:
        return self.window.starts()


@attrs.frozen
class Coupon:
    """优惠券: ``amount`` off an order whose goods total is at least ``threshold``."""

    amount: Decimal
    threshold: Decimal = ZERO
    window: Window = Window()

    @classmethod
    def from_fields(cls, fields: Fields) -> Coupon:
        check_keys(fields, _COUPON_KEYS)
        threshold = fields.optional_amount("threshold")
        return cls(
            amount=fields.amount("amount", positive=True),
            threshold=ZERO if threshold is None else threshold,
            window=Window.from_fields(fields),
        )

    def change_times(self) -> tuple[datetime, ...]:
        return self.window.starts()

    def discount(self, goods_total: Decimal) -> Decimal:
        return self.amount if goods_total >= self.threshold else ZERO

    def discount_tiers(self) -> tuple[DiscountTier, ...]:
        """One tier: ``amount`` off from ``threshold`` on."""
        return ((self.threshold, self.amount),)


@attrs.frozen
class Tier:
    """One 满减 tier: ``off`` when the goods total reaches ``threshold``."""

    threshold: Decimal
    off: Decimal


@attrs.frozen
class FullReduction:
    """满减: the best tier whose threshold the goods total meets."""

    tiers: tuple[Tier, ...]
    window: Window = Window()

    @classmethod
    def from_fields(cls, fields: Fields) -> FullReduction:
        check_keys(fields, _FULL_REDUCTION_KEYS)
        tiers = []
        for tier in fields.items("tiers", non_empty=True):
            check_keys(tier, _TIER_KEYS)
            tiers.append(Tier(tier.amount("threshold"), tier.amount("off", positive=True)))
        return cls(tiers=tuple(tiers), window=Window.from_fields(fields))

    def change_times(self) -> tuple[datetime, ...]:
        return self.window.starts()

    def discount(self, goods_total: Decimal) -> Decimal:
        return max((t.off for t in self.tiers if goods_total >= t.threshold), default=ZERO)

    def discount_tiers(self) -> tuple[DiscountTier, ...]:
        """Its tiers as ``(threshold, off)`` pairs: the best one met is the discount."""
        return tuple((t.threshold, t.off) for t in self.tiers)


DIRECT_DROP = OfferType(
    "direct_drop",
    "set_price",
    DirectDrop.from_fields,
    description="直降: a new selling price for a SKU from `at` on (optional window)",
)
FLASH_SALE = OfferType(
    "flash_sale",
    "lower_price",
    FlashSale.from_fields,
    description="秒杀: a unit price for a SKU from `start` to `end`",
)
COUPON = OfferType(
    "coupon",
    "order_discount",
    Coupon.from_fields,
    group="coupon",
    description="优惠券: `amount` off at a goods total of `threshold` (default 0); one per order",
)
FULL_REDUCTION = OfferType(
    "full_reduction",
    "order_discount",
    FullReduction.from_fields,
    group="full_reduction",
    description="满减: tiers [{threshold, off}], the best tier met; stacks with one coupon",
)

BUILTIN_OFFER_TYPES: tuple[OfferType, ...] = (DIRECT_DROP, FLASH_SALE, COUPON, FULL_REDUCTION)
