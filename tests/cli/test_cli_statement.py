"""`pricecalc statement` (SPEC §10, issue 13): a merchant's settlement statement written
as JSON Lines, CSV or Excel, ending with its checkpoint; `--prove` writes each row's
inclusion proof beside it (docs/report.md "The settlement statement")."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from cli_support import ROOT, Invoke
from statement_support import EXPECTED_ROWS, EXPECTED_TOTALS, campaign

import audit
from audit.note import load_verifier_key
from audit.proofdoc import load_document, verify_document

NAME = "finance.example/statement-test"
PERIOD = ("--merchant", "M1", "--since", "2026-11-11", "--until", "2026-11-12")
COLUMNS = ("deduct_from_payout", "merchant_pays", "subsidy_clawback")


@pytest.fixture
def filled(store: Path) -> Path:
    campaign(store)
    return store


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def from_export(invoke: Invoke) -> dict[str, Decimal]:
    """The three sums recomputed from `audit export` rows: the merchant's approved
    decisions in the period by their settlement, minus what its voids withdrew."""
    every = {r["seq"]: r for r in lines(invoke("audit", "export", "-o", "-").stdout)}
    chosen = lines(invoke("audit", "export", *PERIOD, "--status", "approved", "-o", "-").stdout)
    sums = dict.fromkeys(COLUMNS, Decimal(0))

    def add(row: dict[str, Any], sign: int) -> None:
        # The recorded result (the money columns leave a withdrawn decision empty).
        result = row["result"]
        if row["kind"] == "forwarding_clawback":
            sums["subsidy_clawback"] += sign * Decimal(result["clawback"])
        elif row["kind"] in ("price_protection", "counterfeit_compensation"):
            paid = Decimal(result["refund_total"]) + Decimal(result.get("compensation_total", 0))
            sums[row["settlement"]] += sign * paid

    for row in chosen:
        if row["voids"] is not None:
            add(every[row["voids"]], -1)
        else:
            add(row, 1)
    return sums


def test_jsonl_rows_totals_and_checkpoint(invoke: Invoke, filled: Path) -> None:
    """One JSON object per row ("type": "row"), then the totals line and the checkpoint
    line; the totals equal the sums recomputed from `audit export`."""
    result = invoke("statement", *PERIOD, "-o", "-")
    assert result.exit_code == 0, result.output
    got = lines(result.stdout)
    rows, totals, cut = got[:-2], got[-2], got[-1]
    assert [
        (r["seq"], r["kind"], r["reverses"], *(r[c] for c in COLUMNS)) for r in rows
    ] == EXPECTED_ROWS
    assert {r["type"] for r in rows} == {"row"}
    assert list(rows[0]) == [
        "type", "seq", "recorded_at_beijing", "kind", "order_id", "request_id", "campaign",
        "reverses", *COLUMNS, "hash",
    ]  # fmt: skip
    assert totals == {
        "type": "totals",
        "merchant_id": "M1",
        "recorded_from": "2026-11-11T00:00:00+08:00",
        "recorded_before": "2026-11-13T00:00:00+08:00",
        "rows": 5,
        **{c: f"{v:.2f}" for c, v in EXPECTED_TOTALS.items()},
    }
    assert {c: Decimal(totals[c]) for c in COLUMNS} == from_export(invoke)
    head = json.loads(invoke("audit", "head", "--json").stdout)
    assert (cut["type"], cut["source"], cut["tree_size"], cut["head_seq"], cut["head_hash"]) == (
        "checkpoint", "store_head", 11, head["seq"], head["hash"],
    )  # fmt: skip


def test_csv_totals_and_checkpoint_live_in_their_own_file(invoke: Invoke, filled: Path) -> None:
    """SPEC §10 (issue 21 point 5): the CSV holds the heading row and the rows only — a
    plain SUM of each money column is the statement's total; the totals and the checkpoint
    go to NAME.totals.csv, one label,value line per fact; --excel adds the byte-order
    mark to both (lines end CRLF always)."""
    result = invoke("statement", *PERIOD, "-o", "s.csv", "--excel")
    assert result.exit_code == 0, result.output
    raw = Path("s.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and raw.count(b"\r\n") == raw.count(b"\n")
    text = raw.decode("utf-8-sig").split("\r\n")
    assert text[0] == (
        "seq,recorded_at_beijing,kind,order_id,request_id,campaign,reverses,"
        "deduct_from_payout,merchant_pays,subsidy_clawback,hash"
    )
    assert text[4].startswith("7,2026-11-12 09:00:00,price_protection,O-6,req-6,,6,-20.00,0.00,")
    assert text[6:] == [""]  # five rows, then nothing: no totals or label rows
    data = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert {c: sum((Decimal(r[c]) for r in data), Decimal(0)) for c in COLUMNS} == {
        c: Decimal(v) for c, v in EXPECTED_TOTALS.items()
    }
    totals_raw = Path("s.totals.csv").read_bytes()
    assert totals_raw.startswith(b"\xef\xbb\xbf")
    totals = totals_raw.decode("utf-8-sig").split("\r\n")
    assert totals[:9] == [
        "totals,",
        "merchant_id,M1",
        "recorded_from,2026-11-11T00:00:00+08:00",
        "recorded_before,2026-11-13T00:00:00+08:00",
        "rows,5",
        "deduct_from_payout,539.90",
        "merchant_pays,748.00",
        "subsidy_clawback,400.00",
        "source,store_head",
    ]
    assert totals[10].startswith("tree_size,11") and totals[-2] == "note,"
    assert result.stdout.startswith(
        "statement of merchant M1: 5 rows (deduct_from_payout 539.90, merchant_pays 748.00, "
        "subsidy_clawback 400.00), cut from the store's head (seq 11), written to s.csv"
    )


def test_xlsx_cells_and_summary_sheet(invoke: Invoke, filled: Path) -> None:
    """Excel: Chinese headings (bold, frozen, auto-filter), amounts as numbers 0.00,
    Beijing times as date cells; a summary sheet with the totals and the checkpoint."""
    result = invoke("statement", *PERIOD, "-o", "s.xlsx")
    assert result.exit_code == 0, result.output
    book = openpyxl.load_workbook("s.xlsx")
    assert book.sheetnames == ["statement", "summary", "columns"]
    sheet = book["statement"]
    heading = [c.value for c in sheet[1]]
    assert heading == [
        "记录号", "记录时间(北京时间)", "类型", "订单号", "请求号", "活动", "冲销的记录号",
        "从货款扣除", "商家直接赔付", "转寄追回补贴", "哈希",
    ]  # fmt: skip
    assert all(c.font.bold for c in sheet[1])
    assert (sheet.freeze_panes, sheet.auto_filter.ref) == ("A2", "A1:K6")
    reversal = sheet[5]
    assert [reversal[0].value, reversal[6].value, reversal[7].value] == [7, 6, -20]
    assert reversal[7].number_format == "0.00" and reversal[1].is_date
    assert reversal[1].value.isoformat() == "2026-11-12T09:00:00"
    summary = {row[0]: row[1] for row in book["summary"].iter_rows(values_only=True) if row}
    assert summary["商家"] == "M1" and summary["行数"] == 5
    assert [summary[k] for k in ("从货款扣除", "商家直接赔付", "转寄追回补贴")] == [
        pytest.approx(539.90), 748, 400,
    ]  # fmt: skip
    assert summary["截取自"] == "存储当前链头(未签名)" and summary["树大小(记录数)"] == 11
    assert book["summary"]["B8"].number_format == "0.00"
    english = invoke("statement", *PERIOD, "-o", "en.xlsx", "--headers", "en")
    assert english.exit_code == 0
    book = openpyxl.load_workbook("en.xlsx")
    assert book.sheetnames == ["statement", "summary"]
    assert book["statement"]["H1"].value == "deduct_from_payout"


def test_format_wins_over_the_extension(invoke: Invoke, filled: Path) -> None:
    result = invoke("statement", *PERIOD, "-o", "s.txt", "--format", "jsonl")
    assert result.exit_code == 0, result.output
    assert lines(Path("s.txt").read_text(encoding="utf-8"))[-1]["type"] == "checkpoint"


def keys(invoke: Invoke, tmp_path: Path) -> tuple[Path, str]:
    key = tmp_path / "signing.key"
    made = invoke("audit", "keygen", NAME, "--output", str(key), audit=False)
    assert made.exit_code == 0, made.output
    return key, made.stdout.strip()


def test_prove_writes_a_proof_per_seq_that_verifies(
    invoke: Invoke, filled: Path, tmp_path: Path
) -> None:
    """--prove --signing-key: the store's tree is signed, the statement cut from it, and
    each seq it names (row seqs and reversed seqs) has a proof that `audit verify-proof`
    and audit.proofdoc.verify_document accept; a tampered proof is refused."""
    key, vkey = keys(invoke, tmp_path)
    result = invoke("statement", *PERIOD, "--prove", "--signing-key", str(key), "-o", "s.jsonl")
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith("5 inclusion proofs written to s.proofs\n")
    folder = tmp_path / "s.proofs"
    assert {p.name for p in folder.iterdir()} == {f"seq-{n}.json" for n in (2, 5, 6, 7, 9)}
    cut = lines(Path("s.jsonl").read_text(encoding="utf-8"))[-1]
    assert (cut["source"], cut["origin"], cut["tree_size"]) == ("signed_checkpoint", NAME, 11)
    for path in sorted(folder.iterdir()):
        checked = invoke("audit", "verify-proof", str(path), "--verifier-key", vkey, audit=False)
        assert checked.exit_code == 0, checked.output
        doc = load_document(path.read_text(encoding="utf-8"))
        assert doc["tree_size"] == 11 and doc["checkpoint"] == cut["note"]
        assert verify_document(doc, load_verifier_key(vkey))
    doc = json.loads((folder / "seq-7.json").read_text(encoding="utf-8"))
    doc["record"]["payload"]["result"]["seq"] = 5
    (tmp_path / "bad.json").write_text(json.dumps(doc), encoding="utf-8")
    refused = invoke("audit", "verify-proof", "bad.json", "--verifier-key", vkey, audit=False)
    assert refused.exit_code == 1 and refused.stderr.startswith("Error: proof refused: ")
    again = invoke("statement", *PERIOD, "--prove", "--signing-key", str(key), "-o", "s.jsonl")
    assert (again.exit_code, again.stderr) == (
        2,
        f"{USAGE}Error: the proofs folder 's.proofs' already exists: remove it, or write the "
        "statement elsewhere (proofs are never overwritten)\n",
    )


def test_a_published_checkpoint_leaves_out_a_later_void(
    invoke: Invoke, store: Path, tmp_path: Path
) -> None:
    """--checkpoint: rows up to its size only — the void (7) recorded after the checkpoint
    of size 6 is not in the statement; --prove proves at that size."""
    key, vkey = keys(invoke, tmp_path)
    campaign(store, upto=6)
    signed = invoke("audit", "checkpoint", "--signing-key", str(key), "-o", "cp6.txt")
    assert signed.exit_code == 0, signed.output
    campaign_rest(store)
    result = invoke("statement", *PERIOD, "--checkpoint", "cp6.txt", "--prove", "-o", "s.jsonl")
    assert result.exit_code == 0, result.output
    got = lines(Path("s.jsonl").read_text(encoding="utf-8"))
    assert [r["seq"] for r in got[:-2]] == [2, 5, 6]
    assert got[-2]["deduct_from_payout"] == "20.00"
    assert got[-1]["note"] == Path("cp6.txt").read_text(encoding="utf-8")
    for seq in (2, 5, 6):
        proof = tmp_path / "s.proofs" / f"seq-{seq}.json"
        checked = invoke("audit", "verify-proof", str(proof), "--verifier-key", vkey, audit=False)
        assert checked.exit_code == 0, checked.output


def campaign_rest(store: Path) -> None:
    """The campaign's decisions after the sixth, into a store holding the first six."""
    import statement_support as support

    clock = support.Clock()
    with support.Calculator(audit.open_store(store, clock=clock), operator="clerk-li") as calc:
        for n, (moment, request) in enumerate(support.CAMPAIGN[6:], 7):
            clock.at(moment)
            calc.decide({**request, "request_id": f"req-{n}"}, now=support.NOW)


