"""chaozhigou_admission — 超值购 entry criteria (SPEC §6; seed 002 第五条 2, 3).

The rule comes from the installed distribution chaozhigou-pricecalc-admission, reached
through the ``pricecalc`` entry-point group like any stranger's plugin. Every code is
triggered with its exact message, every bound is tried on both sides, and policy
overrides change the outcome and are recorded in the decision.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import pricecalc
from pricecalc.decision import Decision
from pricecalc.plugins import load_registry

NOW = datetime(2026, 11, 11, 12, 0, tzinfo=UTC)
REGISTRY = load_registry()

MERCHANT: dict[str, Any] = {
    "newcomer": False,
    "seven_day_returns": True,
    "shipping_insurance": True,
    "authenticity_guarantee": True,
    "experience_score": 70,
    "logistics_score": 65,
    "avg_response_seconds": 40,
    "shop_type": "flagship",
    "accepts_inspection": True,
}
PRODUCT: dict[str, Any] = {
    "good_review_rate": "90%",
    "quality_return_rate": "0.54%",
    "negative_review_rate": "0.33%",
    "complaint_rate": "0.03%",
    "shipping_mode": "spot",
    "white_background": True,
    "product_type": "normal",
}


def decide(
    merchant: dict[str, Any] | None = None,
    product: dict[str, Any] | None = None,
    policy: pricecalc.Policy | None = None,
) -> Decision:
    request = {
        "kind": "chaozhigou_admission",
        "input": {
            "merchant": {**MERCHANT, **(merchant or {})},
            "product": {**PRODUCT, **(product or {})},
        },
    }
    return pricecalc.evaluate(request, now=NOW, registry=REGISTRY, policy=policy)


def reasons(d: Decision) -> list[tuple[str, str]]:
    return [(r.code, r.message) for r in d.reasons]


def test_all_bounds_met_exactly_is_admitted() -> None:
    """Bounds are inclusive (SPEC §6): every value exactly at its bound is admitted."""
    d = decide()
    assert d.status == "approved"
    assert d.reasons == ()
    assert d.result["admitted"] is True
    assert d.result["merchant_passed"] is True
    assert d.result["product_passed"] is True
    assert [c["criterion"] for c in d.result["checks"]] == [
        "newcomer",
        "seven_day_returns",
        "shipping_insurance",
        "authenticity_guarantee",
        "experience_score",
        "logistics_score",
        "avg_response_seconds",
        "shop_type",
        "accepts_inspection",
        "good_review_rate",
        "quality_return_rate",
        "negative_review_rate",
        "complaint_rate",
        "shipping_mode",
        "white_background",
        "product_type",
    ]
    assert all(c["passed"] for c in d.result["checks"])
    assert d.result["checks"][10] == {
        "criterion": "quality_return_rate",
        "value": "0.0054",
        "operator": "<=",
        "bound": "0.0054",
        "passed": True,
        "code": "QUALITY_RETURN_RATE_HIGH",
    }


def test_decision_names_the_plugin_rule_set_and_version() -> None:
    """The rule is the plugin's: its rule set, version and entry-point name are recorded."""
    d = decide()
    assert (d.rule_set, d.rule_version) == ("chaozhigou-pricecalc-admission", "0.1.0")
    assert d.plugins == {"chaozhigou_admission": "0.1.0"}


MERCHANT_FAILURES: list[tuple[dict[str, Any], str, str]] = [
    (
        {"newcomer": True},
        "NEWCOMER",
        "the merchant is in the newcomer period (新手期); newcomers are not admitted",
    ),
    (
        {"seven_day_returns": False},
        "SERVICE_NOT_ENABLED",
        "service seven_day_returns (7天无理由退货) is not enabled; it must be on",
    ),
    (
        {"shipping_insurance": False},
        "SERVICE_NOT_ENABLED",
        "service shipping_insurance (运费险) is not enabled; it must be on",
    ),
    (
        {"authenticity_guarantee": False},
        "SERVICE_NOT_ENABLED",
        "service authenticity_guarantee (正品保障) is not enabled; it must be on",
    ),
    (
        {"experience_score": 69},
        "EXPERIENCE_SCORE_LOW",
        "experience score 69 is below the minimum 70",
    ),
    (
        {"logistics_score": "64.5"},
        "LOGISTICS_SCORE_LOW",
        "logistics score 64.5 is below the minimum 65",
    ),
    (
        {"avg_response_seconds": 41},
        "RESPONSE_TOO_SLOW",
        "average response time 41 s is above the maximum 40 s",
    ),
    (
        {"shop_type": "personal"},
        "SHOP_TYPE_NOT_ALLOWED",
        "shop type personal (个人店) is not allowed; allowed: flagship (旗舰店), "
        "exclusive (专卖店), specialty (专营店), mall (商场店), hypermarket (卖场店)",
    ),
    (
        {"accepts_inspection": False},
        "NO_INSPECTION",
        "the merchant does not accept warehouse and goods inspection (验仓验货); it is required",
    ),
]

