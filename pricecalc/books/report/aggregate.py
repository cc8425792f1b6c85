"""The campaign report's figures (SPEC §10), summed in one streaming pass over the store.

Pure bookkeeping, no HTML: :class:`CampaignFigures` takes the records of a report, one at
a time and in chain order, and keeps only small aggregates — counters per kind and
status, per reason code, per Beijing day, per category, per compensation standard and per
merchant. Memory therefore does not grow with the store: days, categories, codes and
standards are few, and merchants are bounded by the platform's merchant list (one
:class:`~pricecalc.books.settlement.SettlementTotals` each, three Decimals).

What a record adds (approved decisions only; a rejected one is counted, never summed) is
read from its kind's declared money figures (:class:`pricecalc.registry.MoneyFigure`), never
from a kind's name, so a plugin's kind is summed like a built-in one:

* every declared figure, by kind (:attr:`CampaignFigures.by_kind`: ``(kind, figure name)``);
* SPEC §10's subsidy figures (:data:`SUBSIDY_FIGURES`: the split's merchant- and
  platform-funded totals), by the record's ``category`` (:data:`UNCATEGORISED` when it has
  none) and by day;
* the money :func:`pricecalc.books.settlement.movement_of` reads — figures feeding the record's
  ``settlement`` by day, per kind and column (:attr:`CampaignFigures.series`); figures
  feeding ``subsidy_clawback`` by the record's ``category``;
* a figure's declared breakdown (counterfeit compensation by each line's winning
  ``standard``) in :attr:`CampaignFigures.compensation`;
* every movement also goes to its merchant's :class:`SettlementTotals` (the top list);
* the key figures — every declared figure by SPEC §10 name, the three settlement columns
  and the platform's net subsidy outlay (:data:`NET_SUBSIDY_OUTLAY`) — whole
  (:meth:`CampaignFigures.key_figures`) and per campaign (:attr:`CampaignFigures.campaigns`,
  :data:`NO_CAMPAIGN` for decisions that name none; a void's reversal goes to the
  withdrawn decision's campaign);
* each rejection code with the kind that gave it first, so its explanation is its own
  rule's declaration (:meth:`CampaignFigures.explain`).

A **void** (SPEC §7) reverses the withdrawn decision on the void's own day, as the
statement does — once: a second void of a seq (which the rules reject, were one ever
found) is counted, not reversed again, and listed in :attr:`CampaignFigures.anomalies`.
The reversal takes the settlement columns through :func:`pricecalc.books.settlement.reversal_of`,
and the split, standard and category figures by subtracting the withdrawn record's own
(fetched with ``store.record(seq)``; voids are few). A day can therefore be negative.

:func:`collect` makes the pass: the records :class:`pricecalc.books.selection.Filters` selects,
``seq`` at most the tree size the report is cut from (:class:`Cut`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from datetime import date
from decimal import Decimal
from typing import Any

import attrs

from audit.protocol import AuditStore, Record
from pricecalc import records
from pricecalc.beijing import beijing_day
from pricecalc.books.selection import Filters
from pricecalc.books.settlement import (
    DEDUCT_FROM_PAYOUT,
    MERCHANT_PAYS,
    SUBSIDY_CLAWBACK,
    DoubleVoid,
    Movement,
    SettlementTotals,
    movement_of,
    reversal_of,
)
from pricecalc.books.statement import first_void
from pricecalc.builtin import builtin_declarations
from pricecalc.money import ZERO
from pricecalc.records import RecordedDecision
from pricecalc.registry import SETTLEMENT, Declarations, ReasonCode

UNCATEGORISED = "未分类 uncategorised"
#: SPEC §10's names of the subsidy split's two funded totals, in the report's order.
SUBSIDY_FIGURES: tuple[str, ...] = ("merchant_subsidy", "platform_subsidy")
TOP_MERCHANTS = 20
#: The platform's net subsidy outlay (SPEC §10): (name, Chinese, English) — the
#: platform-funded subsidy of approved, not voided splits minus the subsidy clawed back.
NET_SUBSIDY_OUTLAY: tuple[str, str, str] = (
    "net_subsidy_outlay",
    "平台补贴净支出",
    "platform net subsidy outlay",
)
#: The campaign of decisions whose request names none.
NO_CAMPAIGN = "未标明活动 no campaign"


def split_fields(declarations: Declarations) -> tuple[str, ...]:
    """The result fields holding :data:`SUBSIDY_FIGURES` (the split's buckets' keys)."""
    fields = {f.name: f.field for _, f in declarations.all_figures() if f.name in SUBSIDY_FIGURES}
    return tuple(fields[name] for name in SUBSIDY_FIGURES if name in fields)


def settled_series(declarations: Declarations) -> tuple[tuple[str, str], ...]:
    """The series of "refunds and payouts by day": ``(kind, settlement column)`` of every
    kind with a figure settled as its record's ``settlement`` says (both columns) or
    always in one of the two."""
    series: dict[tuple[str, str], None] = {}
    for kind, figure in declarations.all_figures():
        if figure.feeds == SETTLEMENT:
            series.update(dict.fromkeys(((kind, DEDUCT_FROM_PAYOUT), (kind, MERCHANT_PAYS))))
        elif figure.feeds in (DEDUCT_FROM_PAYOUT, MERCHANT_PAYS):
            series[(kind, figure.feeds)] = None
    return tuple(series)


#: The core's kinds' :func:`split_fields` and :func:`settled_series`.
SPLIT_FIELDS: tuple[str, ...] = split_fields(builtin_declarations())
SETTLED_SERIES: tuple[tuple[str, str], ...] = settled_series(builtin_declarations())

Lookup = Callable[[int], Record | None]
#: seq → the seq of its first approved void in the store (``None``: none).
FirstVoid = Callable[[int], int | None]


def _zeros(names: Iterable[Any]) -> dict[Any, Decimal]:
    return dict.fromkeys(names, ZERO)


def _category(value: Any) -> str:
    return value if isinstance(value, str) and value.strip() else UNCATEGORISED


def split_amounts(
    record: RecordedDecision, declarations: Declarations | None = None
) -> dict[str, Decimal] | None:
    """An approved decision's :data:`SUBSIDY_FIGURES` by result field (``None``: its kind
    declares none, or it was rejected)."""
    books = declarations if declarations is not None else builtin_declarations()
    declared = [f for f in books.figures_of(record.kind) if f.name in SUBSIDY_FIGURES]
    if not declared or not record.approved:
        return None
    return {f.field: record.amount(f.field) or ZERO for f in declared}


def category_of(record: RecordedDecision) -> str:
    """A decision's category: its result's (a clawback's), else its input's, else
    :data:`UNCATEGORISED`."""
    value = record.result.get("category")
    if not isinstance(value, str):
        value = record.input.get("category")
    return _category(value)


def breakdowns(
    record: RecordedDecision, declarations: Declarations | None = None
) -> dict[str, Decimal]:
    """An approved decision's figures split by the key their kind declares
    (:attr:`pricecalc.registry.MoneyFigure.by`: counterfeit compensation by each line's
    winning ``standard``)."""
    out: dict[str, Decimal] = {}
    for figure, _ in record.figures(declarations):
        if figure.by is None:
            continue
        for key, value in figure.by(record.result).items():
            out[key] = out.get(key, ZERO) + value
    return out


@attrs.define
class KeyFigures:
    """The key figures of the report or of one campaign in it: decisions counted, every
    declared figure by its SPEC §10 name (approved, voids reversed) and the three
    settlement columns."""

    records: int = 0
    figures: dict[str, Decimal] = attrs.field(factory=dict)
    settlement: SettlementTotals = attrs.field(factory=SettlementTotals)

    def add(self, name: str, value: Decimal) -> None:
        self.figures[name] = self.figures.get(name, ZERO) + value

    def figure(self, name: str) -> Decimal:
        return self.figures.get(name, ZERO)

    def net_subsidy_outlay(self, declarations: Declarations) -> Decimal:
        """:data:`NET_SUBSIDY_OUTLAY`: the ``platform_subsidy`` figures less every figure
        feeding ``subsidy_clawback`` (each as declared, so a plugin's counts too)."""
        platform = SUBSIDY_FIGURES[1]
        clawed = {f.name for _, f in declarations.all_figures() if f.feeds == SUBSIDY_CLAWBACK}
        return self.figure(platform) - sum((self.figure(n) for n in sorted(clawed)), ZERO)


@attrs.define
class CampaignFigures:
    """Every figure of the report, accumulated record by record (see the module doc)."""

    records: int = 0
    declarations: Declarations = attrs.field(factory=builtin_declarations, repr=False)
    counts: Counter[tuple[str, str]] = attrs.field(factory=Counter)
    rejections: Counter[str] = attrs.field(factory=Counter)
    split_by_category: dict[str, dict[str, Decimal]] = attrs.field(factory=dict)
    split_by_day: dict[date, dict[str, Decimal]] = attrs.field(factory=dict)
    settled_by_day: dict[date, dict[tuple[str, str], Decimal]] = attrs.field(factory=dict)
    compensation: dict[str, Decimal] = attrs.field(factory=dict)
    clawback_by_category: dict[str, Decimal] = attrs.field(factory=dict)
    merchants: dict[str, SettlementTotals] = attrs.field(factory=dict)
    no_merchant: SettlementTotals = attrs.field(factory=SettlementTotals)
    reversals: int = 0
    first_day: date | None = None
    last_day: date | None = None
    #: (kind, figure name) → total of every declared figure (SPEC §10's names).
    by_kind: dict[tuple[str, str], Decimal] = attrs.field(factory=dict)
    #: campaign (:data:`NO_CAMPAIGN` when none) → its key figures.
    campaigns: dict[str, KeyFigures] = attrs.field(factory=dict)
    #: reason code → the kind that gave it first (whose declaration explains it).
    rejection_kinds: dict[str, str] = attrs.field(factory=dict)
    #: seq → the void that reversed it; second voids of a seq, not reversed again (SPEC §7).
    reversed_by: dict[int, int] = attrs.field(factory=dict)
    anomalies: list[DoubleVoid] = attrs.field(factory=list)
    first_void: FirstVoid | None = attrs.field(default=None, repr=False)

    @property
    def split_fields(self) -> tuple[str, ...]:
        return split_fields(self.declarations)

    @property
    def series(self) -> tuple[tuple[str, str], ...]:
        """The (kind, settlement column) series of "refunds and payouts by day"."""
        return settled_series(self.declarations)

    # -- taking records in -------------------------------------------------------------
    def add(self, record: Record, lookup: Lookup) -> None:
        """Count ``record`` and add its money; a void's reversal needs ``lookup`` (seq →
        record) to fetch what it withdrew."""
        recorded = records.read(record, self.declarations)
        kind, status = recorded.kind, recorded.status
        day = beijing_day(recorded.recorded_at)
        self.records += 1
        self.counts[(kind, status)] += 1
        self.first_day = day if self.first_day is None else min(self.first_day, day)
        self.last_day = day if self.last_day is None else max(self.last_day, day)
        self._part(recorded.campaign).records += 1
        if status == "rejected":
            for code in dict.fromkeys(recorded.reason_codes):
                self.rejections[code] += 1
                self.rejection_kinds.setdefault(code, kind)
        target = recorded.withdraws
        if target is not None:
            first = self.reversed_by.get(target)
            if first is None and self.first_void is not None:
                first = self.first_void(target)
            if first is not None and first != recorded.seq:
                self.anomalies.append(DoubleVoid(recorded.seq, target, first))
                return  # reversed once, at its first void, as the statement does
            self.reversed_by[target] = recorded.seq
            withdrawn = lookup(target)
            if withdrawn is not None:
                self._reverse(recorded, records.read(withdrawn, self.declarations), day)
            return
        self._money(recorded, day, movement_of(recorded, self.declarations), sign=1)

    def _reverse(self, void: RecordedDecision, withdrawn: RecordedDecision, day: date) -> None:
        self.reversals += 1
        self._money(withdrawn, day, reversal_of(void, withdrawn, self.declarations), sign=-1)

    def _money(
        self, recorded: RecordedDecision, day: date, moved: Movement | None, *, sign: int
    ) -> None:
        """Add an approved decision's figures on ``day`` (``sign`` -1: take them back;
        ``moved`` already carries its sign, as :func:`reversal_of` negates it)."""
        part = self._part(recorded.campaign)
        for figure, value in recorded.figures(self.declarations):
            key = (recorded.kind, figure.name)
            self.by_kind[key] = self.by_kind.get(key, ZERO) + sign * value
            part.add(figure.name, sign * value)
        split = split_amounts(recorded, self.declarations)
        if split is not None:
            fields = self.split_fields
            for bucket in (
                self.split_by_category.setdefault(category_of(recorded), _zeros(fields)),
                self.split_by_day.setdefault(day, _zeros(fields)),
            ):
                for name, value in split.items():
                    bucket[name] += sign * value
        for standard, value in breakdowns(recorded, self.declarations).items():
            self.compensation[standard] = self.compensation.get(standard, ZERO) + sign * value
        if moved is None:
            return
        if moved.amounts[SUBSIDY_CLAWBACK] != ZERO:
            where = category_of(recorded)
            self.clawback_by_category[where] = (
                self.clawback_by_category.get(where, ZERO) + moved.amounts[SUBSIDY_CLAWBACK]
            )
        if any(
            (moved.kind, column) in self.series for column in (DEDUCT_FROM_PAYOUT, MERCHANT_PAYS)
        ):
            by_day = self.settled_by_day.setdefault(day, _zeros(self.series))
            for column in (DEDUCT_FROM_PAYOUT, MERCHANT_PAYS):
                if (moved.kind, column) in by_day:
                    by_day[(moved.kind, column)] += moved.amounts[column]
        part.settlement.add(moved)
        if moved.merchant_id is None:
            self.no_merchant.add(moved)
        else:
            self.merchants.setdefault(moved.merchant_id, SettlementTotals()).add(moved)

    def _part(self, campaign: str | None) -> KeyFigures:
        return self.campaigns.setdefault(campaign or NO_CAMPAIGN, KeyFigures())

    # -- reading figures out -----------------------------------------------------------
    def key_figures(self) -> KeyFigures:
        """The key figures of the whole report (the campaigns' summed)."""
        out = KeyFigures(records=self.records)
        for part in self.campaigns.values():
            for name, value in part.figures.items():
                out.add(name, value)
            for column, value in part.settlement.sums.items():
                out.settlement.sums[column] += value
            out.settlement.rows += part.settlement.rows
        return out

    def net_subsidy_outlay(self) -> Decimal:
        """:data:`NET_SUBSIDY_OUTLAY` over the whole report."""
        return self.key_figures().net_subsidy_outlay(self.declarations)

    def explain(self, code: str) -> ReasonCode | None:
        """A rejection code's one-line explanation, from the declaration of the kind that
        gave it (else of any installed kind declaring it); ``None``: none declares it."""
        kind = self.rejection_kinds.get(code)
        found = self.declarations.explain(code, kind) if kind is not None else None
        return found if found is not None else self.declarations.explain(code)

    def split_total(self, name: str) -> Decimal:
        """One of :data:`SPLIT_FIELDS` over the whole report."""
        return sum((row[name] for row in self.split_by_day.values()), ZERO)

    def settled_total(self, kind: str, column: str) -> Decimal:
        return sum((row.get((kind, column), ZERO) for row in self.settled_by_day.values()), ZERO)

    def figure_total(self, kind: str, name: str) -> Decimal:
        """One declared figure of one kind over the whole report (SPEC §10's name)."""
        return self.by_kind.get((kind, name), ZERO)

    @property
    def settlement(self) -> SettlementTotals:
        """The three SPEC §10 columns over every merchant (and decisions without one)."""
        out = SettlementTotals()
        for totals in (*self.merchants.values(), self.no_merchant):
            for name, value in totals.sums.items():
                out.sums[name] += value
            out.rows += totals.rows
        return out

    def top_merchants(self, n: int = TOP_MERCHANTS) -> list[tuple[str, SettlementTotals]]:
        """The ``n`` merchants with the largest deductions (``deduct_from_payout`` +
        ``subsidy_clawback``), largest first, ties by merchant id; merchants whose
        deductions net to zero or less are left out."""
        ranked = sorted(
            (item for item in self.merchants.items() if item[1].deductions > ZERO),
            key=lambda item: (-item[1].deductions, item[0]),
        )
        return ranked[:n]


def aggregate(
    chain: Iterable[Record],
    lookup: Lookup,
    declarations: Declarations | None = None,
    first_void: FirstVoid | None = None,
) -> CampaignFigures:
    """The figures of the records ``chain`` (in chain order); ``lookup`` fetches a voided
    record; ``declarations``: the installed kinds' (default: the core's own);
    ``first_void`` finds a seq's first void in the whole store (default: only voids in
    ``chain`` are seen)."""
    figures = CampaignFigures(
        declarations=declarations if declarations is not None else builtin_declarations(),
        first_void=first_void,
    )
    for record in chain:
        figures.add(record, lookup)
    return figures


@attrs.frozen
class Cut:
    """Which records a report covers: those ``filters`` select with ``seq ≤ size`` — the
    tree size of the checkpoint the report names (so every figure can be proven in it)."""

    filters: Filters
    size: int

    def records(self, store: AuditStore) -> Iterable[Record]:
        for record in self.filters.records(store):
            if record.seq > self.size:
                break  # chain order: nothing later is in the tree the report was cut from
            yield record


def collect(
    store: AuditStore, cut: Cut, declarations: Declarations | None = None
) -> CampaignFigures:
    """One streaming pass over the records ``cut`` selects."""

    def lookup(seq: int) -> Record | None:
        return store.record(seq) if seq <= cut.size else None

    def first(seq: int) -> int | None:
        return first_void(store, seq, cut.size, declarations)

    return aggregate(cut.records(store), lookup, declarations, first)


__all__ = [
    "NET_SUBSIDY_OUTLAY",
    "NO_CAMPAIGN",
    "SETTLED_SERIES",
    "SPLIT_FIELDS",
    "SUBSIDY_FIGURES",
    "TOP_MERCHANTS",
    "UNCATEGORISED",
    "CampaignFigures",
    "Cut",
    "KeyFigures",
    "aggregate",
    "breakdowns",
    "category_of",
    "collect",
    "settled_series",
    "split_amounts",
    "split_fields",
]
