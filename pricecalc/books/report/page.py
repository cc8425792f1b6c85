"""The campaign report as one self-contained HTML page (Jinja2, autoescaped, inline SVG).

:func:`report_tables` turns :class:`~pricecalc.books.report.aggregate.CampaignFigures` into the
page's tables (Chinese label first, the machine name or English beside it), each with
its CSV as a ``data:text/csv`` link (UTF-8 with a BOM, so Excel reads the Chinese; text
cells defused against formula injection as ``audit export`` does). :func:`render_report`
fills ``templates/report.html.j2``. The page loads nothing: no script at all, no font,
no stylesheet, no image but inline SVG, so it opens offline and prints as it shows.
"""

from __future__ import annotations

import csv
import io
import re
import shlex
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import attrs
import jinja2
from markupsafe import Markup

from audit.export import escape_csv_cell
from pricecalc.books.report.aggregate import (
    NET_SUBSIDY_OUTLAY,
    NO_CAMPAIGN,
    SUBSIDY_FIGURES,
    CampaignFigures,
    KeyFigures,
)
from pricecalc.books.report.charts import bar_chart, stacked_bars
from pricecalc.books.settlement import DEDUCT_FROM_PAYOUT, MERCHANT_PAYS, SUBSIDY_CLAWBACK
from pricecalc.files.columns import COLUMN_LABELS
from pricecalc.money import ZERO, fmt
from pricecalc.registry import SETTLEMENT

STATUS_LABELS: dict[str, str] = {"approved": "已批准", "rejected": "已驳回"}
#: Headings: Chinese first, English beside it.
WORDS: dict[str, str] = {
    "kind": "类型 kind",
    "status": "状态 status",
    "decisions": "决定数 decisions",
    "code": "原因代码 reason code",
    "rejected": "被驳回的决定 rejected decisions",
    "explain_zh": "说明(中文)",
    "explain_en": "explanation (English)",
    "figure": "指标 figure",
    "category": "类目 category",
    "day": "日期(北京时间) Beijing day",
    "standard": "赔付标准 winning standard",
    "compensation": "赔付金额 compensation",
    "clawback": "转寄追回补贴 subsidy clawback",
    "rank": "排名 rank",
    "merchant": f"{COLUMN_LABELS['merchant_id']} merchant",
    DEDUCT_FROM_PAYOUT: "从货款扣除 deduct from payout",
    MERCHANT_PAYS: "商家直接赔付 merchant pays",
    SUBSIDY_CLAWBACK: "转寄追回补贴 subsidy clawback",
    NET_SUBSIDY_OUTLAY[0]: f"{NET_SUBSIDY_OUTLAY[1]} {NET_SUBSIDY_OUTLAY[2]}",
    "deductions": "扣款合计 deductions",
    "command": "对账单命令 statement command",
}
#: How a settlement column reads after a figure's label: (Chinese, English).
SERIES_WORDS: dict[str, tuple[str, str]] = {
    DEDUCT_FROM_PAYOUT: ("从货款扣除", "deducted"),
    MERCHANT_PAYS: ("商家直付", "merchant pays"),
}


def split_label(figures: CampaignFigures, field: str) -> str:
    """A subsidy split column's heading: its declared figure's labels."""
    for _, figure in figures.declarations.all_figures():
        if figure.field == field and figure.name in SUBSIDY_FIGURES:
            return f"{figure.zh} {figure.en}"
    return field


def split_name(figures: CampaignFigures, field: str) -> str:
    """A subsidy split column's machine name: its figure's SPEC §10 name."""
    for _, figure in figures.declarations.all_figures():
        if figure.field == field and figure.name in SUBSIDY_FIGURES:
            return figure.name
    return field


def series_name(figures: CampaignFigures, kind: str, column: str) -> str:
    """A "refunds and payouts by day" series' machine name: the settled figure's SPEC §10
    name and the column (``price_protection_refunds.deduct_from_payout``)."""
    settled = [f for f in figures.declarations.figures_of(kind) if f.feeds in (SETTLEMENT, column)]
    return f"{settled[0].name if settled else kind}.{column}"


def series_label(figures: CampaignFigures, kind: str, column: str) -> str:
    """A "refunds and payouts by day" series' heading: the figure the kind settles, by
    its declared labels, and the column (``价保退款·从货款扣除 price protection refunds
    deducted``)."""
    settled = [f for f in figures.declarations.figures_of(kind) if f.feeds in (SETTLEMENT, column)]
    zh, en = SERIES_WORDS[column]
    if not settled:
        return f"{kind}·{zh} {en}"
    return f"{settled[0].zh}·{zh} {settled[0].en} {en}"