def test_an_empty_store_gives_an_empty_statement(invoke: Invoke, store: Path) -> None:
    """No records: no rows, zero totals, the empty tree's checkpoint."""
    assert invoke("audit", "init", str(store)).exit_code == 0
    result = invoke("statement", *PERIOD, "-o", "-")
    assert result.exit_code == 0, result.output
    totals, cut = lines(result.stdout)
    assert (totals["rows"], *(totals[c] for c in COLUMNS)) == (0, "0.00", "0.00", "0.00")
    assert (cut["tree_size"], cut["head_hash"]) == (0, "0" * 64)


USAGE = "Usage: cli statement [OPTIONS]\nTry 'cli statement --help' for help.\n\n"


#: The mistakes of errors_of that are about a file's content, not the command line.
DATA_ERRORS = ("Invalid value for '--checkpoint': cannot read", "--checkpoint unsigned.txt")


def errors_of(invoke: Invoke, tmp_path: Path) -> dict[str, tuple[str, ...]]:
    (tmp_path / "folder.csv").mkdir()
    (tmp_path / "unsigned.txt").write_text(f"{NAME}\n3\n{'A' * 43}=\n\n", encoding="utf-8")
    key, _ = keys(invoke, tmp_path)
    invoke("audit", "checkpoint", "--signing-key", str(key), "-o", "cp.txt")
    return {
        "Missing option '--merchant'.": ("--since", "2026-11-11", "--until", "2026-11-12",
                                         "-o", "s.csv"),
        "--since 2026-11-13 is after --until 2026-11-12: the period is empty": (
            "--merchant", "M1", "--since", "2026-11-13", "--until", "2026-11-12", "-o", "s.csv"),
        "Invalid value for '--until': 'soon' is not a date (2026-11-11) or an ISO time "
        "(2026-11-11T10:00)": ("--merchant", "M1", "--since", "2026-11-11", "--until", "soon",
                               "-o", "s.csv"),
        "Invalid value for '--checkpoint': cannot read nosuch.txt: no such file or directory": (
            *PERIOD, "--checkpoint", "nosuch.txt", "-o", "s.csv"),
        "--checkpoint unsigned.txt is not signed (it has no signature line)": (
            *PERIOD, "--checkpoint", "unsigned.txt", "-o", "s.csv"),
        "Invalid value for '--output': the folder 'nosuch' does not exist (for "
        "'nosuch/s.csv'): create it first, or write somewhere else": (
            *PERIOD, "-o", "nosuch/s.csv"),
        "Invalid value for '--output': 'folder.csv' is a folder; give the name of a file to "
        "write, such as 'folder.csv/statement.csv'": (*PERIOD, "-o", "folder.csv"),
        "cannot tell the output format of 's.txt': name it .jsonl, .csv or .xlsx, or give "
        "--format jsonl|csv|xlsx": (*PERIOD, "-o", "s.txt"),
        "an Excel workbook cannot be written to standard output: give a file name (--output "
        "decisions.xlsx), or --format csv or jsonl for standard output": (
            *PERIOD, "-o", "-", "--format", "xlsx"),
        "--prove needs a signed checkpoint to prove the rows against: give --checkpoint "
        "CP.txt, or --signing-key KEYFILE (or $PRICECALC_AUDIT_SIGNING_KEY) to sign the "
        "store's current tree": (*PERIOD, "--prove", "-o", "s.csv"),
        "--prove writes the proofs beside the statement: give --output a file name, not -": (
            *PERIOD, "--prove", "--checkpoint", "cp.txt", "-o", "-"),
    }  # fmt: skip


