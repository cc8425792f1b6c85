"""Sheets as a finance clerk saves them (issue 21 points 1–3; SPEC §1, §7).

One sheet saved five ways (tests/fixtures/sheets/README.md) decides once and then replays;
an xlsx batch output edited in two cells records exactly those two rows when fed back.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cli_support import ROOT, Invoke, jsonl, store_count
from openpyxl import Workbook, load_workbook

SHEETS = ROOT / "tests" / "fixtures" / "sheets"
SPLIT_ARGS = ("--kind", "subsidy_split")
#: The five saves of one sheet, the first one first, each with what reading it needs.
SAVES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("general.csv", ()),
    ("two-decimals.csv", ()),
    ("gbk.csv", ("--encoding", "gb18030")),
    ("utf8-bom.csv", ()),
    ("libreoffice.xlsx", ()),
)


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("later", [name for name, _ in SAVES[1:]])
def test_one_sheet_saved_five_ways_is_decided_once(
    invoke: Invoke, store: Path, tmp_path: Path, later: str
) -> None:
    """Issue 21 "Done when", SPEC §7 sameness by meaning: the first save decides three
    requests; a later save (0.00 cells, GBK with a title row and Chinese headings, a
    UTF-8-BOM CSV with ¥1,299.00 and empty rows, a LibreOffice xlsx) records nothing and
    exits 0 with every row replayed — the content keys and the request_id row alike."""
    first = invoke("batch", str(SHEETS / "general.csv"), *SPLIT_ARGS, "-o", "first.jsonl")
    assert first.exit_code == 0, first.output
    assert store_count(store) == 3
    extra = dict(SAVES)[later]
    again = invoke("batch", str(SHEETS / later), *SPLIT_ARGS, *extra, "-o", "again.jsonl")
    assert again.exit_code == 0, again.output
    assert store_count(store) == 3
    before, after = _rows(tmp_path / "first.jsonl"), _rows(tmp_path / "again.jsonl")
    assert [r["replayed"] for r in after] == [True, True, True]
    assert [r["request_id"] for r in after] == [r["request_id"] for r in before]
    assert [r["audit"] for r in after] == [r["audit"] for r in before]
    assert after[2]["request_id"] == "split-7"
    assert [r["merchant_id"] for r in after] == ["M-1", "M-1", "M-2"]  # SPEC §8 rows


def test_the_utf8_bom_save_counts_its_empty_rows_as_blank(invoke: Invoke) -> None:
    """SPEC §1: a row with every cell empty is skipped, counted as blank, never invalid."""
    result = invoke("batch", str(SHEETS / "utf8-bom.csv"), *SPLIT_ARGS, "-o", "out.jsonl")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        "3 lines: 3 new decisions recorded, 0 already recorded (replayed), 0 invalid, "
        "2 blank rows skipped\n"
    )


def test_a_workbook_named_csv_is_read_as_a_workbook(invoke: Invoke, tmp_path: Path) -> None:
    """Issue 21 point 3: an .xlsx renamed .csv is recognised by its zip signature, not
    refused with a misleading encoding message."""
    renamed = tmp_path / "splits.csv"
    shutil.copy(SHEETS / "libreoffice.xlsx", renamed)
    result = invoke("batch", str(renamed), *SPLIT_ARGS, "-o", "out.jsonl")
    assert result.exit_code == 0, result.output
    assert [r["status"] for r in _rows(tmp_path / "out.jsonl")] == ["approved"] * 3


def test_the_round_trip_records_exactly_the_edited_rows(
    invoke: Invoke, store: Path, tmp_path: Path
) -> None:
    """Issue 21 "Done when": batch -o out.xlsx, edit two cells with openpyxl, feed out.xlsx
    back: exactly the two changed rows are recorded; pricecalc skips its own result and
    key columns, and the unchanged row replays."""
    first = invoke("batch", str(SHEETS / "libreoffice.xlsx"), *SPLIT_ARGS, "-o", "out.xlsx")
    assert first.exit_code == 0, first.output
    book = load_workbook(tmp_path / "out.xlsx")
    sheet = book.worksheets[0]
    headings = [c.value for c in sheet[1]]
    assert headings == [
        "请求号", "商家", "list_price", "registration_price", "subsidy_price",
        "floor_price", "cost_price", "quantity", "记录键", "状态", "是否重放", "原因代码",
        "原因说明", "错误", "商家补贴", "平台补贴", "价保退款", "假一赔十退款", "假一赔十赔偿",
        "假一赔十赔付合计", "转寄追回补贴", "结果(JSON，不计入合计)", "记录号", "哈希",
    ]  # fmt: skip
    assert sheet["I2"].value.startswith("content-v2-")
    sheet["H2"] = 5  # the quantity of the first row
    sheet["E3"] = "219.00"  # the subsidy price of the second
    book.save(tmp_path / "out.xlsx")
    again = invoke("batch", "out.xlsx", *SPLIT_ARGS, "-o", "again.jsonl")
    assert again.exit_code == 0, again.output
    assert store_count(store) == 5
    rows = _rows(tmp_path / "again.jsonl")
    assert [r.get("replayed", False) for r in rows] == [False, False, True]
    assert rows[0]["result"]["quantity"] == 5
    assert [r["audit"]["seq"] for r in rows] == [4, 5, 3]


def test_an_edited_row_under_its_request_id_is_a_conflict(
    invoke: Invoke, store: Path, tmp_path: Path
) -> None:
    """SPEC §7, docs/cli.md: a row whose explicit request_id now holds a different request
    is a conflict naming the first differing field and both values; nothing recorded."""
    assert invoke("batch", str(SHEETS / "general.csv"), *SPLIT_ARGS, "-o", "out.csv").exit_code == 0
    text = (tmp_path / "out.csv").read_text(encoding="utf-8").replace(",1299,", ",1399,")
    (tmp_path / "edited.csv").write_text(text, encoding="utf-8")
    again = invoke("batch", "edited.csv", *SPLIT_ARGS, "-o", "again.jsonl")
    assert again.exit_code == 1
    assert store_count(store) == 3
    conflict = _rows(tmp_path / "again.jsonl")[2]
    assert conflict["status"] == "conflict"
    assert conflict["error"] == (
        "request_id 'split-7' is already recorded as record 3 for a different request "
        "(input.list_price '1299.00' recorded, '1399.00' asked); nothing was recorded — a "
        "new request needs a new request_id"
    )


def test_a_title_row_a_remarks_column_and_chinese_headings(
    invoke: Invoke, tmp_path: Path
) -> None:
    """Issue 21 point 3: the header is found below a title row; 备注 is refused, listing
    the known headings, until --ignore-column names it; zh-CN values (SPEC §1) are read."""
    sheet = tmp_path / "in.csv"
    sheet.write_text(
        "超值购 补贴核对,,,,,,,\n"
        "请求号,商家,list_price,registration_price,subsidy_price,floor_price,cost_price,备注\n"
        'r-1,M-1,"¥1,299.00",￥1099,999.00,950,800,看一下\n',
        encoding="utf-8",
    )
    refused = invoke("batch", str(sheet), *SPLIT_ARGS, "-o", "out.jsonl")
    assert refused.exit_code == 2
    assert "CSV column '备注' is not a field of subsidy_split" in refused.output
    assert refused.output.endswith(
        "; headings may also be the labels pricecalc writes: 请求号 (request_id), 商家 "
        "(merchant_id), 活动 (campaign), 类型 (kind), 订单号 (order_id); skip a remarks "
        "column such as 备注 with --ignore-column NAME\n"
    )
    done = invoke("batch", str(sheet), *SPLIT_ARGS, "--ignore-column", "备注", "-o", "out.jsonl")
    assert done.exit_code == 0, done.output
    [row] = _rows(tmp_path / "out.jsonl")
    assert (row["request_id"], row["merchant_id"]) == ("r-1", "M-1")
    assert row["result"]["merchant_receives"] == "1099.00"


def test_header_row_and_sheet_options(invoke: Invoke, tmp_path: Path) -> None:
    """Issue 21 point 3: --sheet NAME picks a workbook's sheet and --header-row N its
    header; xlsx number cells are read through their shortest decimal text and refused
    beyond two decimals (SPEC §1); date cells are Beijing times."""
    book = Workbook()
    book.active.title = "notes"
    book.active.append(["nothing here"])
    sheet = book.create_sheet("splits")
    sheet.append(["list_price", "registration_price", "subsidy_price", "floor_price",
                  "cost_price", "quantity"])  # fmt: skip
    sheet.append([199.9, 169, 149, 139, 120, 2.0])
    sheet.append([199.999, 169, 149, 139, 120, 1])
    book.save(tmp_path / "in.xlsx")
    result = invoke(
        "batch", "in.xlsx", *SPLIT_ARGS, "--sheet", "splits", "--header-row", "1",
        "-o", "out.jsonl",
    )  # fmt: skip
    assert result.exit_code == 1
    rows = _rows(tmp_path / "out.jsonl")
    assert rows[0]["result"]["quantity"] == 2
    assert rows[1] == {
        "line": 3,
        "status": "invalid",
        "error": "input.list_price: has more than two decimals (fen is the smallest unit) "
        "(got '199.999')",
        "kind": "subsidy_split",
    }
    missing = invoke("batch", "in.xlsx", *SPLIT_ARGS, "--sheet", "nope", "-o", "x.jsonl")
    assert missing.exit_code == 2
    assert "in.xlsx has no sheet 'nope'; its sheets are notes, splits" in missing.output


def test_a_date_only_event_end_includes_its_day(invoke: Invoke, tmp_path: Path) -> None:
    """SPEC §1, issue 21: event.end = 2026-11-12 is the whole Beijing day, so a payment at
    11-12 9:05 (written 2026-11-12 9:05, as a zh-CN sheet saves it) and a markdown at
    20:00 are inside the event."""
    sheet = tmp_path / "claims.csv"
    sheet.write_text(
        "order_id,paid_at,claimed_at,order_status,event.start,event.end,"
        "lines[0].line_id,lines[0].sku,lines[0].quantity,lines[0].unit_price,"
        "offers[0].type,offers[0].sku,offers[0].unit_price,offers[0].at\n"
        "O-1,2026-11-12 9:05,2026/11/12 21:00,paid,2026/11/10,2026-11-12,"
        "L1,A,2.00,100.00,direct_drop,A,90.00,2026/11/12 20:00\n",
        encoding="utf-8",
    )
    result = invoke("batch", str(sheet), "--kind", "price_protection", "-o", "out.jsonl")
    assert result.exit_code == 0, result.output
    [row] = _rows(tmp_path / "out.jsonl")
    assert row["status"] == "approved", row
    assert row["result"]["refund_total"] == "20.00"


def test_jsonl_counts_stay_strict(invoke: Invoke, tmp_path: Path) -> None:
    """SPEC §1: "2.00" is a count only in CSV/xlsx cells; in JSON it stays invalid."""
    request = {"kind": "subsidy_split", "input": {
        "list_price": "199", "registration_price": "169", "subsidy_price": "149",
        "floor_price": "139", "cost_price": "120", "quantity": "2.00"}}  # fmt: skip
    (tmp_path / "in.jsonl").write_text(jsonl(request), encoding="utf-8")
    result = invoke("batch", "in.jsonl", "-o", "out.jsonl")
    assert result.exit_code == 1
    assert json.loads((tmp_path / "out.jsonl").read_text())["error"] == (
        "input.quantity: must be a whole number (got '2.00')"
    )


def test_worker_processes_key_by_meaning_too(invoke: Invoke, store: Path, tmp_path: Path) -> None:
    """SPEC §7 with --jobs (pricecalc.parallel): lines decided in worker processes are
    keyed content-v2 by meaning as in one process, so the re-saved sheet replays."""
    first = invoke(
        "batch", str(SHEETS / "two-decimals.csv"), *SPLIT_ARGS, "--jobs", "2",
        "--chunk-size", "1", "-o", "first.jsonl",
    )  # fmt: skip
    assert first.exit_code == 0, first.output
    again = invoke("batch", str(SHEETS / "general.csv"), *SPLIT_ARGS, "-o", "again.jsonl")
    assert again.exit_code == 0, again.output
    assert store_count(store) == 3
    before, after = _rows(tmp_path / "first.jsonl"), _rows(tmp_path / "again.jsonl")
    assert [r["request_id"] for r in after] == [r["request_id"] for r in before]
    assert before[0]["request_id"].startswith("content-v2-")
    assert all(r["replayed"] for r in after)


def test_a_csv_round_trip_keeps_cells_a_spreadsheet_would_run(
    invoke: Invoke, store: Path, tmp_path: Path
) -> None:
    """Issue 21 round trip: a cell pricecalc writes with a ' before it (it starts like a
    formula: "+199.00") reads back as the clerk wrote it, so the row replays."""
    (tmp_path / "in.csv").write_text(
        "list_price,registration_price,subsidy_price,floor_price,cost_price\n"
        "+199.00,169,149,139,120\n",
        encoding="utf-8",
    )
    assert invoke("batch", "in.csv", *SPLIT_ARGS, "-o", "out.csv").exit_code == 0
    assert (tmp_path / "out.csv").read_text(encoding="utf-8").splitlines()[1].startswith(
        "'+199.00,169,"
    )
    again = invoke("batch", "out.csv", *SPLIT_ARGS, "-o", "again.jsonl")
    assert again.exit_code == 0, again.output
    assert store_count(store) == 1
    assert _rows(tmp_path / "again.jsonl")[0]["replayed"] is True


def test_xlsx_date_cells_are_beijing_times(invoke: Invoke, tmp_path: Path) -> None:
    """SPEC §1: an xlsx date cell is a Beijing time, a date cell without a time a date —
    the whole day as an event's end — and a count cell 2.0 the integer 2."""
    book = Workbook()
    sheet = book.active
    sheet.append(["order_id", "paid_at", "claimed_at", "order_status", "event.start",
                  "event.end", "lines[0].line_id", "lines[0].sku", "lines[0].quantity",
                  "lines[0].unit_price", "offers[0].type", "offers[0].sku",
                  "offers[0].unit_price", "offers[0].at"])  # fmt: skip
    sheet.append(["O-1", datetime(2026, 11, 12, 9, 5), datetime(2026, 11, 12, 21, 0), "paid",
                  datetime(2026, 11, 10), datetime(2026, 11, 12), "L1", "A", 2.0, 100,
                  "direct_drop", "A", 90, datetime(2026, 11, 12, 20, 0)])  # fmt: skip
    book.save(tmp_path / "claims.xlsx")
    result = invoke("batch", "claims.xlsx", "--kind", "price_protection", "-o", "out.jsonl")
    assert result.exit_code == 0, result.output
    [row] = _rows(tmp_path / "out.jsonl")
    assert row["status"] == "approved", row
    assert row["result"]["claimed_at"] == "2026-11-12T21:00:00+08:00"
    assert row["result"]["lines"][0]["lowest_at"] == "2026-11-12T20:00:00+08:00"


def test_a_money_column_named_like_an_input_field_is_never_read_back(
    invoke: Invoke, store: Path, tmp_path: Path
) -> None:
    """Issue 21 point 5: the batch output's money column `platform_subsidy` (SPEC §10's
    name) is also an input field of subsidy_split; fed back, every column from the key
    column on is pricecalc's and skipped, so the file replays instead of every row being
    "both subsidy_price and platform_subsidy"."""
    assert invoke("batch", str(SHEETS / "general.csv"), *SPLIT_ARGS, "-o", "out.csv").exit_code == 0
    header = (tmp_path / "out.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
    assert header.index("platform_subsidy") > header.index("content_key")
    again = invoke("batch", "out.csv", *SPLIT_ARGS, "-o", "again.jsonl")
    assert again.exit_code == 0, again.output
    assert store_count(store) == 3
    assert [r.get("replayed") for r in _rows(tmp_path / "again.jsonl")] == [True, True, True]
