"""Benchmark 1: the subsidy_split rule through pricecalc, GoRules zen-engine and a bare loop.

The same 10,000 SPEC §2 requests (fixed seed, about a quarter rejected for one or more
reasons, a fifth giving ``platform_subsidy`` instead of ``subsidy_price``) go through:

``pricecalc``
    ``engine.evaluate(request).to_dict()`` with a :class:`pricecalc.Engine` built once (its
    registry and merged policy), as a checkout script holds it: envelope and field
    validation, exact Decimal arithmetic, reason messages, a full
    :class:`~pricecalc.Decision` ready for the audit store.
``zen``
    GoRules zen-engine (Rust, Python binding) with an equivalent decision graph built here
    as JSON (input → expression node computing every result field → collect-policy
    decision table giving the rejection codes → output), the decision created once and
    evaluated per request. zen takes JSON numbers: the requests are converted to floats
    *before* timing (a favour to zen). ``zen batch`` is ``ZenEngine.evaluate_batch`` and
    ``zen async`` is ``ZenDecision.async_evaluate`` gathered on one event loop.
``lower bound``
    a bare loop doing only the Decimal arithmetic the rule needs (parse the amount texts,
    differences, two rates, four totals, the seven comparisons, the result texts): no
    validation, no messages, no objects.

zen's answers are checked against pricecalc's on a sample: amounts compared as Decimals
after quantizing zen's floats to the fen (rates to 4 places), codes compared in order.

Run: ``python -m bench.rules_vs_engine [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from bench._common import interleaved, median, table, verdict, write_results
from pricecalc import Engine, Policy
from pricecalc.plugins import default_registry

N = 10_000
SEED = 20261111
FEN = Decimal("0.01")
RATE = Decimal("0.0001")
PLATFORMS = ("百亿补贴", "拼团", "秒杀频道", "品牌特卖")
MISTAKES = (
    "registration_above_list",
    "above_30d",
    "above_other",
    "floor_below_cost",
    "floor_above_registration",
    "below_floor",
    "platform_negative",
)


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def make_requests(n: int = N, seed: int = SEED) -> list[dict[str, Any]]:
    """``n`` subsidy_split requests; about 1 in 4 has one deliberate rule breach."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        list_fen = rng.randint(1_000, 300_000)
        reg = list_fen * rng.randint(75, 97) // 100
        sub = reg - list_fen * rng.randint(3, 15) // 100
        floor = sub - rng.randint(0, max(1, sub // 20))
        cost = floor * rng.randint(70, 98) // 100
        lowest = reg + rng.randint(0, list_fen // 10) if rng.random() < 0.7 else None
        others = [
            {"platform": rng.choice(PLATFORMS), "price": reg + rng.randint(0, list_fen // 8)}
            for _ in range(rng.choice((0, 0, 1, 2, 3)))
        ]
        if rng.random() < 0.25:
            mistake = rng.choice(MISTAKES)
            if mistake == "registration_above_list":
                reg = list_fen + rng.randint(1, 500)
            elif mistake == "above_30d":
                lowest = reg - rng.randint(1, max(1, reg // 10))
            elif mistake == "above_other":
                others.append({"platform": rng.choice(PLATFORMS), "price": reg - 1 - reg // 50})
            elif mistake == "floor_below_cost":
                cost = floor + rng.randint(1, 1_000)
            elif mistake == "floor_above_registration":
                floor = reg + rng.randint(1, 1_000)
                cost = min(cost, floor)
            elif mistake == "below_floor":
                floor = sub + rng.randint(1, max(1, (reg - sub) // 2 + 1))
                floor = min(floor, reg)
                cost = min(cost, floor)
            else:
                sub = reg + rng.randint(1, 300)
        fields: dict[str, Any] = {
            "list_price": _yuan(list_fen),
            "registration_price": _yuan(reg),
            "floor_price": _yuan(max(0, floor)),
            "cost_price": _yuan(max(0, cost)),
            "quantity": rng.randint(1, 5),
            "product_id": f"P{i:05d}",
        }
        if sub > 0 and sub <= reg and rng.random() < 0.2:
            fields["platform_subsidy"] = _yuan(reg - sub)
        else:
            fields["subsidy_price"] = _yuan(max(1, sub))
        if lowest is not None:
            fields["lowest_price_30d"] = _yuan(lowest)
        if others:
            fields["other_platform_prices"] = [
                {"platform": o["platform"], "price": _yuan(max(1, o["price"]))} for o in others
            ]
        out.append({"kind": "subsidy_split", "request_id": f"split-{i:05d}", "input": fields})
    return out


# -- zen-engine ---------------------------------------------------------------------------
RESULT_AMOUNTS = (
    "merchant_subsidy",
    "platform_subsidy",
    "total_subsidy",
    "consumer_pays",
    "merchant_receives",
    "merchant_margin",
    "max_platform_subsidy",
    "merchant_subsidy_total",
    "platform_subsidy_total",
    "consumer_pays_total",
    "merchant_receives_total",
)
RESULT_RATES = ("merchant_subsidy_rate", "platform_subsidy_rate")

_EXPRESSIONS = (
    # normalised inputs first; later expressions read them through `$`
    ("sp", "subsidy_price != null ? subsidy_price : registration_price - platform_subsidy"),
    ("q", "quantity != null ? quantity : 1"),
    (
        "other_min",
        "other_platform_prices != null and len(other_platform_prices) > 0 "
        "? min(map(other_platform_prices, #.price)) : null",
    ),
    ("merchant_subsidy", "list_price - registration_price"),
    ("platform_subsidy", "registration_price - $.sp"),
    ("total_subsidy", "list_price - $.sp"),
    ("merchant_subsidy_rate", "round($.merchant_subsidy / list_price, 4)"),
    ("platform_subsidy_rate", "round($.platform_subsidy / list_price, 4)"),
    ("consumer_pays", "$.sp"),
    ("merchant_receives", "registration_price"),
    ("merchant_margin", "registration_price - cost_price"),
    ("max_platform_subsidy", "max([0, registration_price - floor_price])"),
    ("merchant_subsidy_total", "$.merchant_subsidy * $.q"),
    ("platform_subsidy_total", "$.platform_subsidy * $.q"),
    ("consumer_pays_total", "$.sp * $.q"),
    ("merchant_receives_total", "registration_price * $.q"),
)
_RULES = (  # SPEC §2 order; a collect-policy table lists every code whose rule holds
    ("REGISTRATION_ABOVE_LIST", "registration_price > list_price"),
    ("ABOVE_30D_LOWEST", "lowest_price_30d != null and registration_price > lowest_price_30d"),
    ("ABOVE_OTHER_PLATFORM", "other_min != null and registration_price > other_min"),
    ("FLOOR_BELOW_COST", "floor_price < cost_price"),
    ("FLOOR_ABOVE_REGISTRATION", "floor_price > registration_price"),
    ("BELOW_FLOOR", "sp < floor_price"),
    ("PLATFORM_SUBSIDY_NEGATIVE", "sp > registration_price"),
)


def keyed_requests(n: int, tag: str) -> list[dict[str, Any]]:
    """:func:`make_requests` with ``request_id`` ``<tag>-<i>``: ``n`` requests to record."""
    requests = make_requests(n)
    for i, request in enumerate(requests):
        request["request_id"] = f"{tag}-{i}"
    return requests


def zen_graph() -> dict[str, Any]:
    """The subsidy_split decision graph in GoRules JDM form."""

    def node(nid: str, kind: str, content: dict[str, Any] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"id": nid, "type": kind, "name": nid, "position": {"x": 0, "y": 0}}
        if content is not None:
            out["content"] = content
        return out

    expressions = {
        "passThrough": True,
        "inputField": None,
        "outputPath": None,
        "executionMode": "single",
        "expressions": [
            {"id": f"e{i}", "key": k, "value": v} for i, (k, v) in enumerate(_EXPRESSIONS)
        ],
    }
    decision_table = {
        "hitPolicy": "collect",
        "passThrough": True,
        "inputField": None,
        "outputPath": "reasons",
        "executionMode": "single",
        "inputs": [{"id": "when", "name": "when", "field": ""}],
        "outputs": [{"id": "code", "name": "code", "field": "code"}],
        "rules": [
            {"_id": f"r{i}", "when": cond, "code": f"'{code}'"}
            for i, (code, cond) in enumerate(_RULES)
        ],
    }
    return {
        "nodes": [
            node("request", "inputNode"),
            node("split", "expressionNode", expressions),
            node("checks", "decisionTableNode", decision_table),
            node("response", "outputNode"),
        ],
        "edges": [
            {"id": "a", "sourceId": "request", "targetId": "split", "type": "edge"},
            {"id": "b", "sourceId": "split", "targetId": "checks", "type": "edge"},
            {"id": "c", "sourceId": "checks", "targetId": "response", "type": "edge"},
        ],
    }


def zen_context(request: Mapping[str, Any]) -> dict[str, Any]:
    """A request's input as zen takes it: JSON numbers (Python floats), not strings."""
    out: dict[str, Any] = {}
    for key, value in request["input"].items():
        if key == "other_platform_prices":
            out[key] = [{"platform": o["platform"], "price": float(o["price"])} for o in value]
        elif key in ("product_id", "quantity"):
            out[key] = value
        else:
            out[key] = float(value)
    return out


# -- the lower bound ------------------------------------------------------------------------
def bare_loop(requests: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """Only the arithmetic: parse, subtract, two rates, four totals, seven comparisons."""
    out = []
    half_up = ROUND_HALF_UP
    for request in requests:
        f = request["input"]
        lst = Decimal(f["list_price"])
        reg = Decimal(f["registration_price"])
        sp = (
            Decimal(f["subsidy_price"])
            if "subsidy_price" in f
            else reg - Decimal(f["platform_subsidy"])
        )
        floor = Decimal(f["floor_price"])
        cost = Decimal(f["cost_price"])
        q = f.get("quantity", 1)
        ms, ps = lst - reg, reg - sp
        codes = []
        if reg > lst:
            codes.append("REGISTRATION_ABOVE_LIST")
        low = f.get("lowest_price_30d")
        if low is not None and reg > Decimal(low):
            codes.append("ABOVE_30D_LOWEST")
        others = f.get("other_platform_prices")
        if others and reg > min(Decimal(o["price"]) for o in others):
            codes.append("ABOVE_OTHER_PLATFORM")
        if floor < cost:
            codes.append("FLOOR_BELOW_COST")
        if floor > reg:
            codes.append("FLOOR_ABOVE_REGISTRATION")
        if sp < floor:
            codes.append("BELOW_FLOOR")
        if sp > reg:
            codes.append("PLATFORM_SUBSIDY_NEGATIVE")
        out.append(
            (
                str(ms),
                str(ps),
                str(lst - sp),
                str((ms / lst).quantize(RATE, rounding=half_up)),
                str((ps / lst).quantize(RATE, rounding=half_up)),
                str(reg - cost),
                str(max(Decimal(0), reg - floor)),
                str(ms * q),
                str(ps * q),
                str(sp * q),
                str(reg * q),
                codes,
            )
        )
    return out


# -- agreement ---------------------------------------------------------------------------
def compare(
    pricecalc_result: Mapping[str, Any], codes: Sequence[str], zen: Mapping[str, Any]
) -> list[str]:
    """Where zen's answer differs from pricecalc's (empty: they agree)."""
    diffs = []
    for key in RESULT_AMOUNTS + RESULT_RATES:
        step = RATE if key in RESULT_RATES else FEN
        theirs = zen.get(key)
        if not isinstance(theirs, int | float):
            diffs.append(f"{key}: zen gave {theirs!r}")
            continue
        mine = Decimal(pricecalc_result[key])
        as_decimal = Decimal(repr(theirs)).quantize(step, rounding=ROUND_HALF_UP)
        if as_decimal != mine:
            diffs.append(f"{key}: pricecalc {mine}, zen {theirs!r}")
    zen_codes = [r["code"] for r in zen.get("reasons", [])]
    if zen_codes != list(codes):
        diffs.append(f"codes: pricecalc {list(codes)}, zen {zen_codes}")
    return diffs


def run(quick: bool = False) -> dict[str, Any]:
    import zen  # the bench extra: pip install -e '.[bench]'

    requests = make_requests()
    engine = Engine(default_registry(), Policy())  # held once, as a checkout script does
    now = datetime(2026, 11, 11, 12, 0, tzinfo=UTC)
    contexts = [zen_context(r) for r in requests]
    graph_json = json.dumps(zen_graph())
    zen_engine = zen.ZenEngine({"loader": lambda key: graph_json})
    decision = zen_engine.create_decision(graph_json)
    batch = [{"key": "subsidy_split", "context": c} for c in contexts]

    def run_pricecalc() -> None:
        for request in requests:
            engine.evaluate(request, now=now).to_dict()

    def run_zen() -> None:
        for context in contexts:
            decision.evaluate(context)

    def run_zen_batch() -> None:
        zen_engine.evaluate_batch(batch)

    def run_zen_async() -> None:
        async def all_of() -> None:
            await asyncio.gather(*(decision.async_evaluate(c) for c in contexts))

        asyncio.run(all_of())

    def run_bare() -> None:
        bare_loop(requests)

    # Agreement on a sample (every 10th request), before timing.
    sample = range(0, N, 10)
    disagreements: list[dict[str, Any]] = []
    rejected = 0
    for i in sample:
        mine = engine.evaluate(requests[i], now=now)
        rejected += mine.status == "rejected"
        theirs = decision.evaluate(contexts[i])["result"]
        diffs = compare(mine.result, [r.code for r in mine.reasons], theirs)
        if diffs:
            disagreements.append({"request": i, "diffs": diffs})
    batch_ok = all(item.get("success") for item in zen_engine.evaluate_batch(batch[:100]))
    float_sample = decision.evaluate(contexts[0])["result"]["merchant_subsidy"]

    contenders: dict[str, Callable[[], None]] = {
        "pricecalc evaluate(r).to_dict()": run_pricecalc,
        "zen decision.evaluate": run_zen,
        "zen evaluate_batch": run_zen_batch,
        "zen async_evaluate": run_zen_async,
        "lower bound (bare Decimal loop)": run_bare,
    }
    rounds = 3 if quick else 7
    times = interleaved(contenders, rounds)
    med = {name: median(t) for name, t in times.items()}
    per = {name: m / N * 1e6 for name, m in med.items()}
    ours = med["pricecalc evaluate(r).to_dict()"]
    zen_best = min(
        med["zen decision.evaluate"], med["zen evaluate_batch"], med["zen async_evaluate"]
    )
    bound = med["lower bound (bare Decimal loop)"]
    rows = [(name, per[name], N / med[name], med[name] / ours) for name in contenders]
    print(
        table(
            f"rules vs engine: {N:,} subsidy_split requests, median of {rounds} interleaved rounds",
            ("contender", "µs/request", "requests/s", "× pricecalc time"),
            rows,
        )
    )
    speedup = med["zen decision.evaluate"] / ours
    speedup_best = zen_best / ours
    over_bound = ours / bound
    goals = {  # issue 11: goal 20x / within 3x; minimum 10x / within 6x
        "minimum: evaluate(r).to_dict() >= 10x zen sync evaluate": speedup >= 10,
        "goal: evaluate(r).to_dict() >= 20x zen sync evaluate": speedup >= 20,
        "minimum: within 6x of the bare Decimal loop": over_bound <= 6,
        "goal: within 3x of the bare Decimal loop": over_bound <= 3,
    }
    print(
        f"pricecalc vs zen decision.evaluate: {speedup:.2f}× faster; vs zen's fastest API "
        f"{speedup_best:.2f}×; pricecalc / lower bound: {over_bound:.2f}×"
    )
    for goal, ok in goals.items():
        print(f"  {goal}: {verdict(ok)}")
    print(
        f"agreement on {len(sample)} sampled requests ({rejected} rejected): "
        f"{len(sample) - len(disagreements)} agree, {len(disagreements)} differ; "
        f"zen returns numbers as floats (e.g. merchant_subsidy {float_sample!r}), "
        "pricecalc exact two-decimal strings"
    )
    for item in disagreements[:5]:
        print(f"  request {item['request']}: {'; '.join(item['diffs'])}")
    result = {
        "n": N,
        "rounds": rounds,
        "seconds": times,
        "median_seconds": med,
        "us_per_request": per,
        "ratios": {
            "zen_over_pricecalc": speedup,
            "zen_best_over_pricecalc": speedup_best,
            "pricecalc_over_lower_bound": over_bound,
        },
        "goals": goals,
        "agreement": {
            "sampled": len(sample),
            "rejected_in_sample": rejected,
            "disagreements": disagreements,
            "zen_batch_succeeded": batch_ok,
            "zen_number_type": type(float_sample).__name__,
        },
        "zen_version": _zen_version(),
    }
    write_results("rules_vs_engine", result)
    return result


def _zen_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("zen-engine")
    except metadata.PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args(argv)
    run(quick=args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