def test_mistakes_are_refused_before_anything_is_written(
    invoke: Invoke, filled: Path, tmp_path: Path
) -> None:
    """Exit 2, one sentence naming what was typed, and no statement file; the usage banner
    only for a wrong invocation, never before a file that cannot be used (issue 21 point 4:
    a checkpoint that cannot be read or is not signed)."""
    for message, args in errors_of(invoke, tmp_path).items():
        result = invoke("statement", *args)
        banner = "" if message.startswith(DATA_ERRORS) else USAGE
        assert (result.exit_code, result.stderr) == (2, f"{banner}Error: {message}\n"), args
    assert not (tmp_path / "s.csv").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith((".partial", ".proofs"))]


def test_a_checkpoint_of_another_store_is_refused(
    invoke: Invoke, filled: Path, tmp_path: Path
) -> None:
    """The checkpoint must be of this store: its root at its size (exit 2, without the
    usage banner: the invocation was right, the file is wrong — issue 21 point 4)."""
    key, _ = keys(invoke, tmp_path)
    other = tmp_path / "other.jsonl"
    campaign(other, upto=3)
    made = invoke("--audit", str(other), "audit", "checkpoint", "--signing-key", str(key),
                  "-o", "other.txt", audit=False)  # fmt: skip
    assert made.exit_code == 0, made.output
    result = invoke("statement", *PERIOD, "--checkpoint", "other.txt", "-o", "s.csv")
    assert (result.exit_code, result.stderr) == (
        2,
        "Error: --checkpoint other.txt is not of this store (its root at size 3 "
        "differs, or the store is smaller)\n",
    )
    assert not (tmp_path / "s.csv").exists()


