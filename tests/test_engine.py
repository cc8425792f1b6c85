"""The evaluation pipeline and the plugin manager, with throwaway plugins (SPEC §7, §8).

These tests register small plugin objects directly (``extra=``) and block the built-in
rules and entry points, so they pin the engine's own behaviour: the request envelope,
float refusal, plugin attribution, and plugin failures named clearly.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

import pricecalc
from pricecalc.decision import Outcome, Reason
from pricecalc.errors import PluginError, PolicyError
from pricecalc.fields import Fields
from pricecalc.plugins import build_registry, get_plugin_manager
from pricecalc.registry import Registry, Rule, RuleContext

NOW = datetime(2026, 11, 11, 12, 0, tzinfo=UTC)


def _double(fields: Fields, ctx: RuleContext) -> Decimal:
    return fields.amount("amount")


def _decide_double(amount: Decimal, ctx: RuleContext) -> Outcome:
    limit = Decimal(str(ctx.policy.get("doubler", "limit")))
    reasons = (
        (Reason("TOO_BIG", f"amount {amount} is above the limit {limit}"),)
        if amount > limit
        else ()
    )
    return Outcome({"double": f"{amount * 2:.2f}"}, reasons)


class Doubler:
    @pricecalc.hookimpl
    def pricecalc_rules(self) -> Iterable[Rule]:
        return [Rule("double", "test-rules", "9.9", _double, _decide_double)]

    @pricecalc.hookimpl
    def pricecalc_policy_defaults(self) -> dict[str, dict[str, Any]]:
        return {"doubler": {"limit": "100.00"}}


def registry(*plugins: tuple[str, object]) -> Registry:
    pm = get_plugin_manager(["builtin"], entry_points=False, extra=plugins)
    return build_registry(pm)


def test_a_plugin_rule_decides_and_is_named() -> None:
    """A plugin's kind is decided; the decision names the plugin, rule set and version."""
    reg = registry(("doubler", Doubler()))
    d = pricecalc.evaluate(
        {"kind": "double", "request_id": "r1", "input": {"amount": "21.50"}}, now=NOW, registry=reg
    )
    assert d.status == "approved"
    assert d.result == {"double": "43.00"}
    assert (d.rule_set, d.rule_version) == ("test-rules", "9.9")
    assert set(d.plugins) == {"doubler"}
    assert d.policy == {"doubler": {"limit": "100.00"}}
    assert d.to_dict() == {
        "request_id": "r1",
        "kind": "double",
        "status": "approved",
        "result": {"double": "43.00"},
        "reasons": [],
    }


def test_rejection_lists_reasons_and_policy_override_is_recorded() -> None:
    """A failing check rejects with its reason; the policy value used is recorded (SPEC §7)."""
    reg = registry(("doubler", Doubler()))
    policy = pricecalc.Policy.from_mapping({"doubler": {"limit": "10.00"}})
    d = pricecalc.evaluate(
        {"kind": "double", "input": {"amount": "21.50"}}, now=NOW, registry=reg, policy=policy
    )
    assert d.status == "rejected"
    assert d.reasons == (pricecalc.Reason("TOO_BIG", "amount 21.50 is above the limit 10.00"),)
    assert d.policy == {"doubler": {"limit": "10.00"}}


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ("nope", "request: must be an object with kind and input (got 'nope')"),
        ({"input": {}}, "kind: is required but missing"),
        ({"kind": "double"}, "input: is required but missing"),
        ({"kind": "", "input": {}}, "kind: must be the name of a decision kind (got '')"),
        ({"kind": "triple", "input": {}}, "kind: is not a known kind (double) (got 'triple')"),
        (
            {"kind": "double", "input": {}, "extra": 1},
            "extra: is not a request field (expected kind, request_id, merchant_id, campaign, "
            "input) (got 1)",
        ),
        (
            {"kind": "double", "input": {"amount": "1.001"}},
            "input.amount: has more than two decimals (fen is the smallest unit) (got '1.001')",
        ),
        ({"kind": "double", "input": []}, "input: must be an object (got [])"),
    ],
)
def test_invalid_requests_name_the_field(request_: Any, message: str) -> None:
    """Invalid input is not a decision: InvalidInput names field and value (SPEC §7, §8)."""
    reg = registry(("doubler", Doubler()))
    with pytest.raises(pricecalc.InvalidInput) as err:
        pricecalc.evaluate(request_, now=NOW, registry=reg)
    assert str(err.value) == message


