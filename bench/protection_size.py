"""Benchmark 5: price protection at size — one claim, many lines, many offers.

A 价保 claim (SPEC §3) for an order of ``lines`` lines against ``offers`` merchant offers
(direct drops, flash sales, coupons, full reductions; fixed seed, spread over the event
after payment, so nearly every offer brings its own candidate time). Sizes: offers
250/500/1,000/2,000 with 100 lines, and lines 25/50/100/200 with 1,000 offers. Each claim
goes through :func:`pricecalc.evaluate` (parsing and validating every offer included).

The model is ``candidate times × (offers + lines)``; the table reports the time per
claim, the model's units and nanoseconds per unit. The goal: the cost grows no faster
than the model (ns per unit does not rise with size).

Run: ``python -m bench.protection_size [--quick]``.
"""

from __future__ import annotations

import argparse
import itertools
import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bench._common import interleaved, median, table, verdict, write_results
from pricecalc import Policy, evaluate
from pricecalc.plugins import default_registry

SEED = 20261111
EVENT_START = datetime(2026, 11, 10, 0, 0)
EVENT_END = datetime(2026, 11, 12, 23, 59, 59)
PAID_AT = datetime(2026, 11, 10, 8, 0)
SIZES_OFFERS = ((250, 100), (500, 100), (1_000, 100), (2_000, 100))
SIZES_LINES = ((1_000, 25), (1_000, 50), (1_000, 100), (1_000, 200))


