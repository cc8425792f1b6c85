"""Issue 19 through the real command: `void --target`, output files that never touch the
store, the CSV column cap (SPEC §7, docs/cli.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_support import COUNTERFEIT, Invoke, jsonl, store_count

from pricecalc.files.sheets import MAX_COLUMNS


def test_void_off_a_terminal_needs_target(invoke: Invoke, store: Path) -> None:
    """SPEC §7: not on a terminal, --target is required (a usage error naming it, exit 2,
    nothing recorded)."""
    invoke("decide", input=json.dumps(COUNTERFEIT))
    result = invoke("--operator", "clerk-li", "void", "1", "--reason", "typo")
    assert result.exit_code == 2
    assert result.stderr.endswith(
        "Error: --target is required when not on a terminal: name the record to withdraw "
        "(its request_id, or sha256: and at least 8 hex digits of its hash; pricecalc "
        "audit show shows both)\n"
    )
    assert store_count(store) == 1


def test_void_on_a_terminal_shows_the_record_and_asks(
    invoke: Invoke, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SPEC §7: on a terminal without --target the record is shown (kind, order,
    merchant, request_id, amounts) and the clerk is asked; no withdraws nothing, yes
    records the void naming the record's request_id as its target."""
    import pricecalc.cli.rules as rules

    monkeypatch.setattr(rules, "_on_terminal", lambda: True)
    invoke("decide", input=json.dumps({**COUNTERFEIT, "merchant_id": "M-2"}))
    args = ("--operator", "clerk-li", "void", "1", "--reason", "typo", "--json")
    declined = invoke(*args, input="n\n")
    assert declined.exit_code == 1
    assert store_count(store) == 1
    shown = declined.stdout.splitlines()[0]
    assert shown.startswith(
        "Record 1: counterfeit_compensation approved, order O-77, merchant M-2, request_id "
        "cf-1, counterfeit_refunds 68.00, counterfeit_compensation 680.00, "
        "counterfeit_payouts 748.00, hash sha256:"
    )
    accepted = invoke(*args, input="y\n")
    assert accepted.exit_code == 0, accepted.output
    decided = json.loads(accepted.stdout[accepted.stdout.index("{") :])
    assert (decided["status"], decided["result"]["target"]) == (
        "approved",
        COUNTERFEIT["request_id"],
    )


def test_a_planted_partial_symlink_leaves_the_log_intact(
    invoke: Invoke, store: Path, tmp_path: Path
) -> None:
    """Issue 19: a `.out.jsonl.partial` symlink to the log planted beside the output is
    never opened: the log is intact, the batch correct (the second claim on one line is
    refused against the real history), the symlink still a symlink."""
    first = {**COUNTERFEIT, "request_id": "one"}
    invoke("decide", input=json.dumps(first))
    log_before = store.read_bytes()
    (tmp_path / ".out.jsonl.partial").symlink_to(store)
    source = tmp_path / "in.jsonl"
    source.write_text(jsonl({**COUNTERFEIT, "request_id": "two"}), encoding="utf-8")
    result = invoke("batch", str(source), "-o", "out.jsonl")
    assert result.exit_code == 0, result.output
    assert store.read_bytes().startswith(log_before)
    assert store_count(store) == 2
    (row,) = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["code"] for r in row["reasons"]] == ["ALREADY_COMPENSATED"]
    assert (tmp_path / ".out.jsonl.partial").is_symlink()
    assert invoke("audit", "verify").exit_code == 0


@pytest.mark.parametrize("suffix", [".idx", ".lock", ".idx-wal"])
def test_outputs_onto_the_store_files_are_refused(
    invoke: Invoke, store: Path, tmp_path: Path, suffix: str
) -> None:
    """Issue 19: `-o STORE`, `-o STORE.idx`, `-o STORE.lock` (any file of the store) are
    refused with a sentence naming them, exit 2, for batch, export and statement."""
    invoke("decide", input=json.dumps(COUNTERFEIT))
    before = store.read_bytes()
    target = f"{store}{suffix}"
    source = tmp_path / "in.jsonl"
    source.write_text(jsonl({**COUNTERFEIT, "request_id": "x"}), encoding="utf-8")
    period = ["--since", "2026-11-01", "--until", "2026-12-31"]
    for args in (
        ["batch", str(source), "-o", target, "--format", "jsonl"],
        ["audit", "export", "-o", target, "--format", "jsonl"],
        ["statement", "--merchant", "M-1", *period, "-o", target, "--format", "jsonl"],
    ):
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert (
            f"{target!r} is the audit store's own file {str(Path(target).resolve())!r}: an "
            "output never overwrites the store, its index or its lock" in result.stderr
        ), result.stderr
    assert store.read_bytes() == before


def test_an_output_hard_linked_to_the_log_is_refused(
    invoke: Invoke, store: Path, tmp_path: Path
) -> None:
    """Issue 19: an output path that is a hard link to the log (another name, same file)
    is refused too."""
    invoke("decide", input=json.dumps(COUNTERFEIT))
    other = tmp_path / "elsewhere"
    other.mkdir()
    os.link(store, other / "export.jsonl")
    result = invoke("audit", "export", "-o", str(other / "export.jsonl"))
    assert result.exit_code == 2
    assert "is the audit store's own file" in result.stderr
    assert store_count(store) == 1


def test_a_csv_over_the_column_cap_is_refused(invoke: Invoke, tmp_path: Path) -> None:
    """Issue 19, docs/cli.md: a CSV header over the column cap is refused at once with a
    message naming the cap (exit 2, nothing decided)."""
    columns = ["order_id", *(f"x{n}" for n in range(MAX_COLUMNS))]
    source = tmp_path / "wide.csv"
    source.write_text(",".join(columns) + "\n" + ",".join("1" for _ in columns) + "\n")
    result = invoke("batch", str(source), "--kind", "counterfeit_compensation", "-o", "o.jsonl")
    assert result.exit_code == 2
    assert (
        "the CSV header has 1,001 columns; at most 1,000 are read (a request has far fewer "
        "fields): remove the extra columns, or check the file's delimiter"
    ) in " ".join(result.stderr.split())
