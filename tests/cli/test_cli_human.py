"""The human commands: split, compensate, protect and clawback print readable tables (or
--json) of a recorded decision; invalid input names the command's option (exit 2)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cli_support import CLAIM, Invoke, store_count

HASH = re.compile(r"\([0-9a-f]{12}…\)")

SPLIT_ARGS = (
    "split",
    "--list-price", "199",
    "--registration-price", "169",
    "--subsidy-price", "149",
    "--floor-price", "139",
    "--cost-price", "120",
    "--lowest-30d", "175",
    "--other-platform", "百亿补贴=172",
    "--quantity", "2",
    "--request-id", "s1",
)  # fmt: skip

SPLIT_TABLE = """\
subsidy_split: APPROVED   request s1   audit record 1 (HASH)
  merchant subsidy (per unit)                                        30.00
  platform subsidy (per unit)                                        20.00
  total subsidy (per unit)                                           50.00
  merchant subsidy rate (of list price)                             0.1508
  platform subsidy rate (of list price)                             0.1005
  consumer pays (per unit)                                          149.00
  merchant receives (per unit)                                      169.00
  merchant margin (per unit)                                         49.00
  max platform subsidy (per unit)                                    30.00
  quantity                                                               2
  merchant subsidy total                                             60.00
  platform subsidy total                                             40.00
  consumer pays total                                               298.00
  merchant receives total                                           338.00
  lowest other platform                    platform 百亿补贴, price 172.00
"""

REJECTED_TABLE = """\
subsidy_split: REJECTED   request content-v2-2ae6bfe56dfae2daf00…   audit record 1 (HASH)
  merchant subsidy (per unit)               -10.00
  platform subsidy (per unit)                20.00
  total subsidy (per unit)                   10.00
  merchant subsidy rate (of list price)    -0.1010
  platform subsidy rate (of list price)     0.2020
  consumer pays (per unit)                   89.00
  merchant receives (per unit)              109.00
  merchant margin (per unit)                 19.00
  max platform subsidy (per unit)            24.00
  quantity                                       1
  merchant subsidy total                    -10.00
  platform subsidy total                     20.00
  consumer pays total                        89.00
  merchant receives total                   109.00
Rejected because

  reason                    why
 ───────────────────────────────────────────────────────────────────────────────────
  REGISTRATION_ABOVE_LIST   registration price 109.00 is above the list price 99.00
  FLOOR_BELOW_COST          floor price 85.00 is below the cost price 90.00

"""

FOOD_TABLE = """\
counterfeit_compensation: APPROVED   request c1   audit record 1 (HASH)
  order id                     O-1002
  refund total                  39.90
  compensation total          1000.00
  payout total                1039.90
  payer                      merchant
  settlement            merchant_pays
Per line

  line id   refund   compensation   total     standard
 ────────────────────────────────────────────────────────────────────
  L1        39.90    1000.00        1039.90   food_safety_law_art148

"""


def test_split_prints_the_spec_example_as_a_table(invoke: Invoke, store: Path) -> None:
    """SPEC §2 worked example through `pricecalc split`: every amount, recorded once."""
    result = invoke(*SPLIT_ARGS)
    assert result.exit_code == 0, result.output
    assert HASH.sub("(HASH)", result.stdout) == SPLIT_TABLE
    again = invoke(*SPLIT_ARGS)
    assert again.stdout.endswith(
        "(already recorded as record 1: request s1 — this is the recorded decision, "
        "replayed; nothing new was recorded)\n"
    )
    assert store_count(store) == 1


def test_a_rejected_split_lists_every_reason(invoke: Invoke) -> None:
    """SPEC §2: a rejection lists each failing check and still reports every amount."""
    result = invoke(
        "split", "--list-price", "99", "--registration-price", "109", "--subsidy-price", "89",
        "--floor-price", "85", "--cost-price", "90",
    )  # fmt: skip
    assert result.exit_code == 0
    shown = result.stdout.replace(  # SPEC §7: the content key, 64 hex digits (cut here)
        "content-v2-2ae6bfe56dfae2daf00355781525cb621c3f16470409806e29f49acda61f9ba1",
        "content-v2-2ae6bfe56dfae2daf00…",
    )
    assert HASH.sub("(HASH)", shown) == REJECTED_TABLE


def test_split_json_is_the_spec_decision(invoke: Invoke) -> None:
    """--json prints the SPEC §8 decision."""
    result = invoke(*SPLIT_ARGS, "--json")
    decision = json.loads(result.stdout)
    assert decision["result"]["platform_subsidy_total"] == "40.00"
    assert decision["audit"]["seq"] == 1


def test_split_names_the_option_on_invalid_input(invoke: Invoke, store: Path) -> None:
    """Invalid input: exit 2, the message names the command's option, nothing recorded."""
    result = invoke(
        "split", "--list-price", "199.001", "--registration-price", "169",
        "--subsidy-price", "149", "--floor-price", "139", "--cost-price", "120",
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: invalid input, nothing recorded: --list-price: has more than two decimals "
        "(fen is the smallest unit) (got '199.001')\n"
    )
    both = invoke(
        "split", "--list-price", "199", "--registration-price", "169", "--subsidy-price", "149",
        "--platform-subsidy", "20", "--floor-price", "139", "--cost-price", "120",
    )  # fmt: skip
    assert both.exit_code == 2
    assert "--platform-subsidy: give exactly one of subsidy_price or platform_subsidy" in (
        both.stderr
    )
    other = invoke(*SPLIT_ARGS[:-4], "--other-platform", "百亿补贴")
    assert other.exit_code == 2
    assert "'百亿补贴' is not NAME=PRICE" in other.stderr
    assert store_count(store) == 0


