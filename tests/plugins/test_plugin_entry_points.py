"""The first-party plugins are found only through the ``pricecalc`` entry-point group
(SPEC §6; STYLE: "exactly as a stranger's plugin would be").

Each plugin is its own entry point, so the registry attributes each kind to that name,
decisions carry the distribution's version, and any plugin can be disabled by name.
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import pytest

import pricecalc
from pricecalc.plugins import ENTRY_POINT_GROUP, build_registry, get_plugin_manager, load_registry

NOW = datetime(2026, 11, 11, 12, 0, tzinfo=UTC)

# entry point (plugin name) → (distribution, module, kinds it decides)
PLUGINS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "chaozhigou_admission": (
        "chaozhigou-pricecalc-admission",
        "pricecalc_chaozhigou.admission",
        ("chaozhigou_admission",),
    ),
    "shipping_check": (
        "chaozhigou-pricecalc-admission",
        "pricecalc_chaozhigou.shipping",
        ("shipping_check",),
    ),
    "select_alliance_admission": (
        "chaozhigou-pricecalc-select-alliance",
        "pricecalc_select_alliance.admission",
        ("select_alliance_admission",),
    ),
    "select_alliance_product": (
        "chaozhigou-pricecalc-select-alliance",
        "pricecalc_select_alliance.product",
        ("select_alliance_product",),
    ),
    "select_alliance_review": (
        "chaozhigou-pricecalc-select-alliance",
        "pricecalc_select_alliance.review",
        ("select_alliance_review",),
    ),
    "food_safety_law": (
        "chaozhigou-pricecalc-food-safety",
        "pricecalc_food_safety.law",
        (),
    ),
}

# One valid, approved request per plugin kind.
REQUESTS: dict[str, dict[str, Any]] = {
    "chaozhigou_admission": {
        "merchant": {
            "newcomer": False,
            "seven_day_returns": True,
            "shipping_insurance": True,
            "authenticity_guarantee": True,
            "experience_score": 80,
            "logistics_score": 80,
            "avg_response_seconds": 20,
            "shop_type": "旗舰店",
            "accepts_inspection": True,
        },
        "product": {
            "good_review_rate": "95%",
            "quality_return_rate": "0.1%",
            "negative_review_rate": "0.1%",
            "complaint_rate": "0.01%",
            "shipping_mode": "spot",
            "white_background": True,
            "product_type": "normal",
        },
    },
    "shipping_check": {"paid_at": "2026-11-11T10:00", "shipped_at": "2026-11-12T10:00"},
    "select_alliance_admission": {
        "effective_reviews": 30,
        "dsr": "4.8",
        "favorable_rate": "95%",
        "closures": 0,
    },
    "select_alliance_product": {"category": "女装", "quality_return_rate": "0.1%"},
    "select_alliance_review": {
        "date": "2026-11-11",
        "dsr": "4.8",
        "favorable_rate": "95%",
        "closures": 0,
    },
}
PRODUCT_POLICY = pricecalc.Policy.from_mapping(
    {"select_alliance_product": {"thresholds": {"女装": "0.5%"}}}
)


def test_entry_points_are_declared_by_their_distributions() -> None:
    """Each plugin is an entry point of the ``pricecalc`` group in its own distribution."""
    found = {
        ep.name: (ep.dist.name if ep.dist else None, ep.value)
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)
        if ep.name in PLUGINS
    }
    assert found == {name: (dist, module) for name, (dist, module, _) in PLUGINS.items()}


def test_registry_attributes_kinds_to_entry_point_names() -> None:
    """``load_registry()`` finds every plugin kind and names the entry point behind it."""
    registry = load_registry()
    for name, (_, _, kinds) in PLUGINS.items():
        for kind in kinds:
            assert kind in registry.kinds()
            assert registry.rules[kind].plugin == name
    standards = {c.item.name: c.plugin for c in registry.standards}
    assert standards["food_safety_law_art148"] == "food_safety_law"


def test_registry_versions_are_the_distributions() -> None:
    """Plugin versions come from the installed distributions; each rule reports the same."""
    registry = load_registry()
    for name, (dist, _, kinds) in PLUGINS.items():
        version = metadata.version(dist)
        assert version == "0.1.0"
        assert registry.plugin_versions[name] == version
        for kind in kinds:
            rule = registry.rules[kind].item
            assert (rule.rule_set, rule.version) == (dist, version)


def test_each_plugin_declares_its_hooks_and_policy_section() -> None:
    """Rules plus policy defaults (standards for the food law); each owns its section."""
    registry = load_registry()
    for name, (_, _, kinds) in PLUGINS.items():
        hooks = set(registry.hooks_by_plugin[name])
        expected = {"pricecalc_policy_defaults"}
        expected.add("pricecalc_rules" if kinds else "pricecalc_compensation_standards")
        assert hooks == expected
    for section in (
        "chaozhigou_admission",
        "shipping_check",
        "select_alliance_admission",
        "select_alliance_product",
        "select_alliance_review",
        "food_safety_law",
    ):
        assert section in registry.policy_defaults


@pytest.mark.parametrize("kind", sorted(REQUESTS))
def test_decision_names_the_plugin_and_its_version(kind: str) -> None:
    """SPEC §7: a decision records the plugins that took part and their versions."""
    registry = load_registry()
    name = registry.rules[kind].plugin
    d = pricecalc.evaluate(
        {"kind": kind, "input": REQUESTS[kind]}, now=NOW, registry=registry, policy=PRODUCT_POLICY
    )
    assert d.status == "approved"
    assert d.plugins == {name: "0.1.0"}
    assert d.rule_version == "0.1.0"


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_disable_by_name(name: str) -> None:
    """``get_plugin_manager(disable=[NAME])`` (``--disable-plugin NAME``) removes exactly that
    plugin's contributions and policy section; the others stay."""
    full = load_registry()
    registry = build_registry(get_plugin_manager(disable=[name]))
    kinds = PLUGINS[name][2]
    assert set(full.kinds()) - set(registry.kinds()) == set(kinds)
    assert name not in registry.plugin_versions
    assert name not in registry.hooks_by_plugin
    for other in set(PLUGINS) - {name}:
        assert other in registry.hooks_by_plugin


