"""counterfeit_compensation — 假一赔十 (SPEC §4).

The worked examples, standards competing (a throwaway food-law plugin stands in for the
first-party one, so the test proves any extra standard competes and is named), the
NOT_CONFIRMED rejection, the configurable minimum and base, plugin standards that misbehave,
invalid input, and the SPEC's guarantees as properties.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, strategies as st

import pricecalc
from pricecalc.decision import Decision
from pricecalc.plugins import build_registry, get_plugin_manager
from pricecalc.policy import PolicyView
from pricecalc.registry import CompensationLine, CompensationStandard, Registry

NOW = datetime(2026, 11, 11, 12, 0, tzinfo=UTC)
FOOD = {"food", "食品", "fresh", "生鲜", "alcohol", "酒类", "health_food", "保健食品"}


def food_law(line: CompensationLine, policy: PolicyView) -> Decimal | None:
    """A stand-in for the food-safety law, Art. 148: max(10 × paid, 3 × loss, 1000.00)."""
    if line.category not in FOOD:
        return None
    return max(10 * line.paid, 3 * (line.loss or Decimal(0)), Decimal("1000.00"))


class StandardPlugin:
    """A throwaway plugin contributing one compensation standard."""

    def __init__(self, name: str, compute: Callable[..., Any]) -> None:
        self.standard = CompensationStandard(name=name, compute=compute)

    @pricecalc.hookimpl
    def pricecalc_compensation_standards(self) -> Iterable[CompensationStandard]:
        return [self.standard]


def registry(*plugins: tuple[str, object]) -> Registry:
    """The built-in rules (no installed entry points) plus the given plugin objects."""
    return build_registry(get_plugin_manager(entry_points=False, extra=plugins))


CORE = registry()
WITH_FOOD = registry(("food_test", StandardPlugin("food_safety_art148", food_law)))


def claim(
    lines: list[dict[str, Any]],
    *,
    confirmed: bool = True,
    reg: Registry = CORE,
    policy: dict[str, Any] | None = None,
    **extra: Any,
) -> Decision:
    request = {
        "kind": "counterfeit_compensation",
        "input": {"order_id": "O-1", "confirmed": confirmed, "lines": lines, **extra},
    }
    return pricecalc.evaluate(
        request,
        now=NOW,
        registry=reg,
        policy=pricecalc.Policy.from_mapping(policy or {}),
    )


# -- the worked examples ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "compensation", "total", "standard"),
    [
        ({"paid_amount": "39.90"}, "500.00", "539.90", "platform_10x"),
        ({"paid_amount": "68.00"}, "680.00", "748.00", "platform_10x"),
        # 10 × 50.00 = 500.00 exactly; consumer law gives 500.00 too: the tie is the platform's
        ({"paid_amount": "50.00"}, "500.00", "550.00", "platform_10x"),
        (
            {"paid_amount": "39.90", "category": "food"},
            "1000.00",
            "1039.90",
            "food_safety_art148",
        ),
        # not a food category: the food standard does not apply
        ({"paid_amount": "39.90", "category": "手机"}, "500.00", "539.90", "platform_10x"),
    ],
)
def test_spec_examples(line: dict[str, Any], compensation: str, total: str, standard: str) -> None:
    """SPEC §4 examples: 39.90 → 500.00 / 539.90; 68.00 → 680.00 / 748.00; 50.00 → 500.00
    exactly; food 39.90 → 1000.00 under the food-safety law (a plugin standard)."""
    decision = claim([{"line_id": "L1", **line}], reg=WITH_FOOD)
    assert decision.status == "approved"
    paid = line["paid_amount"]
    assert dict(decision.result) == {
        "order_id": "O-1",
        "lines": [
            {
                "line_id": "L1",
                "refund": paid,
                "compensation": compensation,
                "total": total,
                "standard": standard,
            }
        ],
        "refund_total": paid,
        "compensation_total": compensation,
        "payout_total": total,
        "payer": "merchant",
        "settlement": "merchant_pays",
    }


def test_plugin_standard_that_wins_is_named_and_took_part() -> None:
    """SPEC §4: plugins add standards; the winner is named and its plugin is recorded."""
    food = claim([{"line_id": "L1", "paid_amount": "39.90", "category": "生鲜"}], reg=WITH_FOOD)
    assert food.result["lines"][0]["standard"] == "food_safety_art148"
    assert set(food.plugins) == {"builtin", "food_test"}
    phone = claim([{"line_id": "L1", "paid_amount": "39.90", "category": "手机"}], reg=WITH_FOOD)
    assert set(phone.plugins) == {"builtin"}  # the food standard did not apply


def test_food_law_loss_standard() -> None:
    """SPEC §4: the food law grants 3 × loss when that is higher (a plugin's own inputs)."""
    decision = claim(
        [{"line_id": "L1", "paid_amount": "39.90", "category": "food", "loss": "500.00"}],
        reg=WITH_FOOD,
    )
    assert decision.result["lines"][0]["compensation"] == "1500.00"
    assert decision.result["payout_total"] == "1539.90"


def test_multi_line_order_totals_and_refusal() -> None:
    """SPEC §4: per-line refund and compensation, order totals; a merchant who refuses has
    the payout deducted from the payout (settlement as in §3)."""
    decision = claim(
        [
            {"line_id": "L1", "paid_amount": "39.90"},
            {"line_id": "L2", "paid_amount": "68.00"},
            {"line_id": "L3", "paid_amount": "0.01"},
        ],
        merchant_refused=True,
    )
    assert decision.status == "approved"
    assert [
        (x["line_id"], x["refund"], x["compensation"], x["total"]) for x in decision.result["lines"]
    ] == [
        ("L1", "39.90", "500.00", "539.90"),
        ("L2", "68.00", "680.00", "748.00"),
        ("L3", "0.01", "500.00", "500.01"),
    ]
    assert decision.result["refund_total"] == "107.91"
    assert decision.result["compensation_total"] == "1680.00"
    assert decision.result["payout_total"] == "1787.91"
    assert decision.result["settlement"] == "deduct_from_payout"
    assert decision.result["payer"] == "merchant"


def test_policy_values_are_recorded() -> None:
    """SPEC §4 (configurable) + §7: the policy values used are in the decision."""
    decision = claim([{"line_id": "L1", "paid_amount": "39.90"}])
    assert decision.policy == {
        "counterfeit_compensation": {
            "multiplier": 10,
            "minimum": "500.00",
            "minimum_per": "line",
            "include_platform_subsidy": False,
            "consumer_law_multiplier": 3,
            "consumer_law_minimum": "500.00",
        }
    }


def test_the_higher_legal_standard_applies() -> None:
    """SPEC §4: where a law sets a higher standard, it applies: with the platform
    multiplier lowered to 2, the consumer law's 3 × paid wins and is named."""
    decision = claim(
        [{"line_id": "L1", "paid_amount": "200.00"}],
        policy={"counterfeit_compensation": {"multiplier": 2}},
    )
    assert decision.result["lines"][0]["compensation"] == "600.00"
    assert decision.result["lines"][0]["standard"] == "consumer_law_art55"


def test_a_tie_with_a_plugin_standard_goes_to_the_platform() -> None:
    """SPEC §4: ties are the platform's — the earlier (built-in) standard is named."""
    same = StandardPlugin("same_as_platform", lambda line, policy: 10 * line.paid)
    decision = claim([{"line_id": "L1", "paid_amount": "68.00"}], reg=registry(("same", same)))
    assert decision.result["lines"][0]["compensation"] == "680.00"
    assert decision.result["lines"][0]["standard"] == "platform_10x"


def test_fractional_multiplier_rounds_half_up_to_the_fen() -> None:
    """SPEC §1: a policy multiplier of 10.5 gives 10.5 × 68.03 = 714.315 → 714.32."""
    decision = claim(
        [{"line_id": "L1", "paid_amount": "68.03"}],
        policy={"counterfeit_compensation": {"multiplier": "10.5"}},
    )
    assert decision.result["lines"][0]["compensation"] == "714.32"


# -- rejection ---------------------------------------------------------------------------------
def test_not_confirmed_pays_nothing() -> None:
    """SPEC §4: without the platform's confirmation the claim is rejected NOT_CONFIRMED;
    a rejected claim pays nothing, so every amount is 0.00 and no standard is named."""
    decision = claim(
        [{"line_id": "L1", "paid_amount": "39.90"}, {"line_id": "L2", "paid_amount": "68.00"}],
        confirmed=False,
    )
    assert decision.status == "rejected"
    assert [r.to_dict() for r in decision.reasons] == [
        {
            "code": "NOT_CONFIRMED",
            "message": "order O-1: the platform has not confirmed a counterfeit "
            "(confirmed is false); nothing is paid",
        }
    ]
    zero = {"refund": "0.00", "compensation": "0.00", "total": "0.00", "standard": None}
    assert dict(decision.result) == {
        "order_id": "O-1",
        "lines": [{"line_id": "L1", **zero}, {"line_id": "L2", **zero}],
        "refund_total": "0.00",
        "compensation_total": "0.00",
        "payout_total": "0.00",
        "payer": "merchant",
        "settlement": "merchant_pays",
    }


# -- configurable minimum and base ---------------------------------------------------------
def test_minimum_per_order_tops_up_the_order_total() -> None:
    """SPEC §4 (configurable): with minimum_per = "order" the 500.00 minimum applies once
    to the order; the top-up (500 − 400 = 100) is allocated proportional to paid."""
    lines = [{"line_id": "L1", "paid_amount": "10.00"}, {"line_id": "L2", "paid_amount": "30.00"}]
    per_line = claim(lines)
    assert [x["compensation"] for x in per_line.result["lines"]] == ["500.00", "500.00"]
    per_order = claim(lines, policy={"counterfeit_compensation": {"minimum_per": "order"}})
    assert [x["compensation"] for x in per_order.result["lines"]] == ["125.00", "375.00"]
    assert [x["total"] for x in per_order.result["lines"]] == ["135.00", "405.00"]
    assert [x["standard"] for x in per_order.result["lines"]] == ["platform_10x"] * 2
    assert per_order.result["compensation_total"] == "500.00"
    assert per_order.result["payout_total"] == "540.00"
    assert per_order.result["minimum_top_up"] == "100.00"
    assert per_order.policy["counterfeit_compensation"]["minimum_per"] == "order"


def test_minimum_per_order_top_up_uses_largest_remainders() -> None:
    """SPEC §1 + §4: a 200.00 top-up over three equal lines is 66.67, 66.67, 66.66."""
    lines = [{"line_id": f"L{i}", "paid_amount": "10.00"} for i in (1, 2, 3)]
    decision = claim(lines, policy={"counterfeit_compensation": {"minimum_per": "order"}})
    assert [x["compensation"] for x in decision.result["lines"]] == ["166.67", "166.67", "166.66"]
    assert decision.result["compensation_total"] == "500.00"


def test_minimum_per_order_no_top_up_when_above() -> None:
    """SPEC §4: an order whose compensation already reaches the minimum is not topped up."""
    lines = [{"line_id": "L1", "paid_amount": "40.00"}, {"line_id": "L2", "paid_amount": "30.00"}]
    decision = claim(lines, policy={"counterfeit_compensation": {"minimum_per": "order"}})
    assert [x["compensation"] for x in decision.result["lines"]] == ["400.00", "300.00"]
    assert decision.result["minimum_top_up"] == "0.00"
    assert decision.result["compensation_total"] == "700.00"


def test_include_platform_subsidy_raises_the_base_not_the_refund() -> None:
    """SPEC §4 (configurable): paid_amount excludes the platform subsidy by default; with
    include_platform_subsidy the line's platform_subsidy joins the compensation base, while
    the refund stays what the buyer paid."""
    lines = [{"line_id": "L1", "paid_amount": "39.90", "platform_subsidy": "20.00"}]
    default = claim(lines)
    assert default.result["lines"][0]["compensation"] == "500.00"
    included = claim(lines, policy={"counterfeit_compensation": {"include_platform_subsidy": True}})
    assert included.result["lines"][0] == {
        "line_id": "L1",
        "refund": "39.90",
        "compensation": "599.00",
        "total": "638.90",
        "standard": "platform_10x",
    }
    no_subsidy = claim(
        [{"line_id": "L1", "paid_amount": "68.00"}],
        policy={"counterfeit_compensation": {"include_platform_subsidy": True}},
    )
    assert no_subsidy.result["lines"][0]["compensation"] == "680.00"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"minimum_per": "shop"}, 'minimum_per must be "line" or "order"'),
        ({"include_platform_subsidy": "yes"}, "include_platform_subsidy must be true or false"),
        ({"minimum": "500.001"}, "counterfeit_compensation.minimum must be an amount"),
        ({"multiplier": "-1"}, "counterfeit_compensation.multiplier must not be negative"),
        ({"mulitplier": 10}, "unknown key 'mulitplier'"),
    ],
)
def test_bad_policy_values_are_refused(values: dict[str, Any], message: str) -> None:
    """SPEC §4 (configurable): a policy value that cannot be used is a PolicyError."""
    with pytest.raises(pricecalc.PolicyError, match=message):
        claim(
            [{"line_id": "L1", "paid_amount": "39.90"}],
            policy={"counterfeit_compensation": values},
        )