def test_compensate_food_uses_the_food_safety_law(invoke: Invoke) -> None:
    """SPEC §4: food, paid 39.90 → 1000.00 under the food-safety law plugin."""
    result = invoke(
        "compensate", "--paid", "39.90", "--category", "food", "--order-id", "O-1002",
        "--request-id", "c1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert HASH.sub("(HASH)", result.stdout) == FOOD_TABLE


def test_compensate_not_confirmed_and_refused(invoke: Invoke) -> None:
    """SPEC §4: NOT_CONFIRMED pays nothing; --merchant-refused deducts from the payout."""
    rejected = json.loads(
        invoke("compensate", "--paid", "68", "--order-id", "O-1", "--not-confirmed", "--json")
        .stdout
    )
    assert rejected["status"] == "rejected"
    assert rejected["reasons"][0]["code"] == "NOT_CONFIRMED"
    refused = json.loads(
        invoke("compensate", "--paid", "68", "--order-id", "O-2", "--merchant-refused", "--json")
        .stdout
    )
    assert refused["result"]["settlement"] == "deduct_from_payout"
    assert refused["result"]["payout_total"] == "748.00"
    bad = invoke("compensate", "--paid", "0", "--order-id", "O-3")
    assert bad.exit_code == 2
    assert "--paid: must be at least 0.01" in bad.stderr


def test_protect_shows_which_offer_gave_the_lowest_price_and_when(
    invoke: Invoke, tmp_path: Path
) -> None:
    """SPEC §3 example: the flash sale (with the coupon) gave the lowest net 148.00 at
    12:00; the breakdown names both offers; a second claim pays 0 (ALREADY_REFUNDED)."""
    claim = tmp_path / "claim.json"
    claim.write_text(json.dumps(CLAIM), encoding="utf-8")
    result = invoke("protect", "--request", str(claim))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "price_protection: APPROVED   request claim-1   audit record 1" in out
    line = next(x for x in out.splitlines() if x.startswith("  L1 "))
    assert line.split()[:5] == ["L1", "190.00", "148.00", "2026-11-11T12:00:00+08:00", "offers[0]"]
    assert line.split()[-3:] == ["42.00", "0.00", "42.00"]
    assert "offers[0] coupon: amount 10.00, threshold 100.00" in out
    assert "offers[2] flash_sale: sku A, unit price 79.00, start" in out
    # Only the input object, on stdin, with no request_id: a new claim for the same drop.
    again = invoke("protect", "--json", input=json.dumps(CLAIM["input"]))
    decision = json.loads(again.stdout)
    assert decision["status"] == "rejected"
    assert decision["reasons"][0]["code"] == "ALREADY_REFUNDED"
    assert decision["result"]["lines"][0]["lowest_offers"] == [
        {"index": 0, "type": "coupon"},
        {"index": 2, "type": "flash_sale"},
    ]
    wrong = invoke("protect", input=json.dumps({"kind": "subsidy_split", "input": {}}))
    assert wrong.exit_code == 2
    assert "protect decides price_protection claims" in wrong.stderr


def test_clawback(invoke: Invoke) -> None:
    """SPEC §5: a forwarded phone claws back platform_subsidy × quantity."""
    result = invoke(
        "clawback", "--order-id", "O-9", "--category", "手机", "--platform-subsidy", "200",
        "--quantity", "2", "--json",
    )  # fmt: skip
    decision = json.loads(result.stdout)
    assert decision["result"]["clawback"] == "400.00"
    not_covered = invoke(
        "clawback", "--order-id", "O-10", "--category", "图书", "--platform-subsidy", "20",
        "--not-forwarded", "--json",
    )  # fmt: skip
    kept = json.loads(not_covered.stdout)
    assert [r["code"] for r in kept["reasons"]] == ["CATEGORY_NOT_COVERED", "NOT_FORWARDED"]
    assert kept["result"]["clawback"] == "0.00"
