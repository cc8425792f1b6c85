"""Select Alliance (精选联盟) rules (SPEC §6; seeds 000, 004).

``select_alliance_admission`` (full vs trial, BANNED), ``select_alliance_product`` (the
user's category threshold table) and ``select_alliance_review`` (warn / close on the
Beijing Wednesday / ban on the third closure), each reached through its own entry point of
chaozhigou-pricecalc-select-alliance.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

import pricecalc
from pricecalc.decision import Decision
from pricecalc.plugins import load_registry

NOW = datetime(2026, 11, 11, 12, 0, tzinfo=UTC)
REGISTRY = load_registry()


def evaluate(kind: str, data: dict[str, Any], policy: Any = None) -> Decision:
    return pricecalc.evaluate(
        {"kind": kind, "input": data}, now=NOW, registry=REGISTRY, policy=policy
    )


def reasons(d: Decision) -> list[tuple[str, str]]:
    return [(r.code, r.message) for r in d.reasons]


# == select_alliance_admission ===============================================================
def admit(policy: Any = None, **change: Any) -> Decision:
    data = {"effective_reviews": 21, "dsr": "4.5", "favorable_rate": "80%", "closures": 0}
    return evaluate("select_alliance_admission", {**data, **change}, policy)


def test_full_version_example() -> None:
    """SPEC §6: reviews > 20, DSR ≥ 4.5, favorable ≥ 80% → full version."""
    d = admit()
    assert d.status == "approved"
    assert d.result == {
        "admitted": True,
        "version": "full",
        "judged_for": "full",
        "effective_reviews": 21,
        "dsr": "4.5",
        "favorable_rate": "0.8000",
        "favorable_rate_checked": True,
        "closures": 0,
    }
    assert (d.rule_set, d.rule_version) == ("chaozhigou-pricecalc-select-alliance", "0.1.0")
    assert d.plugins == {"select_alliance_admission": "0.1.0"}
    assert d.policy == {
        "select_alliance_admission": {
            "full_reviews_above": 20,
            "min_dsr": "4.5",
            "min_favorable_rate": "80%",
            "ban_after_closures": 3,
            "trial_requires_favorable_rate": False,
        }
    }


@pytest.mark.parametrize(
    ("change", "status", "version", "codes"),
    [
        ({"effective_reviews": 21}, "approved", "full", []),
        ({"effective_reviews": 20}, "approved", "trial", []),  # 20 itself → trial
        ({"effective_reviews": 0}, "approved", "trial", []),
        ({"effective_reviews": 500, "dsr": "5"}, "approved", "full", []),
        ({"dsr": "4.49"}, "rejected", None, ["DSR_TOO_LOW"]),
        ({"effective_reviews": 20, "dsr": "4.49"}, "rejected", None, ["DSR_TOO_LOW"]),
        ({"favorable_rate": "79.99%"}, "rejected", None, ["FAVORABLE_RATE_TOO_LOW"]),
        ({"favorable_rate": "0.8"}, "approved", "full", []),
        # the trial version asks for DSR only (SPEC §6, seed 004)
        ({"effective_reviews": 20, "favorable_rate": "50%"}, "approved", "trial", []),
        ({"closures": 2}, "approved", "full", []),
        ({"closures": 3}, "rejected", None, ["BANNED"]),
        ({"closures": 7, "effective_reviews": 3}, "rejected", None, ["BANNED"]),
        (
            {"closures": 3, "dsr": "4.0", "favorable_rate": "0.7"},
            "rejected",
            None,
            ["BANNED", "DSR_TOO_LOW", "FAVORABLE_RATE_TOO_LOW"],
        ),
    ],
)
def test_admission_table(
    change: dict[str, Any], status: str, version: str | None, codes: list[str]
) -> None:
    """SPEC §6: full vs trial at the 20-review boundary, DSR ≥ 4.5, favorable ≥ 80%, BANNED."""
    d = admit(**change)
    assert (d.status, d.result["version"], [r.code for r in d.reasons]) == (status, version, codes)
    assert d.result["admitted"] is (status == "approved")


def test_admission_messages_name_value_and_bound() -> None:
    """Each reason names the value and the bound."""
    d = admit(closures=3, dsr="4.49", favorable_rate="0.7999")
    assert reasons(d) == [
        (
            "BANNED",
            "permissions were closed 3 times (the limit is 3); the shop may never open "
            "Select Alliance (精选联盟) again",
        ),
        ("DSR_TOO_LOW", "DSR 4.49 is below the minimum 4.5"),
        ("FAVORABLE_RATE_TOO_LOW", "favorable rate 79.99% is below the minimum 80%"),
    ]
    assert d.result["judged_for"] == "full"


@pytest.mark.parametrize(
    ("override", "change", "before", "after"),
    [
        # 20 reviews count as full when full_reviews_above is 19
        ({"full_reviews_above": 19}, {"effective_reviews": 20}, "trial", "full"),
        ({"min_dsr": "4.8"}, {"dsr": "4.7"}, "full", None),
        ({"min_favorable_rate": "0.9"}, {"favorable_rate": "85%"}, "full", None),
        ({"ban_after_closures": 5}, {"closures": 4}, None, "full"),
        (
            {"trial_requires_favorable_rate": True},
            {"effective_reviews": 5, "favorable_rate": "50%"},
            "trial",
            None,
        ),
    ],
)
def test_admission_policy_overrides(
    override: dict[str, Any], change: dict[str, Any], before: str | None, after: str | None
) -> None:
    """SPEC §6 (configurable): each bound is a policy value; the value used is recorded."""
    assert admit(**change).result["version"] == before
    policy = pricecalc.Policy.from_mapping({"select_alliance_admission": override})
    d = admit(policy=policy, **change)
    assert d.result["version"] == after
    for key, value in override.items():
        assert d.policy["select_alliance_admission"][key] == value


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dsr": "5.1"}, "input.dsr: must be at most 5 (got '5.1')"),
        ({"effective_reviews": "-1"}, "input.effective_reviews: must be at least 0 (got -1)"),
        ({"closures": "1.5"}, "input.closures: must be a whole number (got '1.5')"),
        ({"favorable_rate": "120%"}, "input.favorable_rate: must be at most 100% (1) (got '120%')"),
        ({"favorable_rate": None}, "input.favorable_rate: is required but missing"),
    ],
)
def test_admission_invalid_input(change: dict[str, Any], message: str) -> None:
    """Invalid input names the field and the value."""
    with pytest.raises(pricecalc.InvalidInput) as excinfo:
        admit(**change)
    assert str(excinfo.value) == message


# == select_alliance_product =================================================================
TABLE = pricecalc.Policy.from_mapping(
    {
        "select_alliance_product": {
            "thresholds": {"女装": "0.50%", "fresh": "0.0100", "生鲜": "1%"},
            "min_shipping_24h_rate": {"fresh": "95%", "生鲜": "95%"},
            "min_cs_satisfaction": {"生鲜": "0.9"},
        }
    }
)


def product(policy: Any = TABLE, **data: Any) -> Decision:
    return evaluate("select_alliance_product", data, policy)


def test_no_threshold_by_default() -> None:
    """SPEC §6: the table is the user's; empty by default → NO_THRESHOLD_FOR_CATEGORY."""
    d = product(policy=None, category="女装", quality_return_rate="0.1%")
    assert reasons(d) == [
        (
            "NO_THRESHOLD_FOR_CATEGORY",
            "no quality return rate threshold is set for category '女装'; add it to "
            "[select_alliance_product.thresholds] in the policy file",
        )
    ]
    assert d.result["remove_if_promoted"] is False
    assert d.result["threshold"] is None
    assert d.policy == {
        "select_alliance_product": {
            "thresholds": {},
            "min_shipping_24h_rate": {},
            "min_cs_satisfaction": {},
        }
    }
    assert d.plugins == {"select_alliance_product": "0.1.0"}


