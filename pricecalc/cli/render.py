"""Readable tables for the command line (rich). Data in, renderables out; no decisions.

Amounts are shown exactly as the decisions carry them (two-decimal strings) and totals
come from :mod:`pricecalc.files.rows` (exact ``Decimal`` sums printed with two decimals).
Tables use a plain box so that output pasted into an e-mail or a ticket stays readable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from pricecalc.beijing import beijing_text
from pricecalc.files.columns import BUILTIN_LAYOUT, RowLayout, field_heading
from pricecalc.files.rows import Summary
from pricecalc.i18n import N_, _, language

#: Friendlier labels for result fields (marked: Chinese under --lang zh); other fields
#: show their name with spaces, or their column heading in Chinese.
LABELS: dict[str, str] = {
    "merchant_subsidy": N_("merchant subsidy (per unit)"),
    "platform_subsidy": N_("platform subsidy (per unit)"),
    "total_subsidy": N_("total subsidy (per unit)"),
    "merchant_subsidy_rate": N_("merchant subsidy rate (of list price)"),
    "platform_subsidy_rate": N_("platform subsidy rate (of list price)"),
    "consumer_pays": N_("consumer pays (per unit)"),
    "merchant_receives": N_("merchant receives (per unit)"),
    "merchant_margin": N_("merchant margin (per unit)"),
    "max_platform_subsidy": N_("max platform subsidy (per unit)"),
}


def label(field: str, labels: Mapping[str, str] = LABELS) -> str:
    """A field for people: its label in ``labels`` (a marked English text), else its name
    with spaces; in Chinese the label's translation, else the field's column heading."""
    english = labels.get(field, field.replace("_", " "))
    if language() != "zh":
        return english
    if field in labels:
        return _(english)
    return field_heading(field) or english


def short_hash(value: Any, digits: int = 12) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= digits else f"{text[:digits]}…"


def cell(value: Any) -> str:
    """A value as table text: lists joined, objects as ``key value`` pairs, null as —."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {cell(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return "; ".join(cell(v) for v in value) if value else "—"
    return str(value)


def _table(*columns: str, title: str | None = None) -> Table:
    """A plain table whose long cells wrap (fold) rather than being cut off."""
    table = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def decision_header(decision: Mapping[str, Any]) -> Text:
    audit = decision.get("audit") or {}
    status = str(decision.get("status"))
    text = Text()
    text.append(f"{decision.get('kind')}: ")
    text.append(status.upper(), style="bold green" if status == "approved" else "bold red")
    if decision.get("request_id"):
        text.append("   " + _("request {request_id}").format(request_id=decision["request_id"]))
    if audit:
        text.append(
            "   "
            + _("audit record {seq} ({hash})").format(
                seq=audit.get("seq"), hash=short_hash(audit.get("hash"))
            )
        )
    return text


def reasons_view(
    decision: Mapping[str, Any], layout: RowLayout = BUILTIN_LAYOUT
) -> RenderableType | None:
    """Why a decision was rejected: each reason's code and recorded message; in Chinese
    also the code's explanation as its kind declares it (the recorded message is part of
    the hashed record and stays as it was written)."""
    reasons = decision.get("reasons") or []
    if not reasons:
        return None
    if language() != "zh":
        table = _table(_("reason"), _("why"), title=_("Rejected because"))
        for reason in reasons:
            table.add_row(str(reason.get("code")), str(reason.get("message")))
        return table
    table = _table(_("reason"), _("explanation"), _("as recorded"), title=_("Rejected because"))
    pairs = [(reason.get("code"), reason.get("message")) for reason in reasons]
    for (code, message), note in zip(pairs, layout.notes(decision.get("kind"), pairs), strict=True):
        table.add_row(str(code), note if note != str(message) else "—", str(message))
    return table


