"""`pricecalc batch`: one output row per input line, in order; invalid lines reported and
the rest decided; re-runs record nothing twice; CSV in, CSV/Excel out (SPEC §8)."""

from __future__ import annotations

import csv
import io
import json
import re
import signal
import subprocess
import sys
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from cli_support import (
    CLAIM,
    CLAWBACK,
    COUNTERFEIT,
    SPLIT,
    SPLIT_REJECTED,
    Invoke,
    jsonl,
    run_pricecalc,
    store_count,
)

import audit
import pricecalc.batch
from pricecalc.calculator import Calculator
from pricecalc.files.columns import MONEY_COLUMNS
from pricecalc.sameness import request_key

BAD_DECIMALS = {
    **SPLIT,
    "request_id": "split-3",
    "input": {**SPLIT["input"], "subsidy_price": "149.005"},
}  # type: ignore[dict-item]
CHEAP = {
    "order_id": "O-39",
    "confirmed": True,
    "lines": [{"line_id": "L1", "paid_amount": "39.90"}],
}
NO_ID = {k: v for k, v in SPLIT_REJECTED.items() if k != "request_id"}
MIXED = jsonl(
    SPLIT,
    '{"kind": "subsidy_split", "input": {',
    CLAIM,
    BAD_DECIMALS,
    COUNTERFEIT,
    {"kind": "bogus", "input": {}},
    CLAWBACK,
    "",
    NO_ID,
)
SUMMARY = """\
9 lines: 5 new decisions recorded, 0 already recorded (replayed), 4 invalid
Decisions

  kind                       status     new   replayed
 ──────────────────────────────────────────────────────
  counterfeit_compensation   approved     1          0
  forwarding_clawback        approved     1          0
  price_protection           approved     1          0
  subsidy_split              approved     1          0
  subsidy_split              rejected     1          0
  —                          invalid      4          0

Money

  total (approved decisions)   new (CNY)   replayed (CNY)
 ─────────────────────────────────────────────────────────
  merchant subsidy                 60.00             0.00
  platform subsidy                 40.00             0.00
  price protection refunds         42.00             0.00
  counterfeit refunds              68.00             0.00
  counterfeit compensation        680.00             0.00
  counterfeit payouts             748.00             0.00
  subsidy clawback                400.00             0.00

"""
NO_ID_KEY = request_key({"kind": NO_ID["kind"], "input": NO_ID["input"]})


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    path = tmp_path / "mixed.jsonl"
    path.write_text(MIXED, encoding="utf-8")
    return path


def test_mixed_batch_with_invalid_lines_in_the_middle(
    invoke: Invoke, mixed: Path, tmp_path: Path, store: Path
) -> None:
    """SPEC §8: one output line per input line, in order; invalid lines give
    {"line", "status": "invalid", "error"} and the rest still runs; exit 1."""
    out = tmp_path / "out.jsonl"
    result = invoke("batch", str(mixed), "--output", str(out))
    assert result.exit_code == 1
    assert result.stdout == SUMMARY
    assert (
        result.stderr
        == '4 of 9 lines were invalid (rows with status "invalid" in out.jsonl).\n'.replace(
            "out.jsonl", str(out)
        )
    )
    rows = read_jsonl(out)
    assert [r.get("request_id", r.get("line")) for r in rows] == [
        "split-1",
        2,
        "claim-1",
        "split-3",
        "cf-1",
        6,
        "fw-1",
        8,
        rows[8]["request_id"],
    ]
    assert [r["status"] for r in rows] == [
        "approved",
        "invalid",
        "approved",
        "invalid",
        "approved",
        "invalid",
        "approved",
        "invalid",
        "rejected",
    ]
    assert rows[1] == {
        "line": 2,
        "status": "invalid",
        "error": "not valid JSON: Expecting property name enclosed in double quotes at column 37",
    }
    assert rows[3] == {  # SPEC §8: request_id and kind, as far as the line could be read
        "line": 4,
        "status": "invalid",
        "error": "input.subsidy_price: has more than two decimals (fen is the smallest unit) "
        "(got '149.005')",
        "request_id": "split-3",
        "kind": "subsidy_split",
    }
    assert rows[5]["error"].startswith("kind: is not a known kind (")
    assert rows[5]["kind"] == "bogus" and "request_id" not in rows[5]
    assert rows[7] == {
        "line": 8,
        "status": "invalid",
        "error": "line is empty; expected a JSON request",
    }
    # The request without request_id is keyed by its content (SPEC §7), not its line.
    assert rows[8]["request_id"] == NO_ID_KEY
    assert NO_ID_KEY.startswith("content-v2-") and len(NO_ID_KEY) == len("content-v2-") + 64
    assert rows[2]["result"]["refund_total"] == "42.00"  # SPEC §3 worked example
    assert [r["audit"]["seq"] for r in rows if "audit" in r] == [1, 2, 3, 4, 5]
    assert store_count(store) == 5


