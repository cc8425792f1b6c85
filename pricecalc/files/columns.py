"""The columns of every flat output pricecalc writes, and their labels.

* :func:`money_columns` and :class:`RowLayout` — the money columns of every flat output:
  one per money figure the installed kinds declare, by its one name and labels (SPEC §10
  "one name, one figure": ``price_protection_refunds`` 价保退款 …), a plugin's kind's too;
* :data:`COLUMN_LABELS` and :data:`COLUMN_WIDTHS` — the one table of column headings a
  Chinese finance clerk reads without a glossary (请求号 for ``request_id``; the money
  columns' labels are the declarations') and of spreadsheet column widths, for every file
  pricecalc writes; the machine names stay the JSON keys and the ``--headers en`` row;
* :func:`heading_field` / :func:`field_heading` — the input fields' Chinese names
  (:data:`pricecalc.headings.INPUT_LABELS`, re-exported here), read both ways: a sheet's
  heading and a message naming the field use the same word (原价);
* the round trip's result columns (:func:`round_trip_column`), skipped when a batch
  output is fed back.

What goes in the rows is :mod:`pricecalc.files.rows`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import attrs

from pricecalc.builtin import builtin_declarations
from pricecalc.headings import FIXED_COLUMN_LABELS, INPUT_LABELS
from pricecalc.money import fmt, stored_amount
from pricecalc.registry import SETTLEMENT_LABELS, Declarations


@attrs.frozen
class MoneyColumn:
    """A money column of the flat outputs: one declared figure (SPEC §10 "one name, one
    figure": ``name``, Chinese ``zh`` and English ``en``), filled for each kind that
    declares it from that kind's result field (``fields``: kind → field)."""

    name: str
    zh: str
    en: str
    fields: Mapping[str, str]

    def label(self, lang: str = "en") -> str:
        return self.zh if lang == "zh" else self.en

    def amount(self, kind: Any, result: Mapping[str, Any]) -> Decimal | None:
        """What a result of ``kind`` holds for this figure (``None``: the kind does not
        declare it, or the value is not an amount in fen)."""
        field = self.fields.get(kind) if isinstance(kind, str) else None
        return None if field is None else stored_amount(result.get(field))


def money_columns(declarations: Declarations | None = None) -> tuple[MoneyColumn, ...]:
    """Every declared money figure of the installed kinds (default: the core's own), one
    column each, in declaration order; two kinds declaring one name share its column."""
    books = declarations if declarations is not None else builtin_declarations()
    found: dict[str, MoneyColumn] = {}
    for kind, figure in books.all_figures():
        known = found.get(figure.name)
        fields = {**(known.fields if known is not None else {}), kind: figure.field}
        found[figure.name] = MoneyColumn(figure.name, figure.zh, figure.en, fields)
    return tuple(found.values())


#: The core's money columns (:func:`money_columns` of the built-in kinds).
BUILTIN_MONEY: tuple[MoneyColumn, ...] = money_columns()
MONEY_COLUMNS: tuple[str, ...] = tuple(c.name for c in BUILTIN_MONEY)

#: Columns of a batch output row in CSV / Excel (JSON Lines output is the SPEC §8 shape),
#: the money columns (:func:`money_columns`) where ``*`` stands.
_BATCH_LAYOUT: tuple[str, ...] = (
    "line",
    "request_id",
    "kind",
    "status",
    "replayed",
    "merchant_id",
    "campaign",
    "reason_codes",
    "reason_notes",
    "error",
    "order_id",
    "*",
    "result",
    "audit_seq",
    "audit_hash",
)

#: Columns of the flat view of an audit record (``audit show`` / ``audit export``).
_RECORD_LAYOUT: tuple[str, ...] = (
    "seq",
    "recorded_at",
    "recorded_at_beijing",
    "kind",
    "request_id",
    "status",
    "reason_codes",
    "reason_notes",
    "order_id",
    "merchant_id",
    "campaign",
    "operator",
    "*",
    "result",
    "settlement",
    "voided_by",
    "voids",
    "rule_set",
    "rule_version",
    "hash",
)


def _laid_out(layout: tuple[str, ...], money: Iterable[MoneyColumn]) -> tuple[str, ...]:
    names = tuple(c.name for c in money)
    return tuple(n for name in layout for n in (names if name == "*" else (name,)))


def batch_columns(money: Iterable[MoneyColumn] = BUILTIN_MONEY) -> tuple[str, ...]:
    """The columns of a CSV/Excel batch output with these money columns."""
    return _laid_out(_BATCH_LAYOUT, money)


def record_columns(money: Iterable[MoneyColumn] = BUILTIN_MONEY) -> tuple[str, ...]:
    """The columns of ``audit export`` (and ``audit show``) with these money columns."""
    return _laid_out(_RECORD_LAYOUT, money)


BATCH_COLUMNS: tuple[str, ...] = batch_columns()
RECORD_COLUMNS: tuple[str, ...] = record_columns()

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

#: Column headings for people (``--headers zh``, the Excel default), one per machine name:
#: the fixed columns' (:data:`pricecalc.headings.FIXED_COLUMN_LABELS`), then the money
#: columns' and the settlement columns' declared labels.
COLUMN_LABELS: dict[str, str] = {
    **FIXED_COLUMN_LABELS,
    **{c.name: c.zh for c in BUILTIN_MONEY},
    **{name: zh for name, (zh, _) in SETTLEMENT_LABELS.items()},
}
_ENVELOPE = ("request_id", "merchant_id", "campaign", "kind", "order_id")
#: Labels read back as the fields they name (the input's envelope fields, order_id and
#: the input fields above).
_FIELD_OF_LABEL: dict[str, str] = {
    **{COLUMN_LABELS[name]: name for name in _ENVELOPE},
    **{label: name for name, label in INPUT_LABELS.items()},
}
#: The result columns of a CSV/xlsx batch output written beside the input's own columns
#: (a sheet's round trip, issue 21): the key the decision is recorded under in its own
#: column, then what was decided (money columns where ``*`` stands). Fed back, each is
#: recognised (by its name or its label, and every column from the key column on) and
#: skipped, so editing an input cell and running again records exactly that row.
_ROUND_TRIP_LAYOUT: tuple[str, ...] = (
    "content_key",
    "status",
    "replayed",
    "reason_codes",
    "reason_notes",
    "error",
    "*",
    "result",
    "audit_seq",
    "audit_hash",
)


def round_trip_columns(money: Iterable[MoneyColumn] = BUILTIN_MONEY) -> tuple[str, ...]:
    """The result columns of a sheet's round trip with these money columns."""
    return _laid_out(_ROUND_TRIP_LAYOUT, money)


ROUND_TRIP_COLUMNS: tuple[str, ...] = round_trip_columns()
#: Columns of a batch output that pricecalc writes and never reads back as input.
_OUTPUT_ONLY: frozenset[str] = frozenset({"line", *ROUND_TRIP_COLUMNS})
_OUTPUT_LABELS: frozenset[str] = frozenset(
    COLUMN_LABELS[name] for name in ("line", *ROUND_TRIP_COLUMNS) if name in COLUMN_LABELS
)


def field_heading(name: str) -> str | None:
    """The Chinese heading of a field or column (原价 for ``list_price``), the money
    columns' included (价保退款 for ``price_protection_refunds``), or None
    (:func:`pricecalc.headings.field_heading` without the money columns)."""
    return COLUMN_LABELS.get(name) or INPUT_LABELS.get(name)


def results_start(headings: Iterable[str]) -> int | None:
    """Where pricecalc's result columns begin in a sheet's header: the index of its key
    column (``content_key`` or 记录键), or ``None`` (no output of pricecalc's). Every
    column from there on is pricecalc's — a money column named like an input field
    (``platform_subsidy``) included."""
    for index, heading in enumerate(headings):
        if heading.strip() in ("content_key", COLUMN_LABELS["content_key"]):
            return index
    return None


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
    return [f"{label} ({name})" for label, name in _FIELD_OF_LABEL.items() if name in _ENVELOPE]


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
    "reason_notes": 40,
    "error": 60,
    "order_id": 16,
    **dict.fromkeys(MONEY_COLUMNS, 14),
    "result": 40,
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


@attrs.frozen
class RowLayout:
    """What the flat rows of one output need from the installed kinds (SPEC §10): their
    money columns (:func:`money_columns`), their reason codes' explanations, and the
    language those are shown in (``zh`` with Chinese headings, else ``en``)."""

    declarations: Declarations
    money: tuple[MoneyColumn, ...]
    lang: str = "en"

    @classmethod
    def of(cls, declarations: Declarations | None = None, lang: str = "en") -> RowLayout:
        books = declarations if declarations is not None else builtin_declarations()
        return cls(books, money_columns(books), lang)

    @property
    def money_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.money)

    def batch_columns(self) -> tuple[str, ...]:
        return batch_columns(self.money)

    def record_columns(self) -> tuple[str, ...]:
        return record_columns(self.money)

    def round_trip_columns(self) -> tuple[str, ...]:
        return round_trip_columns(self.money)

    def labels(self) -> dict[str, str]:
        """:data:`COLUMN_LABELS` with every money column's declared Chinese label."""
        return {**COLUMN_LABELS, **{c.name: c.zh for c in self.money}}

    def amount_columns(self) -> frozenset[str]:
        return frozenset({*AMOUNT_COLUMNS, *self.money_names})

    def money_cells(self, kind: Any, result: Mapping[str, Any], counted: bool) -> dict[str, Any]:
        """The money columns of one row: the amounts of a ``counted`` decision (new or
        recorded, approved, not withdrawn), else every one empty — so a plain SUM of a
        column is the total of what is paid (SPEC §10: sheets that add up)."""
        cells: dict[str, str | None] = {}
        for column in self.money:
            value = column.amount(kind, result) if counted else None
            cells[column.name] = fmt(value) if value is not None else None
        return cells

    def notes(self, kind: Any, reasons: Iterable[Any]) -> list[str]:
        """Each reason code's one-line explanation as its kind declares it (in
        :attr:`lang`), else the recorded message."""
        out = []
        for code, message in reasons:
            found = self.declarations.explain(code, kind if isinstance(kind, str) else None)
            out.append(found.explain(self.lang) if found is not None else str(message))
        return out


#: The core's kinds, explained in English.
BUILTIN_LAYOUT = RowLayout.of()