@pytest.mark.parametrize(
    ("rate", "eligible"),
    [("0.49%", True), ("0.0049999", True), ("0", True), ("0.50%", False), ("0.005", False)],
)
def test_quality_return_rate_must_be_strictly_below(rate: str, eligible: bool) -> None:
    """SPEC §6: the rate must be **below** the threshold — equal to it fails."""
    d = product(category="女装", quality_return_rate=rate)
    assert d.result["eligible"] is eligible
    assert [r.code for r in d.reasons] == ([] if eligible else ["QUALITY_RETURN_RATE_HIGH"])
    assert d.result["remove_if_promoted"] is (not eligible)


def test_quality_return_rate_high_message_and_result() -> None:
    """QUALITY_RETURN_RATE_HIGH names value, threshold and category, and removal."""
    d = product(category="女装", quality_return_rate="0.5%")
    assert reasons(d) == [
        (
            "QUALITY_RETURN_RATE_HIGH",
            "quality return rate 0.5% is not below the threshold 0.5% for category '女装'; "
            "a promoted product is removed at once",
        )
    ]
    assert d.result == {
        "eligible": False,
        "remove_if_promoted": True,
        "category": "女装",
        "quality_return_rate": "0.0050",
        "threshold": "0.0050",
        "shipping_24h_rate": None,
        "min_shipping_24h_rate": None,
        "cs_satisfaction": None,
        "min_cs_satisfaction": None,
    }