def test_the_same_batch_twice_records_nothing_twice(
    invoke: Invoke, mixed: Path, tmp_path: Path, store: Path
) -> None:
    """SPEC §7, §8: a re-run replays every recorded decision, each marked "replayed": true,
    and the summary counts and totals them apart from new ones."""
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    assert invoke("batch", str(mixed), "--output", str(first)).exit_code == 1
    count = store_count(store)
    result = invoke("batch", str(mixed), "--output", str(second))
    assert result.exit_code == 1
    assert store_count(store) == count == 5
    again = [
        {k: v for k, v in row.items() if k != "replayed"} for row in read_jsonl(second)
    ]
    assert again == read_jsonl(first)
    assert [row.get("replayed") for row in read_jsonl(second)] == [
        True, None, True, None, True, None, True, None, True,
    ]  # fmt: skip
    assert result.stdout.splitlines()[0] == (
        "9 lines: 0 new decisions recorded, 5 already recorded (replayed), 4 invalid"
    )
    money = result.stdout.split("Money", 1)[1]
    assert "  price protection refunds          0.00            42.00" in money
    assert "  counterfeit refunds               0.00            68.00" in money


def test_an_edited_file_records_only_what_changed(
    invoke: Invoke, tmp_path: Path, store: Path
) -> None:
    """SPEC §7: lines without request_id are keyed by content, so fixing one typo and
    re-running the file records only the corrected line; two identical lines in one file
    are one decision (the second a replay)."""
    typo = {**NO_ID, "input": {**NO_ID["input"], "cost_price": "9O.00"}}
    path = tmp_path / "splits.jsonl"
    path.write_text(jsonl(SPLIT, typo, {**SPLIT, "request_id": None}, SPLIT), encoding="utf-8")
    first = invoke("batch", str(path), "--output", str(tmp_path / "1.jsonl"))
    assert first.exit_code == 1  # the typo is invalid input
    assert first.stdout.splitlines()[0] == (
        "4 lines: 2 new decisions recorded, 1 already recorded (replayed), 1 invalid"
    )
    path.write_text(jsonl(SPLIT, NO_ID, {**SPLIT, "request_id": None}, SPLIT), encoding="utf-8")
    second = invoke("batch", str(path), "--output", str(tmp_path / "2.jsonl"))
    assert second.exit_code == 0, second.output
    assert second.stdout.splitlines()[0] == (
        "4 lines: 1 new decision recorded, 3 already recorded (replayed), 0 invalid"
    )
    assert store_count(store) == 3


