"""price_protection — 价保 refunds for in-event markdowns (SPEC §3).

The worked examples, each rejection code alone, the boundaries of every window, the
defaults and policy, offer types added by a plugin (and plugins that misbehave), invalid
input with its message, and properties: the refund is never negative nor above paid_net,
a claim is paid once, the listing order of offers does not matter, line refunds sum to
the total, and the indexed sweep agrees with a literal reading of the SPEC.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given, settings, strategies as st

import pricecalc
from pricecalc.decision import Decision
from pricecalc.errors import PluginError
from pricecalc.fields import Fields, parse_time
from pricecalc.history import PastDecision
from pricecalc.money import ZERO, allocate, fen_count
from pricecalc.offers import OfferType, Window, check_keys
from pricecalc.plugins import build_registry, get_plugin_manager
from pricecalc.registry import Registry
from pricecalc.rules.offer_types import COUPON, FULL_REDUCTION, Coupon, FullReduction, Tier
from pricecalc.rules.pricebook import ListedOffer, _DiscountGroup, _tiers

BJ = timezone(timedelta(hours=8))
NOW = datetime(2026, 11, 13, 10, 0, tzinfo=BJ)
EVENT = {"start": "2026-11-10T00:00", "end": "2026-11-12T23:59:59"}
COUPON_10 = {"type": "coupon", "amount": "10.00", "threshold": "100.00"}
DROP_90 = {"type": "direct_drop", "sku": "A", "unit_price": "90.00", "at": "2026-11-11T20:00"}
FLASH_79 = {
    "type": "flash_sale",
    "sku": "A",
    "unit_price": "79.00",
    "start": "2026-11-11T12:00",
    "end": "2026-11-11T14:00",
}


def registry(*plugins: tuple[str, object]) -> Registry:
    """The built-in rules and offer types (no installed entry points) plus test plugins."""
    return build_registry(get_plugin_manager(entry_points=False, extra=plugins))


CORE = registry()


def spec_order(**changes: Any) -> dict[str, Any]:
    """The SPEC §3 example: A × 2 at 100.00, paid 11-11T10:00, a 10.00 coupon throughout
    and a direct drop to 90.00 at 20:00. Keyword changes replace fields (None removes)."""
    data: dict[str, Any] = {
        "order_id": "O-1",
        "paid_at": "2026-11-11T10:00",
        "order_status": "paid",
        "event": dict(EVENT),
        "lines": [{"line_id": "L1", "sku": "A", "quantity": 2, "unit_price": "100.00"}],
        "offers": [COUPON_10, DROP_90],
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def claim(
    data: Mapping[str, Any],
    *,
    now: datetime = NOW,
    reg: Registry = CORE,
    policy: Mapping[str, Any] | None = None,
    history: Any = None,
) -> Decision:
    return pricecalc.evaluate(
        {"kind": "price_protection", "input": copy.deepcopy(dict(data))},
        now=now,
        registry=reg,
        policy=pricecalc.Policy.from_mapping(policy or {}),
        history=history,
    )


def codes(decision: Decision) -> list[str]:
    return [r.code for r in decision.reasons]


def line(decision: Decision, index: int = 0) -> dict[str, Any]:
    lines: list[dict[str, Any]] = decision.result["lines"]
    return lines[index]


# -- the worked examples ---------------------------------------------------------------


TWO_LINES = [
    {"line_id": "L1", "sku": "A", "quantity": 1, "unit_price": "120.00"},
    {"line_id": "L2", "sku": "B", "quantity": 1, "unit_price": "80.00"},
]
FULL_20 = {"type": "full_reduction", "tiers": [{"threshold": "200.00", "off": "20.00"}]}
FULL_50_LATER = {
    "type": "full_reduction",
    "tiers": [{"threshold": "200.00", "off": "50.00"}],
    "start": "2026-11-11T18:00",
}


@pytest.mark.parametrize(
    ("data", "refund_total", "lines"),
    [
        pytest.param(
            spec_order(),
            "20.00",
            [("L1", "190.00", "170.00", "2026-11-11T20:00:00+08:00", "20.00", "0.00", "20.00")],
            id="direct-drop",
        ),
        pytest.param(
            spec_order(offers=[COUPON_10, DROP_90, FLASH_79]),
            "42.00",
            [("L1", "190.00", "148.00", "2026-11-11T12:00:00+08:00", "42.00", "0.00", "42.00")],
            id="with-flash-sale",
        ),
        pytest.param(
            spec_order(offers=[COUPON_10, DROP_90, FLASH_79], already_refunded={"L1": "20.00"}),
            "22.00",
            [("L1", "190.00", "148.00", "2026-11-11T12:00:00+08:00", "42.00", "20.00", "22.00")],
            id="flash-sale-after-20-refunded",
        ),
        pytest.param(
            spec_order(lines=TWO_LINES, offers=[FULL_20, FULL_50_LATER]),
            "30.00",
            [
                ("L1", "108.00", "90.00", "2026-11-11T18:00:00+08:00", "18.00", "0.00", "18.00"),
                ("L2", "72.00", "60.00", "2026-11-11T18:00:00+08:00", "12.00", "0.00", "12.00"),
            ],
            id="allocation",
        ),
    ],
)
def test_spec_worked_examples(
    data: dict[str, Any], refund_total: str, lines: list[tuple[str, ...]]
) -> None:
    """SPEC §3 worked examples: refund 20.00; with the flash sale lowest 148.00 and refund
    42.00; 22.00 after 20.00 was refunded; the allocation example 18.00 / 12.00."""
    decision = claim(data)
    assert decision.status == "approved"
    assert decision.reasons == ()
    assert decision.result["refund_total"] == refund_total
    keys: tuple[str, ...] = ("line_id", "paid_net", "lowest_net", "lowest_at", "entitled")
    keys += ("already_refunded", "refund")
    assert [tuple(row[k] for k in keys) for row in decision.result["lines"]] == lines


def test_spec_example_full_result() -> None:
    """SPEC §3 result shape: amounts as two-decimal strings, times ISO, payer merchant,
    settlement merchant_pays, the claim deadline and the offers behind the lowest."""
    decision = claim(spec_order())
    assert decision.result == {
        "order_id": "O-1",
        "refund_total": "20.00",
        "lines": [
            {
                "line_id": "L1",
                "paid_net": "190.00",
                "lowest_net": "170.00",
                "lowest_at": "2026-11-11T20:00:00+08:00",
                "lowest_offers": [
                    {"index": 0, "type": "coupon"},
                    {"index": 1, "type": "direct_drop"},
                ],
                "entitled": "20.00",
                "already_refunded": "0.00",
                "already_refunded_given": None,
                "already_refunded_recorded": "0.00",
                "refund": "20.00",
            }
        ],
        "payer": "merchant",
        "settlement": "merchant_pays",
        "claimed_at": "2026-11-13T10:00:00+08:00",
        "claim_deadline": "2026-11-19T23:59:59+08:00",
    }
    assert decision.policy == {"price_protection": {"claim_days": 7}}
    assert decision.kind == "price_protection"
    assert (decision.rule_set, decision.rule_version) == ("chaozhigou-standard", "1.0.0")


def test_lowest_offers_name_the_flash_sale_and_the_coupon() -> None:
    """SPEC §3 (reporting): the offers that priced the line at lowest_at, by list index."""
    decision = claim(spec_order(offers=[COUPON_10, DROP_90, FLASH_79]))
    assert line(decision)["lowest_offers"] == [
        {"index": 0, "type": "coupon"},
        {"index": 2, "type": "flash_sale"},
    ]


def test_merchant_refused_deducts_from_payout() -> None:
    """SPEC §3: when the merchant refuses, the platform deducts it from the payout."""
    decision = claim(spec_order(merchant_refused=True))
    assert decision.result["settlement"] == "deduct_from_payout"
    assert decision.result["payer"] == "merchant"
    assert decision.result["refund_total"] == "20.00"


# -- each rejection alone --------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "now", "code", "message"),
    [
        pytest.param(
            spec_order(paid_at="2026-11-09T23:00"),
            NOW,
            "PAID_OUTSIDE_EVENT",
            "paid at 2026-11-09T23:00:00+08:00, outside the event "
            "2026-11-10T00:00:00+08:00 – 2026-11-12T23:59:59+08:00",
            id="paid-before-event",
        ),
        pytest.param(
            spec_order(claimed_at="2026-11-20T00:00"),
            NOW,
            "CLAIM_EXPIRED",
            "claimed at 2026-11-20T00:00:00+08:00, after the claim deadline "
            "2026-11-19T23:59:59+08:00 (event end 2026-11-12T23:59:59+08:00 + 7 days)",
            id="claim-expired",
        ),
        pytest.param(
            spec_order(),
            datetime(2026, 11, 21, tzinfo=BJ),
            "CLAIM_EXPIRED",
            "claimed (now) at 2026-11-21T00:00:00+08:00, after the claim deadline "
            "2026-11-19T23:59:59+08:00 (event end 2026-11-12T23:59:59+08:00 + 7 days)",
            id="claim-expired-by-now",
        ),
        pytest.param(
            spec_order(order_status="refunding"),
            NOW,
            "ORDER_NOT_ELIGIBLE",
            "order status 'refunding' is not eligible for price protection "
            "(eligible: paid, shipped, completed)",
            id="refunding",
        ),
        pytest.param(
            spec_order(offers=[COUPON_10]),
            NOW,
            "NO_PRICE_DROP",
            "no line sold lower between payment 2026-11-11T10:00:00+08:00 and the event end "
            "2026-11-12T23:59:59+08:00: the lowest net is not below the price paid "
            "(L1: paid 190.00, lowest 190.00)",
            id="no-drop",
        ),
        pytest.param(
            spec_order(already_refunded={"L1": "20.00"}),
            NOW,
            "ALREADY_REFUNDED",
            "entitled to 20.00 in total, all of it already refunded "
            "(L1: entitled 20.00, already 20.00)",
            id="already-refunded",
        ),
    ],
)
def test_each_rejection_alone(data: dict[str, Any], now: datetime, code: str, message: str) -> None:
    """SPEC §3 rejections: each code alone, its message naming the value and the bound;
    a rejected claim pays nothing but still reports what was computed."""
    decision = claim(data, now=now)
    assert decision.status == "rejected"
    assert [(r.code, r.message) for r in decision.reasons] == [(code, message)]
    assert decision.result["refund_total"] == "0.00"
    assert [row["refund"] for row in decision.result["lines"]] == ["0.00"]
    assert line(decision)["paid_net"] == "190.00"


@pytest.mark.parametrize("status", ["refunding", "refunded", "cancelled"])
def test_ineligible_statuses(status: str) -> None:
    """SPEC §3: refunding, refunded and cancelled orders are not eligible."""
    assert codes(claim(spec_order(order_status=status))) == ["ORDER_NOT_ELIGIBLE"]


@pytest.mark.parametrize("status", ["paid", "shipped", "completed"])
def test_eligible_statuses(status: str) -> None:
    """SPEC §3: paid, shipped and completed orders are eligible."""
    assert claim(spec_order(order_status=status)).result["refund_total"] == "20.00"


def test_every_reason_in_order_and_amounts_still_reported() -> None:
    """SPEC §3: every rejection that applies is listed, in SPEC order; the entitlement is
    still reported, the refund is 0.00."""
    decision = claim(
        spec_order(
            paid_at="2026-11-09T12:00", claimed_at="2026-11-25T00:00", order_status="refunded"
        )
    )
    assert codes(decision) == ["PAID_OUTSIDE_EVENT", "CLAIM_EXPIRED", "ORDER_NOT_ELIGIBLE"]
    assert line(decision)["entitled"] == "20.00"
    assert line(decision)["refund"] == "0.00"
    assert decision.result["refund_total"] == "0.00"


def test_paid_after_the_event_is_outside_and_has_no_drop() -> None:
    """SPEC §3: paid after the event → PAID_OUTSIDE_EVENT; no markdown can follow inside
    the event, so NO_PRICE_DROP applies as well."""
    decision = claim(spec_order(paid_at="2026-11-13T01:00", claimed_at="2026-11-13T02:00"))
    assert codes(decision) == ["PAID_OUTSIDE_EVENT", "NO_PRICE_DROP"]
    assert decision.reasons[0].message == (
        "paid at 2026-11-13T01:00:00+08:00, outside the event "
        "2026-11-10T00:00:00+08:00 – 2026-11-12T23:59:59+08:00"
    )


# -- boundaries ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("paid_at", "expected"),
    [
        ("2026-11-10T00:00:00", ["NO_PRICE_DROP"]),  # exactly at the start: inside
        ("2026-11-12T23:59:59", ["NO_PRICE_DROP"]),  # exactly at the end: inside
        ("2026-11-09T23:59:59", ["PAID_OUTSIDE_EVENT", "NO_PRICE_DROP"]),
        ("2026-11-13T00:00:00", ["PAID_OUTSIDE_EVENT", "NO_PRICE_DROP"]),
    ],
)
def test_event_window_is_closed(paid_at: str, expected: list[str]) -> None:
    """SPEC §1/§3: the event window is closed, start ≤ paid_at ≤ end."""
    decision = claim(spec_order(paid_at=paid_at, offers=[COUPON_10]))
    assert codes(decision) == expected


def test_paid_at_event_end_has_no_candidate_time() -> None:
    """SPEC §3: paid at event.end leaves (paid_at, end] empty: lowest_net = reference and
    lowest_at null (documented default)."""
    decision = claim(spec_order(paid_at="2026-11-12T23:59:59"))
    assert codes(decision) == ["NO_PRICE_DROP"]
    assert line(decision)["lowest_net"] == "190.00"
    assert line(decision)["lowest_at"] is None
    assert line(decision)["lowest_offers"] == []


@pytest.mark.parametrize(
    ("claimed_at", "expected"),
    [
        ("2026-11-19T23:59:59", []),  # exactly event.end + 7 days: accepted
        ("2026-11-20T00:00:00", ["CLAIM_EXPIRED"]),  # one second later
    ],
)
def test_claim_deadline_is_inclusive(claimed_at: str, expected: list[str]) -> None:
    """SPEC §3: claims are accepted until event.end + claim_days, inclusive."""
    assert codes(claim(spec_order(claimed_at=claimed_at))) == expected


def test_claim_days_from_policy_is_used_and_recorded() -> None:
    """SPEC §3: claim_days is configurable; the policy value is recorded."""
    decision = claim(
        spec_order(claimed_at="2026-11-16T00:00"), policy={"price_protection": {"claim_days": 3}}
    )
    assert codes(decision) == ["CLAIM_EXPIRED"]
    assert decision.result["claim_deadline"] == "2026-11-15T23:59:59+08:00"
    assert decision.policy == {"price_protection": {"claim_days": 3}}


def test_claim_days_in_the_request_wins_over_policy() -> None:
    """SPEC §3 lists claim_days among the inputs: given there, it is used (and the policy
    value is not read, so not recorded)."""
    decision = claim(spec_order(claimed_at="2026-11-16T00:00", claim_days=3))
    assert codes(decision) == ["CLAIM_EXPIRED"]
    assert decision.result["claim_deadline"] == "2026-11-15T23:59:59+08:00"
    assert decision.policy == {}


def test_bad_claim_days_policy_is_refused() -> None:
    """SPEC §3: claim_days must be a whole number of days."""
    with pytest.raises(pricecalc.PolicyError, match=r"claim_days must be a whole number"):
        claim(spec_order(), policy={"price_protection": {"claim_days": "7"}})


def test_drop_exactly_at_paid_at_is_ignored() -> None:
    """SPEC §3: a drop at or before paid_at is already in unit_price and is ignored."""
    drop = {**DROP_90, "at": "2026-11-11T10:00"}
    decision = claim(spec_order(offers=[COUPON_10, drop]))
    assert codes(decision) == ["NO_PRICE_DROP"]
    assert line(decision)["paid_net"] == "190.00"
    assert line(decision)["lowest_at"] is None


def test_drop_one_second_after_paid_at_counts() -> None:
    """SPEC §3: markdowns count when paid_at < t."""
    drop = {**DROP_90, "at": "2026-11-11T10:00:01"}
    assert claim(spec_order(offers=[COUPON_10, drop])).result["refund_total"] == "20.00"


@pytest.mark.parametrize(
    ("at", "refund"),
    [("2026-11-12T23:59:59", "20.00"), ("2026-11-13T00:00:00", "0.00")],
)
def test_drop_after_event_end_is_ignored(at: str, refund: str) -> None:
    """SPEC §3: markdowns count when t ≤ event.end (a drop at the end still counts)."""
    decision = claim(spec_order(offers=[COUPON_10, {**DROP_90, "at": at}]))
    assert decision.result["refund_total"] == refund


def test_drop_after_the_claim_is_not_paid() -> None:
    """SPEC §3: markdowns count when t ≤ min(event.end, claimed_at): a drop scheduled
    after the claim is not paid in advance, and the message names the claim as the bound."""
    decision = claim(spec_order(claimed_at="2026-11-11T19:00"))
    assert codes(decision) == ["NO_PRICE_DROP"]
    assert decision.reasons[0].message == (
        "no line sold lower between payment 2026-11-11T10:00:00+08:00 and the claim at "
        "2026-11-11T19:00:00+08:00: the lowest net is not below the price paid "
        "(L1: paid 190.00, lowest 190.00)"
    )
    assert line(decision)["lowest_at"] is None
    assert decision.result["refund_total"] == "0.00"


def test_a_later_claim_pays_the_drop_after_the_first_claim() -> None:
    """SPEC §3: a markdown after a claim is paid by a later claim (the increment over what
    the first claim refunded, given as already_refunded)."""
    deeper = {"type": "direct_drop", "sku": "A", "unit_price": "85.00", "at": "2026-11-12T09:00"}
    offers = [COUPON_10, DROP_90, deeper]
    first = claim(spec_order(offers=offers, claimed_at="2026-11-11T21:00"))
    assert first.result["refund_total"] == "20.00"
    assert line(first)["lowest_net"] == "170.00"
    assert line(first)["lowest_at"] == "2026-11-11T20:00:00+08:00"
    second = claim(
        spec_order(offers=offers, claimed_at="2026-11-12T10:00", already_refunded={"L1": "20.00"})
    )
    assert line(second)["lowest_net"] == "160.00"
    assert line(second)["lowest_at"] == "2026-11-12T09:00:00+08:00"
    assert line(second)["entitled"] == "30.00"
    assert second.result["refund_total"] == "10.00"


@pytest.mark.parametrize(
    ("claimed_at", "refund"),
    [("2026-11-11T20:00:00", "20.00"), ("2026-11-11T19:59:59", "0.00")],
)
def test_drop_exactly_at_the_claim_counts(claimed_at: str, refund: str) -> None:
    """SPEC §1/§3: the window (paid_at, min(event.end, claimed_at)] is closed at its end:
    a drop at the very moment of the claim counts, one second after it does not."""
    decision = claim(spec_order(claimed_at=claimed_at))
    assert decision.result["refund_total"] == refund


@pytest.mark.parametrize(("threshold", "refund"), [("180.00", "50.00"), ("180.01", "20.00")])
def test_coupon_threshold_met_exactly(threshold: str, refund: str) -> None:
    """SPEC §3: thresholds are met by the goods total at the prices of t (after the drop:
    2 × 90.00 = 180.00); a threshold equal to the total is met."""
    coupon = {"type": "coupon", "amount": "30.00", "threshold": threshold}
    coupon["start"] = "2026-11-11T21:00"
    decision = claim(spec_order(offers=[DROP_90, coupon]))
    assert line(decision)["paid_net"] == "200.00"
    assert decision.result["refund_total"] == refund


def test_offer_skipped_at_purchase_gives_no_refund() -> None:
    """SPEC §3: reference = min(paid_net, net(paid_at)): the buyer who skipped the 10.00
    coupon at purchase (paid 200.00) is refunded only the drop, 20.00, not 30.00."""
    decision = claim(spec_order(paid_merchant_discount="0.00"))
    assert line(decision)["paid_net"] == "200.00"
    assert line(decision)["lowest_net"] == "170.00"
    assert line(decision)["entitled"] == "20.00"
    assert decision.result["refund_total"] == "20.00"


def test_skipped_offer_alone_is_no_price_drop() -> None:
    """SPEC §3: an offer active at purchase but skipped is not a markdown."""
    decision = claim(spec_order(paid_merchant_discount="0.00", offers=[COUPON_10]))
    assert codes(decision) == ["NO_PRICE_DROP"]


def test_paid_merchant_discount_is_allocated_over_lines() -> None:
    """SPEC §3: paid_net = gross at unit_price minus the line's largest-remainder share
    of paid_merchant_discount (10.00 over 10/10/10 → 3.34, 3.33, 3.33)."""
    lines = [
        {"line_id": f"L{i}", "sku": "A", "quantity": 1, "unit_price": "10.00"} for i in (1, 2, 3)
    ]
    decision = claim(spec_order(lines=lines, offers=[], paid_merchant_discount="10.00"))
    assert [row["paid_net"] for row in decision.result["lines"]] == ["6.66", "6.67", "6.67"]


def test_discount_capped_at_goods_total() -> None:
    """SPEC §3: the order-level discount never exceeds the goods total (a 500.00 coupon
    on 200.00 of goods leaves 0.00), and entitled is capped at paid_net."""
    big = {"type": "coupon", "amount": "500.00", "start": "2026-11-11T20:00"}
    decision = claim(spec_order(offers=[COUPON_10, big]))
    assert line(decision)["lowest_net"] == "0.00"
    assert line(decision)["entitled"] == "190.00"
    assert decision.result["refund_total"] == "190.00"


def test_coupon_and_full_reduction_stack_but_one_of_each() -> None:
    """SPEC §3: one coupon per order (the best), stacking with the best full reduction."""
    offers = [
        {"type": "coupon", "amount": "10.00", "start": "2026-11-11T12:00"},
        {"type": "coupon", "amount": "15.00", "start": "2026-11-11T12:00"},
        {
            "type": "full_reduction",
            "tiers": [{"threshold": "100", "off": "5"}, {"threshold": "200", "off": "20"}],
            "start": "2026-11-11T12:00",
        },
        {"type": "full_reduction", "tiers": [{"threshold": "150", "off": "12"}]},
    ]
    decision = claim(spec_order(offers=offers, paid_merchant_discount="12.00"))
    # at purchase: the 150/12 full reduction only → 188.00; from 12:00: 15 + 20 → 165.00
    assert line(decision)["paid_net"] == "188.00"
    assert line(decision)["lowest_net"] == "165.00"
    assert decision.result["refund_total"] == "23.00"
    assert line(decision)["lowest_offers"] == [
        {"index": 1, "type": "coupon"},
        {"index": 2, "type": "full_reduction"},
    ]


def test_drop_then_raise_latest_wins() -> None:
    """SPEC §3: the latest direct drop at or before t wins, even when it raises the price:
    after 80.00 at 12:00 and 95.00 at 14:00, a coupon from 16:00 applies to 2 × 95.00."""
    offers = [
        {"type": "direct_drop", "sku": "A", "unit_price": "80.00", "at": "2026-11-11T12:00"},
        {"type": "direct_drop", "sku": "A", "unit_price": "95.00", "at": "2026-11-11T14:00"},
        {"type": "coupon", "amount": "25.00", "start": "2026-11-11T16:00"},
    ]
    decision = claim(spec_order(offers=offers))
    assert line(decision)["paid_net"] == "200.00"
    assert line(decision)["lowest_net"] == "160.00"
    assert line(decision)["lowest_at"] == "2026-11-11T12:00:00+08:00"
    assert decision.result["refund_total"] == "40.00"


def test_drops_at_the_same_moment_the_lower_price_wins() -> None:
    """SPEC §3 (documented default): two drops of one SKU at the same moment: the lower
    price applies, whichever is listed first."""
    low = {**DROP_90, "unit_price": "85.00"}
    for offers in ([COUPON_10, DROP_90, low], [COUPON_10, low, DROP_90]):
        decision = claim(spec_order(offers=offers))
        assert line(decision)["lowest_net"] == "160.00"
        assert decision.result["refund_total"] == "30.00"


def test_flash_sale_equal_to_selling_price_is_not_named() -> None:
    """SPEC §3: a flash sale only counts when it is lower than the selling price."""
    flash = {**FLASH_79, "unit_price": "90.00", "start": "2026-11-11T21:00"}
    flash["end"] = "2026-11-12T08:00"
    coupon = {"type": "coupon", "amount": "15.00", "start": "2026-11-11T21:00"}
    decision = claim(spec_order(offers=[COUPON_10, DROP_90, flash, coupon]))
    assert line(decision)["lowest_net"] == "165.00"
    assert line(decision)["lowest_at"] == "2026-11-11T21:00:00+08:00"
    assert line(decision)["lowest_offers"] == [
        {"index": 1, "type": "direct_drop"},
        {"index": 3, "type": "coupon"},
    ]


def test_windowed_drop_ends_and_price_returns() -> None:
    """SPEC §3: a direct drop with a window applies only inside it; afterwards the line
    is back at unit_price (here the later coupon then applies to 200.00)."""
    offers = [
        {
            "type": "direct_drop",
            "sku": "A",
            "unit_price": "95.00",
            "at": "2026-11-11T12:00",
            "end": "2026-11-11T13:00",
        },
        {"type": "coupon", "amount": "15.00", "start": "2026-11-11T16:00"},
    ]
    decision = claim(spec_order(offers=offers))
    assert line(decision)["lowest_net"] == "185.00"
    assert line(decision)["lowest_at"] == "2026-11-11T16:00:00+08:00"


def test_flash_sale_above_selling_price_is_not_used() -> None:
    """SPEC §3: the lower of the flash-sale price and the selling price applies."""
    flash = {**FLASH_79, "unit_price": "95.00"}
    decision = claim(spec_order(offers=[COUPON_10, DROP_90, flash]))
    assert line(decision)["lowest_net"] == "170.00"
    assert decision.result["refund_total"] == "20.00"


def test_earliest_time_wins_a_tie() -> None:
    """SPEC §3 (documented default): lowest_at is the earliest time reaching the lowest."""
    later = {**DROP_90, "at": "2026-11-12T08:00"}
    decision = claim(spec_order(offers=[COUPON_10, later, DROP_90]))
    assert line(decision)["lowest_at"] == "2026-11-11T20:00:00+08:00"
    assert line(decision)["lowest_offers"] == [
        {"index": 0, "type": "coupon"},
        {"index": 2, "type": "direct_drop"},
    ]


def test_deeper_later_drop_pays_only_the_increment() -> None:
    """SPEC §3: claims are paid once; a deeper later drop pays only the increment."""
    first = claim(spec_order())
    assert first.result["refund_total"] == "20.00"
    deeper = {"type": "direct_drop", "sku": "A", "unit_price": "85.00", "at": "2026-11-12T09:00"}
    second = claim(
        spec_order(offers=[COUPON_10, DROP_90, deeper], already_refunded={"L1": "20.00"})
    )
    assert second.result["refund_total"] == "10.00"
    again = claim(spec_order(already_refunded={"L1": "20.00"}))
    assert codes(again) == ["ALREADY_REFUNDED"]


class Recorded:
    """History as the audit store would answer it (SPEC §3 already_refunded default): one
    approved price-protection decision per order, refunding the given amounts per line."""

    def __init__(self, refunds: Mapping[str, Mapping[str, Decimal]]) -> None:
        self.asked: list[str] = []
        self.recorded = refunds

    def decisions(self, order_id: str) -> tuple[PastDecision, ...]:
        self.asked.append(order_id)
        paid = self.recorded.get(order_id)
        if paid is None:
            return ()
        lines = [{"line_id": line, "refund": f"{amount:.2f}"} for line, amount in paid.items()]
        return (PastDecision(1, "price_protection", "approved", {"lines": lines}),)

    def decision(self, seq: int) -> PastDecision | None:
        return None


def test_history_gives_already_refunded_when_absent() -> None:
    """SPEC §3: without already_refunded, the approved refunds recorded for the order's
    lines are used (a line id of another order is not looked at)."""
    history = Recorded({"O-1": {"L1": Decimal("20.00"), "L9": Decimal("99.00")}})
    decision = claim(spec_order(offers=[COUPON_10, DROP_90, FLASH_79]), history=history)
    assert history.asked == ["O-1"]
    assert line(decision)["already_refunded"] == "20.00"
    assert decision.result["refund_total"] == "22.00"


@pytest.mark.parametrize(
    ("given", "used", "shown_given", "refund_total"),
    [
        ({}, "20.00", None, "22.00"),
        ({"L1": "0"}, "20.00", "0.00", "22.00"),
        ({"L1": "5.00"}, "20.00", "5.00", "22.00"),
        ({"L1": "30.00"}, "30.00", "30.00", "12.00"),
    ],
)
def test_given_already_refunded_never_erases_history(
    given: dict[str, str], used: str, shown_given: str | None, refund_total: str
) -> None:
    """SPEC §3 (issue 19): the amount used is the larger of the given already_refunded and
    the approved refunds recorded for the line; the result shows both. A caller can add to
    the store's history ({"L1": "30.00"}), never erase it ({} or {"L1": "0"})."""
    history = Recorded({"O-1": {"L1": Decimal("20.00")}})
    decision = claim(
        spec_order(offers=[COUPON_10, DROP_90, FLASH_79], already_refunded=given),
        history=history,
    )
    assert history.asked == ["O-1"]
    assert (
        line(decision)["already_refunded"],
        line(decision)["already_refunded_given"],
        line(decision)["already_refunded_recorded"],
    ) == (used, shown_given, "20.00")
    assert decision.result["refund_total"] == refund_total


