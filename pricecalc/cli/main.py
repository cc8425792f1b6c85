"""The ``pricecalc`` group and its global options (``--audit``, ``--policy``, ``--operator``,
``--disable-plugin``). The commands live in modules of their own, one per job."""

from __future__ import annotations

from typing import Any

import click

from pricecalc import __version__
from pricecalc.cli.app import AUDIT_ENV, DEFAULT_AUDIT, App, PricecalcGroup
from pricecalc.cli.options import record_text
from pricecalc.i18n import _, language_from_env, set_language
from pricecalc.plugins import plugin_names

CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _choose_language(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
    """``--lang``, else the locale (docs/cli.md "Language"): chosen before anything runs."""
    return set_language(value or language_from_env())


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
@click.option(
    "--lang",
    type=click.Choice(["zh", "en"]),
    is_eager=True,
    expose_value=False,
    callback=_choose_language,
    help="Messages in Chinese (zh) or English (en); default: the locale (LANG=zh_CN.UTF-8).",
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
                _("{name!r} is not a plugin pricecalc has (plugins: {known})").format(
                    name=unknown[0], known=", ".join(known)
                ),
                param_hint="'--disable-plugin'",
            )
    app = App(audit_path, policy, operator, tuple(disable_plugin))
    ctx.obj = app
    ctx.call_on_close(app.close)
