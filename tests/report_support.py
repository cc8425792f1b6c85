"""Shared by the report tests: the example campaign decided into a store whose clock
spreads the records over several Beijing days, a few voids, and the report's figures
recomputed independently from the store's raw log lines (json, not the store API)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import audit
from audit.protocol import Entry
from pricecalc import Calculator, Policy
from pricecalc.errors import PricecalcError

ROOT = Path(__file__).resolve().parent.parent
CAMPAIGN = ROOT / "examples" / "campaign.jsonl"
POLICY = ROOT / "examples" / "policy.toml"
BEIJING = timezone(timedelta(hours=8))
START = datetime(2026, 11, 9, 16, 0, tzinfo=UTC)  # 2026-11-10 00:00 Beijing
STEP = timedelta(minutes=25)
VOIDED_KINDS = ("counterfeit_compensation", "forwarding_clawback", "subsidy_split")


def stepping_clock(start: datetime = START, step: timedelta = STEP) -> Callable[[], datetime]:
    """Each reading ``step`` later than the one before: 355 records span six days."""
    state = {"n": 0}

    def now() -> datetime:
        state["n"] += 1
        return start + step * state["n"]

    return now


def campaign_requests() -> Iterator[dict[str, Any]]:
    for line in CAMPAIGN.read_text(encoding="utf-8").splitlines():
        try:
            yield json.loads(line, parse_float=Decimal)  # SPEC §1: never through float
        except ValueError:
            continue


def raw_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def build_campaign_store(path: Path) -> dict[str, int]:
    """Decide the example campaign into ``path``, then void one decision of each money
    kind (both settlements of price protection); returns {what: voided seq}."""
    store = audit.open_store(str(path), clock=stepping_clock())
    with Calculator(store, Policy.from_toml(POLICY), operator="clerk") as calc:
        for request in campaign_requests():
            try:
                calc.decide(request)
            except PricecalcError:
                continue  # the planted mistakes
        chosen: dict[str, int] = {}
        for record in raw_records(path):
            p = record["payload"]
            if p["status"] != "approved":
                continue
            result = p["result"]
            key = p["kind"]
            if key == "price_protection":
                if result["refund_total"] == "0.00":
                    continue
                key += "/" + result["settlement"]
            elif key not in VOIDED_KINDS or (
                key == "subsidy_split" and "category" not in p["input"]
            ):
                continue
            chosen.setdefault(key, record["seq"])
        for seq in chosen.values():
            withdrawn = calc.store.record(seq)
            assert withdrawn is not None
            target = withdrawn.key or f"sha256:{withdrawn.hash[:16]}"
            body = {"seq": seq, "reason": "test correction", "target": target}
            calc.decide({"kind": "void", "input": body})
    store.close()
    return chosen


def beijing_day(recorded_at: str) -> date:
    return datetime.fromisoformat(recorded_at.replace("Z", "+00:00")).astimezone(BEIJING).date()


def _dec(text: Any) -> Decimal:
    return Decimal(text) if isinstance(text, str) else Decimal(0)


def expected_figures(
    records: list[dict[str, Any]],
    *,
    since: date | None = None,
    until: date | None = None,
    merchant: str | None = None,
    campaign: str | None = None,
    size: int | None = None,
) -> dict[str, Any]:
    """Every figure of the report, recomputed from raw records as SPEC §10 reads them."""
    by_seq = {r["seq"]: r for r in records}
    out: dict[str, Any] = {
        "records": 0,
        "counts": Counter(),
        "rejections": Counter(),
        "split_by_category": defaultdict(lambda: defaultdict(Decimal)),
        "split_by_day": defaultdict(lambda: defaultdict(Decimal)),
        "settled_by_day": defaultdict(lambda: defaultdict(Decimal)),
        "compensation": defaultdict(Decimal),
        "clawback_by_category": defaultdict(Decimal),
        "merchants": defaultdict(lambda: defaultdict(Decimal)),
    }
    for record in records:
        p = record["payload"]
        day = beijing_day(record["recorded_at"])
        if size is not None and record["seq"] > size:
            continue
        if (since and day < since) or (until and day > until):
            continue
        labels = p.get("result", {}) if p["kind"] == "void" else p
        if merchant is not None and labels.get("merchant_id") != merchant:
            continue
        if campaign is not None and labels.get("campaign") != campaign:
            continue
        out["records"] += 1
        out["counts"][(p["kind"], p["status"])] += 1
        if p["status"] == "rejected":
            for code in {r["code"] for r in p["reasons"]}:
                out["rejections"][code] += 1
        if p["status"] != "approved":
            continue
        sign = 1
        if p["kind"] == "void":
            p, sign = by_seq[p["result"]["seq"]]["payload"], -1
        result = p["result"]
        if p["kind"] == "subsidy_split":
            category = p["input"].get("category", "未分类 uncategorised")
            for name in ("merchant_subsidy_total", "platform_subsidy_total"):
                out["split_by_category"][category][name] += sign * _dec(result[name])
                out["split_by_day"][day][name] += sign * _dec(result[name])
        if p["kind"] in ("price_protection", "counterfeit_compensation"):
            field = "refund_total" if p["kind"] == "price_protection" else "payout_total"
            value = _dec(result[field])
            out["settled_by_day"][day][(p["kind"], result["settlement"])] += sign * value
            if p.get("merchant_id"):
                out["merchants"][p["merchant_id"]][result["settlement"]] += sign * value
        if p["kind"] == "counterfeit_compensation":
            for line in result["lines"]:
                if line["standard"] is not None:
                    out["compensation"][line["standard"]] += sign * _dec(line["compensation"])
        if p["kind"] == "forwarding_clawback":
            value = sign * _dec(result["clawback"])
            out["clawback_by_category"][result["category"]] += value
            if p.get("merchant_id"):
                out["merchants"][p["merchant_id"]]["subsidy_clawback"] += value
    return out


def nonzero(tree: Any) -> Any:
    """Nested mappings with the zero leaves (and then empty branches) left out."""
    if isinstance(tree, dict):
        kept = {k: nonzero(v) for k, v in tree.items()}
        return {k: v for k, v in kept.items() if v not in (0, {}, None)}
    return tree


def synthetic_store(path: Path, count: int) -> audit.AuditStore:
    """``count`` records shaped like real decisions (every money kind, five merchants, ten
    categories), stamped on seven days, appended through the audit store API."""
    start = datetime(2026, 11, 9, 16, tzinfo=UTC)
    ticks = iter(start + timedelta(seconds=600 * 1000 * 7 * i // count) for i in range(count + 1))
    store = audit.open_store(str(path), clock=lambda: next(ticks))
    kinds = [
        ("subsidy_split", {"merchant_subsidy_total": "12.30", "platform_subsidy_total": "4.50"}),
        ("price_protection", {"refund_total": "8.80", "settlement": "deduct_from_payout"}),
        ("counterfeit_compensation", {"payout_total": "519.90", "settlement": "merchant_pays",
                                      "lines": [{"standard": "platform_10x",
                                                 "compensation": "500.00"}]}),
        ("forwarding_clawback", {"clawback": "20.00", "category": "手机"}),
    ]  # fmt: skip
    batch: list[Entry] = []
    for i in range(count):
        kind, result = kinds[i % 4]
        payload = {
            "kind": kind, "status": "rejected" if i % 7 == 0 else "approved",
            "merchant_id": f"M-{1001 + i % 5}", "campaign": "双11-2026",
            "input": {"category": f"类目{i % 10}", "order_id": f"O-{i}"},
            "reasons": [{"code": "SOME_CODE", "message": "m"}] if i % 7 == 0 else [],
            "result": result,
        }  # fmt: skip
        tags = (f"kind:{kind}", f"merchant:M-{1001 + i % 5}")
        batch.append(Entry(payload, key=f"k-{i}", tags=tags))
        if len(batch) == 5_000:
            store.append_many(batch)
            batch = []
    if batch:
        store.append_many(batch)
    return store


# -- independent sums over `pricecalc audit export` (SPEC §10's key figures) ----------------

#: Where each SPEC §10 figure stands in an `audit export` row, per kind: the figure's own
#: column when the export names its columns by SPEC §10 (issue 21 point 5), else the
#: column that holds it today. ``counterfeit_payouts`` is the refund plus the
#: compensation (SPEC §4: "the two above").
EXPORTED: dict[str, tuple[str, tuple[str, ...]]] = {
    "merchant_subsidy": ("subsidy_split", ("merchant_subsidy", "merchant_subsidy_total")),
    "platform_subsidy": ("subsidy_split", ("platform_subsidy", "platform_subsidy_total")),
    "price_protection_refunds": (
        "price_protection", ("price_protection_refunds", "refund_total"),
    ),
    "counterfeit_refunds": ("counterfeit_compensation", ("counterfeit_refunds", "refund_total")),
    "counterfeit_compensation": (
        "counterfeit_compensation", ("counterfeit_compensation", "compensation_total"),
    ),
    "subsidy_clawback": ("forwarding_clawback", ("subsidy_clawback", "clawback")),
}  # fmt: skip
NO_CAMPAIGN_KEY = "未标明活动 no campaign"


def export_rows(path: Path) -> list[dict[str, Any]]:
    """`pricecalc --audit PATH audit export --format jsonl -o -`, as rows (run as a
    separate process: the report's code is not asked)."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "pricecalc", "--audit", str(path), "audit", "export",
         "--format", "jsonl", "-o", "-"],
        capture_output=True, text=True, check=True, encoding="utf-8",
    )  # fmt: skip
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def _exported(row: dict[str, Any], columns: tuple[str, ...]) -> Decimal:
    for column in columns:
        if column in row:
            value = row[column]
            return Decimal(value) if isinstance(value, str) and value else Decimal(0)
    raise KeyError(f"none of {columns} in the export row")