@pytest.mark.parametrize(
    ("data", "codes"),
    [
        ({"shipping_24h_rate": "95%", "cs_satisfaction": "90%"}, []),
        ({"shipping_24h_rate": "94.99%", "cs_satisfaction": "90%"}, ["SHIPPING_24H_RATE_LOW"]),
        ({"shipping_24h_rate": "0.95", "cs_satisfaction": "0.8999"}, ["CS_SATISFACTION_LOW"]),
        (
            {"quality_return_rate": "1%", "shipping_24h_rate": "0.5", "cs_satisfaction": "0.5"},
            ["QUALITY_RETURN_RATE_HIGH", "SHIPPING_24H_RATE_LOW", "CS_SATISFACTION_LOW"],
        ),
    ],
)
def test_categories_that_need_service_metrics(data: dict[str, Any], codes: list[str]) -> None:
    """SPEC §6: for the categories that need them, shipping_24h_rate and cs_satisfaction
    must meet their minimums (inclusive)."""
    d = product(**{"category": "生鲜", "quality_return_rate": "0.2%", **data})
    assert [r.code for r in d.reasons] == codes
    assert d.result["remove_if_promoted"] is bool(codes)


def test_service_metric_messages() -> None:
    """SHIPPING_24H_RATE_LOW and CS_SATISFACTION_LOW name value, minimum and category."""
    d = product(
        category="生鲜", quality_return_rate="0.2%", shipping_24h_rate="90%", cs_satisfaction="85%"
    )
    assert reasons(d) == [
        (
            "SHIPPING_24H_RATE_LOW",
            "24-hour shipping rate 90% is below the minimum 95% for category '生鲜'",
        ),
        (
            "CS_SATISFACTION_LOW",
            "customer service satisfaction 85% is below the minimum 90% for category '生鲜'",
        ),
    ]
    assert d.result["min_cs_satisfaction"] == "0.9000"


def test_category_matching_ignores_case_and_space() -> None:
    """Categories in the table match regardless of case and surrounding space."""
    d = product(category=" Fresh ", quality_return_rate="0.5%", shipping_24h_rate="96%")
    assert d.approved
    assert d.result["threshold"] == "0.0100"


def test_metric_the_category_needs_is_required() -> None:
    """A category listed for a service metric cannot be judged without it: invalid input."""
    with pytest.raises(pricecalc.InvalidInput) as excinfo:
        product(category="fresh", quality_return_rate="0.5%")
    assert str(excinfo.value) == (
        "input.shipping_24h_rate: is required for category 'fresh' (its minimum is 95%) "
        "(got null (missing))"
    )


def test_metric_not_needed_is_reported_not_judged() -> None:
    """For a category without a minimum, a given metric is echoed but not judged."""
    d = product(category="女装", quality_return_rate="0.1%", shipping_24h_rate="10%")
    assert d.approved
    assert (d.result["shipping_24h_rate"], d.result["min_shipping_24h_rate"]) == ("0.1000", None)


