"""The plugin contract: pluggy hook specifications (project name and entry-point group
``pricecalc``). Every hook is documented in docs/plugins.md, and every hook has a test.

Each "contribution" hook returns an iterable of items; pricecalc calls every
implementation separately so that it can name the plugin behind each item and turn a
plugin's exception or garbage into a :class:`pricecalc.errors.PluginError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from pricecalc.offers import OfferType
    from pricecalc.registry import CompensationStandard, Rule

hookspec = pluggy.HookspecMarker("pricecalc")
hookimpl = pluggy.HookimplMarker("pricecalc")


@hookspec
def pricecalc_rules() -> Iterable[Rule]:
    """Register decision kinds: each :class:`~pricecalc.registry.Rule` names its ``kind``,
    rule set and version, an input parser and a pure decision function. Two plugins
    registering the same kind is an error naming both."""
    raise NotImplementedError


@hookspec
def pricecalc_compensation_standards() -> Iterable[CompensationStandard]:
    """Add legal standards for 假一赔十 compensation (SPEC §4). For each line the highest
    applicable standard wins and is named in the result."""
    raise NotImplementedError


@hookspec
def pricecalc_offer_types() -> Iterable[OfferType]:
    """Add merchant offer types for price protection (SPEC §3), keyed by their ``type``
    name in the request's ``offers`` list."""
    raise NotImplementedError


@hookspec
def pricecalc_clawback_categories() -> Iterable[str]:
    """Add product categories covered by the forwarding clawback (SPEC §5)."""
    raise NotImplementedError


@hookspec
def pricecalc_policy_defaults() -> Mapping[str, Mapping[str, Any]]:
    """Contribute policy sections with their defaults (``{"section": {"key": value}}``).
    A policy file may then override them; keys no plugin declares are refused."""
    raise NotImplementedError


@hookspec
def pricecalc_register_commands(cli: click.Group) -> None:
    """Add commands to the ``pricecalc`` command line (``@cli.command()`` inside)."""
    raise NotImplementedError
