"""`pricecalc audit …`: verify (clean, tampered, checkpoints), head, show, export, stats,
init and migrate (SPEC §7: the audit store is append-only and hash-chained)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from cli_support import CLAIM, CLAWBACK, COUNTERFEIT, SPLIT, SPLIT_REJECTED, Invoke, jsonl

import audit
from pricecalc.beijing import beijing_text


@pytest.fixture
def filled(invoke: Invoke, tmp_path: Path) -> Path:
    """A store with six decisions: two operators, every built-in kind, an evil request_id."""
    batch = tmp_path / "in.jsonl"
    batch.write_text(jsonl(SPLIT, SPLIT_REJECTED, CLAIM, COUNTERFEIT), encoding="utf-8")
    assert invoke("--operator", "clerk-1", "batch", str(batch), "-o", "o.jsonl").exit_code == 0
    evil = {**CLAWBACK, "request_id": "=HYPERLINK(\"http://evil\")"}
    evil["input"] = {**CLAWBACK["input"], "order_id": "+O-88"}
    assert invoke("--operator", "@clerk-2", "decide", input=json.dumps(evil)).exit_code == 0
    assert invoke("--operator", "clerk-1", "decide", input=json.dumps(COUNTERFEIT)).exit_code == 0
    return tmp_path / "audit.jsonl"


def test_verify_a_clean_store_and_checkpoints(invoke: Invoke, filled: Path, tmp_path: Path) -> None:
    """verify walks the chain; --save-checkpoint writes the head; --checkpoint checks it."""
    with audit.open_store(str(filled)) as store:
        head = store.head()
    checkpoint = tmp_path / "head.json"
    result = invoke("audit", "verify", "--save-checkpoint", str(checkpoint))
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"OK: 5 records, chain intact; head seq 5 hash {head.hash}\n"
        f"checkpoint saved to {checkpoint}\n"
    )
    assert json.loads(checkpoint.read_text()) == {"seq": 5, "hash": head.hash}
    again = invoke("audit", "verify", "--checkpoint", str(checkpoint))
    assert again.exit_code == 0
    assert again.stdout.endswith("(checkpoint seq 5 found)\n")
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps({"seq": 5, "hash": "0" * 64}), encoding="utf-8")
    bad = invoke("audit", "verify", "--checkpoint", str(forged))
    assert bad.exit_code == 1
    assert bad.stderr.startswith(f"Error: the audit store {filled} failed verification at")
    junk = tmp_path / "junk.json"
    junk.write_text("[]", encoding="utf-8")
    unusable = invoke("audit", "verify", "--checkpoint", str(junk))
    assert unusable.exit_code == 2
    assert "is not a checkpoint" in unusable.stderr


def test_verify_a_tampered_store_names_the_record(invoke: Invoke, filled: Path) -> None:
    """An edited record fails verification: exit 1, the first bad record is named."""
    lines = filled.read_text(encoding="utf-8").splitlines(keepends=True)
    assert '"operator":"clerk-1"' in lines[1]
    lines[1] = lines[1].replace('"operator":"clerk-1"', '"operator":"mallory"')
    filled.write_text("".join(lines), encoding="utf-8")
    result = invoke("audit", "verify")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"Error: the audit store {filled} failed verification at record 2: "
    )
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output


def test_head(invoke: Invoke, filled: Path) -> None:
    """head prints the last record's seq and hash; --json is a checkpoint file."""
    with audit.open_store(str(filled)) as store:
        head = store.head()
    assert invoke("audit", "head").stdout == f"seq 5 hash {head.hash}\n"
    assert json.loads(invoke("audit", "head", "--json").stdout) == {"seq": 5, "hash": head.hash}