def test_a_reused_request_id_is_a_conflict_row(invoke: Invoke, tmp_path: Path, store: Path) -> None:
    """SPEC §7, §8: the same request_id with a different request gives a "conflict" row
    naming the recorded record, records nothing, and the other lines still run; exit 1."""
    changed = {**SPLIT, "input": {**SPLIT["input"], "quantity": 3}}
    path = tmp_path / "in.jsonl"
    path.write_text(jsonl(SPLIT, changed, COUNTERFEIT), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = invoke("batch", str(path), "--output", str(out))
    assert result.exit_code == 1
    rows = read_jsonl(out)
    assert rows[1] == {
        "line": 2,
        "status": "conflict",
        "error": "request_id 'split-1' is already recorded as record 1 for a different "
        "request (input.quantity 2 recorded, 3 asked); nothing was recorded — a new request "
        "needs a new request_id",
        "request_id": "split-1",
        "kind": "subsidy_split",
        "audit": rows[0]["audit"],
    }
    assert rows[2]["status"] == "approved" and rows[2]["audit"]["seq"] == 2
    assert store_count(store) == 2
    assert result.stdout.splitlines()[0] == (
        "3 lines: 2 new decisions recorded, 0 already recorded (replayed), 1 conflict, "
        "0 invalid"
    )
    assert result.stderr == (
        "1 of 3 lines reuse a request_id already recorded for another request (rows with "
        f'status "conflict" in {out}); nothing was recorded for them.\n'
    )


def test_a_file_decided_by_pricecalc_0_1_records_nothing_new(
    invoke: Invoke, tmp_path: Path, store: Path
) -> None:
    """SPEC §7: keys written by earlier versions are still recognised. The fixture store
    was made by pricecalc 0.1 running the fixture file (lines without request_id keyed by
    the file's hash and line number); running it again now replays every line."""
    fixtures = Path(__file__).resolve().parents[1] / "fixtures"
    store.write_bytes((fixtures / "store-0.1.jsonl").read_bytes())
    source = tmp_path / "decided-by-0.1.jsonl"
    source.write_bytes((fixtures / "decided-by-0.1.jsonl").read_bytes())
    out = tmp_path / "out.jsonl"
    result = invoke("batch", str(source), "--output", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == (
        "6 lines: 0 new decisions recorded, 6 already recorded (replayed), 0 invalid"
    )
    rows = read_jsonl(out)
    assert [row["audit"]["seq"] for row in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[0]["request_id"] == pricecalc.batch.legacy_request_id(
        "36d36421cfb98a0a" + "0" * 48, 1
    )
    assert rows[5]["request_id"] == "given-1"
    assert store_count(store) == 6


def test_stdin_gets_stable_ids_from_its_content(invoke: Invoke, store: Path) -> None:
    """Standard input is keyed like a file, by content: the same lines piped twice record
    once. Output to stdout is JSON Lines; the summary then goes to stderr."""
    text = jsonl(NO_ID, {**COUNTERFEIT, "request_id": None})
    first = invoke("batch", "-", "--output", "-", input=text)
    second = invoke("batch", "-", "--output", "-", input=text)
    assert first.exit_code == second.exit_code == 0
    rows = [json.loads(line) for line in first.stdout.splitlines()]
    assert [r["request_id"] for r in rows] == [
        NO_ID_KEY,
        request_key({"kind": COUNTERFEIT["kind"], "input": COUNTERFEIT["input"]}),
    ]
    assert [json.loads(line)["replayed"] for line in second.stdout.splitlines()] == [True, True]
    assert store_count(store) == 2
    assert first.stderr.startswith(
        "2 lines: 2 new decisions recorded, 0 already recorded (replayed), 0 invalid\n"
    )
    assert second.stderr.startswith(
        "2 lines: 0 new decisions recorded, 2 already recorded (replayed), 0 invalid\n"
    )


def test_batches_are_decided_in_chunks(
    invoke: Invoke, tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory stays flat: the file goes to decide_many a chunk at a time (one group commit
    each), never whole; the hidden --chunk-size sets the chunk."""
    sizes: list[int] = []
    real = Calculator.decide_prepared

    def spy(self: Calculator, requests: Any, *args: Any, **kw: Any) -> Any:
        requests = list(requests)
        sizes.append(len(requests))
        return real(self, requests, *args, **kw)

    monkeypatch.setattr(Calculator, "decide_prepared", spy)
    path = tmp_path / "many.jsonl"
    path.write_text(
        jsonl(*({**COUNTERFEIT, "request_id": f"cf-{i}"} for i in range(7))), encoding="utf-8"
    )
    result = invoke("batch", str(path), "--output", str(tmp_path / "o.jsonl"), "--chunk-size", "3")
    assert result.exit_code == 0, result.output
    assert sizes == [3, 3, 1]
    assert store_count(store) == 7


def test_csv_input_flattening(invoke: Invoke, tmp_path: Path) -> None:
    """CSV: one kind per file (--kind), columns named as the SPEC's fields; empty cells are
    absent; other_platform_prices as platform:price;platform:price; a.b and a[0].b nest."""
    splits = tmp_path / "splits.csv"
    splits.write_text(
        "request_id,list_price,registration_price,subsidy_price,platform_subsidy,floor_price,"
        "cost_price,lowest_price_30d,other_platform_prices,quantity\n"
        "s-1,199.00,169.00,149.00,,139.00,120.00,175.00,百亿补贴:172.00;拼团:180,2\n"
        "s-2,199.00,169.00,,20,139.00,120.00,,,\n"
        "s-3,199.00,169.00,149.001,,139.00,120.00,,,\n",
        encoding="utf-8",
    )
    out = tmp_path / "splits.jsonl"
    result = invoke("batch", str(splits), "--kind", "subsidy_split", "--output", str(out))
    assert result.exit_code == 1
    rows = read_jsonl(out)
    assert rows[0]["result"]["platform_subsidy_total"] == "40.00"
    assert rows[0]["result"]["lowest_other_platform"] == {"platform": "百亿补贴", "price": "172.00"}
    assert rows[1]["result"]["consumer_pays"] == "149.00"
    assert rows[2] == {
        "line": 4,
        "status": "invalid",
        "error": "input.subsidy_price: has more than two decimals (fen is the smallest unit) "
        "(got '149.001')",
        "request_id": "s-3",
        "kind": "subsidy_split",
    }

    claims = tmp_path / "claims.csv"
    claims.write_text(
        "order_id,confirmed,lines[0].line_id,lines[0].paid_amount,lines[0].category,"
        "lines[1].line_id,lines[1].paid_amount\n"
        "O-1,true,L1,39.90,food,L2,68.00\n"
        "O-2,false,L1,10.00,,,\n",
        encoding="utf-8",
    )
    out = tmp_path / "claims.jsonl"
    result = invoke(
        "batch", str(claims), "--kind", "counterfeit_compensation", "--output", str(out)
    )
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out)
    assert [line["compensation"] for line in rows[0]["result"]["lines"]] == ["1000.00", "680.00"]
    assert rows[1]["status"] == "rejected"


def test_csv_mistakes_are_usage_errors(invoke: Invoke, tmp_path: Path) -> None:
    """A CSV without --kind, or with an unusable header, is refused before anything runs."""
    path = tmp_path / "x.csv"
    path.write_text("list price,quantity\n1,2\n", encoding="utf-8")
    no_kind = invoke("batch", str(path), "--output", "-")
    assert no_kind.exit_code == 2
    assert "a CSV file holds one kind of request: give --kind" in no_kind.stderr
    bad_header = invoke("batch", str(path), "--kind", "subsidy_split", "--output", "-")
    assert bad_header.exit_code == 2
    assert "CSV column 'list price' is not a field name" in bad_header.stderr
    unknown = invoke("batch", str(path), "--kind", "subsidy_split", "--output", "o.txt")
    assert unknown.exit_code == 2
    assert "name it .jsonl, .csv or .xlsx" in unknown.stderr


def test_excel_output_has_exact_two_decimal_money(
    invoke: Invoke, mixed: Path, tmp_path: Path
) -> None:
    """Excel: money cells are numbers from the exact Decimal with format 0.00; text cells
    are string cells, never formulas, so an id reads exactly as recorded (no "'")."""
    evil = tmp_path / "evil.jsonl"
    evil.write_text(
        MIXED
        + jsonl(
            {**COUNTERFEIT, "request_id": '=HYPERLINK("http://x","y")'},
            {**COUNTERFEIT, "request_id": "cf-39.90", "input": CHEAP},
        ),
        encoding="utf-8",
    )
    out = tmp_path / "out.xlsx"
    assert invoke("batch", str(evil), "--output", str(out), "--headers", "en").exit_code == 1
    sheet = openpyxl.load_workbook(out).active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    header = list(rows[0])
    assert header[:11] == [
        "line",
        "request_id",
        "kind",
        "status",
        "replayed",
        "merchant_id",
        "campaign",
        "reason_codes",
        "reason_notes",
        "error",
        "order_id",
    ]
    by_line = {row[0]: dict(zip(header, row, strict=True)) for row in rows[1:]}
    assert len(by_line) == 11
    assert by_line[1]["platform_subsidy"] == 40
    assert by_line[5]["counterfeit_compensation"] == 680
    # A rejected split reports its amounts, in the result column, never a summed one.
    assert by_line[9]["merchant_subsidy"] is None
    assert json.loads(by_line[9]["result"])["merchant_subsidy_total"] == "-10.00"
    assert by_line[2]["status"] == "invalid"
    assert by_line[10]["request_id"] == '=HYPERLINK("http://x","y")'
    assert sheet.cell(row=11, column=2).data_type == "s"
    money_cells = [
        c
        for row in sheet.iter_rows(min_row=2)
        for c in row
        if header[c.column - 1] in MONEY_COLUMNS
    ]
    assert money_cells and all(
        c.number_format == "0.00" for c in money_cells if c.value is not None
    )
    assert Decimal(str(by_line[3]["price_protection_refunds"])) == Decimal("42.00")
    # The stored number is the exact amount (openpyxl writes 16 significant digits, which
    # is exact for any amount below 10^13 yuan): no binary-float artefact such as 39.8999….
    with zipfile.ZipFile(out) as book:
        xml = book.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in xml  # no formula anywhere
    stored = re.findall(r"<v>([-0-9.E+]+)</v>", xml)
    assert "39.9" in stored and "500" in stored
    assert all(Decimal(v) == Decimal(v).quantize(Decimal("0.01")) for v in stored)


def test_csv_output_escapes_formulas_and_keeps_money_text(invoke: Invoke, tmp_path: Path) -> None:
    """CSV output: amounts as two-decimal text, reason codes joined; '=...' escaped."""
    path = tmp_path / "in.jsonl"
    path.write_text(jsonl({**SPLIT_REJECTED, "request_id": "=cmd|' /C calc'!A0"}), encoding="utf-8")
    out = tmp_path / "out.csv"
    assert invoke("batch", str(path), "--output", str(out)).exit_code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert rows[0]["request_id"] == "'=cmd|' /C calc'!A0"
    assert rows[0]["reason_codes"] == "REGISTRATION_ABOVE_LIST;FLOOR_BELOW_COST"
    # A rejected split's amounts are in the result column, not the summed ones (SPEC §10).
    assert rows[0]["merchant_subsidy"] == ""
    assert json.loads(rows[0]["result"])["merchant_subsidy_total"] == "-10.00"
    assert rows[0]["reason_notes"] == (
        "registration price above the list price;floor price below the cost price"
    )
    assert rows[0]["status"] == "rejected"


def test_batch_as_a_process_without_a_terminal(tmp_path: Path, mixed: Path) -> None:
    """A real process: exit 1 for invalid lines, no progress bar when not a terminal."""
    out = tmp_path / "out.jsonl"
    done = run_pricecalc(
        ["--audit", "a.jsonl", "batch", str(mixed), "--output", str(out)], cwd=tmp_path
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout.decode() == SUMMARY
    assert (
        done.stderr.decode()
        == f'4 of 9 lines were invalid (rows with status "invalid" in {out}).\n'
    )
    assert len(read_jsonl(out)) == 9


def test_a_killed_batch_finishes_on_rerun_with_one_record_per_line(tmp_path: Path) -> None:
    """SIGKILL mid-way, then the same command again: every request is recorded exactly
    once (keys from request_id, or from the content: the lines without one are one request,
    SPEC §7), and the chain verifies."""
    requests: list[Any] = []
    for i in range(300):
        request: dict[str, Any] = {**COUNTERFEIT, "request_id": f"cf-{i}"}
        if i % 5 == 0:
            del request["request_id"]  # these get the stable file-hash id
        requests.append(request)
        if i % 50 == 25:
            requests.append('{"kind": "broken"')  # invalid lines mid-file
    path = tmp_path / "big.jsonl"
    path.write_text(jsonl(*requests), encoding="utf-8")
    valid = len({r.get("request_id") for r in requests if isinstance(r, dict)})
    args = [sys.executable, "-m", "pricecalc", "--audit", "a.jsonl", "batch", str(path), "-o", "-"]
    env = {**_env(), "PRICECALC_BATCH_CHUNK_SIZE": "1"}
    proc = subprocess.Popen(
        args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    assert proc.stdout is not None
    seen = 0
    while seen < 40 and proc.stdout.readline():
        seen += 1
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stdout.close()
    assert proc.stderr is not None
    proc.stderr.close()
    recorded_before = store_count(tmp_path / "a.jsonl")
    # The kill came after 40 output lines: at most one is invalid, and the lines without
    # request_id are one request (recorded once, then replayed).
    assert recorded_before >= 30

    again = run_pricecalc(
        ["--audit", "a.jsonl", "batch", str(path), "--output", "out.jsonl"], cwd=tmp_path
    )
    assert again.returncode == 1, again.stderr  # the file has invalid lines
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert len(rows) == len(requests)
    with audit.open_store(str(tmp_path / "a.jsonl")) as store:
        report = store.verify()
        keys = [r.key for r in store.query()]
    assert report.ok and report.count == valid
    assert len(set(keys)) == len(keys) == valid
    assert sorted(keys) == sorted({r["request_id"] for r in rows if "request_id" in r})


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("PRICECALC_")}


def test_legacy_ids_depend_on_the_file_and_the_line() -> None:
    """The key pricecalc 0.1 gave a line without request_id (still looked up): the first 16
    hex digits of the file's SHA-256 and the line number."""
    assert pricecalc.batch.legacy_request_id("ab" * 32, 7) == "batch-abababababababab-line-7"


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_the_merchant_of_batch_dash_merchant_is_in_every_output_row(
    invoke: Invoke, tmp_path: Path, fmt: str
) -> None:
    """Issue 20 (one flow): `batch in.jsonl --merchant M-1 -o out.csv` records merchant_id
    M-1 — and the CSV/Excel row shows it, as the JSON Lines row does (the row is flattened
    from the decision, not rebuilt from the raw line, which names no merchant)."""
    source = tmp_path / "in.jsonl"
    source.write_text(jsonl(SPLIT), encoding="utf-8")
    out = tmp_path / f"out.{fmt}"
    done = invoke("batch", str(source), "--merchant", "M-1", "--campaign", "双12", "-o", str(out))
    assert done.exit_code == 0, done.output
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    else:
        sheet = openpyxl.load_workbook(out, read_only=True).worksheets[0]
        values = [list(r) for r in sheet.iter_rows(values_only=True)]
        named = {"商家": "merchant_id", "活动": "campaign"}  # a workbook's Chinese headings
        header = [named.get(str(h), h) for h in values[0]]
        rows = [dict(zip(header, row, strict=True)) for row in values[1:]]
    assert [(r["merchant_id"], r["campaign"]) for r in rows] == [("M-1", "双12")]
