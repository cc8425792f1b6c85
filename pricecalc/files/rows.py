"""Flat rows and totals for people: what the command line prints, exports and sums.

Nothing here reads or writes a file. The command line (:mod:`pricecalc.cli`) and the
batch readers and writers (:mod:`pricecalc.files.reading`,
:mod:`pricecalc.files.writing`) use these pieces:

* :func:`decision_row` — one batch output row (CSV/XLSX) for a decided, invalid or
  conflicting line;
* :func:`record_row` — the pricecalc-level flat view of one audit record (``audit show``
  and ``audit export``);
* :class:`Summary` — decisions by kind and status and the money totals of a batch, new
  and replayed apart (SPEC §8: nobody pays from an output file twice);
* :class:`Stats` — counts and totals per Beijing day and kind (``audit stats``).

Which columns there are, and their labels and widths (:class:`RowLayout`,
:data:`COLUMN_LABELS`), is :mod:`pricecalc.files.columns`.

Money stays exact: amounts are read from the decisions' two-decimal strings with
:func:`pricecalc.money.to_decimal`, summed as ``Decimal`` and printed with
:func:`pricecalc.money.fmt` (two decimals). **Sheets add up** (SPEC §10): a row's money
columns hold what is summed — a new, approved decision's amounts in a batch output, an
approved, not voided decision's in an export — and stay empty otherwise, so a plain SUM
of a column equals the summary's (or ``audit stats``') figure; a rejected split still
reports its amounts (SPEC §2) in the non-summed ``result`` column.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

import attrs

from pricecalc import records
from pricecalc.beijing import beijing_day, beijing_text
from pricecalc.files.columns import (
    BUILTIN_LAYOUT,
    BUILTIN_MONEY,
    MoneyColumn,
    RowLayout,
)
from pricecalc.money import ZERO, fmt
from pricecalc.records import order_id_of
from pricecalc.serialize import sorted_json, text_problem


def as_recorded(decision: Mapping[str, Any]) -> dict[str, Any]:
    """The SPEC §8 decision with its ``result`` keys in the audit record's (sorted) order.

    The audit store keeps canonical JSON, so a replayed decision's result comes back with
    sorted keys. Printing every decision this way makes a replay byte-identical to the
    first run's output (the top-level keys keep the SPEC §8 order).
    """
    out = dict(decision)
    if "result" in out:
        out["result"] = sorted_json(out["result"])
    return out


def _result_text(result: Any) -> Any:
    """The full result, as recorded (sorted keys), for the non-summed ``result`` column."""
    return sorted_json(result) if isinstance(result, Mapping) and result else None


def decision_row(
    line: int,
    decision: Mapping[str, Any] | None = None,
    error: str | None = None,
    *,
    request: Mapping[str, Any] | None = None,
    status: str = "invalid",
    request_id: str | None = None,
    kind: str | None = None,
    audit: Mapping[str, Any] | None = None,
    layout: RowLayout = BUILTIN_LAYOUT,
) -> dict[str, Any]:
    """One batch output row: a decision (SPEC §8 shape, with ``audit``), or a line without
    one (``status`` invalid or conflict, its ``error``, the line's ``request_id`` and
    ``kind`` as far as it could be read, and for a conflict the recorded ``audit``).

    ``request`` (the line's request) supplies the ``order_id`` when the result has none,
    and the ``merchant_id``/``campaign`` of a line without a decision; a decision names its
    own (SPEC §8: the ones it was recorded with — a batch's ``--merchant`` included, which
    the line itself does not hold). The money columns hold the amounts of a new,
    approved decision only (a rejected, replayed, invalid or conflicting row leaves them
    empty: SPEC §10); the ``result`` column holds every decision's result as computed.
    """
    request = request or {}
    named = decision if decision is not None else request
    labels = {name: _label(named.get(name)) for name in ("merchant_id", "campaign")}
    if decision is None:
        row: dict[str, Any] = dict.fromkeys(layout.batch_columns())
        row.update(
            line=line,
            status=status,
            error=error,
            reason_codes=[],
            reason_notes=[],
            request_id=request_id,
            kind=kind,
            replayed=False,
            **labels,
        )
        if audit is not None:
            row.update(audit_seq=audit.get("seq"), audit_hash=audit.get("hash"))
        return row
    result = decision.get("result") or {}
    recorded = decision.get("audit") or {}
    replayed = bool(decision.get("replayed"))
    counted = decision.get("status") == "approved" and not replayed
    reasons = [(r["code"], r.get("message")) for r in decision.get("reasons", ())]
    return {
        "line": line,
        "request_id": decision.get("request_id"),
        "kind": decision.get("kind"),
        "status": decision.get("status"),
        "replayed": replayed,
        **labels,
        "reason_codes": [code for code, _ in reasons],
        "reason_notes": layout.notes(decision.get("kind"), reasons),
        "error": None,
        "order_id": order_id_of(request, result),
        **layout.money_cells(decision.get("kind"), result, counted),
        "result": _result_text(result),
        "audit_seq": recorded.get("seq"),
        "audit_hash": recorded.get("hash"),
    }


def _label(value: Any) -> str | None:
    """A line's ``merchant_id``/``campaign`` for its row: text fit for a file, else nothing
    (an invalid line's label may be a lone surrogate or hold U+0000)."""
    return value if isinstance(value, str) and text_problem(value) is None else None


def record_row(
    record: Any, voided_by: int | None = None, layout: RowLayout = BUILTIN_LAYOUT
) -> dict[str, Any]:
    """The pricecalc-level flat view of an :class:`audit.protocol.Record`.

    ``voided_by`` is the seq of the approved void that withdrew the record, if any
    (:func:`pricecalc.books.selection.voids_of`); a void's own row names what it ``voids``.
    The money columns hold an approved, not withdrawn decision's amounts only (what
    ``audit stats`` sums); the ``result`` column holds every result as recorded.
    """
    recorded = records.read(record, layout.declarations)
    result = recorded.result
    settlement = result.get("settlement")
    kind = recorded.kind if recorded.is_decision else None
    counted = recorded.approved and voided_by is None
    reasons = [(r.code, r.message) for r in recorded.reasons]
    return {
        "seq": recorded.seq,
        "recorded_at": recorded.recorded_at,
        "recorded_at_beijing": beijing_text(recorded.recorded_at),
        "kind": kind,
        "request_id": recorded.key,
        "status": recorded.status if recorded.is_decision else None,
        "reason_codes": recorded.reason_codes,
        "reason_notes": layout.notes(kind, reasons),
        "order_id": recorded.order_id,
        "merchant_id": _label(recorded.merchant_id),
        "campaign": _label(recorded.campaign),
        "operator": recorded.operator,
        **layout.money_cells(kind, result, counted),
        "result": _result_text(result),
        "settlement": settlement if isinstance(settlement, str) else None,
        "voided_by": voided_by,
        "voids": recorded.withdraws,
        "rule_set": recorded.rule_set,
        "rule_version": recorded.rule_version,
        "hash": recorded.hash,
    }



def money_amounts(
    money: Sequence[MoneyColumn], kind: str, result: Mapping[str, Any]
) -> tuple[Decimal | None, ...]:
    """What each money column reads from a result of ``kind`` (:meth:`Summary.add_new`)."""
    return tuple(column.amount(kind, result) for column in money)

@attrs.define
class Totals:
    """Money totals of approved decisions, exact, one per money column of ``money``."""

    money: tuple[MoneyColumn, ...] = BUILTIN_MONEY
    sums: dict[str, Decimal] = attrs.field()

    @sums.default
    def _zeros(self) -> dict[str, Decimal]:
        return {c.name: ZERO for c in self.money}

    def add(self, kind: Any, result: Mapping[str, Any]) -> None:
        for column in self.money:
            value = column.amount(kind, result)
            if value is not None:
                self.sums[column.name] += value

    def add_amounts(self, amounts: Sequence[Decimal | None]) -> None:
        """:meth:`add` for amounts already read from a result, one per money column."""
        for column, value in zip(self.money, amounts, strict=True):
            if value is not None:
                self.sums[column.name] += value

    def formatted(self) -> dict[str, str]:
        return {name: fmt(value) for name, value in self.sums.items()}


@attrs.define
class Summary:
    """What a batch did, new and replayed apart (SPEC §8): decisions by kind and status,
    money totals of approved decisions (one per money column of ``layout``, by its
    declared name), invalid lines and idempotency conflicts."""

    layout: RowLayout = BUILTIN_LAYOUT
    #: (kind, status) → [new, replayed]
    counts: dict[tuple[str, str], list[int]] = attrs.field(factory=dict)
    totals: Totals = attrs.field(
        default=attrs.Factory(lambda self: Totals(self.layout.money), takes_self=True)
    )  # new decisions
    replayed_totals: Totals = attrs.field(
        default=attrs.Factory(lambda self: Totals(self.layout.money), takes_self=True)
    )
    invalid: int = 0
    conflicts: int = 0
    #: Sheet rows with every cell empty: skipped, never invalid (SPEC §1).
    blank: int = 0

    def add(self, status: str, decision: Mapping[str, Any] | None) -> None:
        """Count one line: its decision (SPEC §8 shape), or an invalid or conflict line."""
        if decision is None:
            if status == "conflict":
                self.conflicts += 1
            else:
                self.invalid += 1
            return
        replayed = bool(decision.get("replayed"))
        key = (str(decision.get("kind")), str(decision.get("status")))
        self.counts.setdefault(key, [0, 0])[1 if replayed else 0] += 1
        if decision.get("status") == "approved":
            (self.replayed_totals if replayed else self.totals).add(
                decision.get("kind"), decision.get("result") or {}
            )

    def add_new(self, kind: str, status: str, amounts: Sequence[Decimal | None]) -> None:
        """:meth:`add` for a new decision whose money was read where it was decided (a
        worker process): ``amounts`` are :func:`money_amounts` of its result."""
        self.counts.setdefault((kind, status), [0, 0])[0] += 1
        if status == "approved":
            self.totals.add_amounts(amounts)

    @property
    def new(self) -> int:
        return sum(n for n, _ in self.counts.values())

    @property
    def replayed(self) -> int:
        return sum(r for _, r in self.counts.values())

    @property
    def decided(self) -> int:
        return self.new + self.replayed

    @property
    def lines(self) -> int:
        return self.decided + self.invalid + self.conflicts

    def headline(self, headers: str = "en") -> str:
        """``9 lines: 3 new decisions recorded, 2 already recorded (replayed), 4 invalid``
        (``headers="zh"``: the same in Chinese, for the Excel summary sheet)."""
        if headers == "zh":
            conflicts = f"，冲突 {self.conflicts} 行" if self.conflicts else ""
            blank = f"，跳过空行 {self.blank} 行" if self.blank else ""
            return (
                f"共 {self.lines} 行：新记录 {self.new} 个决定，{self.replayed} 个已记录过"
                f"(重放){conflicts}，无效 {self.invalid} 行{blank}"
            )
        parts = [
            f"{self.new} new decision{'s' if self.new != 1 else ''} recorded",
            f"{self.replayed} already recorded (replayed)",
        ]
        if self.conflicts:
            parts.append(f"{self.conflicts} conflict{'s' if self.conflicts != 1 else ''}")
        parts.append(f"{self.invalid} invalid")
        if self.blank:
            parts.append(f"{self.blank} blank row{'s' if self.blank != 1 else ''} skipped")
        return f"{self.lines} line{'s' if self.lines != 1 else ''}: " + ", ".join(parts)

    def counts_table(self) -> list[tuple[str, int]]:
        """``(what, how many)``: lines, new, replayed, conflicts, invalid — the headline's
        figures, one a row (the Excel summary sheet)."""
        return [
            ("lines", self.lines),
            ("new", self.new),
            ("replayed", self.replayed),
            ("conflicts", self.conflicts),
            ("invalid", self.invalid),
        ]

    def rows(self) -> list[tuple[str, str, int, int]]:
        """``(kind, status, new, replayed)`` sorted by kind then status; invalid and
        conflict lines last."""
        rows = [(kind, status, n, r) for (kind, status), (n, r) in sorted(self.counts.items())]
        if self.conflicts:
            rows.append(("—", "conflict", self.conflicts, 0))
        if self.invalid:
            rows.append(("—", "invalid", self.invalid, 0))
        return rows


@attrs.define
class StatsRow:
    approved: int = 0
    rejected: int = 0
    #: Approved decisions withdrawn by a void since (counted in ``approved``, not summed).
    voided: int = 0
    totals: Totals = attrs.field(factory=Totals)


@attrs.define
class Stats:
    """Counts and totals of approved, not withdrawn decisions per Beijing day and kind
    (``audit stats``): the money columns of ``audit export`` summed, to the fen.
    ``voids`` maps a withdrawn seq to its void's (:func:`pricecalc.books.selection.voids_of`)."""

    layout: RowLayout = BUILTIN_LAYOUT
    voids: Mapping[int, int] = attrs.field(factory=dict)
    rows: dict[tuple[date, str], StatsRow] = attrs.field(factory=dict)

    @classmethod
    def of(
        cls,
        records: Iterable[Any],
        layout: RowLayout = BUILTIN_LAYOUT,
        voids: Mapping[int, int] | None = None,
    ) -> Stats:
        stats = cls(layout, voids or {})
        for record in records:
            stats.add(record)
        return stats

    def add(self, record: Any) -> None:
        recorded = records.read(record, self.layout.declarations)
        key = (beijing_day(recorded.recorded_at), recorded.kind)
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = StatsRow(totals=Totals(self.layout.money))
        if recorded.approved:
            row.approved += 1
            if recorded.seq in self.voids:
                row.voided += 1
            else:
                row.totals.add(recorded.kind, recorded.result)
        else:
            row.rejected += 1

    def to_list(self) -> list[dict[str, Any]]:
        return [
            {
                "day": day.isoformat(),
                "kind": kind,
                "approved": row.approved,
                "rejected": row.rejected,
                "voided": row.voided,
                **row.totals.formatted(),
            }
            for (day, kind), row in sorted(self.rows.items())
        ]
