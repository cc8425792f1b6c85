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
* :class:`Stats` — counts and totals per Beijing day and kind (``audit stats``);
* :data:`COLUMN_LABELS` and :data:`COLUMN_WIDTHS` — the one table of column headings a
  Chinese finance clerk reads without a glossary (平台补贴合计 for
  ``platform_subsidy_total``) and of spreadsheet column widths, for every file pricecalc
  writes; the machine names stay the JSON keys and the ``--headers en`` heading row.

Money stays exact: amounts are read from the decisions' two-decimal strings with
:func:`pricecalc.money.to_decimal`, summed as ``Decimal`` and printed with
:func:`pricecalc.money.fmt` (two decimals). Totals count **approved** decisions only: a
rejected split still reports its amounts (SPEC §2), but nothing is paid on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import attrs

from pricecalc import records
from pricecalc.fields import BEIJING
from pricecalc.money import ZERO, fmt, stored_amount
from pricecalc.records import order_id_of
from pricecalc.registry import MoneyFigure, builtin_declarations
from pricecalc.serialize import sorted_json, text_problem


def _declared_columns() -> tuple[dict[str, tuple[str, str]], dict[str, tuple[str, ...]]]:
    """The money columns the rules' figures declare (``MoneyFigure.column``), in the order
    the core's kinds declare them: machine name → (English title, Chinese heading), and
    machine name → the result fields it sums (one per kind that fills it)."""
    titles: dict[str, tuple[str, str]] = {}
    fields: dict[str, tuple[str, ...]] = {}
    figure: MoneyFigure
    for _, figure in builtin_declarations().all_figures():
        if figure.column is None or not figure.summed:
            continue
        name, chinese, english = figure.column
        titles.setdefault(name, (english, chinese))
        if figure.field not in fields.get(name, ()):
            fields[name] = (*fields.get(name, ()), figure.field)
    return titles, fields


_TITLES, COLUMN_FIELDS = _declared_columns()
#: The money columns summed in batch summaries and stats, with their titles: declared by
#: the rules (:attr:`pricecalc.registry.MoneyFigure.column`); a kind without one gives 0.
TOTALS: tuple[tuple[str, str], ...] = tuple((name, en) for name, (en, _) in _TITLES.items())
MONEY_COLUMNS: tuple[str, ...] = tuple(name for name, _ in TOTALS)

#: Columns of a batch output row in CSV / Excel (JSON Lines output is the SPEC §8 shape).
BATCH_COLUMNS: tuple[str, ...] = (
    "line",
    "request_id",
    "kind",
    "status",
    "replayed",
    "merchant_id",
    "campaign",
    "reason_codes",
    "error",
    "order_id",
    *MONEY_COLUMNS,
    "audit_seq",
    "audit_hash",
)

#: Columns of the flat view of an audit record (``audit show`` / ``audit export``).
RECORD_COLUMNS: tuple[str, ...] = (
    "seq",
    "recorded_at",
    "recorded_at_beijing",
    "kind",
    "request_id",
    "status",
    "reason_codes",
    "order_id",
    "merchant_id",
    "campaign",
    "operator",
    *MONEY_COLUMNS,
    "settlement",
    "voided_by",
    "voids",
    "rule_set",
    "rule_version",
    "hash",
)

#: The settlement statement's three money columns (SPEC §10; named and read in
#: :mod:`pricecalc.books.settlement`, which pins them to these names).
SETTLEMENT_MONEY: tuple[str, ...] = ("deduct_from_payout", "merchant_pays", "subsidy_clawback")
#: Every column holding an amount (written as numbers ``0.00`` in Excel, never neutralised
#: in CSV: pricecalc produced it).
AMOUNT_COLUMNS: frozenset[str] = frozenset({*MONEY_COLUMNS, *SETTLEMENT_MONEY})
#: Columns holding whole numbers (written as numbers in Excel).
INTEGER_COLUMNS: frozenset[str] = frozenset(
    {"line", "seq", "audit_seq", "voided_by", "voids", "reverses"}
)
#: Columns holding a Beijing time as text ``YYYY-MM-DD HH:MM:SS`` (a date cell in Excel).
TIME_COLUMNS: frozenset[str] = frozenset({"recorded_at_beijing"})

