"""What plugins contribute, and the registry that collects it.

The value types here are the plugin contract's vocabulary: a :class:`Rule` decides one
kind of request; a :class:`CompensationStandard` is a legal standard for 假一赔十 (SPEC §4);
offer types for 价保 live in :mod:`pricecalc.offers`; clawback categories are plain names.
:class:`Registry` is built once from a plugin manager (:func:`pricecalc.plugins.load_registry`)
and remembers which plugin gave what, so a decision can name the plugins that took part.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from pricecalc.decision import Outcome
from pricecalc.fields import Fields, Shape
from pricecalc.history import NO_HISTORY, History
from pricecalc.policy import PolicyView

if TYPE_CHECKING:
    from pricecalc.offers import OfferType


class RuleContext:
    """Everything a rule may use besides its input: the clock, the policy, the registry's
    extensions, the history of past decisions and the operator who asked (``None`` when
    no one was named: the calculator's default, the OS user, does not count). A rule reports
    the plugins whose contributions it used in its :class:`~pricecalc.decision.Outcome`;
    nothing flows back through the context."""

    __slots__ = ("history", "now", "operator", "policy", "registry")

    def __init__(
        self,
        now: datetime,
        policy: PolicyView,
        registry: Registry,
        history: History = NO_HISTORY,
        operator: str | None = None,
    ) -> None:
        self.now = now
        self.policy = policy
        self.registry = registry
        self.history = history
        self.operator = operator


@attrs.frozen
class Rule:
    """One kind of decision: its parser and its pure decision function.

    ``parse`` turns the request's ``input`` into the rule's own input object, raising
    :class:`pricecalc.InvalidInput` (naming the field) for anything malformed.
    ``decide`` is pure: the same input and context always give the same outcome.
    ``input_fields`` names the top-level keys of ``input`` the rule accepts, when it
    declares them (``None``: not declared): a request with another key is invalid input
    naming it (a misspelt optional field must not pass silently), and the command line
    refuses such a CSV column (``list_prize``) before anything is decided.
    ``inputs`` and ``results``, when declared, are the fields of ``input`` and of the
    result as the parser reads and the rule writes them (:class:`pricecalc.fields.Shape`):
    the service's OpenAPI document shows them as JSON Schema (docs/service.md).
    """

    kind: str
    rule_set: str
    version: str
    parse: Callable[[Fields, RuleContext], Any]
    decide: Callable[[Any, RuleContext], Outcome]
    description: str = ""
    input_fields: frozenset[str] | None = None
    inputs: Shape | None = None
    results: Shape | None = None


@attrs.frozen
class CompensationLine:
    """One line of a 假一赔十 claim as a compensation standard sees it (SPEC §4)."""

    line_id: str
    paid: Decimal
    category: str | None = None
    loss: Decimal | None = None


@attrs.frozen
class CompensationStandard:
    """A legal standard for counterfeit compensation.

    ``compute`` returns the compensation this standard grants for a line, or ``None``
    when it does not apply (e.g. a food-law standard for a phone). The highest applicable
    compensation wins; on a tie the earlier standard (the platform's first) is named.
    """

    name: str
    compute: Callable[[CompensationLine, PolicyView], Decimal | None]
    description: str = ""


@attrs.frozen
class Contributed:
    """An item with the name of the plugin that contributed it."""

    plugin: str
    item: Any


@attrs.frozen
class Registry:
    """Rules, standards, offer types and categories, each with its plugin's name."""

    rules: Mapping[str, Contributed] = attrs.field(factory=dict)
    standards: tuple[Contributed, ...] = ()
    offer_types: Mapping[str, Contributed] = attrs.field(factory=dict)
    clawback_categories: Mapping[str, str] = attrs.field(factory=dict)
    policy_defaults: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    plugin_versions: Mapping[str, str] = attrs.field(factory=dict)
    hooks_by_plugin: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)

    def rule(self, kind: str) -> tuple[str, Rule] | None:
        found = self.rules.get(kind)
        if found is None:
            return None
        return found.plugin, found.item

    def offer_type(self, name: str) -> tuple[str, OfferType] | None:
        found = self.offer_types.get(name)
        if found is None:
            return None
        return found.plugin, found.item

    def kinds(self) -> tuple[str, ...]:
        return tuple(sorted(self.rules))