# -- misbehaving plugin standards ------------------------------------------------------------
def _raises(line: CompensationLine, policy: PolicyView) -> Decimal:
    raise RuntimeError("statute table missing")


@pytest.mark.parametrize(
    ("compute", "problem"),
    [
        (_raises, "compensation standard 'odd' raised RuntimeError: statute table missing"),
        (lambda line, policy: 5000.0, "returned float 5000.0; a decimal.Decimal is required"),
        (lambda line, policy: 5000, "returned int 5000; a decimal.Decimal is required"),
        (lambda line, policy: "5000.00", "returned str '5000.00'"),
        (lambda line, policy: Decimal("5000.001"), "returned 5000.001, which is not an amount"),
        (lambda line, policy: Decimal("-1.00"), "returned a negative amount -1.00"),
        (lambda line, policy: Decimal("NaN"), "returned NaN; a finite amount is required"),
        (lambda line, policy: Decimal("1E+40"), "returned 1E+40, which is not an amount"),
    ],
)
def test_a_misbehaving_standard_is_named(compute: Callable[..., Any], problem: str) -> None:
    """SPEC §4: plugins add standards — one that raises or returns anything but an exact
    non-negative amount in fen is a PluginError naming the plugin, never a wrong payout."""
    reg = registry(("odd_plugin", StandardPlugin("odd", compute)))
    with pytest.raises(pricecalc.PluginError) as caught:
        claim([{"line_id": "L1", "paid_amount": "39.90"}], reg=reg)
    assert caught.value.plugin == "odd_plugin"
    assert str(caught.value).startswith("plugin 'odd_plugin': ")
    assert problem in str(caught.value)