def test_claimed_at_defaults_to_now() -> None:
    """SPEC §3: claimed_at defaults to now (the clock argument), reported in the result."""
    decision = claim(spec_order(), now=datetime(2026, 11, 19, 15, 59, 59, tzinfo=UTC))
    assert decision.result["claimed_at"] == "2026-11-19T15:59:59+00:00"
    assert decision.status == "approved"
    late = claim(spec_order(), now=datetime(2026, 11, 19, 16, 0, 0, tzinfo=UTC))
    assert codes(late) == ["CLAIM_EXPIRED"]


def test_same_sku_on_two_lines() -> None:
    """SPEC §3: a drop prices every line of its SKU; the discount is shared by gross."""
    lines = [
        {"line_id": "L1", "sku": "A", "quantity": 1, "unit_price": "100.00"},
        {"line_id": "L2", "sku": "A", "quantity": 3, "unit_price": "100.00"},
    ]
    decision = claim(spec_order(lines=lines, offers=[COUPON_10, DROP_90]))
    assert [(r["paid_net"], r["lowest_net"]) for r in decision.result["lines"]] == [
        ("97.50", "87.50"),
        ("292.50", "262.50"),
    ]
    assert decision.result["refund_total"] == "40.00"


# -- plugins ---------------------------------------------------------------------------


