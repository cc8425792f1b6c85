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
9 lines: 5 decided, 4 invalid
Decisions

  kind                       status     count
 ─────────────────────────────────────────────
  counterfeit_compensation   approved       1
  forwarding_clawback        approved       1
  price_protection           approved       1
  subsidy_split              approved       1
  subsidy_split              rejected       1
  —                          invalid        4

Money

  total (approved decisions)      CNY
 ─────────────────────────────────────
  merchant subsidy              60.00
  platform subsidy              40.00
  refunds                      110.00
  compensation                 680.00
  clawback                     400.00

"""


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
        4,
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
    assert rows[3] == {
        "line": 4,
        "status": "invalid",
        "error": "input.subsidy_price: has more than two decimals (fen is the smallest unit) "
        "(got '149.005')",
    }
    assert rows[5]["error"].startswith("kind: is not a known kind (")
    assert rows[7] == {
        "line": 8,
        "status": "invalid",
        "error": "line is empty; expected a JSON request",
    }
    # The request without request_id got a stable one: the file's hash and its line number.
    assert rows[8]["request_id"].startswith("batch-") and rows[8]["request_id"].endswith("-line-9")
    assert rows[2]["result"]["refund_total"] == "42.00"  # SPEC §3 worked example
    assert [r["audit"]["seq"] for r in rows if "audit" in r] == [1, 2, 3, 4, 5]
    assert store_count(store) == 5


def test_the_same_batch_twice_records_nothing_twice(
    invoke: Invoke, mixed: Path, tmp_path: Path, store: Path
) -> None:
    """SPEC §7: a re-run replays every recorded decision; the output is byte-identical."""
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    assert invoke("batch", str(mixed), "--output", str(first)).exit_code == 1
    count = store_count(store)
    result = invoke("batch", str(mixed), "--output", str(second))
    assert result.exit_code == 1
    assert store_count(store) == count == 5
    assert second.read_bytes() == first.read_bytes()
    assert result.stdout.splitlines()[0] == (
        "9 lines: 5 decided (5 already recorded, replayed), 4 invalid"
    )


def test_stdin_gets_stable_ids_from_its_content(invoke: Invoke, store: Path) -> None:
    """Standard input is hashed like a file: the same content piped twice records once.
    Output to stdout is JSON Lines; the summary then goes to stderr."""
    text = jsonl(NO_ID, {**COUNTERFEIT, "request_id": None})
    first = invoke("batch", "-", "--output", "-", input=text)
    second = invoke("batch", "-", "--output", "-", input=text)
    assert first.exit_code == second.exit_code == 0
    assert first.stdout == second.stdout
    rows = [json.loads(line) for line in first.stdout.splitlines()]
    assert [r["request_id"][-7:] for r in rows] == ["-line-1", "-line-2"]
    assert store_count(store) == 2
    assert first.stderr.startswith("2 lines: 2 decided, 0 invalid\n")
    assert second.stderr.startswith(
        "2 lines: 2 decided (2 already recorded, replayed), 0 invalid\n"
    )


def test_batches_are_decided_in_chunks(
    invoke: Invoke, tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory stays flat: the file goes to decide_many a chunk at a time (one group commit
    each), never whole; the hidden --chunk-size sets the chunk."""
    sizes: list[int] = []
    real = Calculator.decide_many

    def spy(self: Calculator, requests: Any, **kw: Any) -> Any:
        requests = list(requests)
        sizes.append(len(requests))
        return real(self, requests, **kw)

    monkeypatch.setattr(Calculator, "decide_many", spy)
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
    are escaped against formula injection."""
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
    assert invoke("batch", str(evil), "--output", str(out)).exit_code == 1
    sheet = openpyxl.load_workbook(out).active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    header = list(rows[0])
    assert header[:7] == [
        "line",
        "request_id",
        "kind",
        "status",
        "reason_codes",
        "error",
        "order_id",
    ]
    by_line = {row[0]: dict(zip(header, row, strict=True)) for row in rows[1:]}
    assert len(by_line) == 11
    assert by_line[1]["platform_subsidy_total"] == 40
    assert by_line[5]["compensation_total"] == 680
    assert by_line[9]["merchant_subsidy_total"] == -10  # a rejected split reports amounts
    assert by_line[2]["status"] == "invalid"
    assert by_line[10]["request_id"] == '\'=HYPERLINK("http://x","y")'
    money_cells = [
        c
        for row in sheet.iter_rows(min_row=2)
        for c in row
        if header[c.column - 1].endswith("_total") or header[c.column - 1] == "clawback"
    ]
    assert money_cells and all(
        c.number_format == "0.00" for c in money_cells if c.value is not None
    )
    assert Decimal(str(by_line[3]["refund_total"])) == Decimal("42.00")
    # The stored number is the exact amount (openpyxl writes 16 significant digits, which
    # is exact for any amount below 10^13 yuan): no binary-float artefact such as 39.8999….
    with zipfile.ZipFile(out) as book:
        xml = book.read("xl/worksheets/sheet1.xml").decode()
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
    assert rows[0]["merchant_subsidy_total"] == "-10.00"
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
    """SIGKILL mid-way, then the same command again: every valid line is recorded exactly
    once (ids from request_id, or the file hash and line number), and the chain verifies."""
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
    valid = sum(1 for r in requests if isinstance(r, dict))
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
    assert recorded_before >= 35  # the kill came after at least this many decisions

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
    assert sorted(keys) == sorted(r["request_id"] for r in rows if "request_id" in r)


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("PRICECALC_")}


def test_stable_ids_depend_on_the_file_and_the_line() -> None:
    """The derived id: the first 16 hex digits of the file's SHA-256 and the line number."""
    assert pricecalc.batch.stable_request_id("ab" * 32, 7) == "batch-abababababababab-line-7"