#: Column headings for people (``--headers zh``, the Excel default), one per machine name.
COLUMN_LABELS: dict[str, str] = {
    "line": "行号",
    "request_id": "请求号",
    "kind": "类型",
    "status": "状态",
    "replayed": "是否重放",
    "merchant_id": "商家",
    "campaign": "活动",
    "reason_codes": "原因代码",
    "error": "错误",
    "order_id": "订单号",
    **{name: chinese for name, (_, chinese) in _TITLES.items()},
    "audit_seq": "记录号",
    "audit_hash": "哈希",
    "seq": "记录号",
    "recorded_at": "记录时间(UTC)",
    "recorded_at_beijing": "记录时间(北京时间)",
    "operator": "操作员",
    "settlement": "结算方式",
    "voided_by": "被作废(作废记录号)",
    "voids": "作废的记录号",
    "rule_set": "规则集",
    "rule_version": "规则版本",
    "hash": "哈希",
    "deduct_from_payout": "从货款扣除",
    "merchant_pays": "商家直接赔付",
    "subsidy_clawback": "追回补贴",
    "reverses": "冲销的记录号",
    "content_key": "记录键",
}
#: Labels read back as the fields they name (the input's envelope fields and order_id).
_FIELD_OF_LABEL: dict[str, str] = {
    COLUMN_LABELS[name]: name
    for name in ("request_id", "merchant_id", "campaign", "kind", "order_id")
}
#: The result columns of a CSV/xlsx batch output written beside the input's own columns
#: (a sheet's round trip, issue 21): the key the decision is recorded under in its own
#: column, then what was decided. Fed back, each is recognised (by its name or its label)
#: and skipped, so editing an input cell and running again records exactly that row.
ROUND_TRIP_COLUMNS: tuple[str, ...] = (
    "content_key",
    "status",
    "replayed",
    "reason_codes",
    "error",
    *MONEY_COLUMNS,
    "audit_seq",
    "audit_hash",
)
#: Columns of a batch output that pricecalc writes and never reads back as input.
_OUTPUT_ONLY: frozenset[str] = frozenset({"line", *ROUND_TRIP_COLUMNS})
_OUTPUT_LABELS: frozenset[str] = frozenset(
    COLUMN_LABELS[name] for name in ("line", *ROUND_TRIP_COLUMNS) if name in COLUMN_LABELS
)


def heading_field(heading: str) -> str:
    """The field a sheet's heading names: the machine name itself, or the label pricecalc
    writes for it (请求号 → ``request_id``: :data:`COLUMN_LABELS` read the other way)."""
    text = heading.strip()
    return _FIELD_OF_LABEL.get(text, text)


def round_trip_column(heading: str, fields: Iterable[str] | None = None) -> bool:
    """True for a column pricecalc wrote beside the input (:data:`ROUND_TRIP_COLUMNS`,
    ``line``), by name or label, unless the kind has an input field of that name."""
    name = heading_field(heading)
    if name not in _OUTPUT_ONLY and heading.strip() not in _OUTPUT_LABELS:
        return False
    return fields is None or name not in fields


def known_headings() -> list[str]:
    """The labels pricecalc writes that a sheet may use as headings, with the field each
    names (``请求号 (request_id)``), for the message refusing an unknown column."""
    return [f"{label} ({name})" for label, name in _FIELD_OF_LABEL.items()]


#: How wide (in characters) a column's content usually is, for spreadsheet columns; a
#: column also fits its heading. Hashes and errors are cut at a readable width.
COLUMN_WIDTHS: dict[str, int] = {
    "line": 6,
    "request_id": 26,
    "kind": 24,
    "status": 10,
    "replayed": 8,
    "merchant_id": 14,
    "campaign": 14,
    "reason_codes": 28,
    "error": 60,
    "order_id": 16,
    **dict.fromkeys(MONEY_COLUMNS, 14),
    "audit_seq": 8,
    "audit_hash": 20,
    "seq": 8,
    "recorded_at": 28,
    "recorded_at_beijing": 20,
    "operator": 14,
    "settlement": 20,
    "voided_by": 10,
    "voids": 10,
    "rule_set": 22,
    "rule_version": 10,
    "hash": 20,
    **dict.fromkeys(SETTLEMENT_MONEY, 14),
    "reverses": 10,
    "content_key": 30,
}