@attrs.frozen
class MemberPrice:
    sku: str
    unit_price: Decimal
    window: Window

    def change_times(self) -> tuple[datetime, ...]:
        return self.window.starts()


def parse_member_price(fields: Fields) -> MemberPrice:
    check_keys(fields, {"type", "sku", "unit_price", "start", "end"})
    return MemberPrice(
        fields.string("sku"), fields.amount("unit_price", positive=True), Window.from_fields(fields)
    )


@attrs.frozen
class CrossStore:
    """跨店满减: every full `per` of goods gives `off`."""

    per: Decimal
    off: Decimal
    window: Window

    def change_times(self) -> tuple[datetime, ...]:
        return self.window.starts()

    def discount(self, goods_total: Decimal) -> Decimal:
        return self.off * int(goods_total // self.per)


def parse_cross_store(fields: Fields) -> CrossStore:
    return CrossStore(
        fields.amount("per", positive=True), fields.amount("off"), Window.from_fields(fields)
    )


class OfferPlugin:
    def __init__(self, *types: OfferType) -> None:
        self.types = types

    @pricecalc.hookimpl
    def pricecalc_offer_types(self) -> Iterable[OfferType]:
        return list(self.types)


MEMBER = OfferType("member_price", "lower_price", parse_member_price)
CROSS = OfferType("cross_store", "order_discount", parse_cross_store, group="cross_store")
WITH_PLUGIN = registry(("promo_test", OfferPlugin(MEMBER, CROSS)))


def test_plugin_offer_types_are_priced_and_named() -> None:
    """SPEC §3 "Plugins may add types": a member price (lower_price) and a cross-store
    reduction (its own group, stacking with the coupon) are priced by the same loop, and
    the plugin is named in the decision."""
    offers = [
        COUPON_10,
        {"type": "member_price", "sku": "A", "unit_price": "88.00", "start": "2026-11-11T15:00"},
        {"type": "cross_store", "per": "50.00", "off": "5.00", "start": "2026-11-11T16:00"},
    ]
    decision = claim(spec_order(offers=offers), reg=WITH_PLUGIN)
    # from 16:00: 2 × 88.00 = 176.00, coupon 10.00, cross-store 3 × 5.00 → 151.00
    assert line(decision)["lowest_net"] == "151.00"
    assert decision.result["refund_total"] == "39.00"
    assert line(decision)["lowest_offers"] == [
        {"index": 0, "type": "coupon"},
        {"index": 1, "type": "member_price"},
        {"index": 2, "type": "cross_store"},
    ]
    assert set(decision.plugins) == {"builtin", "promo_test"}


def test_unused_plugin_is_not_named() -> None:
    """SPEC §7: only plugins that took part are listed in the decision."""
    assert set(claim(spec_order(), reg=WITH_PLUGIN).plugins) == {"builtin"}


@attrs.frozen
class BadDiscount:
    window: Window = attrs.field(factory=Window)

    def change_times(self) -> tuple[datetime, ...]:
        return ()

    def discount(self, goods_total: Decimal) -> Decimal:
        raise ZeroDivisionError("oops")


@attrs.frozen
class SubFenDiscount(BadDiscount):
    def discount(self, goods_total: Decimal) -> Decimal:
        return Decimal("0.001")


@pytest.mark.parametrize(
    ("offer_type", "message"),
    [
        (
            OfferType("bad", "order_discount", lambda f: BadDiscount(), group="g"),
            "plugin 'bad_test': offer 'bad' (input.offers[2]) discount() failed: "
            "ZeroDivisionError: oops",
        ),
        (
            OfferType("bad", "order_discount", lambda f: SubFenDiscount(), group="g"),
            "plugin 'bad_test': offer 'bad' (input.offers[2]) discount() failed: TypeError: "
            "offer type 'bad': discount() returned Decimal('0.001'), expected a "
            "non-negative Decimal in fen",
        ),
        (
            OfferType("bad", "lower_price", lambda f: object()),  # type: ignore[arg-type, return-value]
            "plugin 'bad_test': the 'bad' offer parser raised TypeError: offer type 'bad' "
            "parsed to <object",
        ),
        (
            OfferType("bad", "set_price", lambda f: MemberPrice("A", Decimal("1.00"), Window())),
            "plugin 'bad_test': the 'bad' offer parser raised TypeError: offer type 'bad': "
            "a set_price offer needs at (aware datetime)",
        ),
    ],
)
def test_misbehaving_offer_plugin_is_named(offer_type: OfferType, message: str) -> None:
    """SPEC §3 plugins: an offer type that raises or breaks its stage's promises is
    reported naming the plugin, never computed with."""
    reg = registry(("bad_test", OfferPlugin(offer_type)))
    with pytest.raises(PluginError) as err:
        claim(spec_order(offers=[COUPON_10, DROP_90, {"type": "bad"}]), reg=reg)
    assert str(err.value).startswith(message)


@attrs.frozen
class ScanCoupon:
    """A plugin's coupon in the built-in "coupon" group without discount_tiers(): it is
    priced by the simple scan, competing with the indexed built-in coupons."""

    amount: Decimal
    threshold: Decimal
    window: Window

    def change_times(self) -> tuple[datetime, ...]:
        return self.window.starts()

    def discount(self, goods_total: Decimal) -> Decimal:
        return self.amount if goods_total >= self.threshold else Decimal("0.00")


def parse_scan_coupon(fields: Fields) -> ScanCoupon:
    check_keys(fields, {"type", "amount", "threshold", "start", "end"})
    return ScanCoupon(
        fields.amount("amount", positive=True),
        fields.amount("threshold"),
        Window.from_fields(fields),
    )


@attrs.frozen
class TieredBonus:
    """A plugin's threshold-tiered reduction (its own group, shared with the scanned
    cross-store reduction) that opts into the index through discount_tiers()."""

    tiers: tuple[tuple[Decimal, Decimal], ...]
    window: Window

    def change_times(self) -> tuple[datetime, ...]:
        return self.window.starts()

    def discount(self, goods_total: Decimal) -> Decimal:
        return max((off for t, off in self.tiers if goods_total >= t), default=Decimal("0.00"))

    def discount_tiers(self) -> tuple[tuple[Decimal, Decimal], ...]:
        return self.tiers


def parse_tiered_bonus(fields: Fields) -> TieredBonus:
    check_keys(fields, {"type", "tiers", "start", "end"})
    tiers = tuple((f.amount("threshold"), f.amount("off")) for f in fields.items("tiers"))
    return TieredBonus(tiers, Window.from_fields(fields))


SCAN_COUPON = OfferType("scan_coupon", "order_discount", parse_scan_coupon, group="coupon")
TIERED_BONUS = OfferType("tiered_bonus", "order_discount", parse_tiered_bonus, group="cross_store")
MIXED_GROUPS = registry(("mixed_test", OfferPlugin(SCAN_COUPON, TIERED_BONUS, CROSS)))


def test_scanned_and_indexed_offers_share_a_group() -> None:
    """SPEC §3: of one group only the best applying offer counts, the earlier-listed on
    a tie — also when a plugin's coupon (scanned) competes with built-in coupons
    (indexed): the larger one wins whichever kind it is, and on equal amounts the one
    listed first."""
    scan = {"type": "scan_coupon", "amount": "15.00", "threshold": "0.00"}
    later = "2026-11-11T12:00"
    offers = [
        COUPON_10,
        {**scan, "start": later},
        {"type": "coupon", "amount": "15.00", "start": later},
        {"type": "coupon", "amount": "12.00", "start": "2026-11-11T14:00"},
    ]
    decision = claim(spec_order(offers=offers), reg=MIXED_GROUPS)
    assert line(decision)["lowest_net"] == "185.00"
    assert line(decision)["lowest_offers"] == [{"index": 1, "type": "scan_coupon"}]
    swapped = [offers[0], offers[2], offers[1], offers[3]]
    decision = claim(spec_order(offers=swapped), reg=MIXED_GROUPS)
    assert line(decision)["lowest_offers"] == [{"index": 1, "type": "coupon"}]
    bigger = [*offers, {**scan, "amount": "16.00", "start": "2026-11-11T16:00"}]
    decision = claim(spec_order(offers=bigger), reg=MIXED_GROUPS)
    assert (line(decision)["lowest_net"], line(decision)["lowest_at"]) == (
        "184.00",
        "2026-11-11T16:00:00+08:00",
    )
    assert line(decision)["lowest_offers"] == [{"index": 4, "type": "scan_coupon"}]


def test_plugin_discount_tiers_are_indexed() -> None:
    """SPEC §3 plugins: an order discount giving discount_tiers() is priced from its tiers
    (best tier met, a threshold met exactly counts) and stacks in its own group, where a
    scanned cross-store reduction competes with it."""
    bonus = {
        "type": "tiered_bonus",
        "tiers": [{"threshold": "180.00", "off": "7.00"}, {"threshold": "150.00", "off": "4.00"}],
        "start": "2026-11-11T20:00",
    }
    cross = {"type": "cross_store", "per": "100.00", "off": "3.00", "start": "2026-11-11T20:00"}
    # from 20:00 the goods total is 2 × 90.00 = 180.00: tier 180 met, 7.00 over 3.00
    decision = claim(spec_order(offers=[COUPON_10, DROP_90, bonus, cross]), reg=MIXED_GROUPS)
    assert line(decision)["lowest_net"] == "163.00"
    assert line(decision)["lowest_offers"] == [
        {"index": 0, "type": "coupon"},
        {"index": 1, "type": "direct_drop"},
        {"index": 2, "type": "tiered_bonus"},
    ]
    raised = {**DROP_90, "unit_price": "89.99"}  # 179.98: only the 150 tier, 4.00 > 3.00
    decision = claim(spec_order(offers=[COUPON_10, raised, bonus, cross]), reg=MIXED_GROUPS)
    assert line(decision)["lowest_net"] == "165.98"


@attrs.frozen
class BadTiers(BadDiscount):
    answer: Any = ((Decimal("1.00"), Decimal("0.001")),)

    def discount(self, goods_total: Decimal) -> Decimal:
        return Decimal("0.00")

    def discount_tiers(self) -> Any:
        if self.answer is ZeroDivisionError:
            raise ZeroDivisionError("no tiers")
        return self.answer


@pytest.mark.parametrize(
    ("offer", "message"),
    [
        (
            BadTiers(),
            "plugin 'bad_test': offer 'bad' (input.offers[2]) discount_tiers() failed: "
            "TypeError: offer type 'bad': discount_tiers() returned ((Decimal('1.00'), "
            "Decimal('0.001')),), expected a tuple of (threshold, off) pairs of "
            "non-negative Decimals in fen",
        ),
        (
            BadTiers(answer=[(Decimal("1.00"), Decimal("1.00"))]),
            "plugin 'bad_test': offer 'bad' (input.offers[2]) discount_tiers() failed: "
            "TypeError: offer type 'bad': discount_tiers() returned [(Decimal('1.00'), "
            "Decimal('1.00'))], expected a tuple",
        ),
        (
            BadTiers(answer=ZeroDivisionError),
            "plugin 'bad_test': offer 'bad' (input.offers[2]) discount_tiers() failed: "
            "ZeroDivisionError: no tiers",
        ),
    ],
)
def test_misbehaving_discount_tiers_are_named(offer: BadTiers, message: str) -> None:
    """SPEC §3 plugins: a discount_tiers() that raises or breaks its promise (a tuple of
    (threshold, off) pairs of non-negative Decimals in fen) is reported naming the plugin
    and the offer, never computed with."""
    bad = OfferType("bad", "order_discount", lambda f: offer, group="g")
    reg = registry(("bad_test", OfferPlugin(bad)))
    with pytest.raises(PluginError) as err:
        claim(spec_order(offers=[COUPON_10, DROP_90, {"type": "bad"}]), reg=reg)
    assert str(err.value).startswith(message)


def test_order_discount_type_needs_a_group() -> None:
    """SPEC §3 offer contract: an order_discount without a group cannot be registered."""
    with pytest.raises(ValueError, match="an order_discount needs a group"):
        OfferType("x", "order_discount", parse_cross_store)


# -- the order-discount index ---------------------------------------------------------


def listed(index: int, offer: Any) -> ListedOffer:
    """An order-discount offer as listed at ``index`` (built-in types, or a scan coupon)."""
    types = {Coupon: COUPON, FullReduction: FULL_REDUCTION, ScanCoupon: SCAN_COUPON}
    return ListedOffer(index, types[type(offer)], "builtin", offer)


def coupon(amount: str, threshold: str = "0.00") -> Coupon:
    return Coupon(Decimal(amount), Decimal(threshold))


def full(*tiers: tuple[str, str]) -> FullReduction:
    return FullReduction(tuple(Tier(Decimal(t), Decimal(off)) for t, off in tiers))


def group_of(*offers: ListedOffer) -> _DiscountGroup:
    group = _DiscountGroup(scale=100)
    for o in offers:
        group.add(o, _tiers(o))
    group.build()
    return group


def best(group: _DiscountGroup, goods_fen: int) -> tuple[int, int | None]:
    amount, winner = group.winner(group.best(goods_fen, {}))
    return amount, None if winner is None else winner.index


def test_index_ties_go_to_the_earlier_listed_offer() -> None:
    """SPEC §3: of one group the best offer counts; on an equal amount the one listed
    first, whatever the order in which they arrived."""
    a, b, c = listed(3, coupon("10.00")), listed(1, coupon("10.00")), listed(2, coupon("9.99"))
    group = group_of(a, b, c)
    for o in (a, c, b):
        group.arrive(o)
    assert best(group, 100_00) == (1000, 1)
    group.leave(b)
    assert best(group, 100_00) == (1000, 3)


def test_index_forgets_an_offer_that_leaves() -> None:
    """SPEC §3: an offer applies only inside its window: once it has left, the next best
    applying offer counts, and with none left there is no discount."""
    big, small = listed(0, full(("100.00", "30.00"))), listed(1, coupon("5.00"))
    group = group_of(big, small)
    assert best(group, 500_00) == (0, None)
    group.arrive(big)
    group.arrive(small)
    assert best(group, 500_00) == (3000, 0)
    group.leave(big)
    assert best(group, 500_00) == (500, 1)
    group.leave(small)
    assert best(group, 500_00) == (0, None)


def test_index_threshold_met_exactly() -> None:
    """SPEC §3: a threshold is met when the goods total is ≥ it: at exactly the threshold
    the tier counts, one fen below it does not (the best tier met, not the best tier)."""
    tiers = listed(0, full(("100.00", "5.00"), ("200.00", "20.00"), ("200.00", "18.00")))
    other = listed(1, coupon("8.00", "150.00"))
    group = group_of(tiers, other)
    group.arrive(tiers)
    group.arrive(other)
    assert [best(group, g) for g in (99_99, 100_00, 149_99, 150_00, 199_99, 200_00)] == [
        (0, None),
        (500, 0),
        (500, 0),
        (800, 1),
        (800, 1),
        (2000, 0),
    ]


def test_index_and_scan_in_one_group() -> None:
    """SPEC §3: a scanned offer (a plugin's discount() alone) and indexed ones in one
    group: the best of both counts, the earlier-listed on a tie across the two kinds."""
    scanned, indexed = (
        listed(2, ScanCoupon(Decimal("10.00"), ZERO, Window())),
        listed(5, coupon("10.00")),
    )
    group = group_of(scanned, indexed)
    group.arrive(indexed)
    group.arrive(scanned)
    assert best(group, 50_00) == (1000, 2)
    group.leave(scanned)
    assert best(group, 50_00) == (1000, 5)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_index_agrees_with_a_scan(data: st.DataObject) -> None:
    """SPEC §3: as offers of one group arrive and leave in any order, the index answers
    what scanning every applying offer's discount() answers: the best amount, and on a
    tie the earlier-listed offer."""
    money = st.sampled_from(["0.00", "5.00", "10.00", "10.01", "20.00", "100.00", "150.00"])
    offers = []
    for index in range(data.draw(st.integers(1, 12))):
        kind = data.draw(st.sampled_from(["coupon", "full", "scan"]))
        if kind == "coupon":
            offer: Any = coupon(data.draw(money.filter(lambda m: m != "0.00")), data.draw(money))
        elif kind == "full":
            pairs = st.tuples(money, money.filter(lambda m: m != "0.00"))
            offer = full(*data.draw(st.lists(pairs, min_size=1, max_size=4)))
        else:
            amount = data.draw(money.filter(lambda m: m != "0.00"))
            offer = ScanCoupon(Decimal(amount), Decimal(data.draw(money)), Window())
        offers.append(listed(index, offer))
    group = group_of(*offers)
    active: set[int] = set()
    for _ in range(data.draw(st.integers(1, 30))):
        index = data.draw(st.integers(0, len(offers) - 1))
        if index in active:
            group.leave(offers[index])
            active.remove(index)
        else:
            group.arrive(offers[index])
            active.add(index)
        goods = data.draw(st.sampled_from([0, 5_00, 10_00, 10_01, 99_99, 100_00, 150_00, 10**6]))
        scan = [
            (fen_count(offers[i].offer.discount(Decimal(goods).scaleb(-2))), -i) for i in active
        ]
        top = max([(a, i) for a, i in scan if a], default=None)
        assert best(group, goods) == ((0, None) if top is None else (top[0], -top[1]))


# -- invalid input ---------------------------------------------------------------------


def bad_line(**changes: Any) -> list[dict[str, Any]]:
    return [{"line_id": "L1", "sku": "A", "quantity": 2, "unit_price": "100.00", **changes}]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (spec_order(order_id=None), "input.order_id: is required but missing"),
        (
            spec_order(paid_at="11/11/2026"),
            'input.paid_at: must be an ISO 8601 time such as "2026-11-11T10:00" '
            "(got '11/11/2026')",
        ),
        (
            spec_order(claimed_at="2026-11-11T09:59"),
            "input.claimed_at: must not be before paid_at 2026-11-11T10:00:00+08:00 "
            "(got '2026-11-11T09:59')",
        ),
        (
            spec_order(order_status="shipping"),
            "input.order_status: must be one of paid, shipped, completed, refunding, "
            "refunded, cancelled (got 'shipping')",
        ),
        (
            spec_order(event={"start": "2026-11-12T00:00", "end": "2026-11-10T00:00"}),
            "input.event.end: must not be before start 2026-11-12T00:00:00+08:00 "
            "(got '2026-11-10T00:00')",
        ),
        (spec_order(lines=[]), "input.lines: must not be empty (got [])"),
        (
            spec_order(lines=bad_line() + bad_line()),
            "input.lines[1].line_id: repeats the line_id of input.lines[0] (got 'L1')",
        ),
        (
            spec_order(lines=bad_line(quantity=0)),
            "input.lines[0].quantity: must be at least 1 (got 0)",
        ),
        (
            spec_order(lines=bad_line(unit_price="0.00")),
            "input.lines[0].unit_price: must be greater than 0 (got '0.00')",
        ),
        (
            spec_order(lines=bad_line(unit_price="99.999")),
            "input.lines[0].unit_price: has more than two decimals (fen is the smallest "
            "unit) (got '99.999')",
        ),
        (
            spec_order(lines=bad_line(price="1")),
            "input.lines[0].price: is not a field of this object (expected one of line_id, "
            "quantity, sku, unit_price) (got '1')",
        ),
        (
            spec_order(paid_merchant_discount="200.01"),
            "input.paid_merchant_discount: must not exceed the goods total 200.00 (got '200.01')",
        ),
        (
            spec_order(offers=[COUPON_10, {"type": "bogus"}]),
            "input.offers[1].type: is not a known offer type (coupon, direct_drop, "
            "flash_sale, full_reduction) (got 'bogus')",
        ),
        (spec_order(offers=[{"amount": "5"}]), "input.offers[0].type: is required but missing"),
        (spec_order(offers=None), "input.offers: is required but missing"),
        (
            spec_order(offers=[{**FLASH_79, "end": None}]),
            "input.offers[0].end: is required but missing",
        ),
        (
            spec_order(offers=[{"type": "coupon", "amount": "5", "threshhold": "100"}]),
            "input.offers[0].threshhold: is not a field of this object (expected one of "
            "amount, end, start, threshold, type) (got '100')",
        ),
        (
            spec_order(offers=[{"type": "coupon", "amount": "-5"}]),
            "input.offers[0].amount: must not be negative (got '-5')",
        ),
        (
            spec_order(offers=[{"type": "full_reduction", "tiers": []}]),
            "input.offers[0].tiers: must not be empty (got [])",
        ),
        (
            spec_order(offers=[{**DROP_90, "unit_price": "0"}]),
            "input.offers[0].unit_price: must be greater than 0 (got '0')",
        ),
        (
            spec_order(offers=[{**FLASH_79, "end": "2026-11-11T11:00"}]),
            "input.offers[0].end: must not be before start 2026-11-11T12:00:00+08:00 "
            "(got '2026-11-11T11:00')",
        ),
        (
            spec_order(already_refunded={"L9": "1.00"}),
            "input.already_refunded.L9: is not a line of this order (L1) (got 'L9')",
        ),
        (
            spec_order(already_refunded={"L1": "abc"}),
            'input.already_refunded.L1: must be a plain decimal number such as "199.90" '
            "(got 'abc')",
        ),
        (
            spec_order(merchant_refused="maybe"),
            "input.merchant_refused: must be true or false (got 'maybe')",
        ),
        (
            spec_order(claim_days=-1),
            "input.claim_days: must be at least 0 (got -1)",
        ),
        (
            spec_order(note="x"),
            "input.note: is not a field of this object (expected one of already_refunded, "
            "claim_days, claimed_at, event, lines, merchant_refused, offers, order_id, "
            "order_status, paid_at, paid_merchant_discount) (got 'x')",
        ),
    ],
)
def test_invalid_input_names_field_and_value(data: dict[str, Any], message: str) -> None:
    """SPEC §3/§7: invalid input is no decision; the error names the field and value."""
    with pytest.raises(pricecalc.InvalidInput) as err:
        claim(data)
    assert str(err.value) == message


