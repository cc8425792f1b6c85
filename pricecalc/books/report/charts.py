"""Hand-drawn inline SVG charts for the campaign report: horizontal bars and stacked bars.

Inline SVG needs no script, font or stylesheet from anywhere, prints sharply and is a few
hundred bytes a bar. Every text that reaches the drawing (a category, a reason code) is
escaped here; the result is :class:`markupsafe.Markup`, safe to put in the page as is.

Geometry is computed with Decimal too, so no float ever touches an amount; coordinates
are rounded to a tenth of a pixel (ROUND_HALF_UP) — drawing, not money.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

from markupsafe import Markup, escape

from pricecalc.money import ZERO

#: One colour per series (colour-blind safe, readable in grey when printed).
PALETTE: tuple[str, ...] = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")
TENTH = Decimal("0.1")


def _px(value: Decimal | int) -> str:
    return str(Decimal(value).quantize(TENTH, rounding=ROUND_HALF_UP))


def _label(value: Decimal | int) -> str:
    """An amount with two decimals and thousands separators; a count as a whole number."""
    return f"{value:,.2f}" if isinstance(value, Decimal) else f"{value:,}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bar_chart(
    rows: Sequence[tuple[str, Decimal | int]], *, title: str, width: int = 640
) -> Markup:
    """Horizontal bars, one a row (a label and a value ≥ 0), longest bar = the largest."""
    if not rows:
        return Markup("")
    bar, gap, left, right = 18, 6, 210, 90
    height = len(rows) * (bar + gap) + gap
    top = max((Decimal(v) for _, v in rows), default=ZERO)
    span = Decimal(width - left - right)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}">',
        f"<title>{escape(title)}</title>",
    ]
    for i, (name, value) in enumerate(rows):
        y = gap + i * (bar + gap)
        length = span * Decimal(value) / top if top > 0 and Decimal(value) > 0 else ZERO
        parts.append(
            f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">{escape(_clip(name, 30))}</text>'
            f'<rect x="{left}" y="{y}" width="{_px(length)}" height="{bar}" '
            f'fill="{PALETTE[0]}"><title>{escape(name)}: {escape(str(value))}</title></rect>'
            f'<text x="{_px(left + length + 4)}" y="{y + 13}">{escape(_label(value))}'
            "</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def stacked_bars(
    columns: Sequence[str],
    series: Sequence[str],
    values: Sequence[Sequence[Decimal]],
    *,
    title: str,
    width: int = 720,
    height: int = 260,
) -> Markup:
    """Vertical stacked bars: one bar per column (a day, a category), one segment per
    series (``values[column][series]``). Negative segments (a void's reversal) stack
    downward from the zero line, so a bar's net is visible."""
    if not columns:
        return Markup("")
    left, bottom, top_pad = 70, 46, 10
    legend = 16 * len(series) + 6  # one legend line a series: labels are long (zh + en)
    plot_h = Decimal(height - bottom - top_pad - legend)
    ups = [sum((v for v in row if v > 0), ZERO) for row in values]
    downs = [sum((v for v in row if v < 0), ZERO) for row in values]
    high, low = max(ups, default=ZERO), min(downs, default=ZERO)
    scale = plot_h / (high - low) if high - low > 0 else ZERO
    zero_y = Decimal(top_pad + legend) + high * scale
    slot = Decimal(width - left - 10) / len(columns)
    bar = min(slot * Decimal("0.7"), Decimal(48))
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}">',
        f"<title>{escape(title)}</title>",
    ]
    for s, name in enumerate(series):
        key_y = 4 + 16 * s
        parts.append(
            f'<rect x="{left}" y="{key_y}" width="12" height="12" '
            f'fill="{PALETTE[s % len(PALETTE)]}"/>'
            f'<text x="{left + 16}" y="{key_y + 10}">{escape(_clip(name, 60))}</text>'
        )
    for i, (column, row) in enumerate(zip(columns, values, strict=True)):
        x = Decimal(left) + slot * i + (slot - bar) / 2
        up, down = zero_y, zero_y
        for s, value in enumerate(row):
            size = abs(value) * scale
            if value > 0:
                up -= size
                y = up
            elif value < 0:
                y = down
                down += size
            else:
                continue
            parts.append(
                f'<rect x="{_px(x)}" y="{_px(y)}" width="{_px(bar)}" height="{_px(size)}" '
                f'fill="{PALETTE[s % len(PALETTE)]}"><title>{escape(column)} · '
                f"{escape(series[s])}: {escape(_label(value))}</title></rect>"
            )
        parts.append(
            f'<text x="{_px(x + bar / 2)}" y="{height - bottom + 16}" text-anchor="middle">'
            f"{escape(_clip(column, 12))}</text>"
        )
    parts.append(
        f'<line x1="{left}" x2="{width - 10}" y1="{_px(zero_y)}" y2="{_px(zero_y)}" '
        'stroke="#333"/>'
        f'<text x="{left - 6}" y="{_px(zero_y + 4)}" text-anchor="end">0</text>'
        f'<text x="{left - 6}" y="{top_pad + legend + 8}" text-anchor="end">'
        f"{escape(_label(high))}</text>"
    )
    if low < 0:
        parts.append(
            f'<text x="{left - 6}" y="{height - bottom}" text-anchor="end">'
            f"{escape(_label(low))}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


__all__ = ["PALETTE", "bar_chart", "stacked_bars"]