def money_text(value: Decimal) -> str:
    """Two decimals with thousands separators, for people (the CSV keeps plain 1234.50)."""
    return f"{value:,.2f}"


@attrs.frozen
class Cell:
    text: str
    value: str | None = None  # machine-readable (data-value): plain two-decimal text
    numeric: bool = False


def _money(value: Decimal) -> Cell:
    return Cell(money_text(value), fmt(value), numeric=True)


def _count(value: int) -> Cell:
    return Cell(f"{value:,}", str(value), numeric=True)


@attrs.frozen
class Table:
    """One table of the page and its CSV download."""

    id: str
    title: str
    columns: tuple[tuple[str, str], ...]  # (machine name, heading)
    rows: tuple[tuple[Cell, ...], ...]
    chart: Markup = attrs.field(factory=Markup)
    note: str = ""

    def csv_text(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow([heading for _, heading in self.columns])
        for row in self.rows:
            writer.writerow(
                [c.value if c.value is not None else escape_csv_cell(c.text) for c in row]
            )
        return out.getvalue()

    def csv_href(self) -> str:
        return "data:text/csv;charset=utf-8," + quote("\ufeff" + self.csv_text())


@attrs.frozen
class ReportHeader:
    """What the page says about itself: the store, the period and filters, and the tree
    (size, root, head) — with the signed checkpoint's note when there is one."""

    store: str
    size: int
    root: str
    head_seq: int
    head_hash: str
    since: str | None = None
    until: str | None = None
    merchant: str | None = None
    campaign: str | None = None
    checkpoint: str | None = None
    checkpoint_source: str | None = None
    checkpoint_file: str | None = None
    generated_at: str | None = None


_UNSAFE_FILE = re.compile(r"[^\w.-]", re.UNICODE)


def statement_command(header: ReportHeader, merchant: str, since: str, until: str) -> str:
    """The command line that writes ``merchant``'s statement for the report's period,
    every argument shell-quoted (a merchant id is anybody's text)."""
    name = _UNSAFE_FILE.sub("_", merchant)[:80] or "merchant"
    args = ["pricecalc", "--audit", header.store, "statement", "--merchant", merchant,
            "--since", since, "--until", until]  # fmt: skip
    if header.checkpoint_file is not None:
        args += ["--checkpoint", header.checkpoint_file]
    args += ["--output", f"statement-{name}.xlsx"]
    return shlex.join(args)


def key_figure_names(figures: CampaignFigures) -> list[tuple[str, str]]:
    """The key figures, in the page's order: (name, label) — every figure the installed
    kinds declare, by its SPEC §10 name and labels, then the settlement columns the
    figures feed, the platform's net subsidy outlay and the deductions."""
    out: dict[str, str] = {}
    for _, figure in figures.declarations.all_figures():
        out.setdefault(figure.name, f"{figure.zh} {figure.en}")
    for name in (DEDUCT_FROM_PAYOUT, MERCHANT_PAYS):
        out.setdefault(name, WORDS[name])
    out.setdefault(NET_SUBSIDY_OUTLAY[0], WORDS[NET_SUBSIDY_OUTLAY[0]])
    out.setdefault("deductions", WORDS["deductions"])
    return list(out.items())


def key_figure(figures: CampaignFigures, part: KeyFigures, name: str) -> Decimal:
    """One key figure of ``part`` (the whole report or one campaign)."""
    if name in (DEDUCT_FROM_PAYOUT, MERCHANT_PAYS):
        return part.settlement.sums[name]
    if name == NET_SUBSIDY_OUTLAY[0]:
        return part.net_subsidy_outlay(figures.declarations)
    if name == "deductions":
        return part.settlement.deductions
    return part.figure(name)


def headline(figures: CampaignFigures) -> list[tuple[str, str, Cell]]:
    """The page's key figures: (id, label, cell); ids are ``data-figure`` in the page —
    SPEC §10's names."""
    whole = figures.key_figures()
    out: list[tuple[str, str, Cell]] = [
        ("decisions", WORDS["decisions"], _count(figures.records)),
    ]
    for name, label in key_figure_names(figures):
        out.append((name, label, _money(key_figure(figures, whole, name))))
    return out


def campaign_table(figures: CampaignFigures) -> Table | None:
    """The key figures per campaign (SPEC §10), when the report holds more than one: a
    row per figure, a column per campaign (:data:`NO_CAMPAIGN` last)."""
    if len(figures.campaigns) < 2:
        return None
    names = sorted(c for c in figures.campaigns if c != NO_CAMPAIGN)
    if NO_CAMPAIGN in figures.campaigns:
        names.append(NO_CAMPAIGN)
    parts = [figures.campaigns[c] for c in names]
    rows: list[tuple[Cell, ...]] = [
        (Cell(WORDS["decisions"], "decisions"), *(_count(p.records) for p in parts))
    ]
    for name, label in key_figure_names(figures):
        rows.append((Cell(label, name), *(_money(key_figure(figures, p, name)) for p in parts)))
    return Table(
        "campaigns", "要点(按活动) Key figures by campaign",
        (("figure", WORDS["figure"]), *((c, c) for c in names)),
        tuple(rows),
        note="作废冲销记在被作废决定的活动下 a void's reversal counts in the withdrawn "
        "decision's campaign; 各活动之和等于上方要点 the campaigns add up to the key figures.",
    )  # fmt: skip


def _stacked(
    table_rows: Sequence[tuple[str, Mapping[Any, Decimal]]],
    keys: Sequence[Any],
    names: Sequence[str],
    title: str,
) -> Markup:
    return stacked_bars(
        [label for label, _ in table_rows],
        names,
        [[row[k] for k in keys] for _, row in table_rows],
        title=title,
    )


def _split_table(
    figures: CampaignFigures,
    table_id: str,
    title: tuple[str, str],
    first: tuple[str, str],
    table_rows: Sequence[tuple[str, Mapping[str, Decimal]]],
) -> Table:
    """Who funds the subsidy by ``first`` (a category, a day): one column per split figure
    the kinds declare, and its stacked bars titled in Chinese (``title``: zh, en)."""
    fields = figures.split_fields
    names = [split_label(figures, name) for name in fields]
    ids = [split_name(figures, name) for name in fields]
    return Table(
        table_id,
        f"{title[0]} {title[1]}",
        (first, *zip(ids, names, strict=True)),
        tuple((Cell(label), *(_money(row[n]) for n in fields)) for label, row in table_rows),
        chart=_stacked(table_rows, fields, names, title[0]),
    )


def _explained(figures: CampaignFigures, code: str) -> tuple[Cell, Cell]:
    """A reason code's one-line explanation, Chinese and English, from its rule's
    declaration (:meth:`CampaignFigures.explain`)."""
    found = figures.explain(code)
    if found is None:
        return Cell("（规则未说明）"), Cell("(no rule installed explains this code)")
    return Cell(found.explain("zh")), Cell(found.explain("en"))


def report_tables(figures: CampaignFigures, header: ReportHeader) -> list[Table]:
    """Every table of the page, in the page's order (the key figures per campaign first,
    when the report holds several campaigns)."""
    tables: list[Table] = []
    by_campaign = campaign_table(figures)
    if by_campaign is not None:
        tables.append(by_campaign)
    counts = sorted(figures.counts.items())
    tables.append(Table(
        "counts", "决定数(按类型和状态) Decisions by kind and status",
        (("kind", WORDS["kind"]), ("status", WORDS["status"]), ("decisions", WORDS["decisions"])),
        tuple(
            (Cell(figures.declarations.kind_label(kind)),
             Cell(f"{STATUS_LABELS.get(status, '')} {status}".strip()),
             _count(n))
            for (kind, status), n in counts
        ),
    ))  # fmt: skip
    codes = sorted(figures.rejections.items(), key=lambda item: (-item[1], item[0]))
    tables.append(Table(
        "rejections", "驳回原因 Rejections by reason code",
        (("code", WORDS["code"]), ("rejected", WORDS["rejected"]),
         ("explain_zh", WORDS["explain_zh"]), ("explain_en", WORDS["explain_en"])),
        tuple((Cell(code), _count(n), *_explained(figures, code)) for code, n in codes),
        chart=bar_chart(codes, title="驳回原因 Rejections by reason code"),
        note="一个决定可有多个原因 A decision may carry several codes: each is counted once.",
    ))  # fmt: skip
    by_category = sorted(figures.split_by_category.items())
    tables.append(_split_table(
        figures, "split-by-category", ("补贴分摊(按类目)", "Subsidy split by category"),
        ("category", WORDS["category"]), by_category,
    ))  # fmt: skip
    by_day = [(day.isoformat(), row) for day, row in sorted(figures.split_by_day.items())]
    tables.append(_split_table(
        figures, "split-by-day", ("补贴分摊(按日)", "Subsidy split by Beijing day"),
        ("day", WORDS["day"]), by_day,
    ))  # fmt: skip
    settled = [(day.isoformat(), row) for day, row in sorted(figures.settled_by_day.items())]
    series = figures.series
    series_names = [series_label(figures, k, c) for k, c in series]
    tables.append(Table(
        "settled-by-day", "价保退款与假一赔十赔付(按日、按结算方式) Refunds and payouts by day",
        (("day", WORDS["day"]),
         *zip((series_name(figures, k, c) for k, c in series), series_names, strict=True)),
        tuple((Cell(d), *(_money(row.get(s, ZERO)) for s in series)) for d, row in settled),
        chart=_stacked(settled, series, series_names, "价保退款与假一赔十赔付(按日)"),
    ))  # fmt: skip
    standards = sorted(figures.compensation.items())
    tables.append(Table(
        "compensation-by-standard", "赔付(按胜出标准) Compensation by winning standard",
        (("standard", WORDS["standard"]), ("compensation", WORDS["compensation"])),
        tuple((Cell(figures.declarations.by_label(s)), _money(v))
              for s, v in standards),
        chart=bar_chart([(s, v) for s, v in standards], title="赔付(按胜出标准)"),
    ))  # fmt: skip
    clawbacks = sorted(figures.clawback_by_category.items())
    tables.append(Table(
        "clawback-by-category", "禁止转寄追回(按类目) Forwarding clawbacks by category",
        (("category", WORDS["category"]), ("clawback", WORDS["clawback"])),
        tuple((Cell(c), _money(v)) for c, v in clawbacks),
        chart=bar_chart(clawbacks, title="禁止转寄追回(按类目)"),
    ))  # fmt: skip
    since = header.since or (figures.first_day.isoformat() if figures.first_day else "")
    until = header.until or (figures.last_day.isoformat() if figures.last_day else "")
    top = figures.top_merchants()
    tables.append(Table(
        "top-merchants", f"扣款最多的商家(前{len(top)}名) Top merchants by deductions",
        (("rank", WORDS["rank"]), ("merchant_id", WORDS["merchant"]),
         (DEDUCT_FROM_PAYOUT, WORDS[DEDUCT_FROM_PAYOUT]),
         (SUBSIDY_CLAWBACK, WORDS[SUBSIDY_CLAWBACK]), ("deductions", WORDS["deductions"]),
         (MERCHANT_PAYS, WORDS[MERCHANT_PAYS]), ("command", WORDS["command"])),
        tuple(
            (_count(rank), Cell(merchant), _money(t.sums[DEDUCT_FROM_PAYOUT]),
             _money(t.sums[SUBSIDY_CLAWBACK]), _money(t.deductions),
             _money(t.sums[MERCHANT_PAYS]),
             Cell(statement_command(header, merchant, since, until)))
            for rank, (merchant, t) in enumerate(top, start=1)
        ),
        note=(
            "扣款 = 从货款扣除 + 追回补贴 deductions = deduct from payout + subsidy clawback; "
            "未标明商家的决定 decisions without a merchant_id: "
            f"{money_text(figures.no_merchant.deductions)}"
        ),
    ))  # fmt: skip
    return tables


def figure_tables(figures: CampaignFigures) -> list[Table]:
    """One table per kind in the report that declares money figures (a plugin's kind
    too): each figure a column, by its declared labels, summed over the report."""
    tables: list[Table] = []
    present = {kind for kind, _ in figures.counts}
    for kind, declared in figures.declarations.figures.items():
        if not declared or kind not in present:
            continue
        tables.append(Table(
            f"figures-{kind}", f"{figures.declarations.kind_label(kind)} 金额合计 Money figures",
            tuple((f.name, f"{f.zh} {f.en}") for f in declared),
            ((*(_money(figures.figure_total(kind, f.name)) for f in declared),),),
            note="已批准、未作废的决定 approved decisions, voids reversed",
        ))  # fmt: skip
    return tables


TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("pricecalc.books.report", "templates"),
    autoescape=True,  # every value, a merchant id above all, is text from somebody else
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_report(figures: CampaignFigures, header: ReportHeader) -> str:
    """The whole page as text (UTF-8 when written)."""
    return TEMPLATES.get_template("report.html.j2").render(
        header=header,
        headline=headline(figures),
        tables=[*report_tables(figures, header), *figure_tables(figures)],
        figures=figures,
    )


__all__ = [
    "Cell",
    "ReportHeader",
    "Table",
    "campaign_table",
    "figure_tables",
    "headline",
    "key_figure_names",
    "render_report",
    "report_tables",
    "statement_command",
]
