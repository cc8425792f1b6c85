"""`pricecalc decide`: one SPEC §8 request in, its decision out; exit codes 0 / 2 / 1."""

from __future__ import annotations

import json
from pathlib import Path

from cli_support import COUNTERFEIT, SPLIT, SPLIT_REJECTED, Invoke, run_pricecalc, store_count


def test_decide_prints_the_recorded_decision(invoke: Invoke, store: Path) -> None:
    """SPEC §8/§7: the decision JSON carries audit {seq, hash}; it was recorded first."""
    result = invoke("decide", input=json.dumps(COUNTERFEIT))
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)
    digest = decision["audit"].pop("hash")
    assert decision == {
        "request_id": "cf-1",
        "kind": "counterfeit_compensation",
        "status": "approved",
        "result": {
            "order_id": "O-77",
            "lines": [
                {
                    "line_id": "L1",
                    "refund": "68.00",
                    "compensation": "680.00",
                    "total": "748.00",
                    "standard": "platform_10x",
                }
            ],
            "refund_total": "68.00",
            "compensation_total": "680.00",
            "payout_total": "748.00",
            "payer": "merchant",
            "settlement": "merchant_pays",
        },
        "reasons": [],
        "audit": {"seq": 1},
    }
    assert len(digest) == 64
    assert store_count(store) == 1


def test_a_rejected_decision_exits_0(invoke: Invoke, store: Path, tmp_path: Path) -> None:
    """A rejection is a decision (SPEC §7): recorded, exit 0; --request reads a file."""
    request = tmp_path / "req.json"
    request.write_text(json.dumps(SPLIT_REJECTED), encoding="utf-8")
    result = invoke("decide", "--request", str(request))
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)
    assert decision["status"] == "rejected"
    assert [r["code"] for r in decision["reasons"]] == [
        "REGISTRATION_ABOVE_LIST",
        "FLOOR_BELOW_COST",
    ]
    assert decision["result"]["merchant_subsidy"] == "-10.00"
    assert store_count(store) == 1


def test_replaying_a_request_id_returns_the_recorded_decision(invoke: Invoke, store: Path) -> None:
    """SPEC §7, §8: the same request twice gives the same decision, the second marked
    "replayed": true with a note on stderr; one record."""
    first = invoke("decide", input=json.dumps(SPLIT))
    second = invoke("decide", input=json.dumps(SPLIT))
    assert first.exit_code == second.exit_code == 0
    assert json.loads(second.stdout) == {**json.loads(first.stdout), "replayed": True}
    assert "replayed" not in json.loads(first.stdout)
    assert second.stderr == (
        "(already recorded as record 1: request split-1 — this is the recorded decision, "
        "replayed; nothing new was recorded)\n"
    )
    assert store_count(store) == 1


def test_decide_keys_a_request_without_request_id_by_content(invoke: Invoke, store: Path) -> None:
    """SPEC §7: the command line gives a request without request_id a key derived from its
    content, so the same command run twice records once; --request-id records anew."""
    bare = {k: v for k, v in SPLIT.items() if k != "request_id"}
    first = json.loads(invoke("decide", input=json.dumps(bare)).stdout)
    second = json.loads(invoke("decide", input=json.dumps(bare)).stdout)
    assert first["request_id"] == second["request_id"]
    assert first["request_id"].startswith("content-") and second["replayed"] is True
    assert store_count(store) == 1
    fresh = invoke("decide", "--request-id", "again-1", input=json.dumps(bare))
    assert json.loads(fresh.stdout)["audit"]["seq"] == 2
    assert store_count(store) == 2


def test_a_conflicting_request_id_exits_1_in_one_sentence(invoke: Invoke, store: Path) -> None:
    """SPEC §7: the same request_id with another request: exit 1, one sentence naming the
    request_id and the recorded seq, nothing recorded."""
    invoke("decide", input=json.dumps(SPLIT))
    changed = {**SPLIT, "kind": "counterfeit_compensation"}
    result = invoke("decide", input=json.dumps(changed))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        "Error: request_id 'split-1' is already recorded as record 1 for a different request "
        "(kind 'subsidy_split' recorded, 'counterfeit_compensation' asked); nothing was "
        "recorded — a new request needs a new request_id\n"
    )
    assert store_count(store) == 1


def test_invalid_input_exits_2_naming_the_field(invoke: Invoke, store: Path) -> None:
    """SPEC §1: three decimals are invalid input: exit 2, the field named, nothing recorded."""
    bad = json.loads(json.dumps(COUNTERFEIT))
    bad["input"]["lines"][0]["paid_amount"] = "68.001"
    result = invoke("decide", input=json.dumps(bad))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        "Error: invalid input, nothing recorded: input.lines[0].paid_amount: has more than "
        "two decimals (fen is the smallest unit) (got '68.001')\n"
    )
    assert store_count(store) == 0


def test_exponent_numbers_and_malformed_json_exit_2(invoke: Invoke, store: Path) -> None:
    """SPEC §1: `1e3` is invalid; malformed JSON is invalid input too (exit 2, no traceback)."""
    exponent = '{"kind": "counterfeit_compensation", "input": {"order_id": "O", "confirmed": true,'
    exponent += ' "lines": [{"line_id": "L1", "paid_amount": 1e3}]}}'
    result = invoke("decide", input=exponent)
    assert result.exit_code == 2
    assert "input.lines[0].paid_amount" in result.stderr
    malformed = invoke("decide", input='{"kind": "subsidy_split", "input": {')
    assert malformed.exit_code == 2
    assert malformed.stderr.startswith(
        "Error: invalid input, nothing recorded: the request is not valid JSON: "
    )
    assert "Traceback" not in malformed.output
    missing = invoke("decide", input=json.dumps({"kind": "subsidy_split"}))
    assert missing.exit_code == 2
    assert "input: is required but missing" in missing.stderr
    assert store_count(store) == 0


def test_an_unusable_store_exits_1_in_one_sentence(invoke: Invoke, tmp_path: Path) -> None:
    """A store that cannot be opened (here: a directory) exits 1 with one sentence."""
    folder = tmp_path / "not-a-file"
    folder.mkdir()
    result = invoke("--audit", str(folder), "decide", input=json.dumps(SPLIT), audit=False)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: the audit store {folder} cannot be used: Is a directory ({folder})\n"
    )


def test_decide_exit_codes_as_a_process(tmp_path: Path) -> None:
    """The same three exit codes from a real process, with no traceback on stderr."""
    store = str(tmp_path / "audit.jsonl")
    ok = run_pricecalc(["--audit", store, "decide"], cwd=tmp_path, input=json.dumps(SPLIT).encode())
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["audit"]["seq"] == 1
    bad = run_pricecalc(["--audit", store, "decide"], cwd=tmp_path, input=b'{"kind": 1}')
    assert bad.returncode == 2
    assert b"kind" in bad.stderr and b"Traceback" not in bad.stderr
    broken = run_pricecalc(
        ["--audit", str(tmp_path), "decide"], cwd=tmp_path, input=json.dumps(SPLIT).encode()
    )
    assert broken.returncode == 1
    assert broken.stderr.count(b"\n") == 1 and b"Traceback" not in broken.stderr
