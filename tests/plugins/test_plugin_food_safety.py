"""The food-safety law, Art. 148, as a 假一赔十 compensation standard (SPEC §4, §6).

The first-party plugin ``food_safety_law`` (distribution chaozhigou-pricecalc-food-safety)
adds ``food_safety_law_art148`` = max(10 × paid, 3 × loss, 1000.00) for food categories.
It competes with the platform's standards in ``counterfeit_compensation``; disabled, the
platform's standard applies.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pricecalc_food_safety import law

import pricecalc
from pricecalc.decision import Decision
from pricecalc.plugins import build_registry, get_plugin_manager
from pricecalc.policy import Policy
from pricecalc.registry import CompensationLine, Registry

NOW = datetime(2026, 11, 11, 12, 0, tzinfo=UTC)
WITH_FOOD_LAW = build_registry(get_plugin_manager())
WITHOUT_FOOD_LAW = build_registry(get_plugin_manager(disable=["food_safety_law"]))


def claim(
    paid: str,
    category: str | None = "food",
    loss: str | None = None,
    registry: Registry = WITH_FOOD_LAW,
    policy: Policy | None = None,
) -> Decision:
    line: dict[str, Any] = {"line_id": "L1", "paid_amount": paid}
    if category is not None:
        line["category"] = category
    if loss is not None:
        line["loss"] = loss
    request = {
        "kind": "counterfeit_compensation",
        "input": {"order_id": "O1", "confirmed": True, "lines": [line]},
    }
    return pricecalc.evaluate(request, now=NOW, registry=registry, policy=policy)


def test_default_food_categories_are_the_spec_list() -> None:
    """SPEC §4: food, 食品, fresh, 生鲜, alcohol, 酒类, health_food, 保健食品."""
    assert law.FOOD_CATEGORIES == (
        "food", "食品", "fresh", "生鲜", "alcohol", "酒类", "health_food", "保健食品",
    )


def test_spec_example_food_paid_39_90() -> None:
    """SPEC §4: food, paid 39.90 → compensation 1000.00, total 1039.90 (food-safety law)."""
    d = claim("39.90")
    assert d.status == "approved"
    assert d.result["lines"] == [
        {
            "line_id": "L1",
            "refund": "39.90",
            "compensation": "1000.00",
            "total": "1039.90",
            "standard": "food_safety_law_art148",
        }
    ]
    assert d.result["payout_total"] == "1039.90"
    assert d.plugins == {"builtin": "0.3.0", "food_safety_law": "0.1.0"}
    assert d.policy["food_safety_law"] == {
        "categories": list(law.FOOD_CATEGORIES),
        "multiplier": 10,
        "loss_multiplier": 3,
        "minimum": "1000.00",
    }


def test_disabled_the_platform_standard_applies() -> None:
    """SPEC §4: without the plugin the same food line gets the platform's max(10×, 500.00)."""
    d = claim("39.90", registry=WITHOUT_FOOD_LAW)
    assert d.result["lines"][0] == {
        "line_id": "L1",
        "refund": "39.90",
        "compensation": "500.00",
        "total": "539.90",
        "standard": "platform_10x",
    }
    assert "food_safety_law" not in d.plugins
    assert "food_safety_law" not in d.policy


def test_disabled_through_the_policy_file() -> None:
    """``[plugins] disabled`` in the policy blocks the plugin by its entry-point name."""
    policy = Policy.from_mapping({"plugins": {"disabled": ["food_safety_law"]}})
    registry = pricecalc.plugins.load_registry(policy)
    assert [c.item.name for c in registry.standards] == ["platform_10x", "consumer_law_art55"]
    assert claim("39.90", registry=registry).result["lines"][0]["standard"] == "platform_10x"


@pytest.mark.parametrize("category", [*law.FOOD_CATEGORIES, "Food", " 食品 ", "HEALTH_FOOD"])
def test_every_default_food_category(category: str) -> None:
    """SPEC §4: food, 食品, fresh, 生鲜, alcohol, 酒类, health_food, 保健食品 (any case)."""
    line = claim("39.90", category=category).result["lines"][0]
    assert (line["compensation"], line["standard"]) == ("1000.00", "food_safety_law_art148")


