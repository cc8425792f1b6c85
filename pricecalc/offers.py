"""Merchant offer types for price protection (SPEC §3), and the contract a plugin follows.

Every entry of a 价保 request's ``offers`` list names a ``type``; the registry maps that
name to an :class:`OfferType` (the built-in ones in :mod:`pricecalc.rules.offer_types`,
more through the ``pricecalc_offer_types`` hook). The price-protection rule never looks at
type names: it only reads the type's ``stage`` (and ``group``) and the attributes the stage
promises.

The contract
============

``OfferType(name, stage, parse, group=None, description="")``

``name``
    The ``type`` string in the request (``"direct_drop"``). Unique across plugins.
``parse(fields) -> offer``
    Turns one ``input.offers[i]`` object (a :class:`pricecalc.fields.Fields` reader) into
    a frozen offer object, raising :class:`pricecalc.InvalidInput` through the reader for
    anything malformed (so the message names ``input.offers[i].<field>``). Amounts are
    ``Decimal`` in fen (use ``fields.amount``), times aware ``datetime`` (``fields.time``).
    :func:`check_keys` refuses unknown keys (a misspelt ``threshhold`` must not silently
    become 0). An offer type is free to require or forbid a window.
``stage``
    How the offer changes what the buyer would pay at a moment ``t``. One of:

    ``set_price`` — a new selling price for one SKU from a moment on (直降, a plain price
    change). The offer has ``sku: str``, ``unit_price: Decimal`` (> 0), ``at: datetime``
    and ``window: Window``. It *applies* at ``t`` when ``at ≤ t`` and ``window`` contains
    ``t``. Of the applying offers of a SKU the one with the latest ``at`` sets the
    selling price (equal ``at``: the lower price, then the earlier-listed offer). Offers
    with ``at ≤ paid_at`` are already in the line's ``unit_price`` and are ignored.

    ``lower_price`` — a price for one SKU while active (秒杀, a member price). The offer
    has ``sku: str``, ``unit_price: Decimal`` (> 0) and ``window: Window``; it applies at
    ``t`` when ``window`` contains ``t``. The unit price at ``t`` is the lower of the
    selling price and the lowest applying ``lower_price`` offer.

    ``order_discount`` — an amount off the whole order (优惠券, 满减, a cross-store
    reduction). The offer has ``window: Window`` and ``discount(goods_total) -> Decimal``:
    the amount off (fen, ``≥ 0``; ``0`` when its threshold is not met) for the order's
    goods total at the unit prices of ``t``. It applies at ``t`` when ``window`` contains
    ``t``. The type's ``group`` (required for this stage) says how offers combine: of the
    applying offers of one group only the best counts (ties: the earlier-listed one);
    groups stack; the sum never exceeds the goods total. The discount is then allocated
    over the lines by :func:`pricecalc.money.allocate`.

    Optionally ``discount_tiers() -> tuple[tuple[Decimal, Decimal], ...]``, for a
    threshold-tiered discount: the pairs ``(threshold, off)`` (each a non-negative
    Decimal in fen; any order, thresholds may repeat) such that ``discount(g)`` is the
    largest ``off`` whose ``threshold ≤ g``, or ``0`` when none is met — a coupon is one
    tier, a 满减 one per step. An offer that provides it is indexed: the price-protection
    rule asks it once, then finds the best applying offer of its group in ``O(log A)``
    per goods total as offers start and end, and does not call ``discount()`` (so the two
    must agree). An offer without it is asked ``discount()`` at every moment that
    matters (the simple scan). Both kinds may share a group; the best of either wins,
    the earlier-listed on a tie.
``group``
    For ``order_discount`` only: the stacking group (``"coupon"``, ``"full_reduction"``,
    or a new name such as ``"cross_store"`` for an offer that stacks with both).

Every offer also provides ``change_times() -> tuple[datetime, ...]``: the moments it begins
to apply (a window's ``start``; a set-price's ``at``, or its window's start if later).
These are the candidate times at which the lowest price is looked for; an offer applying
from the beginning of time has none. :func:`check_offer` verifies a parsed offer against
its stage before the rule uses it, so a plugin's mistake is reported, not computed with;
every answer of ``discount()`` and ``discount_tiers()`` is checked as it is used
(:func:`check_discount`, :func:`check_tiers`), naming the plugin when it is wrong.

A plugin adding a member price is therefore just::

    @attrs.frozen
    class MemberPrice:
        sku: str
        unit_price: Decimal
        window: Window

        def change_times(self) -> tuple[datetime, ...]:
            return self.window.starts()

    def parse_member_price(f: Fields) -> MemberPrice:
        check_keys(f, {"type", "sku", "unit_price", "start", "end"})
        return MemberPrice(f.identifier("sku"), f.amount("unit_price", positive=True),
                           Window.from_fields(f))

    MEMBER_PRICE = OfferType("member_price", "lower_price", parse_member_price)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, Protocol, runtime_checkable

import attrs

from pricecalc.errors import InvalidInput
from pricecalc.fields import (
    Fields,
    check_keys as check_keys,  # part of the offer-type contract
)
from pricecalc.i18n import msg
from pricecalc.money import is_fen

Stage = Literal["set_price", "lower_price", "order_discount"]
STAGES: tuple[Stage, ...] = ("set_price", "lower_price", "order_discount")

#: The keys every offer may carry besides its own: its type and its window.
COMMON_KEYS = frozenset({"type", "start", "end"})


@attrs.frozen
class Window:
    """An optional closed window ``start ≤ t ≤ end`` (SPEC §1); open on a missing side."""

    start: datetime | None = None
    end: datetime | None = None

    @classmethod
    def from_fields(cls, fields: Fields, *, required: bool = False) -> Window:
        """Read ``start``/``end`` from an offer; with ``required`` both must be there."""
        if required:
            start: datetime | None = fields.time("start")
            end: datetime | None = fields.time("end", end=True)
        else:
            start, end = fields.optional_time("start"), fields.optional_time("end", end=True)
        if start is not None and end is not None and end < start:
            raise InvalidInput(
                fields.at("end"),
                fields.raw("end"),
                msg("must not be before start {start}", start=start.isoformat()),
            )
        return cls(start, end)

    def contains(self, t: datetime) -> bool:
        return (self.start is None or self.start <= t) and (self.end is None or t <= self.end)

    def starts(self) -> tuple[datetime, ...]:
        """The window's start as a change time (none for a window open at the start)."""
        return () if self.start is None else (self.start,)