def test_a_standard_returning_none_does_not_apply() -> None:
    """SPEC §4: a standard that does not apply (None) does not compete or take part."""
    reg = registry(("never", StandardPlugin("never", lambda line, policy: None)))
    decision = claim([{"line_id": "L1", "paid_amount": "68.00"}], reg=reg)
    assert decision.result["lines"][0]["compensation"] == "680.00"
    assert set(decision.plugins) == {"builtin"}


# -- invalid input ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"lines": [{"line_id": "L1", "paid_amount": "0"}]},
            "input.lines[0].paid_amount: must be at least 0.01 (got '0')",
        ),
        (
            {"lines": [{"line_id": "L1", "paid_amount": "0.001"}]},
            "input.lines[0].paid_amount: has more than two decimals",
        ),
        (
            {"lines": [{"line_id": "L1", "paid_amount": "-5"}]},
            "input.lines[0].paid_amount: must not be negative",
        ),
        (
            {"lines": [{"line_id": "L1"}]},
            "input.lines[0].paid_amount: is required but missing",
        ),
        ({"lines": []}, "input.lines: must not be empty"),
        (
            {
                "lines": [
                    {"line_id": "L1", "paid_amount": "1.00"},
                    {"line_id": "L1", "paid_amount": "2.00"},
                ]
            },
            "input.lines[1].line_id: duplicates the line id of input.lines[0] (got 'L1')",
        ),
        (
            {"lines": [{"line_id": "L1", "paid_amount": "1.00", "loss": "-1"}]},
            "input.lines[0].loss: must not be negative",
        ),
        ({"confirmed": None}, "input.confirmed: is required but missing"),
        ({"confirmed": "yes"}, "input.confirmed: must be true or false (got 'yes')"),
        ({"order_id": None}, "input.order_id: is required but missing"),
        ({"merchant_refused": 1}, "input.merchant_refused: must be true or false (got 1)"),
    ],
)
def test_invalid_input(data: dict[str, Any], message: str) -> None:
    """SPEC §4 invalid input: paid_amount below 0.01, no lines, a duplicate line id, a
    missing or malformed field. The message names the field and the value."""
    request_input: dict[str, Any] = {
        "order_id": "O-1",
        "confirmed": True,
        "lines": [{"line_id": "L1", "paid_amount": "39.90"}],
        **data,
    }
    request_input = {k: v for k, v in request_input.items() if v is not None}
    with pytest.raises(pricecalc.InvalidInput) as caught:
        pricecalc.evaluate(
            {"kind": "counterfeit_compensation", "input": request_input}, now=NOW, registry=CORE
        )
    assert str(caught.value).startswith(message)


