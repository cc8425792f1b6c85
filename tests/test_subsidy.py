"""subsidy_split — the 超值购 price layers (SPEC §2).

The worked example, each rejection code, the all-failing case (every reason in SPEC
order, amounts still reported with their sign), every form of invalid input, and the
arithmetic identities as properties.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, strategies as st

import pricecalc
from pricecalc.decision import Decision
from pricecalc.plugins import build_registry, get_plugin_manager
from pricecalc.rules.subsidy import CODES
from pricecalc.serialize import loads

NOW = datetime(2026, 11, 11, 12, 0, tzinfo=UTC)
# The built-in rules only: installed plugins cannot change what these tests pin.
CORE = build_registry(get_plugin_manager(entry_points=False))

EXAMPLE: dict[str, Any] = {
    "list_price": "199.00",
    "registration_price": "169.00",
    "subsidy_price": "149.00",
    "floor_price": "139.00",
    "cost_price": "120.00",
    "lowest_price_30d": "175.00",
    "other_platform_prices": [{"platform": "拼多多", "price": "172.00"}],
    "quantity": 2,
}

EXAMPLE_RESULT = {
    "merchant_subsidy": "30.00",
    "platform_subsidy": "20.00",
    "total_subsidy": "50.00",
    "merchant_subsidy_rate": "0.1508",
    "platform_subsidy_rate": "0.1005",
    "consumer_pays": "149.00",
    "merchant_receives": "169.00",
    "merchant_margin": "49.00",
    "max_platform_subsidy": "30.00",
    "quantity": 2,
    "merchant_subsidy_total": "60.00",
    "platform_subsidy_total": "40.00",
    "consumer_pays_total": "298.00",
    "merchant_receives_total": "338.00",
    "lowest_other_platform": {"platform": "拼多多", "price": "172.00"},
}


def split(**changes: Any) -> Decision:
    """Evaluate the SPEC example with some fields changed (None removes a field)."""
    data = {**EXAMPLE, **changes}
    data = {k: v for k, v in data.items() if v is not None}
    return pricecalc.evaluate({"kind": "subsidy_split", "input": data}, now=NOW, registry=CORE)


def codes(decision: Decision) -> list[str]:
    return [r.code for r in decision.reasons]


# -- the worked example ----------------------------------------------------------------------
@pytest.mark.parametrize("key", sorted(EXAMPLE_RESULT))
def test_spec_example_value(key: str) -> None:
    """SPEC §2 example: list 199, registration 169, subsidy 149, floor 139, cost 120, ×2."""
    decision = split()
    assert decision.status == "approved"
    assert decision.result[key] == EXAMPLE_RESULT[key]


def test_spec_example_whole_decision() -> None:
    """SPEC §2 example: approved, exactly these result values, no reasons, named rule set."""
    decision = split()
    assert decision.status == "approved"
    assert dict(decision.result) == EXAMPLE_RESULT
    assert decision.reasons == ()
    assert (decision.rule_set, decision.rule_version) == ("chaozhigou-standard", "1.0.0")
    assert set(decision.plugins) == {"builtin"}


def test_platform_subsidy_instead_of_subsidy_price() -> None:
    """SPEC §2: platform_subsidy (per unit) may be given instead of subsidy_price;
    subsidy_price = registration − platform_subsidy gives the same decision."""
    decision = split(subsidy_price=None, platform_subsidy="20.00")
    assert decision.status == "approved"
    assert dict(decision.result) == EXAMPLE_RESULT


def test_zero_platform_subsidy_is_allowed() -> None:
    """SPEC §2: a platform subsidy of 0 means the consumer pays the registration price."""
    decision = split(subsidy_price=None, platform_subsidy="0")
    assert decision.status == "approved"
    assert decision.result["platform_subsidy"] == "0.00"
    assert decision.result["platform_subsidy_rate"] == "0.0000"
    assert decision.result["consumer_pays"] == "169.00"
    assert decision.result["consumer_pays_total"] == "338.00"


def test_json_request_with_numbers() -> None:
    """SPEC §1/§8: a JSON request with JSON numbers is read exactly (parse_float=Decimal)."""
    request = loads(
        '{"kind": "subsidy_split", "input": {"list_price": 199, "registration_price": 169.0,'
        ' "subsidy_price": 149, "floor_price": 139, "cost_price": 120.00, "quantity": 2}}'
    )
    decision = pricecalc.evaluate(request, now=NOW, registry=CORE)
    assert decision.status == "approved"
    assert decision.result["merchant_subsidy_rate"] == "0.1508"
    assert decision.result["consumer_pays_total"] == "298.00"
    assert "lowest_other_platform" not in decision.result


def test_optional_comparisons_absent() -> None:
    """SPEC §2: lowest_price_30d and other_platform_prices are optional; quantity
    defaults to 1."""
    decision = split(lowest_price_30d=None, other_platform_prices=None, quantity=None)
    assert decision.status == "approved"
    assert decision.result["quantity"] == 1
    assert decision.result["merchant_subsidy_total"] == "30.00"
    assert "lowest_other_platform" not in decision.result


def test_max_platform_subsidy_is_never_negative() -> None:
    """SPEC §2: max_platform_subsidy = max(0, registration − floor)."""
    decision = split(floor_price="169.00", subsidy_price="169.00")
    assert decision.status == "approved"
    assert decision.result["max_platform_subsidy"] == "0.00"


# -- rejections ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "code", "message", "values"),
    [
        (
            {"list_price": "160.00"},
            "REGISTRATION_ABOVE_LIST",
            "registration price 169.00 is above the list price 160.00",
            {
                "merchant_subsidy": "-9.00",
                "total_subsidy": "11.00",
                "merchant_subsidy_total": "-18.00",
            },
        ),
        (
            {"lowest_price_30d": "165.00"},
            "ABOVE_30D_LOWEST",
            "registration price 169.00 is above the lowest price of the last 30 days 165.00",
            {"merchant_subsidy": "30.00"},
        ),
        (
            {
                "other_platform_prices": [
                    {"platform": "拼多多", "price": "172.00"},
                    {"platform": "淘宝百亿补贴", "price": "168.50"},
                    {"platform": "京东", "price": "168.50"},
                ]
            },
            "ABOVE_OTHER_PLATFORM",
            "registration price 169.00 is above the lowest other-platform price 168.50 "
            "(淘宝百亿补贴)",
            {"lowest_other_platform": {"platform": "淘宝百亿补贴", "price": "168.50"}},
        ),
        (
            {"cost_price": "140.00"},
            "FLOOR_BELOW_COST",
            "floor price 139.00 is below the cost price 140.00",
            {"merchant_margin": "29.00"},
        ),
        (
            {"subsidy_price": "130.00"},
            "BELOW_FLOOR",
            "subsidy price 130.00 is below the floor price 139.00",
            {"platform_subsidy": "39.00", "platform_subsidy_rate": "0.1960"},
        ),
        (
            {"subsidy_price": "179.00"},
            "PLATFORM_SUBSIDY_NEGATIVE",
            "subsidy price 179.00 is above the registration price 169.00 (platform subsidy -10.00)",
            {
                "platform_subsidy": "-10.00",
                "platform_subsidy_total": "-20.00",
                "platform_subsidy_rate": "-0.0503",
                "total_subsidy": "20.00",
                "consumer_pays_total": "358.00",
            },
        ),
    ],
)
def test_each_rejection_alone(
    changes: dict[str, Any], code: str, message: str, values: dict[str, Any]
) -> None:
    """SPEC §2: each check rejects on its own, with a reason naming the value and bound
    (ABOVE_OTHER_PLATFORM names the platform; on a tie the one listed first); amounts are
    still reported exactly as computed."""
    decision = split(**changes)
    assert decision.status == "rejected"
    assert [r.to_dict() for r in decision.reasons] == [{"code": code, "message": message}]
    for key, value in values.items():
        assert decision.result[key] == value


def test_floor_above_registration() -> None:
    """SPEC §2: FLOOR_ABOVE_REGISTRATION. It cannot fail alone: with floor > registration
    the subsidy price is either below the floor (BELOW_FLOOR) or above the registration
    price (PLATFORM_SUBSIDY_NEGATIVE); here it comes with BELOW_FLOOR, in SPEC order."""
    decision = split(floor_price="170.00")
    assert decision.status == "rejected"
    assert [r.to_dict() for r in decision.reasons] == [
        {
            "code": "FLOOR_ABOVE_REGISTRATION",
            "message": "floor price 170.00 is above the registration price 169.00",
        },
        {"code": "BELOW_FLOOR", "message": "subsidy price 149.00 is below the floor price 170.00"},
    ]
    assert decision.result["max_platform_subsidy"] == "0.00"


def test_every_check_failing_lists_every_reason_in_spec_order() -> None:
    """SPEC §2: every failing reason is listed (in SPEC order) and every amount is still
    reported exactly as computed; a negative difference stays negative ("-10.00")."""
    decision = split(
        list_price="100.00",
        registration_price="150.00",
        subsidy_price="160.00",
        floor_price="180.00",
        cost_price="200.00",
        lowest_price_30d="120.00",
        other_platform_prices=[{"platform": "拼多多", "price": "130.00"}],
        quantity=1,
    )
    assert decision.status == "rejected"
    assert codes(decision) == list(CODES)
    assert [r.message for r in decision.reasons] == [
        "registration price 150.00 is above the list price 100.00",
        "registration price 150.00 is above the lowest price of the last 30 days 120.00",
        "registration price 150.00 is above the lowest other-platform price 130.00 (拼多多)",
        "floor price 180.00 is below the cost price 200.00",
        "floor price 180.00 is above the registration price 150.00",
        "subsidy price 160.00 is below the floor price 180.00",
        "subsidy price 160.00 is above the registration price 150.00 (platform subsidy -10.00)",
    ]
    assert dict(decision.result) == {
        "merchant_subsidy": "-50.00",
        "platform_subsidy": "-10.00",
        "total_subsidy": "-60.00",
        "merchant_subsidy_rate": "-0.5000",
        "platform_subsidy_rate": "-0.1000",
        "consumer_pays": "160.00",
        "merchant_receives": "150.00",
        "merchant_margin": "-50.00",
        "max_platform_subsidy": "0.00",
        "quantity": 1,
        "merchant_subsidy_total": "-50.00",
        "platform_subsidy_total": "-10.00",
        "consumer_pays_total": "160.00",
        "merchant_receives_total": "150.00",
        "lowest_other_platform": {"platform": "拼多多", "price": "130.00"},
    }


def test_bounds_are_inclusive() -> None:
    """SPEC §2: every check is a strict comparison, so equal prices pass."""
    decision = split(
        list_price="169.00",
        lowest_price_30d="169.00",
        other_platform_prices=[{"platform": "拼多多", "price": "169.00"}],
        cost_price="139.00",
        subsidy_price="139.00",
    )
    assert decision.status == "approved"
    assert decision.result["merchant_subsidy"] == "0.00"
    assert decision.result["merchant_subsidy_rate"] == "0.0000"


# -- invalid input -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"list_price": None}, "input.list_price: is required but missing"),
        ({"floor_price": None}, "input.floor_price: is required but missing"),
        ({"cost_price": None}, "input.cost_price: is required but missing"),
        ({"list_price": "0"}, "input.list_price: must be greater than 0 (got '0')"),
        ({"registration_price": "-1"}, "input.registration_price: must not be negative (got '-1')"),
        ({"registration_price": "0.00"}, "input.registration_price: must be greater than 0"),
        ({"subsidy_price": "0"}, "input.subsidy_price: must be greater than 0 (got '0')"),
        ({"cost_price": "-0.01"}, "input.cost_price: must not be negative (got '-0.01')"),
        ({"floor_price": "-5"}, "input.floor_price: must not be negative (got '-5')"),
        ({"list_price": "199.001"}, "input.list_price: has more than two decimals"),
        ({"list_price": "1e3"}, "input.list_price: must be a plain decimal number"),
        (
            {"platform_subsidy": "20.00"},
            "input.platform_subsidy: give exactly one of subsidy_price or platform_subsidy, "
            "not both (got '20.00')",
        ),
        (
            {"subsidy_price": None},
            "input.subsidy_price: is required unless platform_subsidy is given",
        ),
        (
            {"subsidy_price": None, "platform_subsidy": "169.00"},
            "input.platform_subsidy: leaves a subsidy price of 0.00",
        ),
        (
            {"subsidy_price": None, "platform_subsidy": "170.00"},
            "input.platform_subsidy: leaves a subsidy price of -1.00",
        ),
        ({"quantity": 0}, "input.quantity: must be at least 1 (got 0)"),
        ({"quantity": "two"}, "input.quantity: must be a whole number (got 'two')"),
        ({"quantity": Decimal("1.5")}, "input.quantity: must be a whole number"),
        ({"quantity": True}, "input.quantity: must be a whole number (got true)"),
        ({"lowest_price_30d": "0"}, "input.lowest_price_30d: must be greater than 0"),
        (
            {"other_platform_prices": [{"platform": "拼多多"}]},
            "input.other_platform_prices[0].price: is required but missing",
        ),
        (
            {"other_platform_prices": [{"price": "100.00"}]},
            "input.other_platform_prices[0].platform: is required but missing",
        ),
        (
            {"other_platform_prices": {"platform": "拼多多", "price": "100.00"}},
            "input.other_platform_prices: must be a list",
        ),
    ],
)
def test_invalid_input_names_the_field(changes: dict[str, Any], message: str) -> None:
    """SPEC §2 invalid input (no decision): a missing field, a non-positive list,
    registration or subsidy price, a negative cost or floor, both or neither of
    subsidy_price / platform_subsidy, a platform subsidy leaving nothing to pay, a
    quantity that is not an int ≥ 1. The message names the field and the value."""
    with pytest.raises(pricecalc.InvalidInput) as caught:
        split(**changes)
    assert str(caught.value).startswith(message)


def test_a_float_is_refused() -> None:
    """SPEC §1: a Python float anywhere in the request is a TypeError."""
    with pytest.raises(TypeError, match="float"):
        split(list_price=199.0)


# -- properties ----------------------------------------------------------------------------
prices = st.integers(min_value=1, max_value=10**8).map(lambda n: Decimal(n).scaleb(-2))
non_negative = st.integers(min_value=0, max_value=10**8).map(lambda n: Decimal(n).scaleb(-2))


@given(
    list_price=prices,
    registration=prices,
    subsidy=prices,
    floor=non_negative,
    cost=non_negative,
    quantity=st.integers(1, 1000),
)
def test_split_identities(
    list_price: Decimal,
    registration: Decimal,
    subsidy: Decimal,
    floor: Decimal,
    cost: Decimal,
    quantity: int,
) -> None:
    """SPEC §2: merchant + platform subsidy = total subsidy; every _total is the per-unit
    amount × quantity; reasons come in SPEC order; approved exactly when none fail."""
    decision = split(
        list_price=str(list_price),
        registration_price=str(registration),
        subsidy_price=str(subsidy),
        floor_price=str(floor),
        cost_price=str(cost),
        lowest_price_30d=None,
        other_platform_prices=None,
        quantity=quantity,
    )
    r = decision.result
    merchant, platform = Decimal(r["merchant_subsidy"]), Decimal(r["platform_subsidy"])
    assert merchant + platform == Decimal(r["total_subsidy"])
    assert merchant == list_price - registration
    assert platform == registration - subsidy
    for unit_key, total_key in [
        ("merchant_subsidy", "merchant_subsidy_total"),
        ("platform_subsidy", "platform_subsidy_total"),
        ("consumer_pays", "consumer_pays_total"),
        ("merchant_receives", "merchant_receives_total"),
    ]:
        assert Decimal(r[total_key]) == Decimal(r[unit_key]) * quantity
    assert Decimal(r["max_platform_subsidy"]) >= 0
    found = codes(decision)
    assert found == sorted(found, key=CODES.index)
    expected_ok = (
        registration <= list_price
        and floor >= cost
        and floor <= registration
        and subsidy >= floor
        and subsidy <= registration
    )
    assert (decision.status == "approved") == expected_ok