def test_prove_with_the_verifier_key_leaves_the_merchant_everything(
    invoke: Invoke, filled: Path, tmp_path: Path
) -> None:
    """--prove --verifier-key FILE (issue 24): the proofs folder also holds the verifier
    key, the checkpoint (bytes as signed) and a README.txt in Chinese and English whose
    two ways of checking a row both work as written, run from inside the folder."""
    key, vkey = keys(invoke, tmp_path)
    (tmp_path / "finance.vkey").write_text(vkey + "\n", encoding="utf-8")
    assert invoke("audit", "checkpoint", "--signing-key", str(key), "-o", "cp.txt").exit_code == 0
    result = invoke("statement", *PERIOD, "--checkpoint", "cp.txt", "--prove",
                    "--verifier-key", "finance.vkey", "-o", "s.xlsx")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith(
        "5 inclusion proofs written to s.proofs\nthe verifier key, the checkpoint and "
        "README.txt (how to check a row) written to s.proofs\n"
    )
    folder = tmp_path / "s.proofs"
    assert {p.name for p in folder.iterdir()} == {
        "README.txt", "checkpoint.txt", "verifier-key.txt",
        *(f"seq-{n}.json" for n in (2, 5, 6, 7, 9)),
    }  # fmt: skip
    assert (folder / "verifier-key.txt").read_text(encoding="utf-8") == vkey + "\n"
    assert (folder / "checkpoint.txt").read_bytes() == (tmp_path / "cp.txt").read_bytes()
    readme = (folder / "README.txt").read_text(encoding="utf-8")
    assert "先核对公钥 First, compare the key" in readme
    assert "the verifier key the platform\n   publishes" in readme
    starts = ("pricecalc audit verify-proof", "python3 ")
    commands = [line.strip() for line in readme.splitlines() if line.strip().startswith(starts)]
    assert commands == [
        "pricecalc audit verify-proof seq-2.json --checkpoint checkpoint.txt "
        "--verifier-key verifier-key.txt",
        'python3 verify_proof.py seq-2.json checkpoint.txt "$(cat verifier-key.txt)"',
    ]
    os.chdir(folder)
    args = shlex.split(commands[0])[1:]
    checked = invoke(*args, audit=False)
    assert checked.exit_code == 0, checked.output
    assert checked.stdout.startswith("OK: record 2 ")
    assert "\nrecord 2 decided / 记录 2 的决定:\n" in checked.stdout  # issue 24: the money
    assert "compare it with the row" in readme
    blocks = re.findall(r"^```python[^\n]*\n(.*?)^```", (ROOT / "docs" / "audit.md").read_text(
        "utf-8"), re.S | re.M)  # fmt: skip
    (folder / "verify_proof.py").write_text(
        next(b for b in blocks if "verify_proof.py" in b), encoding="utf-8"
    )
    script = subprocess.run(
        [sys.executable, "verify_proof.py", "seq-2.json", "checkpoint.txt", vkey],
        capture_output=True, text=True, check=False, cwd=folder,
    )  # fmt: skip
    assert (script.returncode, script.stdout) == (0, f"OK: record 2 is in {NAME} at size 11\n")


