"""``pricecalc plugins``: the plugins loaded, their versions, kinds and hooks."""

from __future__ import annotations

import click

from pricecalc.cli.app import App
from pricecalc.cli.console import echo_json, show
from pricecalc.cli.main import cli
from pricecalc.cli.options import json_option
from pricecalc.cli.render import plugins_table
from pricecalc.plugins import load_registry


@cli.command()
@json_option
@click.pass_obj
def plugins(app: App, as_json: bool) -> None:
    """List the plugins loaded: name, version, the kinds they decide and their hooks.

    Example:

    \b
        pricecalc plugins
        pricecalc --disable-plugin food_safety_law plugins --json
    """
    registry = load_registry(app.policy, app.disabled)
    kinds: dict[str, list[str]] = {}
    for kind, contributed in sorted(registry.rules.items()):
        kinds.setdefault(contributed.plugin, []).append(kind)
    rows = [
        {
            "name": name,
            "version": version,
            "kinds": kinds.get(name, []),
            "hooks": list(registry.hooks_by_plugin.get(name, ())),
        }
        for name, version in sorted(registry.plugin_versions.items())
    ]
    if as_json:
        echo_json(rows)
    else:
        show(plugins_table(rows))