def _at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def make_claim(offers: int, lines: int, seed: int = SEED) -> tuple[dict[str, Any], int]:
    """A claim with ``lines`` lines and ``offers`` offers; and its number of candidate times."""
    rng = random.Random(seed * 7919 + offers * 31 + lines)
    order_lines = []
    prices = []
    for i in range(lines):
        price = rng.randint(5_000, 50_000)
        prices.append(price)
        order_lines.append(
            {
                "line_id": f"L{i}",
                "sku": f"SKU{i}",
                "quantity": rng.randint(1, 3),
                "unit_price": _yuan(price),
            }
        )
    span = int((EVENT_END - PAID_AT).total_seconds()) - 3 * 3600
    starts: set[datetime] = set()
    listed = []
    for _ in range(offers):
        start = PAID_AT + timedelta(seconds=rng.randint(60, span))
        starts.add(start)
        roll = rng.random()
        line = rng.randrange(lines)
        if roll < 0.4:
            drop = prices[line] * rng.randint(80, 99) // 100
            listed.append(
                {
                    "type": "direct_drop",
                    "sku": f"SKU{line}",
                    "unit_price": _yuan(drop),
                    "at": _at(start),
                }
            )
        elif roll < 0.7:
            sale = prices[line] * rng.randint(60, 90) // 100
            listed.append(
                {
                    "type": "flash_sale",
                    "sku": f"SKU{line}",
                    "unit_price": _yuan(sale),
                    "start": _at(start),
                    "end": _at(start + timedelta(hours=2)),
                }
            )
        elif roll < 0.85:
            threshold = rng.randint(10, 200) * 1_000
            listed.append(
                {
                    "type": "coupon",
                    "amount": _yuan(threshold // rng.randint(10, 20)),
                    "threshold": _yuan(threshold),
                    "start": _at(start),
                    "end": _at(start + timedelta(hours=rng.randint(1, 12))),
                }
            )
        else:
            base = rng.randint(10, 100) * 1_000
            listed.append(
                {
                    "type": "full_reduction",
                    "tiers": [
                        {"threshold": _yuan(base), "off": _yuan(base // 10)},
                        {"threshold": _yuan(base * 2), "off": _yuan(base // 4)},
                    ],
                    "start": _at(start),
                    "end": _at(start + timedelta(hours=rng.randint(1, 12))),
                }
            )
    request = {
        "kind": "price_protection",
        "request_id": f"claim-{offers}-{lines}",
        "input": {
            "order_id": f"O-{offers}-{lines}",
            "paid_at": _at(PAID_AT),
            "claimed_at": _at(EVENT_END),
            "order_status": "paid",
            "event": {"start": _at(EVENT_START), "end": _at(EVENT_END)},
            "lines": order_lines,
            "offers": listed,
        },
    }
    return request, len(starts)


def run(quick: bool = False) -> dict[str, Any]:
    registry = default_registry()
    policy = Policy()
    now = datetime(2026, 11, 13, 12, 0, tzinfo=UTC)
    sizes = list(dict.fromkeys(SIZES_OFFERS + SIZES_LINES))
    claims = {size: make_claim(*size) for size in sizes}
    refunds = {}
    for size, (request, _) in claims.items():
        decision = evaluate(request, now=now, policy=policy, registry=registry)
        refunds[size] = (decision.status, decision.result["refund_total"])

    def job(request: dict[str, Any]) -> Callable[[], None]:
        return lambda: evaluate(request, now=now, policy=policy, registry=registry) and None

    contenders = {f"{o} offers × {n} lines": job(claims[(o, n)][0]) for o, n in sizes}
    rounds = 3 if quick else 7
    times = interleaved(contenders, rounds)
    rows = []
    figures = []
    for (o, n), name in zip(sizes, contenders, strict=True):
        seconds = median(times[name])
        candidate_times = claims[(o, n)][1]
        units = candidate_times * (o + n)
        ns_per_unit = seconds / units * 1e9
        figures.append(
            {
                "offers": o,
                "lines": n,
                "candidate_times": candidate_times,
                "model_units": units,
                "ms_per_claim": seconds * 1e3,
                "ns_per_unit": ns_per_unit,
                "status": refunds[(o, n)][0],
                "refund_total": refunds[(o, n)][1],
                "seconds": times[name],
            }
        )
        rows.append((name, candidate_times, units, seconds * 1e3, ns_per_unit, refunds[(o, n)][1]))
    print(
        table(
            f"price protection at size, median of {rounds} interleaved rounds",
            ("claim", "times", "T×(O+L)", "ms/claim", "ns/unit", "refund"),
            rows,
        )
    )

    def growth(series: Sequence[dict[str, Any]]) -> float:
        """ns/unit at the largest size over ns/unit at the smallest (≤ 1: not worse)."""
        return float(series[-1]["ns_per_unit"] / series[0]["ns_per_unit"])

    by_offers = [f for f in figures if f["lines"] == 100 and (f["offers"], 100) in SIZES_OFFERS]
    by_lines = [f for f in figures if f["offers"] == 1_000 and (1_000, f["lines"]) in SIZES_LINES]
    by_offers.sort(key=lambda f: f["offers"])
    by_lines.sort(key=lambda f: f["lines"])
    g_offers, g_lines = growth(by_offers), growth(by_lines)
    # With offers fixed at 1,000 the model hardly moves with lines (1,025 → 1,200 per
    # time), so ns/unit over the lines series mostly shows that a line costs more per
    # time than an offer. Linearity in lines is checked on the marginal cost: the time an
    # extra line adds per candidate time, between successive sizes, must not grow.
    marginal = [
        (b["ms_per_claim"] - a["ms_per_claim"])
        * 1e6
        / ((b["lines"] - a["lines"]) * (a["candidate_times"] + b["candidate_times"]) / 2)
        for a, b in itertools.pairwise(by_lines)
    ]
    g_marginal = marginal[-1] / marginal[0] if marginal and marginal[0] > 0 else float("inf")
    # "Not worse than the model": allow 25% for noise on a shared machine.
    goals = {
        "cost per model unit does not grow with offers": g_offers <= 1.25,
        "cost per model unit does not grow with lines": g_lines <= 1.25,
        "cost linear in lines (marginal ns per line per time does not grow)": g_marginal <= 1.25,
    }
    print(
        f"ns/unit, largest over smallest: offers 250→2000: {g_offers:.2f}×; "
        f"lines 25→200: {g_lines:.2f}×; marginal ns per line per candidate time: "
        + ", ".join(f"{m:.0f}" for m in marginal)
        + f" ({g_marginal:.2f}× last/first)"
    )
    for goal, ok in goals.items():
        print(f"  {goal}: {verdict(ok)}")
    result = {
        "rounds": rounds,
        "sizes": figures,
        "growth": {"offers": g_offers, "lines": g_lines, "lines_marginal": g_marginal},
        "marginal_ns_per_line_per_time": marginal,
        "goals": goals,
    }
    write_results("protection_size", result)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args(argv)
    run(quick=args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
