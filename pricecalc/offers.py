"""Merchant offer types for price protection (SPEC §3), and their registry contract.

An offer type has a ``name`` (the ``type`` in the request), a ``stage`` that says how its
offers combine, and a parser. Stages:

``set_price``
    A new selling price for one SKU from a moment on; the latest at or before ``t`` wins
    (``direct_drop``). Offers must provide ``sku``, ``at`` and ``unit_price``.
``lower_price``
    A price that applies while active; the lower of it and the selling price applies
    (``flash_sale``). Offers provide ``price_for(sku, t) -> Decimal | None``.
``order_discount``
    An order-level amount off, given the goods total at the prices of ``t``
    (``coupon``, ``full_reduction``). The best active offer of each ``group`` applies, and
    groups stack; the whole discount never exceeds the goods total. Offers provide
    ``discount(goods_total) -> Decimal``.

Every offer has a :class:`Window` and ``change_times()`` — the moments it starts to apply,
which are the candidate times for the lowest price. New types are added through the
``pricecalc_offer_types`` hook; the price-protection loop never names a type.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

import attrs

from pricecalc.fields import Fields

Stage = Literal["set_price", "lower_price", "order_discount"]
STAGES: tuple[Stage, ...] = ("set_price", "lower_price", "order_discount")


@attrs.frozen
class Window:
    """An optional closed window ``start ≤ t ≤ end`` (SPEC §1); open on a missing side."""

    start: datetime | None = None
    end: datetime | None = None

    def contains(self, t: datetime) -> bool:
        return (self.start is None or self.start <= t) and (self.end is None or t <= self.end)


@runtime_checkable
class Offer(Protocol):
    """What every parsed offer provides."""

    @property
    def window(self) -> Window: ...

    def change_times(self) -> tuple[datetime, ...]: ...


@attrs.frozen
class OfferType:
    """A registered offer type: its name, how it combines, and its parser."""

    name: str
    stage: Stage = attrs.field(validator=attrs.validators.in_(STAGES))
    parse: Callable[[Fields], Offer]
    group: str | None = None
    description: str = ""