PRODUCT_FAILURES: list[tuple[dict[str, Any], str, str]] = [
    (
        {"good_review_rate": "89%"},
        "GOOD_REVIEW_RATE_LOW",
        "good review rate 89% is below the minimum 90%",
    ),
    (
        {"quality_return_rate": "0.55%"},
        "QUALITY_RETURN_RATE_HIGH",
        "quality return rate 0.55% is above the maximum 0.54%",
    ),
    (
        {"negative_review_rate": "0.0034"},
        "NEGATIVE_REVIEW_RATE_HIGH",
        "negative review rate 0.34% is above the maximum 0.33%",
    ),
    (
        {"complaint_rate": "0.031%"},
        "COMPLAINT_RATE_HIGH",
        "complaint rate 0.031% is above the maximum 0.03%",
    ),
    (
        {"shipping_mode": "presale"},
        "NOT_SPOT_GOODS",
        "shipping mode presale (预售) is not allowed; allowed: spot (现货)",
    ),
    (
        {"shipping_mode": "tiered"},
        "NOT_SPOT_GOODS",
        "shipping mode tiered (阶梯发货) is not allowed; allowed: spot (现货)",
    ),
    (
        {"white_background": False},
        "NO_WHITE_BACKGROUND",
        "the main image is not on a white background (白底图); it must be",
    ),
    (
        {"product_type": "luban"},
        "PRODUCT_TYPE_EXCLUDED",
        "product type luban (鲁班商品) is excluded from 超值购 (excluded: group_buy (拼团商品), "
        "virtual (虚拟商品), insurance (保险商品), luban (鲁班商品), third_party (第三方商品))",
    ),
]


@pytest.mark.parametrize(("change", "code", "message"), MERCHANT_FAILURES)
def test_each_merchant_criterion_is_its_own_reason(
    change: dict[str, Any], code: str, message: str
) -> None:
    """SPEC §6: each failing merchant criterion rejects with one reason naming value and bound."""
    d = decide(merchant=change)
    assert d.status == "rejected"
    assert d.result["admitted"] is False
    assert d.result["merchant_passed"] is False
    assert d.result["product_passed"] is True
    assert reasons(d) == [(code, message)]


@pytest.mark.parametrize(("change", "code", "message"), PRODUCT_FAILURES)
def test_each_product_criterion_is_its_own_reason(
    change: dict[str, Any], code: str, message: str
) -> None:
    """SPEC §6: each failing product criterion rejects with one reason naming value and bound."""
    d = decide(product=change)
    assert d.status == "rejected"
    assert (d.result["merchant_passed"], d.result["product_passed"]) == (True, False)
    assert reasons(d) == [(code, message)]


def test_every_failure_at_once_lists_every_reason_in_order() -> None:
    """SPEC §6: all failing criteria are reported, SERVICE_NOT_ENABLED once per service."""
    merchant: dict[str, Any] = {}
    product: dict[str, Any] = {}
    for change, _, _ in MERCHANT_FAILURES:
        merchant.update(change)
    for change, _, _ in PRODUCT_FAILURES:
        product.update(change)
    d = decide(merchant, product)
    codes = [r.code for r in d.reasons]
    assert codes == [
        "NEWCOMER",
        "SERVICE_NOT_ENABLED",
        "SERVICE_NOT_ENABLED",
        "SERVICE_NOT_ENABLED",
        "EXPERIENCE_SCORE_LOW",
        "LOGISTICS_SCORE_LOW",
        "RESPONSE_TOO_SLOW",
        "SHOP_TYPE_NOT_ALLOWED",
        "NO_INSPECTION",
        "GOOD_REVIEW_RATE_LOW",
        "QUALITY_RETURN_RATE_HIGH",
        "NEGATIVE_REVIEW_RATE_HIGH",
        "COMPLAINT_RATE_HIGH",
        "NOT_SPOT_GOODS",
        "NO_WHITE_BACKGROUND",
        "PRODUCT_TYPE_EXCLUDED",
    ]
    assert not any(c["passed"] for c in d.result["checks"])


