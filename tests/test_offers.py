"""The offer-type contract and the four built-in types of 价保 (SPEC §3)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

import pricecalc
from pricecalc.fields import Fields
from pricecalc.offers import (
    LowerPriceOffer,
    OfferType,
    OrderDiscountOffer,
    SetPriceOffer,
    TieredDiscountOffer,
    Window,
    check_offer,
    check_tiers,
)
from pricecalc.rules.offer_types import (
    BUILTIN_OFFER_TYPES,
    COUPON,
    DIRECT_DROP,
    FLASH_SALE,
    FULL_REDUCTION,
    Coupon,
    DirectDrop,
    FullReduction,
)

BJ = timezone(timedelta(hours=8))


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, 11, hour, minute, second, tzinfo=BJ)


def parse(offer_type: OfferType, data: dict[str, Any]) -> Any:
    offer = offer_type.parse(Fields.of(data, "input.offers[0]"))
    check_offer(offer_type, offer)
    return offer


def test_builtin_types_and_stages() -> None:
    """SPEC §3: direct_drop sets the price, flash_sale lowers it, coupon and full_reduction
    are order discounts in their own groups (they stack with each other)."""
    assert [(t.name, t.stage, t.group) for t in BUILTIN_OFFER_TYPES] == [
        ("direct_drop", "set_price", None),
        ("flash_sale", "lower_price", None),
        ("coupon", "order_discount", "coupon"),
        ("full_reduction", "order_discount", "full_reduction"),
    ]


def test_parsed_offers_keep_their_stage_promises() -> None:
    """SPEC §3 offer contract: each built-in offer satisfies its stage's protocol."""
    drop = parse(
        DIRECT_DROP,
        {"type": "direct_drop", "sku": "A", "unit_price": "90", "at": "2026-11-11T20:00"},
    )
    flash = parse(
        FLASH_SALE,
        {"sku": "A", "unit_price": "79.00", "start": "2026-11-11T12:00", "end": "2026-11-11T14:00"},
    )
    coupon = parse(COUPON, {"amount": "10.00"})
    full = parse(FULL_REDUCTION, {"tiers": [{"threshold": "200", "off": "20"}]})
    assert isinstance(drop, SetPriceOffer)
    assert isinstance(flash, LowerPriceOffer)
    assert isinstance(coupon, OrderDiscountOffer)
    assert isinstance(full, OrderDiscountOffer)
    assert drop == DirectDrop("A", Decimal("90.00"), at(20))
    assert coupon == Coupon(Decimal("10.00"), Decimal("0.00"))


def test_window_is_closed_and_open_on_a_missing_side() -> None:
    """SPEC §1: windows are closed, start ≤ t ≤ end; a missing side is open."""
    window = Window(at(12), at(14))
    assert [window.contains(t) for t in (at(11, 59, 59), at(12), at(14), at(14, 0, 1))] == [
        False,
        True,
        True,
        False,
    ]
    assert Window(None, at(14)).contains(at(0))
    assert Window(at(12), None).contains(at(23))
    assert Window().starts() == ()


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ({}, (at(20),)),
        ({"start": "2026-11-11T21:00"}, (at(21),)),  # applies from the window's start
        ({"start": "2026-11-11T19:00"}, (at(20),)),  # … or from `at`, whichever is later
        ({"end": "2026-11-11T19:00"}, ()),  # its window closes before `at`: never applies
    ],
)
def test_direct_drop_change_time(window: dict[str, str], expected: tuple[datetime, ...]) -> None:
    """SPEC §3: a direct drop starts to apply at `at` (or its window's later start)."""
    drop = parse(DIRECT_DROP, {"sku": "A", "unit_price": "90", "at": "2026-11-11T20:00", **window})
    assert drop.change_times() == expected


@pytest.mark.parametrize(
    ("goods", "coupon", "full"),
    [
        ("99.99", "0.00", "0.00"),
        ("100.00", "10.00", "5.00"),  # a threshold met exactly
        ("199.99", "10.00", "5.00"),
        ("200.00", "10.00", "20.00"),  # the best tier met
        ("1000.00", "10.00", "20.00"),
    ],
)
def test_discounts_at_a_goods_total(goods: str, coupon: str, full: str) -> None:
    """SPEC §3: a coupon needs goods ≥ threshold; a full reduction gives its best tier."""
    c = parse(COUPON, {"amount": "10.00", "threshold": "100.00"})
    f = parse(
        FULL_REDUCTION,
        {"tiers": [{"threshold": "200", "off": "20"}, {"threshold": "100", "off": "5"}]},
    )
    assert c.discount(Decimal(goods)) == Decimal(coupon)
    assert f.discount(Decimal(goods)) == Decimal(full)
    assert isinstance(f, FullReduction)


