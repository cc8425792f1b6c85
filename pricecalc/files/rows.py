"""Flat rows and totals for people: what the command line prints, exports and sums.

Nothing here reads or writes a file. The command line (:mod:`pricecalc.cli`) and the
batch readers and writers (:mod:`pricecalc.files.reading`,
:mod:`pricecalc.files.writing`) use these pieces:

* :func:`money_columns` and :class:`RowLayout` — the money columns of every flat output:
  one per money figure the installed kinds declare, by its one name and labels (SPEC §10
  "one name, one figure": ``price_protection_refunds`` 价保退款 …), a plugin's kind's too;
* :func:`decision_row` — one batch output row (CSV/XLSX) for a decided, invalid or
  conflicting line;
* :func:`record_row` — the pricecalc-level flat view of one audit record (``audit show``
  and ``audit export``);
* :class:`Summary` — decisions by kind and status and the money totals of a batch, new
  and replayed apart (SPEC §8: nobody pays from an output file twice);
* :class:`Stats` — counts and totals per Beijing day and kind (``audit stats``);
* :data:`COLUMN_LABELS` and :data:`COLUMN_WIDTHS` — the one table of column headings a
  Chinese finance clerk reads without a glossary (请求号 for ``request_id``; the money
  columns' labels are the declarations') and of spreadsheet column widths, for every file
  pricecalc writes; the machine names stay the JSON keys and the ``--headers en`` row.

Money stays exact: amounts are read from the decisions' two-decimal strings with
:func:`pricecalc.money.to_decimal`, summed as ``Decimal`` and printed with
:func:`pricecalc.money.fmt` (two decimals). **Sheets add up** (SPEC §10): a row's money
columns hold what is summed — a new, approved decision's amounts in a batch output, an
approved, not voided decision's in an export — and stay empty otherwise, so a plain SUM
of a column equals the summary's (or ``audit stats``') figure; a rejected split still
reports its amounts (SPEC §2) in the non-summed ``result`` column.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

import attrs

from pricecalc import records
from pricecalc.beijing import beijing_day, beijing_text
from pricecalc.builtin import builtin_declarations
from pricecalc.money import ZERO, fmt, stored_amount
from pricecalc.records import order_id_of
from pricecalc.registry import SETTLEMENT_LABELS, Declarations
from pricecalc.serialize import sorted_json, text_problem


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
    "reason_notes": "原因说明",
    "error": "错误",
    "order_id": "订单号",
    **{c.name: c.zh for c in BUILTIN_MONEY},
    "result": "结果(JSON，不计入合计)",
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
    **{name: zh for name, (zh, _) in SETTLEMENT_LABELS.items()},
    "reverses": "冲销的记录号",
    "content_key": "记录键",
}
#: The built-in kinds' input fields by their SPEC §2–§5 Chinese names (issue 21 point 4):
#: a sheet's heading and a message naming the field use the same word (原价). Read both
#: ways with :data:`COLUMN_LABELS` (:func:`heading_field`, :func:`field_heading`), kept
#: apart from it so that an output's headings are unchanged: a round trip repeats the
#: input's columns as the clerk wrote them (``list_price`` stays ``list_price``).
INPUT_LABELS: dict[str, str] = {
    "input": "输入",
    "list_price": "原价",
    "registration_price": "报名价",
    "subsidy_price": "补贴价",
    "platform_subsidy": "平台补贴",
    "floor_price": "最低售卖价",
    "cost_price": "成本价",
    "lowest_price_30d": "近30日最低成交价",
    "other_platform_prices": "其他平台价格",
    "platform": "平台",
    "price": "价格",
    "quantity": "数量",
    "product_id": "商品号",
    "category": "类目",
    "forwarded": "已转售",
    "lines": "明细",
    "line_id": "明细号",
    "paid_amount": "实付金额",
    "unit_price": "单价",
    "merchant_refused": "商家拒绝",
    "confirmed": "已确认假货",
    "already_refunded": "已退款",
    "event": "活动期",
    "start": "开始时间",
    "end": "结束时间",
    "offers": "优惠",
    "type": "优惠类型",
    "threshold": "门槛",
    "amount": "金额",
    "tiers": "档位",
    "paid_at": "付款时间",
    "paid_merchant_discount": "已付商家优惠",
    "order_status": "订单状态",
    "claim_days": "价保天数",
    "claimed_at": "申请时间",
    "shipped_at": "发货时间",
    "merchant": "商家资质",
    "product": "商品",
    "dsr": "店铺评分",
    "effective_reviews": "有效评价数",
    "favorable_rate": "好评率",
    "closures": "关店次数",
    "date": "日期",
    "shipping_24h_rate": "24小时发货率",
    "quality_return_rate": "品质退货率",
    "cs_satisfaction": "客服满意度",
    "target": "作废对象",
    "seq": "记录号",
    "reason": "原因",
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
    """The Chinese heading of a field or column (原价 for ``list_price``), or None."""
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
