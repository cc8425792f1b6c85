"""Run every benchmark: ``python -m bench [--quick] [--only NAME ...]`` (``make bench``).

Benchmarks, in order: ``rules_vs_engine`` (subsidy_split: pricecalc vs zen-engine vs a
bare loop), ``recorded`` (Calculator vs a bare hash-chained append loop),
``protection_size`` (one 价保 claim at growing sizes), ``batch_e2e`` (``pricecalc batch``
on 10⁴–10⁶ lines), ``audit_growth`` (the store's append rate, verify rate and memory
as it grows, vs TinyDB's stock storage) and ``audit_verify`` (verify against SHA-256 per
line, the tree's share of an append, bytes per record) and ``report_build`` (the campaign
report's pass and page at 10⁴ and 10⁵ records), ``serve`` (``pricecalc serve`` under
wrk and an open-loop generator, beside the same stack answering a constant) and
``concurrency`` (issue 22: threads, processes, the lone caller, p99, ``batch --jobs``,
``evaluate``, PostgreSQL). Each prints its table and writes
``bench/results/<name>.json``; a summary of every goal follows and goes to
``bench/results/summary.json``.

``--quick`` is a fast pass: fewer rounds, batch files of 10⁴ and 10⁵ lines, the audit
store at 10³ and 10⁴ records. The full run takes about a quarter of an hour on two cores.
None of this is part of ``make test``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench import (
    audit_growth,
    audit_verify,
    batch_e2e,
    concurrency,
    protection_size,
    recorded,
    report_build,
    rules_vs_engine,
    serve,
)
from bench._common import RESULTS, table, verdict, write_results


def _audit_growth(quick: bool) -> dict[str, Any]:
    """bench/audit_growth.py as it stands, then the flatness goal read from its results."""
    out = RESULTS / "audit_growth.json"
    audit_growth.main(["--quick", "--out", str(out)] if quick else ["--out", str(out)])
    data = json.loads(out.read_text(encoding="utf-8"))
    ours = sorted(data.get("audit_store", []), key=lambda row: row["records"])
    goals: dict[str, bool] = {}
    if len(ours) >= 2:
        small, large = ours[0], ours[-1]
        for key, what in (
            ("group_append_us_per_record", "group-commit"),
            ("single_append_us", "single durable"),
        ):
            if key in small and key in large and large[key] > 0:
                ratio = small[key] / large[key]  # rate at the largest / rate at the smallest
                print(
                    f"{what} append rate at {large['records']:,} records / at "
                    f"{small['records']:,}: {ratio:.2f}"
                )
                goals[
                    f"{what} append rate flat ({large['records']:,} >= 0.8x {small['records']:,})"
                ] = ratio >= 0.8
    return {"goals": goals}


BENCHMARKS: dict[str, Callable[[bool], dict[str, Any]]] = {
    "rules_vs_engine": lambda quick: rules_vs_engine.run(quick=quick),
    "recorded": lambda quick: recorded.run(quick=quick),
    "protection_size": lambda quick: protection_size.run(quick=quick),
    "batch_e2e": lambda quick: batch_e2e.run(quick=quick),
    "audit_growth": _audit_growth,
    "audit_verify": lambda quick: audit_verify.run(quick=quick),
    "report_build": lambda quick: report_build.run(quick=quick),
    "serve": lambda quick: serve.run(quick=quick),
    "concurrency": lambda quick: concurrency.run(quick=quick),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a fast pass (see above)")
    parser.add_argument(
        "--only", action="append", choices=sorted(BENCHMARKS), help="run only these"
    )
    args = parser.parse_args(argv)
    chosen = [name for name in BENCHMARKS if not args.only or name in args.only]
    rows = []
    summary: dict[str, Any] = {"quick": args.quick, "benchmarks": {}}
    for name in chosen:
        print(f"\n=== {name} {'(quick)' if args.quick else ''}", flush=True)
        start = time.perf_counter()
        result = BENCHMARKS[name](args.quick)
        elapsed = time.perf_counter() - start
        goals = result.get("goals", {})
        summary["benchmarks"][name] = {"seconds": elapsed, "goals": goals}
        rows.extend((name, goal, verdict(ok)) for goal, ok in goals.items())
        print(f"({name}: {elapsed:.0f} s)", flush=True)
    print()
    print(table("goals", ("benchmark", "goal", "verdict"), rows))
    write_results("summary", summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
