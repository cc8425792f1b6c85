"""What every benchmark shares: interleaved timing rounds, medians, tables, JSON results.

A benchmark names its contenders (callables that do the whole measured job once) and
:func:`interleaved` runs them round-robin, ``rounds`` times, so a noisy neighbour on the
shared machine slows every contender alike instead of one of them. Figures are medians.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def interleaved(
    contenders: Mapping[str, Callable[[], object]], rounds: int, *, warmup: bool = True
) -> dict[str, list[float]]:
    """Seconds per call of each contender, ``rounds`` times, contenders taking turns.

    A contender that returns a float has timed itself (its set-up left out): that figure
    is used instead of the wall time of the whole call.
    """
    if warmup:
        for call in contenders.values():
            call()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, call in contenders.items():
            gc.collect()
            start = time.perf_counter()
            own = call()
            elapsed = time.perf_counter() - start
            times[name].append(own if isinstance(own, float) else elapsed)
    return times


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def machine() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_results(name: str, data: Mapping[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` (git-ignored) and return its path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"benchmark": name, "machine": machine(), **data}
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n")
    return path


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table (first column left-aligned, the rest right-aligned)."""
    cells = [[str(c) for c in header]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([title, line(cells[0]), rule, *(line(r) for r in cells[1:])])


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"
