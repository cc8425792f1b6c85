"""The bundled campaign (examples/campaign.jsonl) — what `make run` decides — stays in
step with its generator and with the rules: every kind, and exactly the planted mistakes."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path

from cli_support import ROOT, run_pricecalc

CAMPAIGN = ROOT / "examples" / "campaign.jsonl"
POLICY = ROOT / "examples" / "policy.toml"


def test_the_campaign_file_is_what_its_generator_writes() -> None:
    """examples/make_campaign.py has a fixed seed: it reproduces the committed file."""
    spec = importlib.util.spec_from_file_location(
        "make_campaign", ROOT / "examples" / "make_campaign.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.build() == CAMPAIGN.read_text(encoding="utf-8")


def test_the_campaign_runs_with_only_its_planted_mistakes_invalid(tmp_path: Path) -> None:
    """Every kind (plugins included) is decided, approved and rejected; the invalid lines
    are exactly the mistakes real files have; a second run records nothing new."""
    args = ["--audit", "a.jsonl", "--policy", str(POLICY), "batch", str(CAMPAIGN), "-o", "d.jsonl"]
    done = run_pricecalc(args, cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # invalid lines present: exit 1, as make run expects
    rows = [json.loads(x) for x in (tmp_path / "d.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(CAMPAIGN.read_text(encoding="utf-8").splitlines())
    errors = sorted(r["error"].split(":")[0] for r in rows if r["status"] == "invalid")
    assert errors == [
        "input.cost_price",  # a negative price
        "input.floor_price",  # a missing field
        "input.list_price",  # 1e3
        "input.paid_at",  # a bad time
        "input.subsidy_price",  # three decimals
        "kind",  # an unknown kind
        "not valid JSON",  # a line cut off
    ]
    seen = Counter((r["kind"], r["status"]) for r in rows if r["status"] != "invalid")
    kinds = {
        "subsidy_split", "price_protection", "counterfeit_compensation", "forwarding_clawback",
        "chaozhigou_admission", "shipping_check", "select_alliance_admission",
        "select_alliance_product", "select_alliance_review",
    }  # fmt: skip
    assert {k for k, _ in seen} == kinds
    assert all(seen[(k, "approved")] and seen[(k, "rejected")] for k in kinds)
    codes = {c["code"] for r in rows for c in r.get("reasons", ())}
    assert {"ALREADY_REFUNDED", "CLAIM_EXPIRED", "ORDER_NOT_ELIGIBLE", "NOT_CONFIRMED"} <= codes
    foods = [
        line for r in rows if r.get("kind") == "counterfeit_compensation"
        for line in r["result"]["lines"] if line["standard"] == "food_safety_law_art148"
    ]  # fmt: skip
    assert foods
    again = run_pricecalc(args, cwd=tmp_path)
    assert again.returncode == 1
    decided = len(rows) - len(errors)
    assert (
        f"0 new decisions recorded, {decided} already recorded (replayed)" in again.stdout.decode()
    )


def test_the_campaign_names_five_merchants_and_two_campaigns() -> None:
    """Every request of a kind that moves money (SPEC §2–§5) names one of five merchants
    and one of two campaigns (SPEC §8 labels), so statements and the campaign report have
    something to select; splits carry a category, every seventh none (the report's 未分类)."""
    requests = []
    for line in CAMPAIGN.read_text(encoding="utf-8").splitlines():
        try:
            requests.append(json.loads(line))
        except ValueError:
            continue  # the planted cut-off line
    money_kinds = {
        "subsidy_split", "price_protection", "counterfeit_compensation", "forwarding_clawback",
    }  # fmt: skip
    # The planted mistakes (splits without a product_id) name nobody; every other does.
    planted = [
        r for r in requests if r["kind"] == "subsidy_split" and "product_id" not in r["input"]
    ]
    assert planted and all("merchant_id" not in r for r in planted)
    labelled = [r for r in requests if r["kind"] in money_kinds and r not in planted]
    assert all("merchant_id" in r and "campaign" in r for r in labelled)
    merchants = Counter(r.get("merchant_id") for r in labelled)
    assert set(merchants) == {"M-1001", "M-1002", "M-1003", "M-1004", "M-1005"}
    assert merchants.most_common(1)[0][0] == "M-1001"
    assert {r.get("campaign") for r in labelled} == {"双11-2026", "双12-2026"}
    splits = [r for r in requests if r["kind"] == "subsidy_split" and "product_id" in r["input"]]
    assert len(splits) == 110
    assert sum("category" not in r["input"] for r in splits) == 15  # i % 7 == 6, i < 110
    others = [r for r in requests if r["kind"] not in money_kinds]
    assert all("merchant_id" not in r for r in others)