def test_show_filters(invoke: Invoke, filled: Path) -> None:
    """show filters by order, kind, status, operator and time; rows are pricecalc-level."""

    def rows(*args: str) -> list[dict[str, Any]]:
        result = invoke("audit", "show", "--json", *args)
        assert result.exit_code == 0, result.output
        return list(json.loads(result.stdout))

    everything = rows()
    assert [r["seq"] for r in everything] == [1, 2, 3, 4, 5]
    assert everything[0] == {
        "seq": 1,
        "recorded_at": everything[0]["recorded_at"],
        "recorded_at_beijing": beijing_text(everything[0]["recorded_at"]),
        "kind": "subsidy_split",
        "request_id": "split-1",
        "status": "approved",
        "reason_codes": [],
        "reason_notes": [],
        "order_id": None,
        "merchant_id": None,
        "campaign": None,
        "operator": "clerk-1",
        "merchant_subsidy": "60.00",
        "platform_subsidy": "40.00",
        "price_protection_refunds": None,
        "counterfeit_refunds": None,
        "counterfeit_compensation": None,
        "counterfeit_payouts": None,
        "subsidy_clawback": None,
        "result": everything[0]["result"],
        "settlement": None,
        "voided_by": None,
        "voids": None,
        "rule_set": "chaozhigou-standard",
        "rule_version": "1.0.0",
        "hash": everything[0]["hash"],
    }
    assert [r["seq"] for r in rows("--kind", "subsidy_split")] == [1, 2]
    assert [r["seq"] for r in rows("--status", "rejected")] == [2]
    assert [r["reason_codes"] for r in rows("--status", "rejected")] == [
        ["REGISTRATION_ABOVE_LIST", "FLOOR_BELOW_COST"]
    ]
    assert [r["seq"] for r in rows("--order-id", "O-1")] == [3]
    assert [r["seq"] for r in rows("--order-id", "+O-88")] == [5]
    assert [r["seq"] for r in rows("--operator", "@clerk-2")] == [5]
    assert [r["seq"] for r in rows("--since", "2000-01-01", "--until", "2999-12-31")] == [
        1, 2, 3, 4, 5,
    ]  # fmt: skip
    assert rows("--since", "2999-01-01") == []
    assert rows("--until", "2000-01-01T10:00") == []
    assert [r["seq"] for r in rows("--limit", "2")] == [1, 2]
    nl = invoke("audit", "show", "--nl", "--kind", "price_protection").stdout
    assert [json.loads(line)["price_protection_refunds"] for line in nl.splitlines()] == ["42.00"]
    assert everything[0]["result"]["merchant_subsidy_total"] == "60.00"  # as recorded
    rejected = rows("--status", "rejected")[0]
    assert rejected["merchant_subsidy"] is None  # SPEC §10: only approved amounts summed
    assert rejected["result"]["merchant_subsidy_total"] == "-10.00"
    assert rejected["reason_notes"] == [
        "registration price above the list price", "floor price below the cost price",
    ]  # fmt: skip
    bad = invoke("audit", "show", "--since", "yesterday")
    assert bad.exit_code == 2
    assert "'yesterday' is not a date" in bad.stderr


def test_show_table(invoke: Invoke, filled: Path) -> None:
    """The table has a row per record and the money columns some record has."""
    result = invoke("audit", "show", "--kind", "counterfeit_compensation")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    # SPEC §10: each figure by its declared label (wrapped between words, never inside).
    assert lines[1].split() == ["counterfeit", "counterfeit", "counterfeit"]
    assert lines[2].split() == [
        "seq", "recorded", "(Beijing)", "kind", "request", "id", "status", "reasons",
        "order", "id", "operator", "refunds", "compensation", "payouts", "settlement", "hash",
    ]  # fmt: skip
    assert lines[4].split()[3:] == ["counterfeit_compensation", "cf-1", "approved", "—", "O-77",
                                    "clerk-1", "68.00", "680.00", "748.00", "merchant_pays",
                                    lines[4].split()[-1]]  # fmt: skip
    assert invoke("audit", "show", "--order-id", "O-404").stdout == "no matching records\n"


def test_export_jsonl_round_trips_show_json(invoke: Invoke, filled: Path, tmp_path: Path) -> None:
    """JSON Lines export re-read equals `audit show --json` with the same filters."""
    for args in ((), ("--kind", "counterfeit_compensation"), ("--operator", "clerk-1")):
        out = tmp_path / "export.jsonl"
        result = invoke("audit", "export", "--output", str(out), *args)
        assert result.exit_code == 0, result.output
        exported = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        shown = json.loads(invoke("audit", "show", "--json", *args).stdout)
        assert exported == shown
        assert result.stdout == f"exported {len(shown)} records to {out}\n"
    to_stdout = invoke("audit", "export", "--output", "-")
    assert [json.loads(x)["seq"] for x in to_stdout.stdout.splitlines()] == [1, 2, 3, 4, 5]