def test_threshold_table_from_a_toml_file(tmp_path: Path) -> None:
    """The table lives in the policy file; the values used are recorded in the decision."""
    path = tmp_path / "policy.toml"
    path.write_text(
        '[select_alliance_product.thresholds]\n"女装" = 0.006\n"家电" = "0.3%"\n',
        encoding="utf-8",
    )
    policy = pricecalc.Policy.from_toml(path)
    d = product(policy=policy, category="女装", quality_return_rate="0.55%")
    assert d.approved
    assert d.result["threshold"] == "0.0060"
    assert d.policy["select_alliance_product"]["thresholds"] == {"女装": "0.006", "家电": "0.3%"}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"thresholds": ["女装"]},
            "policy: select_alliance_product.thresholds must be a table of name = rate, "
            "got ['女装']",
        ),
        (
            {"thresholds": {"女装": "lots"}},
            "policy: select_alliance_product.thresholds.女装 must be a rate such as \"0.54%\" "
            "or \"0.0054\", got 'lots'",
        ),
    ],
)
def test_bad_threshold_table_is_refused(table: dict[str, Any], message: str) -> None:
    """A malformed table is a PolicyError naming the key."""
    policy = pricecalc.Policy.from_mapping({"select_alliance_product": table})
    with pytest.raises(pricecalc.PolicyError) as excinfo:
        product(policy=policy, category="女装", quality_return_rate="0.1%")
    assert str(excinfo.value) == message


# == select_alliance_review ==================================================================
TUESDAY = "2026-11-10"
WEDNESDAY = "2026-11-11"


def review(policy: Any = None, **change: Any) -> Decision:
    data = {"date": WEDNESDAY, "dsr": "4.5", "favorable_rate": "80%", "closures": 0}
    return evaluate("select_alliance_review", {**data, **change}, policy)


@pytest.mark.parametrize(
    ("change", "action", "closures", "codes"),
    [
        ({}, "none", 0, []),
        ({"date": TUESDAY}, "none", 0, []),
        ({"date": TUESDAY, "dsr": "4.49"}, "warn", 0, ["DSR_TOO_LOW"]),
        (
            {"date": TUESDAY, "favorable_rate": "79%", "closures": 1},
            "warn",
            1,
            ["FAVORABLE_RATE_TOO_LOW"],
        ),
        ({"dsr": "4.49"}, "close", 1, ["DSR_TOO_LOW"]),
        ({"dsr": "4.49", "closures": 1}, "close", 2, ["DSR_TOO_LOW"]),
        ({"favorable_rate": "0.7", "closures": 2}, "ban", 3, ["FAVORABLE_RATE_TOO_LOW", "BANNED"]),
        (
            {"dsr": "4", "favorable_rate": "0.7", "closures": 2},
            "ban",
            3,
            ["DSR_TOO_LOW", "FAVORABLE_RATE_TOO_LOW", "BANNED"],
        ),
        ({"date": "2026-11-18", "dsr": "4.49"}, "close", 1, ["DSR_TOO_LOW"]),  # next Wednesday
        ({"date": "2026-11-12", "dsr": "4.49", "closures": 2}, "warn", 2, ["DSR_TOO_LOW"]),
        # banned already: stays banned, the count does not move
        ({"closures": 3}, "ban", 3, ["BANNED"]),
    ],
)
def test_review_table(
    change: dict[str, Any], action: str, closures: int, codes: list[str]
) -> None:
    """SPEC §6: warn on any day but Wednesday; close on Wednesday (closures + 1); the third
    closure bans."""
    d = review(**change)
    assert (d.result["action"], d.result["closures"]) == (action, closures)
    assert [r.code for r in d.reasons] == codes
    assert d.status == ("approved" if action == "none" else "rejected")


def test_third_closure_bans_with_messages() -> None:
    """SPEC §6: the closure that is the third is a ban; the reasons name values and bounds."""
    d = review(dsr="4.49", favorable_rate="79.5%", closures=2)
    assert d.result == {
        "action": "ban",
        "date": "2026-11-11",
        "weekday": "wednesday",
        "closure_day": True,
        "dsr": "4.49",
        "favorable_rate": "0.7950",
        "closures_before": 2,
        "closures": 3,
    }
    assert reasons(d) == [
        ("DSR_TOO_LOW", "DSR 4.49 is below the minimum 4.5"),
        ("FAVORABLE_RATE_TOO_LOW", "favorable rate 79.5% is below the minimum 80%"),
        (
            "BANNED",
            "permissions were closed 3 times (the limit is 3); the shop may never open "
            "Select Alliance (精选联盟) again",
        ),
    ]
    assert d.plugins == {"select_alliance_review": "0.1.0"}