@pytest.mark.parametrize(
    ("paid", "category", "loss", "compensation", "standard"),
    [
        ("39.90", "food", None, "1000.00", "food_safety_law_art148"),
        ("0.01", "生鲜", None, "1000.00", "food_safety_law_art148"),
        ("99.99", "food", None, "1000.00", "food_safety_law_art148"),  # 999.90 < 1000.00
        ("100.00", "food", None, "1000.00", "platform_10x"),  # a tie: the platform's
        ("150.00", "酒类", None, "1500.00", "platform_10x"),  # 10 × paid ties too
        ("39.90", "food", "500.00", "1500.00", "food_safety_law_art148"),  # 3 × loss
        ("39.90", "food", "333.34", "1000.02", "food_safety_law_art148"),
        ("39.90", "food", "0.00", "1000.00", "food_safety_law_art148"),
        ("200.00", "food", "700.00", "2100.00", "food_safety_law_art148"),  # 3×loss > 10×paid
        ("39.90", "phone", None, "500.00", "platform_10x"),
        ("39.90", None, None, "500.00", "platform_10x"),
        ("39.90", "phone", "5000.00", "500.00", "platform_10x"),  # loss counts only for food
    ],
)
def test_highest_standard_wins(
    paid: str, category: str | None, loss: str | None, compensation: str, standard: str
) -> None:
    """SPEC §4: compensation = max over standards; the food law is max(10×paid, 3×loss,
    1000.00); ties go to the platform's standard."""
    line = claim(paid, category=category, loss=loss).result["lines"][0]
    assert (line["compensation"], line["standard"]) == (compensation, standard)


def test_non_food_line_does_not_involve_the_plugin() -> None:
    """A standard that does not apply does not take part in the decision."""
    d = claim("39.90", category="phone")
    assert d.plugins == {"builtin": "0.3.0"}


@pytest.mark.parametrize(
    ("override", "category", "compensation", "standard"),
    [
        ({"categories": ["宠物食品"]}, "宠物食品", "1000.00", "food_safety_law_art148"),
        ({"categories": ["宠物食品"]}, "food", "500.00", "platform_10x"),
        ({"minimum": "2000.00"}, "food", "2000.00", "food_safety_law_art148"),
        ({"minimum": 300}, "food", "500.00", "platform_10x"),
        ({"multiplier": 30}, "food", "1197.00", "food_safety_law_art148"),
    ],
)
def test_policy_overrides_change_the_outcome_and_are_recorded(
    override: dict[str, Any], category: str, compensation: str, standard: str
) -> None:
    """SPEC §4 (configurable): the food categories and the law's numbers are policy values."""
    policy = Policy.from_mapping({"food_safety_law": override})
    d = claim("39.90", category=category, policy=policy)
    line = d.result["lines"][0]
    assert (line["compensation"], line["standard"]) == (compensation, standard)
    key, value = next(iter(override.items()))
    assert d.policy["food_safety_law"][key] == value


def test_loss_multiplier_is_configurable() -> None:
    """Policy ``loss_multiplier`` scales the loss; a fractional product is rounded half up."""
    policy = Policy.from_mapping({"food_safety_law": {"loss_multiplier": "2.5"}})
    line = claim("39.90", loss="500.01", policy=policy).result["lines"][0]
    assert line["compensation"] == "1250.03"  # 1250.025 → 1250.03


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"minimum": "1000.001"},
            'policy: food_safety_law.minimum must be an amount such as "500.00", '
            "got '1000.001'",
        ),
        (
            {"multiplier": "ten"},
            "policy: food_safety_law.multiplier must be a number, got 'ten'",
        ),
        (
            {"categories": "food"},
            "policy: food_safety_law.categories must be a list of names, got 'food'",
        ),
    ],
)
def test_unusable_policy_values_are_refused(override: dict[str, Any], message: str) -> None:
    """A policy value of the wrong shape is a PolicyError naming the key."""
    with pytest.raises(pricecalc.PolicyError) as excinfo:
        claim("39.90", policy=Policy.from_mapping({"food_safety_law": override}))
    assert str(excinfo.value) == message


def test_standard_computed_directly() -> None:
    """The standard alone: None for non-food, the law's amount for food."""
    view = Policy().with_defaults(law.POLICY_DEFAULTS).view()
    food = CompensationLine("L1", Decimal("39.90"), category="fresh", loss=Decimal("400.00"))
    assert law.food_safety_law_art148(food, view) == Decimal("1200.00")
    phone = CompensationLine("L2", Decimal("39.90"), category="phone")
    assert law.food_safety_law_art148(phone, view) is None
    assert law.food_safety_law_art148(CompensationLine("L3", Decimal("1.00")), view) is None
    assert law.STANDARD.name == "food_safety_law_art148"
