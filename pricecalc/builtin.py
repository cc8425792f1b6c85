"""The core's own rules, registered through the same hooks a third-party plugin uses."""

from __future__ import annotations

from collections.abc import Iterable

from pricecalc.hookspecs import hookimpl
from pricecalc.offers import OfferType
from pricecalc.registry import CompensationStandard, Rule
from pricecalc.rules import compensation, forwarding, offer_types, protection, subsidy, void


@hookimpl
def pricecalc_rules() -> Iterable[Rule]:
    return [subsidy.RULE, protection.RULE, compensation.RULE, forwarding.RULE, void.RULE]


@hookimpl
def pricecalc_compensation_standards() -> Iterable[CompensationStandard]:
    return list(compensation.STANDARDS)


@hookimpl
def pricecalc_offer_types() -> Iterable[OfferType]:
    return list(offer_types.BUILTIN_OFFER_TYPES)


@hookimpl
def pricecalc_clawback_categories() -> Iterable[str]:
    return list(forwarding.CATEGORIES)

