"""Spreadsheets that add up (SPEC §10, issue 21 point 5): in every CSV and Excel output a
plain SUM of a money column equals the figure its summary gives — the batch summary's
new, approved total, `audit stats`' total, the statement's totals — and every money column
carries its one declared name (SPEC §10's table)."""

from __future__ import annotations

import csv
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from cli_support import CLAIM, CLAWBACK, COUNTERFEIT, SPLIT, SPLIT_REJECTED, Invoke, jsonl
from statement_support import campaign

from pricecalc.books.settlement import SETTLEMENT_COLUMNS
from pricecalc.files.columns import BUILTIN_MONEY, MONEY_COLUMNS

ZERO = Decimal(0)
#: A batch with every kind of row: a replay (split-1 decided before), a rejected split
#: (its amounts are negative), every approved kind, two counterfeit claims, an invalid
#: line and a conflict (split-1's request_id for another request).
LINES = jsonl(
    SPLIT,
    SPLIT_REJECTED,
    CLAIM,
    COUNTERFEIT,
    {**COUNTERFEIT, "request_id": "cf-2", "input": {**COUNTERFEIT["input"], "order_id": "O-78"}},
    CLAWBACK,
    '{"kind": ',
    {**SPLIT, "input": {**SPLIT["input"], "quantity": 3}},
)
#: SPEC §10's names, in the order the built-in kinds declare them.
NAMES = (
    "merchant_subsidy",
    "platform_subsidy",
    "price_protection_refunds",
    "counterfeit_refunds",
    "counterfeit_compensation",
    "counterfeit_payouts",
    "subsidy_clawback",
)


def csv_sums(path: Path, columns: tuple[str, ...], encoding: str = "utf-8") -> dict[str, Decimal]:
    """What a plain SUM of each column gives (empty cells count nothing)."""
    with path.open(encoding=encoding, newline="") as fp:
        rows = list(csv.DictReader(fp))
    return {c: sum((Decimal(r[c]) for r in rows if r[c] != ""), ZERO) for c in columns}


def xlsx_sums(path: Path, sheet: str, headings: list[str]) -> dict[str, Decimal]:
    """SUM of each named column of a workbook's sheet, read back with openpyxl."""
    found = openpyxl.load_workbook(path)[sheet]
    header = [c.value for c in found[1]]
    out = {}
    for heading in headings:
        index = header.index(heading)
        values = [r[index].value for r in found.iter_rows(min_row=2)]
        assert all(v is None or isinstance(v, int | float) for v in values), heading
        out[heading] = sum((Decimal(str(v)) for v in values if v is not None), ZERO)
    return out


def terminal_money(text: str) -> dict[str, Decimal]:
    """The batch summary's "new" column, by each figure's declared English label."""
    money = text.split("Money", 1)[1]
    out = {}
    for column in BUILTIN_MONEY:
        found = re.search(rf"^  {column.en} +(-?[0-9.]+) +(-?[0-9.]+)$", money, re.MULTILINE)
        assert found is not None, column.en
        out[column.name] = Decimal(found[1])
    return out


@pytest.fixture
def batch_input(invoke: Invoke, tmp_path: Path) -> Path:
    assert invoke("decide", input=json.dumps(SPLIT)).exit_code == 0  # so line 1 replays
    source = tmp_path / "in.jsonl"
    source.write_text(LINES, encoding="utf-8")
    return source


def test_the_money_columns_are_spec_10s_names() -> None:
    """SPEC §10 "one name, one figure": the built-in kinds' money columns, by name and
    Chinese label; no column is a bare "refunds" or "compensation"."""
    assert MONEY_COLUMNS == NAMES
    assert [c.zh for c in BUILTIN_MONEY] == [
        "商家补贴", "平台补贴", "价保退款", "假一赔十退款", "假一赔十赔偿", "假一赔十赔付合计",
        "转寄追回补贴",
    ]  # fmt: skip
    assert not {"refunds", "compensation", "clawback"} & {c.en for c in BUILTIN_MONEY}


def test_batch_csv_sums_to_the_summarys_new_approved_totals(
    invoke: Invoke, batch_input: Path, tmp_path: Path
) -> None:
    """SPEC §10: SUM of each money column of a CSV batch output = the summary's new,
    approved total; the replayed, rejected, invalid and conflicting rows are empty there."""
    result = invoke("batch", str(batch_input), "-o", "out.csv")
    assert result.exit_code == 1, result.output
    expected = terminal_money(result.stdout)
    assert expected == {
        "merchant_subsidy": ZERO, "platform_subsidy": ZERO,
        "price_protection_refunds": Decimal("42.00"), "counterfeit_refunds": Decimal("136.00"),
        "counterfeit_compensation": Decimal("1360.00"),
        "counterfeit_payouts": Decimal("1496.00"), "subsidy_clawback": Decimal("400.00"),
    }  # fmt: skip
    assert csv_sums(tmp_path / "out.csv", NAMES) == expected
    with (tmp_path / "out.csv").open(encoding="utf-8", newline="") as fp:
        rows = list(csv.DictReader(fp))
    assert [r["status"] for r in rows] == [
        "approved", "rejected", "approved", "approved", "approved", "approved", "invalid",
        "conflict",
    ]  # fmt: skip
    for row in (rows[0], rows[1], rows[6], rows[7]):  # replayed, rejected, invalid, conflict
        assert all(row[c] == "" for c in NAMES), row
    assert json.loads(rows[0]["result"])["platform_subsidy_total"] == "40.00"  # as computed
    assert json.loads(rows[1]["result"])["merchant_subsidy_total"] == "-10.00"