def test_a_float_anywhere_is_a_type_error() -> None:
    """A Python float passed to the API is refused with TypeError (SPEC §1)."""
    reg = registry(("doubler", Doubler()))
    with pytest.raises(TypeError, match=r"request.input.amount: a float \(21.5\)"):
        pricecalc.evaluate({"kind": "double", "input": {"amount": 21.5}}, now=NOW, registry=reg)


def test_unknown_policy_key_is_refused() -> None:
    """A misspelt policy key fails loudly instead of silently using the default."""
    reg = registry(("doubler", Doubler()))
    policy = pricecalc.Policy.from_mapping({"doubler": {"limitt": "1.00"}})
    with pytest.raises(PolicyError, match="unknown key 'limitt' in \\[doubler\\]"):
        pricecalc.evaluate(
            {"kind": "double", "input": {"amount": "1.00"}}, now=NOW, registry=reg, policy=policy
        )


class Raiser:
    @pricecalc.hookimpl
    def pricecalc_rules(self) -> Iterable[Rule]:
        def boom(amount: Decimal, ctx: RuleContext) -> Outcome:
            raise ZeroDivisionError("division by zero")

        return [Rule("boom", "x", "1", _double, boom)]


class FloatResult:
    @pricecalc.hookimpl
    def pricecalc_rules(self) -> Iterable[Rule]:
        return [Rule("floaty", "x", "1", _double, lambda a, ctx: Outcome({"total": 1.5}))]


class NotAList:
    @pricecalc.hookimpl
    def pricecalc_rules(self) -> Any:
        return 42


def test_a_plugin_that_raises_is_named() -> None:
    """A plugin exception becomes a PluginError naming the plugin, never a wrong amount."""
    reg = registry(("raiser", Raiser()))
    with pytest.raises(
        PluginError, match="plugin 'raiser': the boom rule raised ZeroDivisionError"
    ):
        pricecalc.evaluate({"kind": "boom", "input": {"amount": "1.00"}}, now=NOW, registry=reg)


def test_a_plugin_returning_a_float_is_named() -> None:
    """A plugin result holding a float is refused and the plugin named."""
    reg = registry(("floaty", FloatResult()))
    with pytest.raises(PluginError, match=r"plugin 'floaty': result\.total is a float"):
        pricecalc.evaluate({"kind": "floaty", "input": {"amount": "1.00"}}, now=NOW, registry=reg)


def test_garbage_contribution_is_named() -> None:
    """A hook returning garbage is refused when the registry is built, naming the plugin."""
    with pytest.raises(
        PluginError, match="plugin 'junk': pricecalc_rules must return a list, got int"
    ):
        registry(("junk", NotAList()))


def test_two_plugins_registering_one_kind_are_both_named() -> None:
    """Two plugins cannot both decide one kind."""
    with pytest.raises(PluginError, match="registers kind 'double', already registered by 'first'"):
        registry(("first", Doubler()), ("second", Doubler()))


class Misspelt:
    @pricecalc.hookimpl
    def pricecalc_rulez(self) -> list[Rule]:
        return []


def test_a_misspelt_hook_fails_loudly() -> None:
    """check_pending() runs after loading: an unknown hook name is an error (STYLE)."""
    with pytest.raises(PluginError, match="pricecalc_rulez"):
        get_plugin_manager(["builtin"], entry_points=False, extra=[("misspelt", Misspelt())])


def test_disabled_plugin_is_not_loaded() -> None:
    """A plugin blocked by name contributes nothing."""
    pm = get_plugin_manager(
        ["builtin", "doubler"], entry_points=False, extra=[("doubler", Doubler())]
    )
    assert build_registry(pm).kinds() == ()


def test_a_field_the_rule_does_not_know_is_invalid_input() -> None:
    """A rule declaring its input fields refuses any other (a misspelt optional field such
    as lowest_price_30day must not pass silently and change the decision)."""
    request = {"kind": "subsidy_split", "input": {
        "list_price": "199.00", "registration_price": "169.00", "subsidy_price": "149.00",
        "floor_price": "139.00", "cost_price": "120.00", "lowest_price_30day": "150.00",
    }}  # fmt: skip
    with pytest.raises(pricecalc.InvalidInput) as err:
        pricecalc.evaluate(request, now=NOW)
    assert str(err.value).startswith(
        "input.lowest_price_30day: is not a field of this object (expected one of "
        "category, cost_price, floor_price, list_price, lowest_price_30d, "
    )
