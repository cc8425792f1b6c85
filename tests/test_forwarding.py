"""forwarding_clawback — 禁止转寄 (SPEC §5).

Each built-in category, how names match, categories added by a plugin and by the policy,
both rejection codes alone and together, the clawback value, and invalid input.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pytest

import pricecalc
from pricecalc.decision import Decision
from pricecalc.plugins import build_registry, get_plugin_manager
from pricecalc.registry import Registry
from pricecalc.rules.forwarding import CATEGORIES

NOW = datetime(2026, 11, 11, 12, 0, tzinfo=UTC)


class Categories:
    """A throwaway plugin adding clawback categories."""

    def __init__(self, *names: str) -> None:
        self.names = list(names)

    @pricecalc.hookimpl
    def pricecalc_clawback_categories(self) -> Iterable[str]:
        return self.names


def registry(*plugins: tuple[str, object]) -> Registry:
    """The built-in rules (no installed entry points) plus the given plugin objects."""
    return build_registry(get_plugin_manager(entry_points=False, extra=plugins))


CORE = registry()


def clawback(
    *, reg: Registry = CORE, policy: dict[str, Any] | None = None, **changes: Any
) -> Decision:
    data: dict[str, Any] = {
        "order_id": "O-9",
        "category": "手机",
        "platform_subsidy": "20.00",
        "quantity": 3,
        "forwarded": True,
        **changes,
    }
    data = {k: v for k, v in data.items() if v is not None}
    return pricecalc.evaluate(
        {"kind": "forwarding_clawback", "input": data},
        now=NOW,
        registry=reg,
        policy=pricecalc.Policy.from_mapping(policy or {}),
    )


def test_the_built_in_categories_are_the_seed_list() -> None:
    """SPEC §5: 手机, 笔记本电脑, 酒类, 电玩/配件/游戏/攻略, 影音电器, 个人保健/护理电器,
    平板电脑/MID, 生活电器 — each a whole category name."""
    assert CATEGORIES == (
        "手机",
        "笔记本电脑",
        "酒类",
        "电玩/配件/游戏/攻略",
        "影音电器",
        "个人保健/护理电器",
        "平板电脑/MID",
        "生活电器",
    )


@pytest.mark.parametrize("category", CATEGORIES)
def test_forwarded_order_in_each_category_is_clawed_back(category: str) -> None:
    """SPEC §5: a forwarded, platform-subsidised order in a listed category ends the
    subsidy: clawback = platform_subsidy × quantity (20.00 × 3)."""
    decision = clawback(category=category)
    assert decision.status == "approved"
    assert decision.reasons == ()
    assert dict(decision.result) == {
        "order_id": "O-9",
        "category": category,
        "matched_category": category,
        "covered_by": "builtin",
        "platform_subsidy": "20.00",
        "quantity": 3,
        "clawback": "60.00",
    }
    assert (decision.rule_set, decision.rule_version) == ("chaozhigou-standard", "1.0.0")


def test_quantity_defaults_to_one() -> None:
    """SPEC §5: clawback = platform_subsidy × quantity, quantity 1 unless given."""
    decision = clawback(quantity=None, platform_subsidy="12.34")
    assert decision.result["quantity"] == 1
    assert decision.result["clawback"] == "12.34"


def test_zero_platform_subsidy_claws_back_nothing() -> None:
    """SPEC §5: an order without platform subsidy has nothing to claw back (0.00)."""
    decision = clawback(platform_subsidy="0")
    assert decision.status == "approved"
    assert decision.result["clawback"] == "0.00"


@pytest.mark.parametrize(
    ("given", "listed"),
    [
        ("平板电脑/mid", "平板电脑/MID"),  # as the seed writes it
        ("平板电脑 / MID", "平板电脑/MID"),
        ("平板电脑／ＭＩＤ", "平板电脑/MID"),  # full-width slash and letters
        (" 手机 ", "手机"),
        ("电玩 / 配件 / 游戏 / 攻略", "电玩/配件/游戏/攻略"),
    ],
)
def test_category_names_match_after_normalising(given: str, listed: str) -> None:
    """SPEC §5 (our default, docs/rules.md): names match whole, after NFKC, case folding
    and ignoring spaces around "/"; the listed name that matched is reported."""
    decision = clawback(category=given)
    assert decision.status == "approved"
    assert decision.result["category"] == given.strip()
    assert decision.result["matched_category"] == listed


@pytest.mark.parametrize("category", ["配件", "游戏", "MID", "手机壳", "美妆"])
def test_part_of_a_category_name_is_not_covered(category: str) -> None:
    """SPEC §5: 电玩/配件/游戏/攻略 is one category, so a bare 配件 is not covered."""
    decision = clawback(category=category)
    assert decision.status == "rejected"
    assert [r.code for r in decision.reasons] == ["CATEGORY_NOT_COVERED"]


def test_category_not_covered() -> None:
    """SPEC §5: CATEGORY_NOT_COVERED alone; nothing is clawed back."""
    decision = clawback(category="美妆")
    assert decision.status == "rejected"
    assert [r.to_dict() for r in decision.reasons] == [
        {
            "code": "CATEGORY_NOT_COVERED",
            "message": "category '美妆' is not one of the categories covered by the "
            "forwarding clawback",
        }
    ]
    assert decision.result["clawback"] == "0.00"
    assert decision.result["covered_by"] is None
    assert decision.result["matched_category"] is None


def test_not_forwarded() -> None:
    """SPEC §5: NOT_FORWARDED alone; the subsidy stands, nothing is clawed back."""
    decision = clawback(forwarded=False)
    assert decision.status == "rejected"
    assert [r.to_dict() for r in decision.reasons] == [
        {
            "code": "NOT_FORWARDED",
            "message": "order O-9 was not forwarded (forwarded is false); "
            "the platform subsidy stands",
        }
    ]
    assert decision.result["clawback"] == "0.00"
    assert decision.result["covered_by"] == "builtin"


def test_both_reasons_when_both_fail() -> None:
    """SPEC §5: every failing reason is listed, in SPEC order."""
    decision = clawback(category="美妆", forwarded=False)
    assert [r.code for r in decision.reasons] == ["CATEGORY_NOT_COVERED", "NOT_FORWARDED"]
    assert decision.result["clawback"] == "0.00"


def test_a_plugin_adds_a_category_and_is_named() -> None:
    """SPEC §5: plugins may add categories; covered_by names the plugin, which took part."""
    reg = registry(("jewels_test", Categories("珠宝", "手机")))
    decision = clawback(category="珠宝", reg=reg)
    assert decision.status == "approved"
    assert decision.result["covered_by"] == "jewels_test"
    assert decision.result["clawback"] == "60.00"
    assert set(decision.plugins) == {"builtin", "jewels_test"}
    # a category both list is the built-in one's (registered first)
    phone = clawback(category="手机", reg=reg)
    assert phone.result["covered_by"] == "builtin"
    assert set(phone.plugins) == {"builtin"}


def test_policy_extra_categories() -> None:
    """SPEC §5 + §7: the policy's extra_categories are covered too (covered_by "policy"),
    and the list used is recorded in the decision."""
    policy = {"forwarding_clawback": {"extra_categories": ["美妆", "手机"]}}
    decision = clawback(category="美妆", policy=policy)
    assert decision.status == "approved"
    assert decision.result["covered_by"] == "policy"
    assert decision.result["clawback"] == "60.00"
    assert decision.policy == {"forwarding_clawback": {"extra_categories": ["美妆", "手机"]}}
    assert set(decision.plugins) == {"builtin"}
    assert clawback(category="手机", policy=policy).result["covered_by"] == "builtin"


def test_policy_extra_categories_must_be_a_list_of_names() -> None:
    """SPEC §5 (configurable): a policy value that is not a list of names is refused."""
    with pytest.raises(pricecalc.PolicyError, match="extra_categories must be a list"):
        clawback(policy={"forwarding_clawback": {"extra_categories": "美妆"}})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"forwarded": None}, "input.forwarded: is required but missing"),
        ({"forwarded": "maybe"}, "input.forwarded: must be true or false (got 'maybe')"),
        ({"category": None}, "input.category: is required but missing"),
        ({"category": "  "}, "input.category: must not be empty"),
        ({"order_id": None}, "input.order_id: is required but missing"),
        ({"platform_subsidy": None}, "input.platform_subsidy: is required but missing"),
        ({"platform_subsidy": "-1"}, "input.platform_subsidy: must not be negative (got '-1')"),
        ({"platform_subsidy": "1.234"}, "input.platform_subsidy: has more than two decimals"),
        ({"quantity": 0}, "input.quantity: must be at least 1 (got 0)"),
    ],
)
def test_invalid_input(changes: dict[str, Any], message: str) -> None:
    """SPEC §5 input: order_id, category, platform_subsidy (per unit, ≥ 0), forwarded,
    quantity (int ≥ 1). The message names the field and the value."""
    with pytest.raises(pricecalc.InvalidInput) as caught:
        clawback(**changes)
    assert str(caught.value).startswith(message)