#: The batch summary's words, machine name → (English as the terminal prints it, Chinese):
#: the Excel summary sheet's headings and row titles.
SUMMARY_WORDS: dict[str, tuple[str, str]] = {
    "summary": ("Summary", "汇总"),
    "lines": ("lines", "行数"),
    "new": ("new decisions recorded", "新记录的决定"),
    "replayed": ("already recorded (replayed)", "已记录过(重放)"),
    "conflicts": ("conflicts", "冲突"),
    "invalid": ("invalid", "无效行"),
    "decisions": ("Decisions", "决定"),
    "kind": ("kind", "类型"),
    "status": ("status", "状态"),
    "new_column": ("new", "新记录"),
    "replayed_column": ("replayed", "重放"),
    "money": ("Money", "金额"),
    "total": ("total (approved decisions)", "合计(仅已批准的决定)"),
    "new_money": ("new (CNY)", "新记录(元)"),
    "replayed_money": ("replayed (CNY)", "重放(元)"),
    "pay_note": (
        "Pay from the new column only: replayed decisions were reported by the run that "
        "recorded them.",
        "只按「新记录」一列付款：重放的决定已由记录它们的那次运行报告过。",
    ),
}


def summary_word(name: str, headers: str) -> str:
    english, chinese = SUMMARY_WORDS[name]
    return chinese if headers == "zh" else english


def column_label(column: str, headers: str) -> str:
    """A column's heading: the machine name (``en``) or the clerk's label (``zh``)."""
    return COLUMN_LABELS.get(column, column) if headers == "zh" else column


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


def column_amount(result: Mapping[str, Any], column: str) -> Decimal | None:
    """The amount a result holds for one of :data:`MONEY_COLUMNS` (the declared field
    of whichever kind fills it), or ``None``."""
    for field in COLUMN_FIELDS[column]:
        value = stored_amount(result.get(field))
        if value is not None:
            return value
    return None