@pytest.mark.parametrize("kind", sorted(REQUESTS))
def test_a_disabled_kind_is_unknown(kind: str) -> None:
    """A request for a disabled plugin's kind is invalid input naming the kind."""
    name = load_registry().rules[kind].plugin
    registry = load_registry(disable=[name])
    with pytest.raises(pricecalc.InvalidInput) as excinfo:
        pricecalc.evaluate({"kind": kind, "input": REQUESTS[kind]}, now=NOW, registry=registry)
    message = str(excinfo.value)
    assert message.startswith("kind: is not a known kind (")
    assert message.endswith(f" (got {kind!r})")
    known = message.removeprefix("kind: is not a known kind (").split(")", 1)[0].split(", ")
    assert known == sorted(registry.kinds())
    assert kind not in known


def test_policy_keys_of_a_disabled_plugin_are_unknown() -> None:
    """With a plugin disabled its section is not declared: a policy setting it is refused."""
    registry = load_registry(disable=["shipping_check"])
    policy = pricecalc.Policy.from_mapping({"shipping_check": {"max_hours": 72}})
    with pytest.raises(pricecalc.PolicyError) as excinfo:
        pricecalc.evaluate(
            {"kind": "select_alliance_admission", "input": REQUESTS["select_alliance_admission"]},
            now=NOW,
            registry=registry,
            policy=policy,
        )
    assert str(excinfo.value) == "policy: unknown section [shipping_check]"


def test_plugins_work_without_the_builtin_rules() -> None:
    """The plugins depend on the core's contract only, not on its built-in rules."""
    registry = build_registry(get_plugin_manager(disable=["builtin"]))
    assert set(registry.kinds()) == set(REQUESTS)
    d = pricecalc.evaluate(
        {"kind": "shipping_check", "input": REQUESTS["shipping_check"]},
        now=NOW,
        registry=registry,
    )
    assert d.approved
