"""The campaign report's figures (SPEC §10), summed in one streaming pass over the store.

Pure bookkeeping, no HTML: :class:`CampaignFigures` takes the records of a report, one at
a time and in chain order, and keeps only small aggregates — counters per kind and
status, per reason code, per Beijing day, per category, per compensation standard and per
merchant. Memory therefore does not grow with the store: days, categories, codes and
standards are few, and merchants are bounded by the platform's merchant list (one
:class:`~pricecalc.settlement.SettlementTotals` each, three Decimals).

What a record adds (approved decisions only; a rejected one is counted, never summed):

* ``subsidy_split`` — its ``merchant_subsidy_total`` and ``platform_subsidy_total``, by
  the input's ``category`` (:data:`UNCATEGORISED` when it has none) and by day;
* ``price_protection`` / ``counterfeit_compensation`` — the money
  :func:`pricecalc.settlement.movement_of` reads (``refund_total`` / ``payout_total`` in
  the column its ``settlement`` names), by day; counterfeit's ``lines[].compensation``
  also by the line's winning ``standard``;
* ``forwarding_clawback`` — its ``clawback`` (``subsidy_clawback``), by the result's
  ``category``;
* every movement also goes to its merchant's :class:`SettlementTotals` (the top list).

A **void** (SPEC §7) reverses the withdrawn decision on the void's own day, as the
statement does: the settlement columns through :func:`pricecalc.settlement.reversal_of`,
and the split, standard and category figures by subtracting the withdrawn record's own
(fetched with ``store.record(seq)``; voids are few). A day can therefore be negative.

:func:`collect` makes the pass: the records :class:`pricecalc.selection.Filters` selects,
``seq`` at most the tree size the report is cut from (:class:`Cut`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

import attrs

from audit.protocol import AuditStore, Record
from pricecalc.decision import recorded_request
from pricecalc.money import ZERO
from pricecalc.rows import amount, beijing_day
from pricecalc.selection import Filters
from pricecalc.settlement import (
    DEDUCT_FROM_PAYOUT,
    MERCHANT_PAYS,
    SUBSIDY_CLAWBACK,
    Movement,
    SettlementTotals,
    movement_of,
    reversal_of,
    withdrawn_seq,
)

UNCATEGORISED = "未分类 uncategorised"
SPLIT_KIND = "subsidy_split"
PROTECTION_KIND = "price_protection"
COUNTERFEIT_KIND = "counterfeit_compensation"
CLAWBACK_KIND = "forwarding_clawback"
#: The subsidy split's two funded totals (SPEC §2), in the report's order.
SPLIT_FIELDS: tuple[str, ...] = ("merchant_subsidy_total", "platform_subsidy_total")
#: The series of "refunds and payouts by day": (kind, settlement column).
SETTLED_SERIES: tuple[tuple[str, str], ...] = (
    (PROTECTION_KIND, DEDUCT_FROM_PAYOUT),
    (PROTECTION_KIND, MERCHANT_PAYS),
    (COUNTERFEIT_KIND, DEDUCT_FROM_PAYOUT),
    (COUNTERFEIT_KIND, MERCHANT_PAYS),
)
TOP_MERCHANTS = 20

Lookup = Callable[[int], Record | None]


def _zeros(names: Iterable[Any]) -> dict[Any, Decimal]:
    return dict.fromkeys(names, ZERO)


def _category(value: Any) -> str:
    return value if isinstance(value, str) and value.strip() else UNCATEGORISED


def split_amounts(payload: Mapping[str, Any]) -> dict[str, Decimal] | None:
    """An approved subsidy split's merchant- and platform-funded totals, else ``None``."""
    if payload.get("kind") != SPLIT_KIND or payload.get("status") != "approved":
        return None
    result = payload.get("result")
    if not isinstance(result, Mapping):
        return None
    return {name: amount(result.get(name)) or ZERO for name in SPLIT_FIELDS}


def split_category(payload: Mapping[str, Any]) -> str:
    """A split's category: its input's ``category``, else :data:`UNCATEGORISED`."""
    raw = recorded_request(payload).get("input")
    return _category(raw.get("category") if isinstance(raw, Mapping) else None)


def clawback_category(payload: Mapping[str, Any]) -> str:
    """A forwarding clawback's category: the result's (the input's when it has none)."""
    result = payload.get("result")
    value = result.get("category") if isinstance(result, Mapping) else None
    if not isinstance(value, str):
        raw = recorded_request(payload).get("input")
        value = raw.get("category") if isinstance(raw, Mapping) else None
    return _category(value)


