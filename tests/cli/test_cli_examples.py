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
