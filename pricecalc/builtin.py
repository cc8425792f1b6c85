"""The core's own rules, registered through the same hooks a third-party plugin uses."""

from __future__ import annotations

import functools
from collections.abc import Iterable

from pricecalc.hookspecs import hookimpl
from pricecalc.offers import OfferType
from pricecalc.registry import CompensationStandard, Declarations, Rule
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



@functools.cache
def builtin_declarations() -> Declarations:
    """The declarations of the core's own kinds (made once, on first use): what a book
    reads a record by when no registry is given."""
    return Declarations.of(pricecalc_rules())