BOUNDARIES = [
    # (merchant or product, field, value, admitted)
    ("merchant", "experience_score", 70, True),
    ("merchant", "experience_score", "69.99", False),
    ("merchant", "experience_score", "100", True),
    ("merchant", "logistics_score", "65.0", True),
    ("merchant", "logistics_score", "64.99", False),
    ("merchant", "avg_response_seconds", "40", True),
    ("merchant", "avg_response_seconds", "40.01", False),
    ("merchant", "avg_response_seconds", 0, True),
    ("product", "good_review_rate", "0.9", True),
    ("product", "good_review_rate", "89.99%", False),
    ("product", "good_review_rate", "100%", True),
    ("product", "quality_return_rate", "0.0054", True),
    ("product", "quality_return_rate", "0.55%", False),
    ("product", "quality_return_rate", "0.54001%", False),
    ("product", "quality_return_rate", 0, True),
    ("product", "negative_review_rate", "0.0033", True),
    ("product", "negative_review_rate", "0.331%", False),
    ("product", "complaint_rate", "0.0003", True),
    ("product", "complaint_rate", "0.04%", False),
]


@pytest.mark.parametrize(("part", "field", "value", "admitted"), BOUNDARIES)
def test_bounds_are_inclusive(part: str, field: str, value: Any, admitted: bool) -> None:
    """SPEC §6: ≥ 70, ≥ 65, ≤ 40 s, ≥ 90%, ≤ 0.54%, ≤ 0.33%, ≤ 0.03% — at the bound passes."""
    change = {field: value}
    d = decide(merchant=change) if part == "merchant" else decide(product=change)
    assert d.result["admitted"] is admitted
    assert d.status == ("approved" if admitted else "rejected")


@pytest.mark.parametrize(
    "shop_type",
    [
        "flagship",
        "exclusive",
        "specialty",
        "mall",
        "hypermarket",
        "旗舰店",
        "专卖店",
        "专营店",
        "商场店",
        "卖场店",
        " Flagship ",
    ],
)
def test_every_allowed_shop_type_by_id_or_chinese_name(shop_type: str) -> None:
    """SPEC §6: 旗舰店 专卖店 专营店 商场店 卖场店 (English ids or Chinese names) are allowed."""
    d = decide(merchant={"shop_type": shop_type})
    assert d.status == "approved"


def test_chinese_shop_type_is_reported_by_its_id() -> None:
    """A Chinese shop type is read as its English id (专营店 → specialty) in the result."""
    d = decide(merchant={"shop_type": "专营店"})
    check = next(c for c in d.result["checks"] if c["criterion"] == "shop_type")
    assert check["value"] == "specialty"


@pytest.mark.parametrize("shop_type", ["personal", "个人店", "个人店铺"])
def test_personal_shop_is_never_allowed(shop_type: str) -> None:
    """SPEC §6: never 个人店 ``personal``, whichever name is used."""
    d = decide(merchant={"shop_type": shop_type})
    assert [r.code for r in d.reasons] == ["SHOP_TYPE_NOT_ALLOWED"]
    assert d.reasons[0].message.startswith("shop type personal (个人店) is not allowed")


def test_unknown_shop_type_is_not_allowed_and_named() -> None:
    """A shop type nobody allowed is refused with a reason naming it and the allowed ones."""
    d = decide(merchant={"shop_type": "outlet"})
    assert reasons(d)[0][0] == "SHOP_TYPE_NOT_ALLOWED"
    assert reasons(d)[0][1].startswith("shop type outlet is not allowed; allowed: flagship")


@pytest.mark.parametrize(
    ("product_type", "label"),
    [
        ("group_buy", "group_buy (拼团商品)"),
        ("virtual", "virtual (虚拟商品)"),
        ("insurance", "insurance (保险商品)"),
        ("luban", "luban (鲁班商品)"),
        ("third_party", "third_party (第三方商品)"),
        ("拼团商品", "group_buy (拼团商品)"),
        ("虚拟", "virtual (虚拟商品)"),
        ("第三方商品", "third_party (第三方商品)"),
    ],
)
def test_every_excluded_product_type(product_type: str, label: str) -> None:
    """SPEC §6: group_buy, virtual, insurance, luban, third_party products are excluded."""
    d = decide(product={"product_type": product_type})
    assert [r.code for r in d.reasons] == ["PRODUCT_TYPE_EXCLUDED"]
    assert d.reasons[0].message.startswith(f"product type {label} is excluded from 超值购")