@pytest.mark.parametrize(
    ("moment", "day", "action"),
    [
        ("2026-11-10T16:30:00Z", "2026-11-11", "close"),  # Tue 16:30 UTC = Wed 00:30 Beijing
        ("2026-11-10T15:59:59Z", "2026-11-10", "warn"),  # Tue 23:59:59 Beijing
        ("2026-11-11T00:30", "2026-11-11", "close"),  # no offset: Beijing time
        ("2026-11-11T23:59:59+08:00", "2026-11-11", "close"),
        ("2026-11-11T16:00:00Z", "2026-11-12", "warn"),  # Wed 16:00 UTC = Thu 00:00 Beijing
        ("2026-11-11T10:00:00-05:00", "2026-11-11", "close"),  # 23:00 Beijing
        ("2026-11-11T12:00:00-05:00", "2026-11-12", "warn"),  # 01:00 Thu Beijing
        ("2026-11-11", "2026-11-11", "close"),  # a plain date is the Beijing date
    ],
)
def test_wednesday_is_the_beijing_date(moment: str, day: str, action: str) -> None:
    """SPEC §6: Wednesday is judged on the Beijing calendar date; a date-time is converted to
    Beijing time first."""
    d = review(date=moment, dsr="4.0")
    assert (d.result["date"], d.result["action"]) == (day, action)
    assert d.result["closure_day"] is (action == "close")


def test_review_accepts_python_date_and_datetime() -> None:
    """The Python API may pass a ``date`` or an aware ``datetime``."""
    assert review(date=date(2026, 11, 11), dsr="4").result["action"] == "close"
    moment = datetime(2026, 11, 10, 16, 30, tzinfo=UTC)
    assert review(date=moment, dsr="4").result["date"] == "2026-11-11"


@pytest.mark.parametrize(
    ("override", "change", "before", "after"),
    [
        ({"closure_weekday": "thursday"}, {"date": "2026-11-12", "dsr": "4"}, "warn", "close"),
        ({"closure_weekday": 2}, {"date": TUESDAY, "dsr": "4"}, "warn", "close"),
        ({"min_dsr": "4.0"}, {"dsr": "4.2"}, "close", "none"),
        ({"min_favorable_rate": "90%"}, {"favorable_rate": "85%"}, "none", "close"),
        ({"ban_after_closures": 4}, {"dsr": "4", "closures": 2}, "ban", "close"),
    ],
)
def test_review_policy_overrides(
    override: dict[str, Any], change: dict[str, Any], before: str, after: str
) -> None:
    """SPEC §6 (configurable): the review's bounds and weekday are policy values, recorded."""
    assert review(**change).result["action"] == before
    policy = pricecalc.Policy.from_mapping({"select_alliance_review": override})
    d = review(policy=policy, **change)
    assert d.result["action"] == after
    for key, value in override.items():
        assert d.policy["select_alliance_review"][key] == value


def test_bad_weekday_is_refused() -> None:
    """An unknown weekday in the policy is a PolicyError naming the key."""
    policy = pricecalc.Policy.from_mapping({"select_alliance_review": {"closure_weekday": "周三"}})
    with pytest.raises(pricecalc.PolicyError) as excinfo:
        review(policy=policy)
    assert str(excinfo.value) == (
        'policy: select_alliance_review.closure_weekday must be a day name such as "wednesday" '
        "or an ISO weekday 1-7, got '周三'"
    )


@pytest.mark.parametrize("value", ["next wednesday", "2026-13-01", 20261111, None])
def test_review_bad_date(value: Any) -> None:
    """``date`` must be an ISO date or date-time; the error names the field."""
    with pytest.raises(pricecalc.InvalidInput) as excinfo:
        review(date=value)
    assert str(excinfo.value).startswith("input.date: ")