def _money_cells(result: Mapping[str, Any]) -> dict[str, str | None]:
    cells: dict[str, str | None] = {}
    for name in MONEY_COLUMNS:
        value = column_amount(result, name)
        cells[name] = fmt(value) if value is not None else None
    return cells


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
) -> dict[str, Any]:
    """One batch output row: a decision (SPEC §8 shape, with ``audit``), or a line without
    one (``status`` invalid or conflict, its ``error``, the line's ``request_id`` and
    ``kind`` as far as it could be read, and for a conflict the recorded ``audit``).

    ``request`` (the line's request) supplies the ``order_id`` when the result has none,
    and the ``merchant_id``/``campaign``.
    """
    request = request or {}
    labels = {name: _label(request.get(name)) for name in ("merchant_id", "campaign")}
    if decision is None:
        row: dict[str, Any] = dict.fromkeys(BATCH_COLUMNS)
        row.update(
            line=line,
            status=status,
            error=error,
            reason_codes=[],
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
    return {
        "line": line,
        "request_id": decision.get("request_id"),
        "kind": decision.get("kind"),
        "status": decision.get("status"),
        "replayed": bool(decision.get("replayed")),
        **labels,
        "reason_codes": [r["code"] for r in decision.get("reasons", ())],
        "error": None,
        "order_id": order_id_of(request, result),
        **_money_cells(result),
        "audit_seq": recorded.get("seq"),
        "audit_hash": recorded.get("hash"),
    }


def _label(value: Any) -> str | None:
    """A line's ``merchant_id``/``campaign`` for its row: text fit for a file, else nothing
    (an invalid line's label may be a lone surrogate or hold U+0000)."""
    return value if isinstance(value, str) and text_problem(value) is None else None


def record_row(record: Any, voided_by: int | None = None) -> dict[str, Any]:
    """The pricecalc-level flat view of an :class:`audit.protocol.Record`.

    ``voided_by`` is the seq of the approved void that withdrew the record, if any
    (:func:`pricecalc.books.selection.voids_of`); a void's own row names what it ``voids``.
    """
    recorded = records.read(record)
    result = recorded.result
    settlement = result.get("settlement")
    return {
        "seq": recorded.seq,
        "recorded_at": recorded.recorded_at,
        "recorded_at_beijing": beijing_text(recorded.recorded_at),
        "kind": recorded.kind if recorded.is_decision else None,
        "request_id": recorded.key,
        "status": recorded.status if recorded.is_decision else None,
        "reason_codes": recorded.reason_codes,
        "order_id": recorded.order_id,
        "merchant_id": _label(recorded.merchant_id),
        "campaign": _label(recorded.campaign),
        "operator": recorded.operator,
        **_money_cells(result),
        "settlement": settlement if isinstance(settlement, str) else None,
        "voided_by": voided_by,
        "voids": recorded.withdraws,
        "rule_set": recorded.rule_set,
        "rule_version": recorded.rule_version,
        "hash": recorded.hash,
    }


def beijing_day(recorded_at: str) -> date:
    """The Beijing calendar date of a ``recorded_at`` UTC time (the campaign's day)."""
    moment = datetime.fromisoformat(recorded_at.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=BEIJING)
    return moment.astimezone(BEIJING).date()


BEIJING_FORMAT = "%Y-%m-%d %H:%M:%S"


def beijing_text(recorded_at: Any) -> str | None:
    """``2026-11-11T02:00:00.123456Z`` → ``2026-11-11 10:00:00``: a recorded (UTC) time as
    Beijing wall-clock time to the second, for people; ``None`` when it is no time."""
    try:
        moment = datetime.fromisoformat(str(recorded_at).replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(BEIJING).strftime(BEIJING_FORMAT)


@attrs.define
class Totals:
    """Money totals of approved decisions, exact."""

    sums: dict[str, Decimal] = attrs.field(factory=lambda: dict.fromkeys(MONEY_COLUMNS, ZERO))

    def add(self, result: Mapping[str, Any]) -> None:
        for name in MONEY_COLUMNS:
            value = column_amount(result, name)
            if value is not None:
                self.sums[name] += value

    def formatted(self) -> dict[str, str]:
        return {name: fmt(value) for name, value in self.sums.items()}


@attrs.define
class Summary:
    """What a batch did, new and replayed apart (SPEC §8): decisions by kind and status,
    money totals of approved decisions, invalid lines and idempotency conflicts."""

    #: (kind, status) → [new, replayed]
    counts: dict[tuple[str, str], list[int]] = attrs.field(factory=dict)
    totals: Totals = attrs.field(factory=Totals)  # new decisions
    replayed_totals: Totals = attrs.field(factory=Totals)
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
            (self.replayed_totals if replayed else self.totals).add(decision.get("result") or {})

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
    totals: Totals = attrs.field(factory=Totals)


@attrs.define
class Stats:
    """Counts and approved totals per Beijing day and kind (``audit stats``)."""

    rows: dict[tuple[date, str], StatsRow] = attrs.field(factory=dict)

    @classmethod
    def of(cls, records: Iterable[Any]) -> Stats:
        stats = cls()
        for record in records:
            stats.add(record)
        return stats

    def add(self, record: Any) -> None:
        recorded = records.read(record)
        key = (beijing_day(recorded.recorded_at), recorded.kind)
        row = self.rows.setdefault(key, StatsRow())
        if recorded.approved:
            row.approved += 1
            row.totals.add(recorded.result)
        else:
            row.rejected += 1

    def to_list(self) -> list[dict[str, Any]]:
        return [
            {
                "day": day.isoformat(),
                "kind": kind,
                "approved": row.approved,
                "rejected": row.rejected,
                **row.totals.formatted(),
            }
            for (day, kind), row in sorted(self.rows.items())
        ]