def test_claimed_at_default_before_paid_at_is_invalid() -> None:
    """SPEC §3: claimed_at defaults to now; a now before paid_at cannot be a claim."""
    with pytest.raises(pricecalc.InvalidInput) as err:
        claim(spec_order(), now=datetime(2026, 11, 11, 9, 0, tzinfo=BJ))
    assert str(err.value) == (
        "input.claimed_at: defaults to now, which is before paid_at 2026-11-11T10:00:00+08:00; "
        "give claimed_at (got '2026-11-11T09:00:00+08:00')"
    )


def test_a_float_is_a_type_error() -> None:
    """SPEC §1: a Python float is refused with TypeError."""
    with pytest.raises(TypeError, match="float"):
        claim(spec_order(lines=bad_line(unit_price=100.0)))


def test_json_numbers_are_accepted() -> None:
    """SPEC §1: JSON numbers (parsed as Decimal) and ints are amounts."""
    decision = claim(spec_order(lines=bad_line(unit_price=Decimal("100.0"))))
    assert decision.result["refund_total"] == "20.00"
    assert claim(spec_order(lines=bad_line(unit_price=100))).result["refund_total"] == "20.00"


# -- a literal reading of the SPEC, and properties -------------------------------------


def t(text: str | None) -> datetime | None:
    return None if text is None else parse_time(text, "t")