# -- properties ----------------------------------------------------------------------------
paid_amounts = st.integers(min_value=1, max_value=10**9).map(lambda n: Decimal(n).scaleb(-2))


@given(paid=st.lists(paid_amounts, min_size=1, max_size=6))
def test_compensation_guarantees(paid: list[Decimal]) -> None:
    """SPEC §4: every line's compensation is at least 500.00 and at least 10 × paid;
    total = refund + compensation; order totals are the sums of the lines."""
    decision = claim([{"line_id": f"L{i}", "paid_amount": str(p)} for i, p in enumerate(paid)])
    lines = decision.result["lines"]
    for line, p in zip(lines, paid, strict=True):
        refund, compensation = Decimal(line["refund"]), Decimal(line["compensation"])
        assert refund == p
        assert compensation >= Decimal("500.00")
        assert compensation >= 10 * p
        assert compensation == max(10 * p, Decimal("500.00"))
        assert Decimal(line["total"]) == refund + compensation
    assert Decimal(decision.result["refund_total"]) == sum(paid)
    assert Decimal(decision.result["compensation_total"]) == sum(
        Decimal(x["compensation"]) for x in lines
    )
    assert Decimal(decision.result["payout_total"]) == Decimal(
        decision.result["refund_total"]
    ) + Decimal(decision.result["compensation_total"])


@given(paid=st.lists(paid_amounts, min_size=1, max_size=6))
def test_order_minimum_guarantees(paid: list[Decimal]) -> None:
    """SPEC §4 (minimum_per = "order"): the order's compensation is at least 500.00 and
    at least 10 × paid per line; the top-up is exactly what was missing."""
    decision = claim(
        [{"line_id": f"L{i}", "paid_amount": str(p)} for i, p in enumerate(paid)],
        policy={"counterfeit_compensation": {"minimum_per": "order"}},
    )
    total = Decimal(decision.result["compensation_total"])
    assert total == max(10 * sum(paid), Decimal("500.00"))
    assert Decimal(decision.result["minimum_top_up"]) == total - 10 * sum(paid)
    for line, p in zip(decision.result["lines"], paid, strict=True):
        assert Decimal(line["compensation"]) >= 10 * p
