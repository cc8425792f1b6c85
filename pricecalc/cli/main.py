"""The ``pricecalc`` group and its global options (``--audit``, ``--policy``, ``--operator``,
``--disable-plugin``). The commands live in modules of their own, one per job."""

from __future__ import annotations

from typing import Any

import click

from pricecalc import __version__
from pricecalc.cli.app import AUDIT_ENV, DEFAULT_AUDIT, App, PricecalcGroup
from pricecalc.cli.options import record_text
from pricecalc.plugins import plugin_names

CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=PricecalcGroup, context_settings=CONTEXT_SETTINGS)
@click.option(
    "--audit",
    "audit_path",
    envvar=AUDIT_ENV,
    default=DEFAULT_AUDIT,
    show_default=True,
    metavar="PATH",
    help=f"The audit store: a file path or a store URL (env {AUDIT_ENV}).",
)
@click.option(
    "--policy",
    type=click.Path(exists=True, dir_okay=False),
    metavar="FILE.toml",
    help="A policy file overriding the SPEC's configurable defaults.",
)
@click.option(
    "--operator",
    metavar="NAME",
    callback=record_text,
    help="Who is deciding (default: the OS user).",
)
@click.option(
    "--disable-plugin",
    multiple=True,
    metavar="NAME",
    help="Do not load this plugin (repeatable).",
)
@click.version_option(__version__, prog_name="pricecalc", message="%(prog)s %(version)s")
@click.pass_context
def cli(
    ctx: click.Context,
    audit_path: str,
    policy: str | None,
    operator: str | None,
    disable_plugin: tuple[str, ...],
) -> None:
    """pricecalc — settle the money rules of the 超值购 campaign, with an audit trail.

    Every decision is recorded in an append-only, hash-chained audit store before it is
    printed. Amounts are exact, with two decimals.

    Example:

    \b
        pricecalc split --list-price 199 --registration-price 169 \\
            --subsidy-price 149 --floor-price 139 --cost-price 120
    """
    if disable_plugin:
        known = plugin_names(disable_plugin)
        unknown = [name for name in disable_plugin if name not in known]
        if unknown:  # a misspelt name must not silently leave the plugin on
            raise click.BadParameter(
                f"{unknown[0]!r} is not a plugin pricecalc has (plugins: {', '.join(known)})",
                param_hint="'--disable-plugin'",
            )
    app = App(audit_path, policy, operator, tuple(disable_plugin))
    ctx.obj = app
    ctx.call_on_close(app.close)
