"""Benchmark: the campaign report's build time and page size as the store grows.

For stores of 10⁴ and 10⁵ records (synthetic decisions shaped like real ones — every
money kind, five merchants, ten categories, seven days — appended through the audit
store API, set-up not timed), the time of :func:`pricecalc.books.report.collect` (the one
streaming pass) and of :func:`pricecalc.books.report.render_report` (the page), in ms per
1,000 records, and the page's size. The page's size depends on the days, categories,
codes and merchants, not on the records: it should stay flat.

Run: ``python -m bench.report_build [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench._common import interleaved, median, table, verdict, write_results
from pricecalc.books.report import Cut, ReportHeader, collect, render_report
from pricecalc.books.selection import Filters

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from report_support import synthetic_store  # the store tests/test_report.py measures


def run(quick: bool = False) -> dict[str, Any]:
    sizes = (10_000, 100_000)
    rounds = 2 if quick else 5
    rows: list[list[Any]] = []
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        for count in sizes:
            store = synthetic_store(Path(folder) / f"s{count}.jsonl", count)
            cut = Cut(Filters(), store.tree_size())
            header = ReportHeader("bench.jsonl", count, store.root().hex(), count,
                                  store.head().hash)  # fmt: skip
            figures = collect(store, cut)
            page = render_report(figures, header)
            times = interleaved(
                {"collect": lambda s=store, c=cut: collect(s, c),
                 "render": lambda f=figures, h=header: render_report(f, h)},
                rounds,
            )  # fmt: skip
            collect_s, render_s = median(times["collect"]), median(times["render"])
            size = len(page.encode("utf-8"))
            results.append({"records": count, "collect_s": collect_s, "render_s": render_s,
                            "page_bytes": size})  # fmt: skip
            rows.append([f"{count:,}", collect_s * 1e6 / count, render_s * 1e3,
                         (collect_s + render_s) * 1e6 / count, size / 1024])  # fmt: skip
            store.close()
    print(table("report build (medians)",
                ("records", "collect ms/1k", "render ms", "total ms/1k", "page KiB"),
                rows))  # fmt: skip
    small, large = results
    flat = large["page_bytes"] <= 1.1 * small["page_bytes"]
    goals = {"page size flat (10^5 <= 1.1x 10^4)": flat}
    print(f"page size flat: {verdict(flat)}")
    write_results("report_build", {"quick": quick, "results": results, "goals": goals})
    return {"goals": goals}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report_build", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args(argv)
    run(quick=args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