def test_batch_xlsx_sums_to_its_summary_sheet(
    invoke: Invoke, batch_input: Path, tmp_path: Path
) -> None:
    """SPEC §10: SUM of each money column of the batch workbook (Chinese headings, the
    declared labels) = the summary sheet's new total of that figure = the terminal's."""
    result = invoke("batch", str(batch_input), "-o", "out.xlsx")
    assert result.exit_code == 1, result.output
    labels = [c.zh for c in BUILTIN_MONEY]
    sums = xlsx_sums(tmp_path / "out.xlsx", "decisions", labels)
    book = openpyxl.load_workbook(tmp_path / "out.xlsx")
    cells = list(book["summary"].iter_rows(values_only=True))
    start = cells.index(("合计(仅已批准的决定)", "新记录(元)", "重放(元)", None))
    sheet = {row[0]: Decimal(str(row[1])) for row in cells[start + 1 : start + 1 + len(labels)]}
    assert sums == sheet
    terminal = terminal_money(result.stdout)
    assert {c.zh: terminal[c.name] for c in BUILTIN_MONEY} == sheet


def _exported(invoke: Invoke, store: Path) -> Any:
    campaign(store)  # approved decisions of every kind, with voids
    assert invoke("decide", input=json.dumps(SPLIT_REJECTED)).exit_code == 0
    stats = json.loads(invoke("audit", "stats", "--json").stdout)
    return {name: sum((Decimal(r[name]) for r in stats), ZERO) for name in NAMES}


def test_export_csv_and_xlsx_sum_to_audit_stats(
    invoke: Invoke, store: Path, tmp_path: Path
) -> None:
    """SPEC §10: `audit export`'s money columns hold approved, not withdrawn decisions
    only, so their SUM equals `audit stats`' totals (a void's withdrawn decision and a
    rejected split are left out; their results stay in the result column)."""
    expected = _exported(invoke, store)
    # Both claims for price protection and the split are withdrawn by voids: nothing left.
    assert expected["price_protection_refunds"] == expected["merchant_subsidy"] == ZERO
    assert expected["counterfeit_payouts"] != ZERO and expected["subsidy_clawback"] != ZERO
    assert invoke("audit", "export", "-o", "e.csv").exit_code == 0
    assert csv_sums(tmp_path / "e.csv", NAMES) == expected
    assert invoke("audit", "export", "-o", "e.xlsx").exit_code == 0
    labels = {c.zh: c.name for c in BUILTIN_MONEY}
    sums = xlsx_sums(tmp_path / "e.xlsx", "audit", list(labels))
    assert {labels[k]: v for k, v in sums.items()} == expected
    with (tmp_path / "e.csv").open(encoding="utf-8", newline="") as fp:
        rows = list(csv.DictReader(fp))
    voided = [r for r in rows if r["voided_by"]]
    assert voided and all(all(r[c] == "" for c in NAMES) for r in voided)
    assert all(json.loads(r["result"]) for r in voided)


STATEMENT = ("statement", "--merchant", "M1", "--since", "2026-11-11", "--until", "2026-11-12")


def test_statement_csv_and_xlsx_sum_to_their_totals(
    invoke: Invoke, store: Path, tmp_path: Path
) -> None:
    """SPEC §10: the statement's CSV holds rows only (its totals in NAME.totals.csv) and
    its workbook's totals are on the summary sheet: SUM of each column equals them."""
    campaign(store)
    assert invoke(*STATEMENT, "-o", "s.csv").exit_code == 0
    with (tmp_path / "s.totals.csv").open(encoding="utf-8", newline="") as fp:
        totals = {row[0]: row[1] for row in csv.reader(fp)}
    expected = {c: Decimal(totals[c]) for c in SETTLEMENT_COLUMNS}
    assert expected != dict.fromkeys(SETTLEMENT_COLUMNS, ZERO)
    assert csv_sums(tmp_path / "s.csv", SETTLEMENT_COLUMNS) == expected
    assert invoke(*STATEMENT, "-o", "s.xlsx").exit_code == 0
    labels = {"从货款扣除": "deduct_from_payout", "商家直接赔付": "merchant_pays",
              "转寄追回补贴": "subsidy_clawback"}  # fmt: skip
    sums = xlsx_sums(tmp_path / "s.xlsx", "statement", list(labels))
    summary = {
        row[0]: Decimal(str(row[1]))
        for row in openpyxl.load_workbook(tmp_path / "s.xlsx")["summary"].iter_rows(
            values_only=True
        )
        if row and row[0] in labels
    }
    assert sums == summary
    assert {labels[k]: v for k, v in sums.items()} == expected