def decision_view(
    decision: Mapping[str, Any],
    line_columns: Sequence[str] | None = None,
    line_cell: Any = None,
    layout: RowLayout = BUILTIN_LAYOUT,
    labels: Mapping[str, str] = LABELS,
) -> RenderableType:
    """A decision for people: a header, its scalar results, its per-line results, reasons.

    ``line_columns`` picks and orders the columns of the result's ``lines`` table;
    ``line_cell(column, value)`` may format a line's cell.
    """
    result: Mapping[str, Any] = decision.get("result") or {}
    parts: list[RenderableType] = [decision_header(decision)]
    scalars = Table(box=None, show_header=False, padding=(0, 2))
    scalars.add_column(overflow="fold")
    scalars.add_column(justify="right", overflow="fold")
    for field, value in result.items():
        if field == "lines":
            continue
        scalars.add_row(label(field, labels), cell(value))
    parts.append(scalars)
    lines = result.get("lines")
    if isinstance(lines, list) and lines and all(isinstance(x, Mapping) for x in lines):
        columns = list(line_columns or _union_keys(lines))
        table = _table(*(label(c, labels) for c in columns), title=_("Per line"))
        for line in lines:
            table.add_row(
                *(
                    line_cell(c, line.get(c)) if line_cell is not None else cell(line.get(c))
                    for c in columns
                )
            )
        parts.append(table)
    reasons = reasons_view(decision, layout)
    if reasons is not None:
        parts.append(reasons)
    return Group(*parts)