@pytest.mark.parametrize(
    ("mode", "approved"), [("现货", True), ("预售", False), ("阶梯发货", False)]
)
def test_shipping_mode_by_chinese_name(mode: str, approved: bool) -> None:
    """SPEC §6: shipping_mode must be spot (现货); presale (预售) and tiered (阶梯) are not."""
    assert decide(product={"shipping_mode": mode}).approved is approved


def test_policy_records_every_bound_used() -> None:
    """SPEC §7: the policy values the decision used are in its record."""
    d = decide()
    assert d.policy == {
        "chaozhigou_admission": {
            "required_services": [
                "seven_day_returns",
                "shipping_insurance",
                "authenticity_guarantee",
            ],
            "allowed_shop_types": ["flagship", "exclusive", "specialty", "mall", "hypermarket"],
            "min_experience_score": 70,
            "min_logistics_score": 65,
            "max_avg_response_seconds": 40,
            "min_good_review_rate": "90%",
            "max_quality_return_rate": "0.54%",
            "max_negative_review_rate": "0.33%",
            "max_complaint_rate": "0.03%",
            "allowed_shipping_modes": ["spot"],
            "excluded_product_types": ["group_buy", "virtual", "insurance", "luban", "third_party"],
        }
    }


POLICY_OVERRIDES = [
    # (policy key, value, merchant change, product change): rejected by default, admitted with it
    ("min_experience_score", 60, {"experience_score": 65}, {}),
    ("min_logistics_score", "60", {"logistics_score": 61}, {}),
    ("max_avg_response_seconds", 60, {"avg_response_seconds": 55}, {}),
    ("min_good_review_rate", "85%", {}, {"good_review_rate": "0.86"}),
    ("max_quality_return_rate", "0.01", {}, {"quality_return_rate": "0.9%"}),
    ("max_negative_review_rate", "1%", {}, {"negative_review_rate": "0.5%"}),
    ("max_complaint_rate", "0.1%", {}, {"complaint_rate": "0.05%"}),
    ("allowed_shipping_modes", ["spot", "预售"], {}, {"shipping_mode": "presale"}),
    ("excluded_product_types", ["virtual"], {}, {"product_type": "luban"}),
    ("allowed_shop_types", ["flagship", "outlet"], {"shop_type": "outlet"}, {}),
    ("required_services", ["seven_day_returns"], {"shipping_insurance": False}, {}),
]


@pytest.mark.parametrize(("key", "value", "merchant", "product"), POLICY_OVERRIDES)
def test_policy_override_changes_the_outcome_and_is_recorded(
    key: str, value: Any, merchant: dict[str, Any], product: dict[str, Any]
) -> None:
    """SPEC §6: every threshold is configurable; the value used is in decision.policy."""
    assert decide(merchant, product).status == "rejected"
    policy = pricecalc.Policy.from_mapping({"chaozhigou_admission": {key: copy.deepcopy(value)}})
    d = decide(merchant, product, policy=policy)
    assert d.status == "approved"
    assert d.policy["chaozhigou_admission"][key] == value