def D(text: Any) -> Decimal:
    return Decimal(str(text))


#: How each order-discount type of the literal reading gives its amount, and its group.
def _tier_best(goods: Decimal, tiers: Iterable[Mapping[str, Any]]) -> Decimal:
    return max(
        (D(tier["off"]) for tier in tiers if goods >= D(tier["threshold"])), default=Decimal(0)
    )


LITERAL_DISCOUNTS: dict[str, tuple[str, Any]] = {
    "coupon": (
        "coupon",
        lambda o, g: D(o["amount"]) if g >= D(o.get("threshold", 0)) else Decimal(0),
    ),
    "scan_coupon": ("coupon", lambda o, g: D(o["amount"]) if g >= D(o["threshold"]) else 0),
    "full_reduction": ("full_reduction", lambda o, g: _tier_best(g, o["tiers"])),
    "tiered_bonus": ("cross_store", lambda o, g: _tier_best(g, o["tiers"])),
    "cross_store": ("cross_store", lambda o, g: D(o["off"]) * int(g // D(o["per"]))),
}
Literal = tuple[Decimal, Decimal, datetime | None, Decimal, list[int]]


def literal(data: Mapping[str, Any]) -> list[Literal]:
    """SPEC §3 read word for word, slowly: (paid_net, lowest_net, lowest_at, entitled,
    the indexes of the offers behind the lowest) per line. The built-in offer types and
    the test plugins' order discounts (scanned and indexed, in shared groups). Used to
    check the indexed sweep."""
    paid = t(data["paid_at"])
    event_end = t(data["event"]["end"])
    claimed = t(data["claimed_at"]) if "claimed_at" in data else NOW
    assert paid is not None and event_end is not None and claimed is not None
    end = min(event_end, claimed)  # markdowns count in (paid_at, min(event.end, claimed_at)]
    lines = data["lines"]
    offers = list(enumerate(data["offers"]))

    def active(offer: Mapping[str, Any], at: datetime) -> bool:
        start, stop = t(offer.get("start")), t(offer.get("end"))
        return (start is None or start <= at) and (stop is None or at <= stop)

    def nets(at: datetime) -> tuple[list[Decimal], list[list[int]]]:
        """net(at) per line, and the offers pricing each line at ``at`` (by index)."""
        grosses = []
        used: list[list[int]] = []
        for row in lines:
            price = D(row["unit_price"])
            by = []
            drops = [
                (t(o["at"]), -D(o["unit_price"]), -i, D(o["unit_price"]))
                for i, o in offers
                if o["type"] == "direct_drop"
                and o["sku"] == row["sku"]
                and paid < t(o["at"]) <= at  # type: ignore[operator]
                and active(o, at)
            ]
            if drops:
                price, by = max(drops)[3], [-max(drops)[2]]
            flash = [
                (D(o["unit_price"]), i)
                for i, o in offers
                if o["type"] == "flash_sale" and o["sku"] == row["sku"] and active(o, at)
            ]
            if flash and min(flash)[0] < price:  # the lower price; equal ones: listed first
                price, by = min(flash)[0], [*by, min(flash)[1]]
            grosses.append(price * row["quantity"])
            used.append(by)
        goods = sum(grosses, Decimal(0))
        best: dict[str, tuple[Decimal, int]] = {}  # group → (amount, −index)
        for i, o in offers:
            if o["type"] in LITERAL_DISCOUNTS and active(o, at):
                group, amount_of = LITERAL_DISCOUNTS[o["type"]]
                amount = D(amount_of(o, goods))
                if amount > 0 and (amount, -i) > best.get(group, (Decimal(0), 0)):
                    best[group] = (amount, -i)
        discount = min(sum((a for a, _ in best.values()), Decimal(0)), goods)
        winners = [-i for _, i in best.values()]
        shares = allocate(discount, grosses)
        return (
            [g - s for g, s in zip(grosses, shares, strict=True)],
            [sorted(by + winners) for by in used],
        )

    at_paid, _ = nets(paid)
    if "paid_merchant_discount" in data:
        grosses = [D(r["unit_price"]) * r["quantity"] for r in lines]
        shares = allocate(D(data["paid_merchant_discount"]), grosses)
        paid_nets = [g - s for g, s in zip(grosses, shares, strict=True)]
    else:
        paid_nets = at_paid
    starts: set[datetime] = set()
    for _, o in offers:
        start = t(o.get("start"))
        if o["type"] == "direct_drop":
            begin = t(o["at"]) if start is None else max(start, t(o["at"]))  # type: ignore[type-var]
            if begin is not None and active(o, begin):
                starts.add(begin)
        elif start is not None:
            starts.add(start)
    times = sorted(x for x in starts if paid < x <= end)
    per_time = [(x, *nets(x)) for x in times]
    out = []
    for i in range(len(lines)):
        reference = min(paid_nets[i], at_paid[i])
        lowest, lowest_at, behind = reference, None, list[int]()
        if per_time:  # the lowest net, the earliest time on a tie
            lowest, lowest_at, behind = min(
                ((n[i], x, by[i]) for x, n, by in per_time), key=lambda p: (p[0], p[1])
            )
        entitled = min(max(Decimal(0), reference - lowest), paid_nets[i])
        out.append((paid_nets[i], lowest, lowest_at, entitled, behind))
    return out


HOURS = [f"2026-11-{d:02d}T{h:02d}:00" for d in (9, 10, 11, 12, 13) for h in (0, 8, 10, 12, 20)]


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


# Round prices and near-misses as well as any amount: ties and one-fen gaps matter.
prices = st.one_of(
    st.sampled_from(["50.00", "79.99", "80.00", "80.01", "100.00", "120.00"]),
    st.integers(min_value=1, max_value=30000).map(yuan),
)
times = st.sampled_from(HOURS)
skus = st.sampled_from(["A", "B", "C"])


@st.composite
def windows(draw: st.DrawFn, *, required: bool = False) -> dict[str, str]:
    a, b = sorted([draw(times), draw(times)])
    out = {}
    if required or draw(st.booleans()):
        out["start"] = a
    if required or draw(st.booleans()):
        out["end"] = b
    return out


# Few distinct amounts and thresholds as well as any: equal thresholds, offers that tie.
thresholds = st.one_of(st.sampled_from(["0.00", "100.00", "150.00", "200.00", "300.00"]), prices)
offs = st.one_of(st.sampled_from(["5.00", "10.00", "20.00"]), prices)
# Order discounts twice as often as price offers: several offers compete in each group.
BUILTIN_KINDS = ["direct_drop", "flash_sale"] + 2 * ["coupon", "full_reduction"]
# The test plugins' order discounts: a scanned coupon in the coupon group, an indexed
# tiered bonus and a scanned cross-store reduction sharing their own group.
PLUGIN_KINDS = ["scan_coupon", "tiered_bonus", "cross_store"]


@st.composite
def offer_lists(draw: st.DrawFn, *, plugins: bool = False) -> list[dict[str, Any]]:
    kinds = BUILTIN_KINDS + (PLUGIN_KINDS if plugins else [])
    offers: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(0, 14))):
        kind = draw(st.sampled_from(kinds))
        if kind == "direct_drop":
            offer: dict[str, Any] = {"sku": draw(skus), "unit_price": draw(prices)}
            offer["at"] = draw(times)
            offer.update(draw(windows()) if draw(st.booleans()) else {})
        elif kind == "flash_sale":
            offer = {"sku": draw(skus), "unit_price": draw(prices), **draw(windows(required=True))}
        elif kind in ("coupon", "scan_coupon"):
            offer = {"amount": draw(offs), "threshold": draw(thresholds), **draw(windows())}
        elif kind in ("full_reduction", "tiered_bonus"):
            tiers = [
                {"threshold": draw(thresholds), "off": draw(offs)}
                for _ in range(draw(st.integers(1, 4)))
            ]
            offer = {"tiers": tiers, **draw(windows())}
        else:
            per = draw(st.sampled_from(["50.00", "99.99", "100.00"]))
            offer = {"per": per, "off": draw(offs), **draw(windows())}
        offers.append({"type": kind, **offer})
    return offers


