"""What plugins contribute, and the registry that collects it.

The value types here are the plugin contract's vocabulary: a :class:`Rule` decides one
kind of request; a :class:`CompensationStandard` is a legal standard for 假一赔十 (SPEC §4);
offer types for 价保 live in :mod:`pricecalc.offers`; clawback categories are plain names.
:class:`Registry` is built once from a plugin manager (:func:`pricecalc.plugins.load_registry`)
and remembers which plugin gave what, so a decision can name the plugins that took part.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
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


#: Where a money figure goes on a settlement statement (SPEC §10): ``SETTLEMENT`` — the
#: column the record's ``settlement`` names (``deduct_from_payout`` or ``merchant_pays``);
#: ``SUBSIDY_CLAWBACK`` — the ``subsidy_clawback`` column; ``DEDUCT_FROM_PAYOUT`` or
#: ``MERCHANT_PAYS`` — always that column (a kind whose results name no settlement);
#: ``None`` — no column (the figure moves no money between merchant and platform, e.g. a
#: subsidy split's shares).
SETTLEMENT = "settlement"
DEDUCT_FROM_PAYOUT = "deduct_from_payout"
MERCHANT_PAYS = "merchant_pays"
SUBSIDY_CLAWBACK = "subsidy_clawback"
FEEDS = (SETTLEMENT, DEDUCT_FROM_PAYOUT, MERCHANT_PAYS, SUBSIDY_CLAWBACK)
#: The settlement columns' labels (SPEC §10 "one name, one figure"), name → (Chinese,
#: English): the statement's and the report's money columns.
SETTLEMENT_LABELS: Mapping[str, tuple[str, str]] = {
    DEDUCT_FROM_PAYOUT: ("从货款扣除", "deduct from payout"),
    MERCHANT_PAYS: ("商家直接赔付", "merchant pays"),
    SUBSIDY_CLAWBACK: ("转寄追回补贴", "subsidy clawback"),
}


@attrs.frozen
class MoneyFigure:
    """A money figure a rule's results carry, as SPEC §10 names it ("one name, one figure").

    ``name`` is the figure's one name everywhere (``price_protection_refunds``), ``zh`` and
    ``en`` its labels for people, ``field`` the result field holding it (two-decimal text),
    ``feeds`` the settlement column it fills (:data:`SETTLEMENT`: the one the result's
    ``settlement`` names; :data:`SUBSIDY_CLAWBACK`, :data:`DEDUCT_FROM_PAYOUT`,
    :data:`MERCHANT_PAYS`: that one; ``None``: none). ``summed`` is false for a figure
    that is the sum of the kind's other figures (``counterfeit_payouts``): totals beside
    those would count it twice.
    ``by``, when given, splits the figure of one approved result by a key (counterfeit
    compensation by each line's winning standard: the report's breakdown);
    ``by_labels`` names those keys for people (key → Chinese label; a plugin's standard
    brings its own, :attr:`CompensationStandard.label`).
    """

    name: str
    zh: str
    en: str
    field: str
    feeds: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.in_(FEEDS))
    )
    summed: bool = True
    by: Callable[[Mapping[str, Any]], Mapping[str, Decimal]] | None = None
    by_labels: Mapping[str, str] = attrs.field(factory=dict)

    def label(self, lang: str = "en") -> str:
        """The label for people: Chinese (``zh``) or English."""
        return self.zh if lang == "zh" else self.en


@attrs.frozen
class ReasonCode:
    """A reason code a rule may give, with a one-line explanation in Chinese and English
    (what the campaign report and outputs show beside the code)."""

    code: str
    zh: str
    en: str

    def explain(self, lang: str = "en") -> str:
        return self.zh if lang == "zh" else self.en


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

    What the books read back from the store asks of the rule, not of its kind's name:
    ``figures`` — the money figures its results carry (:class:`MoneyFigure`, SPEC §10),
    ``codes`` — every reason code it may give, explained (:class:`ReasonCode`), and
    ``withdraws`` — for a correcting kind (``void``), the seq an approved result withdraws
    (``None``: this kind withdraws nothing). ``label`` is the kind's Chinese name for
    people (``补贴分摊``; the report shows it beside the kind).
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
    figures: tuple[MoneyFigure, ...] = ()
    codes: tuple[ReasonCode, ...] = ()
    withdraws: Callable[[Mapping[str, Any]], int | None] | None = None
    label: str = ""


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
    ``label`` is its Chinese name for people (the report's compensation by standard).
    """

    name: str
    compute: Callable[[CompensationLine, PolicyView], Decimal | None]
    description: str = ""
    label: str = ""


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

    def declarations(self) -> Declarations:
        """What the installed kinds declare (figures, codes, withdrawals, labels), in the
        order their plugins registered them; the standards' labels name the breakdown
        keys they are (:meth:`Declarations.by_label`)."""
        declared = Declarations.of(c.item for c in self.rules.values())
        standards = {c.item.name: c.item.label for c in self.standards if c.item.label}
        if not standards:
            return declared
        return attrs.evolve(declared, by_labels={**declared.by_labels, **standards})

    def figures(self) -> tuple[tuple[str, MoneyFigure], ...]:
        """Every money figure of every installed kind: ``(kind, figure)``."""
        return self.declarations().all_figures()

    def codes(self) -> tuple[tuple[str, ReasonCode], ...]:
        """Every reason code of every installed kind, explained: ``(kind, code)``."""
        return self.declarations().all_codes()