def test_export_csv_escapes_formula_injection(invoke: Invoke, filled: Path, tmp_path: Path) -> None:
    """CSV cells starting with = + - @ are escaped with the audit package's escaping
    (a leading '); amounts stay plain two-decimal text."""
    out = tmp_path / "export.csv"
    assert invoke("audit", "export", "--output", str(out)).exit_code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    evil = rows[4]
    assert evil["request_id"] == "'=HYPERLINK(\"http://evil\")"
    assert evil["order_id"] == "'+O-88"
    assert evil["operator"] == "'@clerk-2"
    assert audit.unescape_csv_cell(evil["request_id"]) == "=HYPERLINK(\"http://evil\")"
    assert evil["subsidy_clawback"] == "400.00"
    assert rows[1]["merchant_subsidy"] == ""  # rejected: not in the summed columns
    assert json.loads(rows[1]["result"])["merchant_subsidy_total"] == "-10.00"
    assert rows[1]["reason_codes"] == "REGISTRATION_ABOVE_LIST;FLOOR_BELOW_COST"
    assert list(rows[0]) == [
        "seq", "recorded_at", "recorded_at_beijing", "kind", "request_id", "status",
        "reason_codes", "reason_notes", "order_id", "merchant_id", "campaign", "operator",
        "merchant_subsidy", "platform_subsidy", "price_protection_refunds",
        "counterfeit_refunds", "counterfeit_compensation", "counterfeit_payouts",
        "subsidy_clawback", "result", "settlement", "voided_by", "voids", "rule_set",
        "rule_version", "hash",
    ]  # fmt: skip


def test_export_xlsx(invoke: Invoke, filled: Path, tmp_path: Path) -> None:
    """Excel export: money cells are numbers formatted 0.00; formula text is a string
    cell, shown exactly as recorded (no "'": a string cell is never evaluated)."""
    out = tmp_path / "export.xlsx"
    result = invoke("audit", "export", "--output", str(out), "--status", "approved",
                    "--headers", "en")  # fmt: skip
    assert result.exit_code == 0
    sheet = openpyxl.load_workbook(out).active
    assert sheet is not None
    header = [c.value for c in sheet[1]]
    rows = [dict(zip(header, (c for c in row), strict=True)) for row in sheet.iter_rows(min_row=2)]
    assert [r["seq"].value for r in rows] == [1, 3, 4, 5]
    assert rows[0]["platform_subsidy"].value == 40
    assert rows[0]["platform_subsidy"].number_format == "0.00"
    assert rows[3]["request_id"].value == "=HYPERLINK(\"http://evil\")"
    assert rows[3]["request_id"].data_type == "s"


def test_stats_per_day_and_kind(invoke: Invoke, filled: Path) -> None:
    """stats: counts and approved totals per Beijing day and kind."""
    result = invoke("audit", "stats", "--json")
    rows = json.loads(result.stdout)
    assert [(r["kind"], r["approved"], r["rejected"]) for r in rows] == [
        ("counterfeit_compensation", 1, 0),
        ("forwarding_clawback", 1, 0),
        ("price_protection", 1, 0),
        ("subsidy_split", 1, 1),
    ]
    split = rows[3]
    assert split["merchant_subsidy"] == "60.00"  # the rejected split is not counted
    assert rows[0]["counterfeit_compensation"] == "680.00"
    assert rows[0]["counterfeit_payouts"] == "748.00"
    assert rows[1]["subsidy_clawback"] == "400.00"
    assert rows[2]["price_protection_refunds"] == "42.00" and "refunds" not in rows[2]
    table = invoke("audit", "stats").stdout
    assert "subsidy_split" in table and "60.00" in table and "(Beijing)" in table


def test_reading_commands_need_an_existing_store(invoke: Invoke, store: Path) -> None:
    """audit commands do not create a store by accident: a clear sentence, exit 1."""
    result = invoke("audit", "verify")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: there is no audit store at {store} (decide something first, or create one "
        "with `pricecalc audit init`)\n"
    )
    assert not store.exists()


def test_init_and_migrate(invoke: Invoke, store: Path, tmp_path: Path) -> None:
    """init creates an empty store (audit.init_store); migrate copies one
    (audit.migrate_store) and reports store errors in one sentence."""
    result = invoke("audit", "init")
    assert result.exit_code == 0, result.output
    assert str(store) in result.stdout
    assert invoke("audit", "head").stdout == "seq 0 hash " + "0" * 64 + "\n"
    assert invoke("decide", input=json.dumps(SPLIT)).exit_code == 0
    # The embedded store cannot take records made elsewhere: a clear error, not a traceback.
    moved = invoke("audit", "migrate", "--from", str(store), "--to", str(tmp_path / "b.jsonl"))
    assert moved.exit_code == 1
    assert moved.stderr.startswith(f"Error: the audit store {store} (migrating to ")
    assert "Traceback" not in moved.output