def compensation_by_standard(payload: Mapping[str, Any]) -> dict[str, Decimal]:
    """An approved counterfeit decision's ``lines[].compensation`` summed by each line's
    winning ``standard`` (a line without a standard paid no compensation)."""
    out: dict[str, Decimal] = {}
    if payload.get("kind") != COUNTERFEIT_KIND or payload.get("status") != "approved":
        return out
    result = payload.get("result")
    lines = result.get("lines") if isinstance(result, Mapping) else None
    for line in lines if isinstance(lines, list) else ():
        if not isinstance(line, Mapping) or not isinstance(line.get("standard"), str):
            continue
        value = amount(line.get("compensation"))
        if value is not None:
            out[line["standard"]] = out.get(line["standard"], ZERO) + value
    return out


@attrs.define
class CampaignFigures:
    """Every figure of the report, accumulated record by record (see the module doc)."""

    records: int = 0
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

    # -- taking records in -------------------------------------------------------------
    def add(self, record: Record, lookup: Lookup) -> None:
        """Count ``record`` and add its money; a void's reversal needs ``lookup`` (seq →
        record) to fetch what it withdrew."""
        payload = record.payload
        kind, status = str(payload.get("kind")), str(payload.get("status"))
        day = beijing_day(record.recorded_at)
        self.records += 1
        self.counts[(kind, status)] += 1
        self.first_day = day if self.first_day is None else min(self.first_day, day)
        self.last_day = day if self.last_day is None else max(self.last_day, day)
        if status == "rejected":
            codes = {r.get("code") for r in payload.get("reasons", ()) if isinstance(r, Mapping)}
            for code in codes:
                self.rejections[str(code)] += 1
        target = withdrawn_seq(record)
        if target is not None:
            withdrawn = lookup(target)
            if withdrawn is not None:
                self._reverse(record, withdrawn, day)
            return
        self._money(payload, day, movement_of(record), sign=1)

    def _reverse(self, void: Record, withdrawn: Record, day: date) -> None:
        self.reversals += 1
        self._money(withdrawn.payload, day, reversal_of(void, withdrawn), sign=-1)

    def _money(
        self, payload: Mapping[str, Any], day: date, moved: Movement | None, *, sign: int
    ) -> None:
        """Add an approved decision's figures on ``day`` (``sign`` -1: take them back;
        ``moved`` already carries its sign, as :func:`reversal_of` negates it)."""
        split = split_amounts(payload)
        if split is not None:
            for bucket in (
                self.split_by_category.setdefault(split_category(payload), _zeros(SPLIT_FIELDS)),
                self.split_by_day.setdefault(day, _zeros(SPLIT_FIELDS)),
            ):
                for name, value in split.items():
                    bucket[name] += sign * value
        for standard, value in compensation_by_standard(payload).items():
            self.compensation[standard] = self.compensation.get(standard, ZERO) + sign * value
        if moved is None:
            return
        if moved.kind == CLAWBACK_KIND:
            where = clawback_category(payload)
            self.clawback_by_category[where] = (
                self.clawback_by_category.get(where, ZERO) + moved.amounts[SUBSIDY_CLAWBACK]
            )
        else:
            by_day = self.settled_by_day.setdefault(day, _zeros(SETTLED_SERIES))
            for column in (DEDUCT_FROM_PAYOUT, MERCHANT_PAYS):
                if (moved.kind, column) in by_day:
                    by_day[(moved.kind, column)] += moved.amounts[column]
        if moved.merchant_id is None:
            self.no_merchant.add(moved)
        else:
            self.merchants.setdefault(moved.merchant_id, SettlementTotals()).add(moved)

    # -- reading figures out -----------------------------------------------------------
    def split_total(self, name: str) -> Decimal:
        """One of :data:`SPLIT_FIELDS` over the whole report."""
        return sum((row[name] for row in self.split_by_day.values()), ZERO)

    def settled_total(self, kind: str, column: str) -> Decimal:
        return sum((row[(kind, column)] for row in self.settled_by_day.values()), ZERO)

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


def aggregate(records: Iterable[Record], lookup: Lookup) -> CampaignFigures:
    """The figures of ``records`` (in chain order); ``lookup`` fetches a voided record."""
    figures = CampaignFigures()
    for record in records:
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


def collect(store: AuditStore, cut: Cut) -> CampaignFigures:
    """One streaming pass over the records ``cut`` selects."""

    def lookup(seq: int) -> Record | None:
        return store.record(seq) if seq <= cut.size else None

    return aggregate(cut.records(store), lookup)


__all__ = [
    "SETTLED_SERIES",
    "SPLIT_FIELDS",
    "TOP_MERCHANTS",
    "UNCATEGORISED",
    "CampaignFigures",
    "Cut",
    "aggregate",
    "clawback_category",
    "collect",
    "compensation_by_standard",
    "split_amounts",
    "split_category",
]