def _union_keys(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    return list(keys)


def describe_offer(index: int, offer: Any) -> str:
    """``offers[1] direct_drop: sku A, unit price 90.00, at 2026-11-11T20:00``."""
    if not isinstance(offer, Mapping):
        return f"offers[{index}]"
    details = ", ".join(
        f"{label(str(k))} {cell(v)}" for k, v in offer.items() if k != "type" and v is not None
    )
    kind = offer.get("type", "offer")
    return f"offers[{index}] {kind}" + (f": {details}" if details else "")


def protection_view(
    decision: Mapping[str, Any],
    request: Mapping[str, Any],
    layout: RowLayout = BUILTIN_LAYOUT,
    labels: Mapping[str, str] = LABELS,
) -> RenderableType:
    """A 价保 decision with, per line, which offers gave the lowest price and when."""
    raw_input = request.get("input")
    offers = raw_input.get("offers") if isinstance(raw_input, Mapping) else None
    offers = offers if isinstance(offers, list) else []

    def line_cell(column: str, value: Any) -> str:
        if column == "lowest_offers":
            if not value:
                return _("— (no lower price after payment)")
            return "\n".join(
                describe_offer(ref.get("index", -1), _offer_at(offers, ref.get("index")))
                for ref in value
                if isinstance(ref, Mapping)
            )
        return cell(value)

    return decision_view(
        decision,
        line_columns=(
            "line_id",
            "paid_net",
            "lowest_net",
            "lowest_at",
            "lowest_offers",
            "entitled",
            "already_refunded",
            "refund",
        ),
        line_cell=line_cell,
        layout=layout,
        labels=labels,
    )


def _offer_at(offers: Sequence[Any], index: Any) -> Any:
    if isinstance(index, int) and 0 <= index < len(offers):
        return offers[index]
    return None


def summary_view(summary: Summary) -> RenderableType:
    """The end-of-batch summary: counts by kind and status, then approved money totals,
    new and replayed apart (SPEC §8: pay from the new column only). The Excel summary
    sheet is written from the same :class:`~pricecalc.files.rows.Summary`
    (:class:`pricecalc.files.writing.XlsxWriter`)."""
    counts = _table(_("kind"), _("status"), _("new"), _("replayed"), title=_("Decisions"))
    for column in counts.columns[2:]:
        column.justify = "right"
    for kind, status, new, replayed in summary.rows():
        counts.add_row(kind, status, str(new), str(replayed))
    money = _table(
        _("total (approved decisions)"), _("new (CNY)"), _("replayed (CNY)"), title=_("Money")
    )
    for column in money.columns[1:]:
        column.justify = "right"
    fresh, again = summary.totals.formatted(), summary.replayed_totals.formatted()
    lang = language()
    for figure in summary.layout.money:  # each figure by its declared label (SPEC §10)
        money.add_row(figure.label(lang), fresh[figure.name], again[figure.name])
    return Group(Text(summary.headline(lang)), counts, money)


def beijing_time(recorded_at: Any) -> str:
    """``2026-11-11T02:00:00.123456Z`` → ``2026-11-11 10:00:00`` (Beijing, for people)."""
    text = beijing_text(recorded_at)
    return cell(recorded_at) if text is None else text


#: The screen shows recorded_at in Beijing time already; the rule-set detail and the
#: result as JSON are for files.
_SCREEN_HIDDEN = frozenset({"rule_set", "rule_version", "recorded_at_beijing", "result"})
_OPTIONAL = frozenset({"merchant_id", "campaign", "settlement", "voided_by", "voids"})


def records_table(rows: Sequence[Mapping[str, Any]], layout: RowLayout = BUILTIN_LAYOUT) -> Table:
    """``audit show``: one row per record; money columns only where some record has one
    (an approved, not withdrawn decision's), each reason code with its explanation."""
    names = layout.money_names
    money = [c for c in names if any(r.get(c) is not None for r in rows)]
    # The export's columns (rows.record_columns), less the rule-set detail a screen does
    # not need and the optional columns no record here has.
    optional = {*_OPTIONAL, *names}
    columns = [
        c
        for c in layout.record_columns()
        if c not in _SCREEN_HIDDEN
        and (c not in optional or c in money or any(r.get(c) is not None for r in rows))
        and (c != "reason_notes" or any(r.get(c) for r in rows))
    ]
    titles = (
        {**layout.labels(), "recorded_at": layout.labels()["recorded_at_beijing"]}
        if language() == "zh"
        else {
            "recorded_at": "recorded (Beijing)",
            "reason_codes": "reasons",
            "merchant_id": "merchant",
            "reason_notes": "why",
            "voided_by": "voided by",
            **{c.name: c.en for c in layout.money},
        }
    )
    cells = [[_record_cell(c, row.get(c)) for c in columns] for row in rows]
    table = Table(box=box.SIMPLE_HEAD)
    for index, column in enumerate(columns):
        whole = column in ("seq", "recorded_at", "kind", "status", "settlement", "hash", *money)
        title = titles.get(column, label(column))
        widest = _widest(cells, index)
        table.add_column(
            title,
            justify="right" if column in ("seq", *money) else "left",
            # Numbers, times, kinds never shrink below their text (never cut or folded),
            # and a figure's title wraps between its words, never inside one.
            min_width=max(widest, _longest_word(title)) if whole else min(8, widest),
            overflow="fold",
        )
    for row_cells in cells:
        table.add_row(*row_cells)
    return table


def _longest_word(title: str) -> int:
    return max((cell_len(word) for word in title.split()), default=1)


def _widest(cells: Sequence[Sequence[str]], index: int) -> int:
    return max((len(row[index]) for row in cells), default=1)


def _record_cell(column: str, value: Any) -> str:
    if column == "hash":
        return short_hash(value, 8)
    if column == "recorded_at":
        return beijing_time(value)
    return cell(value)


def stats_table(rows: Sequence[Mapping[str, Any]], layout: RowLayout = BUILTIN_LAYOUT) -> Table:
    """``audit stats``: counts, then each money figure by its declared label."""
    counts = ["approved", "rejected", "voided"]
    columns = ["day", "kind", *counts, *layout.money_names]
    words = [_("day (Beijing)"), _("kind"), _("approved"), _("rejected"), _("voided")]
    titles = [*words, *(c.zh if language() == "zh" else c.en for c in layout.money)]
    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    table = Table(box=box.SIMPLE_HEAD)
    for index, title in enumerate(titles):
        table.add_column(
            title,
            justify="right" if index >= 2 else "left",
            min_width=max(_widest(cells, index), _longest_word(title)),
            overflow="fold",
        )
    for row_cells in cells:
        table.add_row(*row_cells)
    return table


def plugins_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    table = _table("plugin", "version", "kinds", "hooks (pricecalc_…)")
    for row in rows:
        table.add_row(
            str(row["name"]),
            str(row["version"]),
            "\n".join(row["kinds"]) or "—",
            "\n".join(h.removeprefix("pricecalc_") for h in row["hooks"]) or "—",
        )
    return table