@pytest.mark.parametrize(
    ("offer_type", "data", "message"),
    [
        (
            FLASH_SALE,
            {"sku": "A", "unit_price": "79", "start": "2026-11-11T12:00"},
            "input.offers[0].end: is required but missing",
        ),
        (
            COUPON,
            {"amount": "10", "min": "100"},
            "input.offers[0].min: is not a field of this object (expected one of amount, end, "
            "start, threshold, type) (got '100')",
        ),
        (
            FULL_REDUCTION,
            {"tiers": [{"threshold": "200", "off": "0"}]},
            "input.offers[0].tiers[0].off: must be greater than 0 (got '0')",
        ),
        (
            DIRECT_DROP,
            {
                "sku": "A",
                "unit_price": "90",
                "at": "2026-11-11T20:00",
                "start": "2026-11-12",
                "end": "2026-11-11",
            },
            "input.offers[0].end: must not be before start 2026-11-12T00:00:00+08:00 "
            "(got '2026-11-11')",
        ),
    ],
)
def test_invalid_offers_name_the_field(
    offer_type: OfferType, data: dict[str, Any], message: str
) -> None:
    """SPEC §3: a malformed offer is invalid input naming input.offers[i].<field>."""
    with pytest.raises(pricecalc.InvalidInput) as err:
        parse(offer_type, data)
    assert str(err.value) == message


def test_offer_type_group_rules() -> None:
    """SPEC §3 offer contract: only an order_discount has a group, and it must have one;
    the stage must be one of the three."""
    with pytest.raises(ValueError, match="only an order_discount has a group"):
        OfferType("member_price", "lower_price", COUPON.parse, group="coupon")
    with pytest.raises(ValueError, match="'stage' must be in"):
        OfferType("x", "bogus", COUPON.parse)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "goods", ["0.00", "99.99", "100.00", "150.00", "199.99", "200.00", "250.00", "1000.00"]
)
def test_discount_tiers_agree_with_discount(goods: str) -> None:
    """SPEC §3 offer contract: a built-in order discount's discount_tiers() describe the
    same discount as discount(): the largest off whose threshold the goods total meets."""
    coupon = parse(COUPON, {"amount": "10.00", "threshold": "100.00"})
    full = parse(
        FULL_REDUCTION,
        {
            "tiers": [
                {"threshold": "200", "off": "20"},
                {"threshold": "100", "off": "5"},
                {"threshold": "100", "off": "8"},
                {"threshold": "250", "off": "15"},
            ]
        },
    )
    for offer in (coupon, full):
        assert isinstance(offer, TieredDiscountOffer)
        tiers = check_tiers(COUPON, offer.discount_tiers())
        best = max((off for threshold, off in tiers if Decimal(goods) >= threshold), default=0)
        assert offer.discount(Decimal(goods)) == best
    assert coupon.discount_tiers() == ((Decimal("100.00"), Decimal("10.00")),)


@pytest.mark.parametrize(
    "answer",
    [
        [(Decimal("1.00"), Decimal("1.00"))],  # a list, not a tuple
        ((Decimal("1.00"),),),  # not a pair
        ((Decimal("1.00"), Decimal("0.001")),),  # sub-fen
        ((Decimal("-1.00"), Decimal("1.00")),),  # negative threshold
        ((Decimal("1.00"), 1),),  # not a Decimal
        ((Decimal("NaN"), Decimal("1.00")),),
    ],
)
def test_check_tiers_refuses_a_bad_answer(answer: Any) -> None:
    """SPEC §3 offer contract: a discount_tiers() answer must be a tuple of (threshold,
    off) pairs of non-negative Decimals in fen; anything else is named, never used."""
    with pytest.raises(TypeError) as err:
        check_tiers(COUPON, answer)
    assert str(err.value) == (
        f"offer type 'coupon': discount_tiers() returned {answer!r}, expected a tuple of "
        "(threshold, off) pairs of non-negative Decimals in fen"
    )


def test_check_offer_refuses_discount_tiers_that_is_not_a_method() -> None:
    """SPEC §3 offer contract: discount_tiers, when an offer has it, must be callable."""

    class Odd(Coupon):
        discount_tiers = ((Decimal("0.00"), Decimal("1.00")),)  # type: ignore[assignment]

    with pytest.raises(TypeError) as err:
        check_offer(COUPON, Odd(Decimal("1.00")))
    assert str(err.value).startswith(
        "offer type 'coupon': discount_tiers must be a method, got ((Decimal('0.00')"
    )
