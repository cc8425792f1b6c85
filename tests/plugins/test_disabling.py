"""Disabling plugins through the policy file, and plugins that misbehave (SPEC §7).

``[plugins] disabled = ["food_safety_law"]`` in a policy TOML works like
``--disable-plugin`` for the Python API (``Calculator(policy=...)``) and the command line
(``--policy``); the audit record lists exactly the plugins, with their versions, that took
part. A plugin that raises or returns garbage is a :class:`pricecalc.PluginError` naming
it, and nothing is recorded: the store's head does not move (a batch is all or nothing).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import audit
import pricecalc
from pricecalc import Calculator, Outcome, PluginError, Policy
from pricecalc.cli import cli
from pricecalc.fields import Fields
from pricecalc.plugins import build_registry, get_plugin_manager, plugin_names
from pricecalc.registry import Rule, RuleContext

NOW = datetime(2026, 11, 13, 2, 0, tzinfo=UTC)
ENV: dict[str, str | None] = {"PRICECALC_AUDIT": None, "PRICECALC_AUDIT_KEY": None}
FOOD_LAW = "food_safety_law_art148"


def food_claim(request_id: str) -> dict[str, Any]:
    """SPEC §4: food, paid 39.90 → 1000.00 under the food-safety law, 500.00 without it.
    Each request is its own order (a line is compensated once, SPEC §4)."""
    return {
        "kind": "counterfeit_compensation",
        "request_id": request_id,
        "input": {
            "order_id": f"O-F-{request_id}",
            "confirmed": True,
            "lines": [{"line_id": "L1", "paid_amount": "39.90", "category": "food"}],
        },
    }


@pytest.fixture
def disabling_policy(tmp_path: Path) -> Path:
    file = tmp_path / "policy.toml"
    file.write_text('[plugins]\ndisabled = ["food_safety_law"]\n', encoding="utf-8")
    return file


def stored(store: Path, request_id: str) -> Mapping[str, Any]:
    opened = audit.open_store(str(store))
    try:
        found = opened.get(request_id)
    finally:
        opened.close()
    assert found is not None
    return found.payload


# -- the policy's [plugins] disabled ---------------------------------------------------
def test_policy_disables_a_plugin_in_the_python_api(tmp_path: Path, disabling_policy: Path) -> None:
    """``Calculator(policy=Policy.from_toml(...))`` with ``[plugins] disabled``: the food law
    is not loaded, the platform's standard applies, and the audit record lists only the
    built-in plugin; without the policy it lists both, with their versions."""
    store = tmp_path / "audit.jsonl"
    with Calculator(store, Policy.from_toml(disabling_policy), operator="t") as calc:
        assert "food_safety_law" not in calc.registry.plugin_versions
        d = calc.decide(food_claim("without"), now=NOW)
    assert (d.result["lines"][0]["compensation"], d.result["lines"][0]["standard"]) == (
        "500.00",
        "platform_10x",
    )
    assert stored(store, "without")["plugins"] == {"builtin": "0.3.0"}

    with Calculator(store, operator="t") as calc:
        d = calc.decide(food_claim("with"), now=NOW)
    assert (d.result["lines"][0]["compensation"], d.result["lines"][0]["standard"]) == (
        "1000.00",
        FOOD_LAW,
    )
    assert stored(store, "with")["plugins"] == {"builtin": "0.3.0", "food_safety_law": "0.1.0"}


def test_policy_disables_a_plugin_on_the_command_line(
    tmp_path: Path, disabling_policy: Path
) -> None:
    """``pricecalc --policy FILE``: the same, for ``compensate``, ``decide`` and
    ``plugins``; the audit record lists the plugins and versions that took part."""
    store = str(tmp_path / "audit.jsonl")
    runner = CliRunner()
    base = ["--audit", store, "--policy", str(disabling_policy)]
    listed = runner.invoke(cli, [*base, "plugins", "--json"], env=ENV)
    assert listed.exit_code == 0, listed.output
    names = [row["name"] for row in json.loads(listed.stdout)]
    assert "food_safety_law" not in names and "builtin" in names

    compensated = runner.invoke(
        cli,
        [*base, "compensate", "--paid", "39.90", "--category", "food", "--order-id", "O-F",
         "--request-id", "cli-without", "--json"],
        env=ENV,
    )  # fmt: skip
    assert compensated.exit_code == 0, compensated.output
    assert json.loads(compensated.stdout)["result"]["lines"][0]["standard"] == "platform_10x"
    assert stored(Path(store), "cli-without")["plugins"] == {"builtin": "0.3.0"}

    decided = runner.invoke(
        cli, ["--audit", store, "decide"], input=json.dumps(food_claim("cli-with")), env=ENV
    )
    assert decided.exit_code == 0, decided.output
    assert json.loads(decided.stdout)["result"]["lines"][0]["standard"] == FOOD_LAW
    assert stored(Path(store), "cli-with")["plugins"] == {
        "builtin": "0.3.0",
        "food_safety_law": "0.1.0",
    }


def test_policy_and_option_together_disable_both(tmp_path: Path, disabling_policy: Path) -> None:
    """``--disable-plugin`` adds to the policy's list: both plugins are gone."""
    result = CliRunner().invoke(
        cli,
        ["--audit", str(tmp_path / "a.jsonl"), "--policy", str(disabling_policy),
         "--disable-plugin", "shipping_check", "plugins", "--json"],
        env=ENV,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    names = {row["name"] for row in json.loads(result.stdout)}
    assert not names & {"food_safety_law", "shipping_check"}
    assert "chaozhigou_admission" in names


def test_policy_disabled_must_be_a_list_of_names(tmp_path: Path) -> None:
    """A misspelt shape is refused naming the key, on the command line in one sentence."""
    file = tmp_path / "policy.toml"
    file.write_text('[plugins]\ndisabled = "food_safety_law"\n', encoding="utf-8")
    with pytest.raises(pricecalc.PolicyError) as caught:
        Calculator(tmp_path / "a.jsonl", Policy.from_toml(file))
    message = "policy: plugins.disabled must be a list of names, got 'food_safety_law'"
    assert str(caught.value) == message
    result = CliRunner().invoke(
        cli, ["--audit", str(tmp_path / "a.jsonl"), "--policy", str(file), "plugins"], env=ENV
    )
    assert (result.exit_code, result.stderr) == (1, f"Error: {message}\n")


def test_policy_disabled_refuses_a_name_that_is_no_plugin(tmp_path: Path) -> None:
    """A misspelt name in ``[plugins] disabled`` is refused naming it, as
    ``--disable-plugin`` refuses one: a typo must never leave the plugin on (here the food
    law would otherwise pay 1000.00 where the policy meant 500.00). Nothing is recorded."""
    file = tmp_path / "policy.toml"
    file.write_text('[plugins]\ndisabled = ["food_saftey_law"]\n', encoding="utf-8")
    known = ", ".join(plugin_names())
    message = (
        "policy: plugins.disabled names 'food_saftey_law', which is not a plugin pricecalc "
        f"has (plugins: {known})"
    )
    assert "food_safety_law" in known.split(", ")
    with pytest.raises(pricecalc.PolicyError) as caught:
        Calculator(tmp_path / "a.jsonl", Policy.from_toml(file))
    assert str(caught.value) == message
    result = CliRunner().invoke(
        cli,
        ["--audit", str(tmp_path / "a.jsonl"), "--policy", str(file), "decide"],
        input=json.dumps(food_claim("typo-1")),
        env=ENV,
    )
    assert (result.exit_code, result.stderr) == (1, f"Error: {message}\n")
    assert not (tmp_path / "a.jsonl").exists() or (tmp_path / "a.jsonl").stat().st_size == 0


# -- misbehaving plugins: named, and nothing recorded --------------------------------------
class Raising:
    @pricecalc.hookimpl
    def pricecalc_offer_types(self) -> Iterable[Any]:
        raise KeyError("promo table")


class Garbage:
    @pricecalc.hookimpl
    def pricecalc_clawback_categories(self) -> Iterable[str]:
        return [42]  # type: ignore[list-item]


def parse_any(fields: Fields, ctx: RuleContext) -> Mapping[str, Any]:
    return fields.data


class BadRule:
    """Its rule returns a float amount on ``"float"``, raises on ``"raise"``."""

    @pricecalc.hookimpl
    def pricecalc_rules(self) -> Iterable[Rule]:
        def decide(data: Mapping[str, Any], ctx: RuleContext) -> Outcome:
            if data.get("mode") == "raise":
                raise ZeroDivisionError("division by zero")
            if data.get("mode") == "float":
                return Outcome(result={"bonus": 0.1})
            return Outcome(result={"bonus": "0.10"})

        return [Rule("bonus", "bad-rules", "0.0.1", parse_any, decide)]


@pytest.mark.parametrize(
    ("plugin", "message"),
    [
        (Raising(), "plugin 'misfit': pricecalc_offer_types raised KeyError: 'promo table'"),
        (Garbage(), "plugin 'misfit': pricecalc_clawback_categories returned 42, expected str"),
    ],
)
def test_a_hook_that_raises_or_returns_garbage_is_named(plugin: object, message: str) -> None:
    """Building the registry fails naming the plugin: no decision is made with it."""
    with pytest.raises(PluginError) as caught:
        build_registry(get_plugin_manager(entry_points=False, extra=[("misfit", plugin)]))
    assert str(caught.value) == message
    assert caught.value.plugin == "misfit"


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("float", "plugin 'misfit': result.bonus is a float (0.1); amounts must be strings"),
        (
            "raise",
            "plugin 'misfit': the bonus rule raised ZeroDivisionError: division by zero",
        ),
    ],
)
def test_a_misbehaving_rule_records_nothing(tmp_path: Path, mode: str, message: str) -> None:
    """A rule that raises or returns garbage: PluginError naming the plugin, and the audit
    store's head unchanged — for one decision and for a whole batch (all or nothing)."""
    reg = build_registry(get_plugin_manager(entry_points=False, extra=[("misfit", BadRule())]))
    with Calculator(tmp_path / "audit.jsonl", registry=reg, operator="t") as calc:
        calc.decide({"kind": "bonus", "request_id": "ok-1", "input": {"mode": "fine"}}, now=NOW)
        before = calc.store.head()
        assert before.seq == 1
        with pytest.raises(PluginError) as caught:
            calc.decide({"kind": "bonus", "request_id": "bad", "input": {"mode": mode}}, now=NOW)
        assert str(caught.value) == message
        assert calc.store.head() == before
        assert calc.store.get("bad") is None
        batch = [
            {"kind": "bonus", "request_id": "ok-2", "input": {"mode": "fine"}},
            {"kind": "bonus", "request_id": "bad", "input": {"mode": mode}},
        ]
        with pytest.raises(PluginError) as caught:
            calc.decide_many(batch, now=NOW, on_invalid="collect")
        assert str(caught.value) == message
        assert calc.store.head() == before
        assert calc.store.get("ok-2") is None
