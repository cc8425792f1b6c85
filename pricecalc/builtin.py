"""The core's own rules, registered through the same hooks a third-party plugin uses."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from pricecalc import compensation, corrections, forwarding, offers, protection, subsidy
from pricecalc.hookspecs import hookimpl
from pricecalc.offers import OfferType
from pricecalc.registry import CompensationStandard, Rule

if TYPE_CHECKING:
    import click


@hookimpl
def pricecalc_rules() -> Iterable[Rule]:
    return [subsidy.RULE, protection.RULE, compensation.RULE, forwarding.RULE, corrections.RULE]


@hookimpl
def pricecalc_compensation_standards() -> Iterable[CompensationStandard]:
    return list(compensation.STANDARDS)


@hookimpl
def pricecalc_offer_types() -> Iterable[OfferType]:
    return list(offers.BUILTIN_OFFER_TYPES)


@hookimpl
def pricecalc_clawback_categories() -> Iterable[str]:
    return list(forwarding.CATEGORIES)


@hookimpl
def pricecalc_register_commands(cli: click.Group) -> None:
    # Imported here: the rule commands (and click) are loaded only for the command line.
    from pricecalc.cli.rules import register

    register(cli)