@runtime_checkable
class Offer(Protocol):
    """What every parsed offer provides."""

    @property
    def window(self) -> Window: ...

    def change_times(self) -> tuple[datetime, ...]: ...


@runtime_checkable
class SetPriceOffer(Offer, Protocol):
    """Stage ``set_price``: a new selling price for ``sku`` from ``at`` on."""

    @property
    def sku(self) -> str: ...

    @property
    def unit_price(self) -> Decimal: ...

    @property
    def at(self) -> datetime: ...


@runtime_checkable
class LowerPriceOffer(Offer, Protocol):
    """Stage ``lower_price``: ``unit_price`` for ``sku`` while the window is open."""

    @property
    def sku(self) -> str: ...

    @property
    def unit_price(self) -> Decimal: ...


@runtime_checkable
class OrderDiscountOffer(Offer, Protocol):
    """Stage ``order_discount``: an amount off the order for a given goods total."""

    def discount(self, goods_total: Decimal) -> Decimal: ...


#: One tier of a threshold-tiered discount: ``(threshold, off)``.
DiscountTier = tuple[Decimal, Decimal]


@runtime_checkable
class TieredDiscountOffer(OrderDiscountOffer, Protocol):
    """An ``order_discount`` whose discount is the best tier met: it can be indexed."""

    def discount_tiers(self) -> tuple[DiscountTier, ...]: ...


@attrs.frozen
class OfferType:
    """A registered offer type: its name, how it combines, and its parser."""

    name: str
    stage: Stage = attrs.field(validator=attrs.validators.in_(STAGES))
    parse: Callable[[Fields], Offer]
    group: str | None = None
    description: str = ""

    def __attrs_post_init__(self) -> None:
        if self.stage == "order_discount" and not self.group:
            raise ValueError(f"offer type {self.name!r}: an order_discount needs a group")
        if self.stage != "order_discount" and self.group is not None:
            raise ValueError(f"offer type {self.name!r}: only an order_discount has a group")


def check_offer(offer_type: OfferType, offer: Any) -> None:
    """Check that ``offer`` keeps its stage's promises; ``TypeError`` says what is wrong.

    Called on every parsed offer, so a plugin's mistake is reported (naming the plugin)
    instead of silently computing with it.
    """
    name = offer_type.name
    # Attribute checks rather than isinstance(offer, Offer): a runtime Protocol check is
    # slow, and a claim may list a thousand offers.
    change_times = getattr(offer, "change_times", None)
    if not isinstance(getattr(offer, "window", None), Window) or not callable(change_times):
        raise TypeError(f"offer type {name!r} parsed to {offer!r}: needs window and change_times")
    times = change_times()
    if not isinstance(times, tuple) or not all(
        isinstance(t, datetime) and t.tzinfo is not None for t in times
    ):
        raise TypeError(f"offer type {name!r}: change_times() must be a tuple of aware datetimes")
    if offer_type.stage == "order_discount":
        if not callable(getattr(offer, "discount", None)):
            raise TypeError(f"offer type {name!r}: an order_discount offer needs discount()")
        tiers = getattr(offer, "discount_tiers", None)
        if tiers is not None and not callable(tiers):
            raise TypeError(f"offer type {name!r}: discount_tiers must be a method, got {tiers!r}")
        return
    sku = getattr(offer, "sku", None)
    price = getattr(offer, "unit_price", None)
    if not isinstance(sku, str) or not is_fen(price, positive=True):
        raise TypeError(
            f"offer type {name!r}: a {offer_type.stage} offer needs sku (text) and "
            f"unit_price (a positive Decimal in fen), got {sku!r} / {price!r}"
        )
    if offer_type.stage == "set_price":
        at = getattr(offer, "at", None)
        if not isinstance(at, datetime) or at.tzinfo is None:
            raise TypeError(f"offer type {name!r}: a set_price offer needs at (aware datetime)")


def check_discount(offer_type: OfferType, value: Any) -> Decimal:
    """Check one ``discount()`` answer: a non-negative Decimal in fen."""
    if not is_fen(value, positive=False):
        raise TypeError(
            f"offer type {offer_type.name!r}: discount() returned {value!r}, "
            "expected a non-negative Decimal in fen"
        )
    result: Decimal = value
    return result


def check_tiers(offer_type: OfferType, value: Any) -> tuple[DiscountTier, ...]:
    """Check one ``discount_tiers()`` answer: a tuple of ``(threshold, off)`` pairs, each a
    non-negative Decimal in fen."""
    if isinstance(value, tuple):
        for tier in value:
            if not (
                isinstance(tier, tuple)
                and len(tier) == 2
                and is_fen(tier[0], positive=False)
                and is_fen(tier[1], positive=False)
            ):
                break
        else:
            result: tuple[DiscountTier, ...] = value
            return result
    raise TypeError(
        f"offer type {offer_type.name!r}: discount_tiers() returned {value!r}, "
        "expected a tuple of (threshold, off) pairs of non-negative Decimals in fen"
    )