def test_a_verifier_key_that_does_not_check_the_checkpoint_is_refused(
    invoke: Invoke, filled: Path, tmp_path: Path
) -> None:
    """A merchant must never be handed a key that does not check its proofs: another
    log's key is exit 2 naming it, and nothing is written; --verifier-key without --prove
    is a usage error too (issue 24)."""
    key, _ = keys(invoke, tmp_path)
    other = invoke("audit", "keygen", NAME, "--output", str(tmp_path / "o.key"), audit=False)
    wrong = other.stdout.strip()
    assert invoke("audit", "checkpoint", "--signing-key", str(key), "-o", "cp.txt").exit_code == 0
    refused = invoke("statement", *PERIOD, "--checkpoint", "cp.txt", "--prove",
                     "--verifier-key", wrong, "-o", "s.csv")  # fmt: skip
    named = "+".join(wrong.split("+")[:2])
    assert (refused.exit_code, refused.stderr) == (
        2,
        f"Error: Invalid value for '--verifier-key': {named} does not verify the "
        f"statement's checkpoint (signature: the note is not signed by {named} (signed by "
        "another key, or a key with the same name that is not ours))\n",
    )
    alone = invoke("statement", *PERIOD, "--verifier-key", wrong, "-o", "s.csv")
    assert (alone.exit_code, alone.stderr) == (
        2, f"{USAGE}Error: --verifier-key goes into the proofs folder: give it with --prove\n",
    )  # fmt: skip
    assert not (tmp_path / "s.csv").exists() and not (tmp_path / "s.proofs").exists()
