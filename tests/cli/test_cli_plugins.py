"""`pricecalc plugins`, --disable-plugin, and plugin commands added through the
pricecalc_register_commands hook (loaded lazily, honouring --disable-plugin)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import click
import pluggy
import pytest
from cli_support import Invoke

import pricecalc
import pricecalc.cli
import pricecalc.cli.app
from pricecalc.plugins import get_plugin_manager


def test_plugins_lists_name_version_kinds_and_hooks(invoke: Invoke) -> None:
    """Every loaded plugin with its version, the kinds it decides and its hooks."""
    rows = {row["name"]: row for row in json.loads(invoke("plugins", "--json").stdout)}
    assert rows["builtin"]["kinds"] == [
        "counterfeit_compensation",
        "forwarding_clawback",
        "price_protection",
        "subsidy_split",
        "void",
    ]
    assert "pricecalc_rules" in rows["builtin"]["hooks"]
    assert rows["builtin"]["version"] == pricecalc.cli.load_registry().plugin_versions["builtin"]
    assert rows["food_safety_law"]["kinds"] == []
    assert "pricecalc_compensation_standards" in rows["food_safety_law"]["hooks"]
    table = invoke("plugins").stdout
    assert "food_safety_law" in table and "compensation_standards" in table


def test_disable_plugin(invoke: Invoke) -> None:
    """--disable-plugin NAME: the plugin is not loaded, and decisions go without it."""
    names = [r["name"] for r in json.loads(invoke("--disable-plugin", "food_safety_law",
                                                  "plugins", "--json").stdout)]  # fmt: skip
    assert "food_safety_law" not in names and "builtin" in names
    result = invoke(
        "--disable-plugin", "food_safety_law", "compensate", "--paid", "39.90",
        "--category", "food", "--order-id", "O-1", "--json",
    )  # fmt: skip
    decision = json.loads(result.stdout)
    assert decision["result"]["lines"][0]["standard"] == "platform_10x"
    assert decision["result"]["compensation_total"] == "500.00"


class Greeter:
    """A stranger's plugin adding a command (and trying to replace a built-in one)."""

    @pricecalc.hookimpl
    def pricecalc_register_commands(self, cli: click.Group) -> None:
        @cli.command()
        @click.option("--name", default="finance")
        def hello(name: str) -> None:
            """Say hello.

            Example: pricecalc hello --name finance
            """
            click.echo(f"hello {name}")

        @cli.command(name="decide")
        def not_decide() -> None:
            """A plugin cannot replace a built-in command. Example: pricecalc decide"""
            click.echo("hijacked")


class Broken:
    @pricecalc.hookimpl
    def pricecalc_register_commands(self, cli: click.Group) -> None:
        raise RuntimeError("boom")


@pytest.fixture
def with_plugin(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """Make the CLI's plugin manager also hold the given plugins (by name)."""
    extra: list[tuple[str, Any]] = []

    def manager(disable: Iterable[str] = (), **kw: Any) -> pluggy.PluginManager:
        return get_plugin_manager(disable, entry_points=False, extra=extra)

    monkeypatch.setattr(pricecalc.cli.app, "get_plugin_manager", manager)
    return extra


def test_plugin_commands_are_loaded_lazily(invoke: Invoke, with_plugin: list[Any]) -> None:
    """A plugin's command appears in help and runs; a built-in name is never replaced."""
    with_plugin.append(("greeter", Greeter()))
    assert "hello" in invoke("--help").stdout
    assert invoke("hello", "--name", "clerk").stdout == "hello clerk\n"
    decided = invoke("decide", input='{"kind": "subsidy_split"}')
    assert decided.exit_code == 2 and "hijacked" not in decided.output
    gone = invoke("--disable-plugin", "greeter", "hello")
    assert gone.exit_code == 2
    assert "No such command 'hello'" in gone.stderr


def test_a_broken_plugin_command_hook_is_named(invoke: Invoke, with_plugin: list[Any]) -> None:
    """A plugin whose hook raises is named in one sentence; built-in commands still work."""
    with_plugin.append(("broken", Broken()))
    result = invoke("hello")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: plugin 'broken': pricecalc_register_commands raised RuntimeError: boom\n"
    )
    assert invoke("audit", "--help").exit_code == 0
    listed = invoke("--help")
    assert listed.exit_code == 0
    assert "Warning: plugin commands are not available: plugin 'broken'" in listed.stderr