def exported_key_figures(rows: list[dict[str, Any]]) -> dict[str, dict[str, Decimal]]:
    """campaign (``NO_CAMPAIGN_KEY`` for none) → SPEC §10 name → the Decimal sum over the
    exported rows of approved decisions no void withdrew (``voided_by`` empty), plus
    ``decisions`` (every row of the campaign), ``deduct_from_payout`` / ``merchant_pays``
    (price-protection refunds and counterfeit payouts by ``settlement``) and
    ``net_subsidy_outlay`` (platform subsidy less clawback); key ``""`` the whole store."""
    out: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for row in rows:
        campaign = row.get("campaign") or NO_CAMPAIGN_KEY
        for part in (out[campaign], out[""]):
            part["decisions"] += 1
        if row["status"] != "approved" or row.get("voided_by") is not None:
            continue
        sums: dict[str, Decimal] = {}
        for name, (kind, columns) in EXPORTED.items():
            if row["kind"] == kind:
                sums[name] = _exported(row, columns)
        if row["kind"] == "counterfeit_compensation":
            sums["counterfeit_payouts"] = sums["counterfeit_refunds"] + sums[
                "counterfeit_compensation"
            ]
        settled = sums.get("price_protection_refunds", sums.get("counterfeit_payouts"))
        if settled is not None and row.get("settlement") in ("deduct_from_payout",
                                                             "merchant_pays"):  # fmt: skip
            sums[row["settlement"]] = settled
        for part in (out[campaign], out[""]):
            for name, value in sums.items():
                part[name] += value
    for part in out.values():
        part["net_subsidy_outlay"] = part["platform_subsidy"] - part["subsidy_clawback"]
        part["deductions"] = part["deduct_from_payout"] + part["subsidy_clawback"]
    return {c: dict(v) for c, v in out.items()}