@st.composite
def claims(draw: st.DrawFn, *, plugins: bool = False) -> dict[str, Any]:
    lines: list[dict[str, Any]] = [
        {
            "line_id": f"L{i}",
            "sku": draw(skus),
            "quantity": draw(st.integers(1, 3)),
            "unit_price": draw(prices),
        }
        for i in range(draw(st.integers(1, 3)))
    ]
    paid = draw(st.integers(5, 14))  # inside the event
    # The claim: after the event (every markdown counts) or at any hour from payment on,
    # often before the event ends (later markdowns wait for a later claim).
    claimed_at = draw(st.one_of(st.just("2026-11-13T12:00"), st.sampled_from(HOURS[paid:])))
    data: dict[str, Any] = {
        "order_id": "O-P",
        "paid_at": HOURS[paid],
        "claimed_at": claimed_at,
        "order_status": "paid",
        "event": dict(EVENT),
        "lines": lines,
        "offers": draw(offer_lists(plugins=plugins)),
    }
    if draw(st.booleans()):
        goods = sum((D(r["unit_price"]) * r["quantity"] for r in lines), Decimal(0))
        fen = draw(st.integers(0, int(goods * 100)))
        data["paid_merchant_discount"] = yuan(fen)
    return data


def amounts(decision: Decision) -> dict[str, Any]:
    """The result without lowest_offers (which names offers by their list index)."""
    result = copy.deepcopy(dict(decision.result))
    for row in result["lines"]:
        row["lowest_offers"] = sorted(o["type"] for o in row["lowest_offers"])
    return result