@attrs.frozen
class Declarations:
    """The declarations of a set of rules, by kind: what the records, the settlement,
    summaries, exports, the statement and the report ask instead of naming a kind.
    ``Registry.declarations()`` gives the installed kinds';
    :func:`pricecalc.builtin.builtin_declarations` the core's own (for callers that hold no
    registry)."""

    figures: Mapping[str, tuple[MoneyFigure, ...]] = attrs.field(factory=dict)
    codes: Mapping[str, tuple[ReasonCode, ...]] = attrs.field(factory=dict)
    withdrawals: Mapping[str, Callable[[Mapping[str, Any]], int | None]] = attrs.field(factory=dict)
    labels: Mapping[str, str] = attrs.field(factory=dict)
    by_labels: Mapping[str, str] = attrs.field(factory=dict)

    @classmethod
    def of(cls, rules: Iterable[Rule]) -> Declarations:
        figures: dict[str, tuple[MoneyFigure, ...]] = {}
        codes: dict[str, tuple[ReasonCode, ...]] = {}
        withdrawals: dict[str, Callable[[Mapping[str, Any]], int | None]] = {}
        labels: dict[str, str] = {}
        by_labels: dict[str, str] = {}
        for rule in rules:
            figures[rule.kind] = tuple(rule.figures)
            codes[rule.kind] = tuple(rule.codes)
            if rule.withdraws is not None:
                withdrawals[rule.kind] = rule.withdraws
            if rule.label:
                labels[rule.kind] = rule.label
            for figure in rule.figures:
                by_labels.update(figure.by_labels)
        return cls(figures, codes, withdrawals, labels, by_labels)

    def kind_label(self, kind: str) -> str:
        """A kind for people: its declared label and its name (``补贴分摊 subsidy_split``),
        the name alone when its rule declares no label (or is not installed)."""
        label = self.labels.get(kind)
        return f"{label} {kind}" if label else kind

    def by_label(self, key: str) -> str:
        """A breakdown key (:attr:`MoneyFigure.by`) for people: ``平台假一赔十
        platform_10x``; the key alone when nothing names it."""
        label = self.by_labels.get(key)
        return f"{label} {key}" if label else key

    def figures_of(self, kind: str) -> tuple[MoneyFigure, ...]:
        """The money figures ``kind`` declares (none for an unknown kind)."""
        return self.figures.get(kind, ())

    def all_figures(self) -> tuple[tuple[str, MoneyFigure], ...]:
        return tuple((kind, f) for kind, figures in self.figures.items() for f in figures)

    def all_codes(self) -> tuple[tuple[str, ReasonCode], ...]:
        return tuple((kind, c) for kind, codes in self.codes.items() for c in codes)

    def explain(self, code: str, kind: str | None = None) -> ReasonCode | None:
        """The explanation of ``code`` — of ``kind``'s codes when given (two kinds may
        share a code), else the first kind declaring it; ``None`` when none does."""
        for owner, declared in self.codes.items():
            if kind is not None and owner != kind:
                continue
            for item in declared:
                if item.code == code:
                    return item
        return None

    def withdrawn_by(self, kind: str, result: Mapping[str, Any]) -> int | None:
        """The seq an approved decision of ``kind`` with ``result`` withdraws (a void's),
        or ``None``."""
        withdraws = self.withdrawals.get(kind)
        return None if withdraws is None else withdraws(result)