def test_stricter_policy_from_a_toml_file_rejects(tmp_path: Path) -> None:
    """A policy file (numbers read as Decimal) can make a bound stricter; the message says so."""
    path = tmp_path / "policy.toml"
    path.write_text(
        '[chaozhigou_admission]\nmin_experience_score = 75.5\nmax_quality_return_rate = "0.3%"\n',
        encoding="utf-8",
    )
    d = decide(policy=pricecalc.Policy.from_toml(path))
    assert reasons(d) == [
        ("EXPERIENCE_SCORE_LOW", "experience score 70 is below the minimum 75.5"),
        ("QUALITY_RETURN_RATE_HIGH", "quality return rate 0.54% is above the maximum 0.3%"),
    ]
    assert d.policy["chaozhigou_admission"]["min_experience_score"] == "75.5"
    assert d.policy["chaozhigou_admission"]["max_quality_return_rate"] == "0.3%"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "allowed_shop_types",
            ["flagship", "个人店"],
            "policy: chaozhigou_admission.allowed_shop_types must not list personal (个人店): "
            "a personal shop is never admitted to 超值购",
        ),
        (
            "required_services",
            ["free_gift"],
            "policy: chaozhigou_admission.required_services names an unknown service "
            "'free_gift' (known: seven_day_returns, shipping_insurance, authenticity_guarantee)",
        ),
        (
            "min_experience_score",
            "seventy",
            "policy: chaozhigou_admission.min_experience_score must be a number, got 'seventy'",
        ),
        (
            "max_quality_return_rate",
            "2",
            "policy: chaozhigou_admission.max_quality_return_rate must be at most 100%, got '2'",
        ),
        (
            "allowed_shipping_modes",
            "spot",
            "policy: chaozhigou_admission.allowed_shipping_modes must be a list of names, "
            "got 'spot'",
        ),
    ],
)
def test_unusable_policy_values_are_refused(key: str, value: Any, message: str) -> None:
    """A policy value of the wrong shape is a PolicyError naming section and key."""
    policy = pricecalc.Policy.from_mapping({"chaozhigou_admission": {key: value}})
    with pytest.raises(pricecalc.PolicyError) as excinfo:
        decide(policy=policy)
    assert str(excinfo.value) == message


@pytest.mark.parametrize(
    ("merchant", "product", "message"),
    [
        (
            {"experience_score": None},
            {},
            "input.merchant.experience_score: is required but missing",
        ),
        (
            {"experience_score": "70%"},
            {},
            "input.merchant.experience_score: must be a plain number, not a percentage "
            "(got '70%')",
        ),
        (
            {"newcomer": "no"},
            {},
            "input.merchant.newcomer: must be true or false (got 'no')",
        ),
        (
            {},
            {"good_review_rate": "101%"},
            "input.product.good_review_rate: must be at most 100% (1) (got '101%')",
        ),
        (
            {},
            {"complaint_rate": "-0.01%"},
            "input.product.complaint_rate: must not be negative (got '-0.01%')",
        ),
    ],
)
def test_invalid_input_names_the_field(
    merchant: dict[str, Any], product: dict[str, Any], message: str
) -> None:
    """Invalid input is not a decision (SPEC §7): the error names the field and value."""
    with pytest.raises(pricecalc.InvalidInput) as excinfo:
        decide(merchant, product)
    assert str(excinfo.value) == message


def test_missing_product_object_is_invalid() -> None:
    """Both ``merchant`` and ``product`` are required objects."""
    request = {"kind": "chaozhigou_admission", "input": {"merchant": MERCHANT}}
    with pytest.raises(pricecalc.InvalidInput) as excinfo:
        pricecalc.evaluate(request, now=NOW, registry=REGISTRY)
    assert str(excinfo.value) == "input.product: is required but missing"


def test_float_is_refused() -> None:
    """SPEC §1: a Python float passed to the API is refused with TypeError."""
    with pytest.raises(
        TypeError,
        match=r"^request\.input\.product\.quality_return_rate: a float \(0\.0054\) is not accepted",
    ):
        decide(product={"quality_return_rate": 0.0054})


@pytest.mark.parametrize(
    ("key", "value", "chinese"),
    [
        (
            "allowed_shop_types",
            ["flagship", "个人店"],
            "策略：chaozhigou_admission.allowed_shop_types 不能包含 personal（个人店）："
            "个人店永远不能参加超值购",
        ),
        (
            "required_services",
            ["free_gift"],
            "策略：chaozhigou_admission.required_services 中的服务 'free_gift' 未知（已知："
            "seven_day_returns, shipping_insurance, authenticity_guarantee）",
        ),
    ],
)
def test_unusable_policy_values_are_refused_in_chinese(key: str, value: Any, chinese: str) -> None:
    """Issue 21: a first-party plugin's policy error is in the clerk's language too (the
    plugins share pricecalc's catalog); its English is the sentence above."""
    from pricecalc import i18n, messages

    policy = pricecalc.Policy.from_mapping({"chaozhigou_admission": {key: value}})
    with pytest.raises(pricecalc.PolicyError) as excinfo:
        decide(policy=policy)
    try:
        i18n.set_language("zh")
        assert messages.describe(excinfo.value) == chinese
    finally:
        i18n.set_language(None)