@settings(max_examples=300, deadline=None)
@given(claims(plugins=True))
def test_sweep_agrees_with_the_literal_spec(data: dict[str, Any]) -> None:
    """SPEC §3: the indexed sweep computes exactly what the rule book says, read literally
    (paid_net, lowest_net, lowest_at, entitled and the offers behind the lowest — the
    earlier-listed of equal offers — on every line), with built-in and plugin order
    discounts, scanned and indexed, competing in the same groups."""
    decision = claim(data, reg=MIXED_GROUPS)
    got = [
        (
            D(r["paid_net"]),
            D(r["lowest_net"]),
            t(r["lowest_at"]),
            D(r["entitled"]),
            [o["index"] for o in r["lowest_offers"]],
        )
        for r in decision.result["lines"]
    ]
    assert got == literal(data)


@settings(max_examples=200, deadline=None)
@given(claims(plugins=True))
def test_refund_bounds_and_sum(data: dict[str, Any]) -> None:
    """SPEC §3: a refund is never negative, never above paid_net, and the line refunds
    sum to refund_total."""
    decision = claim(data, reg=MIXED_GROUPS)
    total = Decimal(0)
    for row in decision.result["lines"]:
        assert Decimal(0) <= D(row["refund"]) <= D(row["paid_net"])
        total += D(row["refund"])
    assert D(decision.result["refund_total"]) == total


@settings(max_examples=200, deadline=None)
@given(claims())
def test_a_claim_is_paid_once(data: dict[str, Any]) -> None:
    """SPEC §3: replaying the claim with already_refunded = the first refund pays 0."""
    first = claim(data)
    paid = {row["line_id"]: row["refund"] for row in first.result["lines"]}
    second = claim({**data, "already_refunded": paid})
    assert second.result["refund_total"] == "0.00"
    assert codes(second) in (["ALREADY_REFUNDED"], ["NO_PRICE_DROP"])


@settings(max_examples=200, deadline=None)
@given(claims(), st.randoms(use_true_random=False))
def test_listing_order_of_offers_does_not_matter(data: dict[str, Any], rnd: random.Random) -> None:
    """SPEC §3: the result does not depend on the order in which offers are listed."""
    shuffled = {**data, "offers": rnd.sample(data["offers"], len(data["offers"]))}
    assert amounts(claim(shuffled)) == amounts(claim(data))
    assert codes(claim(shuffled)) == codes(claim(data))
