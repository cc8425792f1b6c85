"""`pricecalc void`, the once-only rules and merchant/campaign through the real command
(SPEC §4, §5, §7, §8; issues 12 and 14)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cli_support import COUNTERFEIT, SPLIT, Invoke, jsonl, store_count


def decided(result: Any) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def test_the_clerks_example_on_the_command_line(invoke: Invoke, store: Path) -> None:
    """Issue 14: compensate → rejected re-run naming the record → void with a reason →
    corrected compensation approved; the same command once more replays it."""
    first = decided(invoke("compensate", "--paid", "39.90", "--order-id", "O-1", "--json"))
    assert first["result"]["payout_total"] == "539.90"
    rerun = invoke("compensate", "--paid", "49.90", "--order-id", "O-1")
    assert rerun.exit_code == 0
    assert "ALREADY_COMPENSATED" in rerun.stdout
    assert (
        "line L1 of order O-1 was already compensated by record 1 (paid 539.90); to decide it "
        "again, void record 1 first" in " ".join(rerun.stdout.split())
    )
    args = ["void", "1", "--reason", "paid amount was 49.90", "--target", first["request_id"]]
    voided = decided(invoke("--operator", "clerk-li", *args, "--json"))
    assert (voided["status"], voided["audit"]["seq"]) == ("approved", 3)
    fixed = decided(invoke("compensate", "--paid", "49.90", "--order-id", "O-1", "--json"))
    assert (fixed["status"], fixed["result"]["payout_total"]) == ("approved", "549.90")
    assert fixed["request_id"].endswith("~void-3")
    again = invoke("compensate", "--paid", "49.90", "--order-id", "O-1")
    assert again.stdout.endswith(
        f"(already recorded as record 4: request {fixed['request_id']} — this is the recorded "
        "decision, replayed; nothing new was recorded)\n"
    )
    assert store_count(store) == 4


def test_void_needs_the_global_operator(invoke: Invoke, store: Path) -> None:
    """SPEC §7: a void names its operator: without --operator, exit 2, nothing recorded."""
    invoke("compensate", "--paid", "39.90", "--order-id", "O-1")
    result = invoke("void", "1", "--reason", "typo")
    assert result.exit_code == 2
    assert result.stderr.endswith(
        "Error: a void names who made it: give the global --operator NAME "
        "(pricecalc --operator clerk-li void …)\n"
    )
    assert store_count(store) == 1


def test_a_rejected_void_is_recorded_and_shown(invoke: Invoke, store: Path) -> None:
    """A void of a record that does not exist is a rejected decision, recorded."""
    result = invoke("--operator", "clerk-li", "void", "7", "--reason", "typo",
                    "--target", "sha256:00000000")  # fmt: skip
    assert result.exit_code == 0
    assert "NO_SUCH_RECORD" in result.stdout and "there is no record 7" in result.stdout
    assert store_count(store) == 1


def test_audit_show_marks_voided_records_and_their_voids(invoke: Invoke, store: Path) -> None:
    """Issue 14: audit show and export mark the voided record and the void that withdrew it."""
    paid = decided(invoke("compensate", "--paid", "39.90", "--order-id", "O-1",
                          "--merchant", "shop-1", "--json"))  # fmt: skip
    invoke("--operator", "clerk-li", "void", "1", "--reason", "typo",
           "--target", "sha256:" + paid["audit"]["hash"][:8])  # fmt: skip
    rows = json.loads(invoke("audit", "show", "--json").stdout)
    assert [(r["seq"], r["kind"], r["voided_by"], r["voids"]) for r in rows] == [
        (1, "counterfeit_compensation", 2, None),
        (2, "void", None, 1),
    ]
    assert [r["merchant_id"] for r in rows] == ["shop-1", "shop-1"]
    table = invoke("audit", "show").stdout
    assert "voided by" in table and "voids" in table
    exported = invoke("audit", "export", "--output", "-")
    assert [json.loads(line)["voided_by"] for line in exported.stdout.splitlines()] == [2, None]


def test_merchant_and_campaign_filters(invoke: Invoke, store: Path) -> None:
    """SPEC §8, issue 12: merchant_id/campaign are recorded, filterable in audit show and
    export (--merchant, --campaign) and carried as columns."""
    invoke("compensate", "--paid", "39.90", "--order-id", "O-1", "--merchant", "shop-1",
           "--campaign", "双11")  # fmt: skip
    invoke("compensate", "--paid", "68.00", "--order-id", "O-2", "--merchant", "shop-2")
    invoke("decide", input=json.dumps({**SPLIT, "campaign": "双11"}))

    def seqs(*args: str) -> list[int]:
        result = invoke("audit", "show", "--json", *args)
        assert result.exit_code == 0, result.output
        return [r["seq"] for r in json.loads(result.stdout)]

    assert seqs("--merchant", "shop-1") == [1]
    assert seqs("--merchant", "shop-2") == [2]
    assert seqs("--campaign", "双11") == [1, 3]
    assert seqs("--campaign", "双11", "--merchant", "shop-2") == []
    rows = json.loads(invoke("audit", "show", "--json").stdout)
    assert [(r["merchant_id"], r["campaign"], r["settlement"]) for r in rows] == [
        ("shop-1", "双11", "merchant_pays"),
        ("shop-2", None, "merchant_pays"),
        (None, "双11", None),
    ]


def test_batch_fills_merchant_and_campaign_per_file(
    invoke: Invoke, tmp_path: Path, store: Path
) -> None:
    """Issue 12: batch --merchant/--campaign label the lines that name none; a line naming
    another merchant is an invalid line; CSV merchant_id/campaign columns are envelope
    fields, not input."""
    path = tmp_path / "in.jsonl"
    path.write_text(
        jsonl(COUNTERFEIT, {**SPLIT, "merchant_id": "shop-9"}, {**SPLIT, "request_id": "s-own"}),
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    result = invoke(
        "batch", str(path), "--merchant", "shop-1", "--campaign", "双11", "-o", str(out)
    )
    assert result.exit_code == 1
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows[1] == {
        "line": 2,
        "status": "invalid",
        "error": "merchant_id: differs from --merchant 'shop-1' (got 'shop-9')",
        "request_id": "split-1",
        "kind": "subsidy_split",
    }
    shown = json.loads(invoke("audit", "show", "--json").stdout)
    assert [(r["request_id"], r["merchant_id"], r["campaign"]) for r in shown] == [
        ("cf-1", "shop-1", "双11"),
        ("s-own", "shop-1", "双11"),
    ]
    csv_in = tmp_path / "claims.csv"
    csv_in.write_text(
        "merchant_id,campaign,order_id,confirmed,lines[0].line_id,lines[0].paid_amount\n"
        "shop-3,618,O-5,true,L1,20.00\n",
        encoding="utf-8",
    )
    done = invoke("batch", str(csv_in), "--kind", "counterfeit_compensation", "-o", "-")
    assert done.exit_code == 0, done.output
    last = json.loads(invoke("audit", "show", "--json", "--merchant", "shop-3").stdout)
    assert [(r["order_id"], r["campaign"]) for r in last] == [("O-5", "618")]
