"""Files finance can open (issue 12, part 2): CSV in GB18030/GBK or with a byte-order mark,
unknown CSV columns named before anything is decided, CSV for Excel (--excel), formula
cells neutralised, Excel workbooks laid out for people (Chinese headings, frozen and
filtered heading row, numbers 0.00, Beijing date cells, a summary sheet with the
terminal's figures), and one --format rule for `batch` and `audit export`."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import datetime, timedelta
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
    store_count as count,
)

import audit
from pricecalc.files.columns import COLUMN_LABELS

SPLIT_CSV = (
    "request_id,list_price,registration_price,subsidy_price,floor_price,cost_price,"
    "other_platform_prices,quantity\n"
    "s-1,199.00,169.00,149.00,139.00,120.00,百亿补贴:172.00;拼团:180,2\n"
)


def write_csv(path: Path, text: str, encoding: str) -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_a_gb18030_csv_is_refused_with_the_encoding_to_pass(
    invoke: Invoke, tmp_path: Path, store: Path
) -> None:
    """Excel on Chinese Windows saves CSV as GB18030/GBK: read as UTF-8 its bytes do not
    decode, so the file is refused before anything is decided (exit 2), naming the line,
    the byte and the --encoding to pass."""
    source = write_csv(tmp_path / "splits.csv", SPLIT_CSV, "gb18030")
    result = invoke("batch", str(source), "--kind", "subsidy_split", "-o", "out.csv")
    assert result.exit_code == 2
    assert result.stderr.endswith(
        f"Error: {source} is not UTF-8 text: line 2 has bytes that do not decode (0xb0 at "
        "byte 149); it reads as GB18030, the Chinese encoding Excel on Windows saves CSV "
        'files in: run again with --encoding gb18030 (or save it from Excel as "CSV UTF-8")\n'
    )
    assert not store.exists() and not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("encoding", ["gb18030", "gbk", "GBK"])
def test_encoding_reads_excels_chinese_csv(
    invoke: Invoke, tmp_path: Path, store: Path, encoding: str
) -> None:
    """--encoding gb18030 / gbk (as csvkit's -e) reads the file; the Chinese platform names
    arrive intact in the recorded request."""
    source = write_csv(tmp_path / "splits.csv", SPLIT_CSV, encoding.lower())
    out = tmp_path / "out.jsonl"
    result = invoke(
        "batch", str(source), "--kind", "subsidy_split", "--encoding", encoding, "-o", str(out)
    )
    assert result.exit_code == 0, result.output
    [row] = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert row["result"]["lowest_other_platform"] == {"platform": "百亿补贴", "price": "172.00"}
    with audit.open_store(str(store)) as opened:
        [record] = list(opened.query())
    assert record.payload["input"]["other_platform_prices"][1]["platform"] == "拼团"


def test_a_utf8_file_read_as_gbk_is_refused_not_garbled(
    invoke: Invoke, tmp_path: Path, store: Path
) -> None:
    """UTF-8 Chinese read as GBK would be recorded garbled, forever: a file that is valid
    UTF-8 (and not plain ASCII) is refused when --encoding names a GB encoding."""
    source = write_csv(tmp_path / "splits.csv", SPLIT_CSV, "utf-8")
    result = invoke(
        "batch", str(source), "--kind", "subsidy_split", "--encoding", "gbk", "-o", "o.csv"
    )
    assert result.exit_code == 2
    assert result.stderr.endswith(
        f"Error: {source} is UTF-8 text, not GBK: read as GBK its Chinese would be garbled; "
        "run again with --encoding utf-8\n"
    )
    assert not store.exists()


def test_a_byte_order_mark_means_utf8(invoke: Invoke, tmp_path: Path) -> None:
    """A UTF-8 byte-order mark (Excel's "CSV UTF-8") is read automatically — the first
    column is request_id, not '\\ufeffrequest_id' — and wins over --encoding, with a
    warning."""
    source = tmp_path / "bom.csv"
    source.write_bytes(b"\xef\xbb\xbf" + SPLIT_CSV.encode("utf-8"))
    out = tmp_path / "out.jsonl"
    plain = invoke("batch", str(source), "--kind", "subsidy_split", "-o", str(out), "-q")
    assert plain.exit_code == 0, plain.output
    assert plain.stderr == ""
    assert json.loads(out.read_text(encoding="utf-8"))["request_id"] == "s-1"
    told = invoke(
        "batch", str(source), "--kind", "subsidy_split", "-e", "gb18030", "-o", str(out), "-q"
    )
    assert told.exit_code == 0
    assert told.stderr == (
        f"Warning: {source} starts with a UTF-8 byte-order mark: read as UTF-8, not GB18030\n"
    )


def test_bad_encoding_options_are_usage_errors(invoke: Invoke, tmp_path: Path) -> None:
    """An encoding Python does not know, or one given for JSON Lines (always UTF-8), is
    refused (exit 2)."""
    source = write_csv(tmp_path / "s.csv", SPLIT_CSV, "utf-8")
    unknown = invoke("batch", str(source), "--kind", "subsidy_split", "-e", "big9", "-o", "o.csv")
    assert unknown.exit_code == 2
    assert unknown.stderr.endswith(
        "Error: Invalid value for '--encoding': 'big9' is not a text encoding pricecalc knows "
        "(Excel on Chinese Windows saves gb18030 or gbk; otherwise files are utf-8)\n"
    )
    lines = tmp_path / "r.jsonl"
    lines.write_text(jsonl(SPLIT), encoding="utf-8")
    for_jsonl = invoke("batch", str(lines), "-e", "gbk", "-o", "o.jsonl")
    assert for_jsonl.exit_code == 2
    assert for_jsonl.stderr.endswith(
        "Error: JSON Lines are always UTF-8 (RFC 8259): --encoding is for CSV input\n"
    )


def test_an_unknown_csv_column_is_named_before_anything_is_decided(
    invoke: Invoke, tmp_path: Path, store: Path
) -> None:
    """A column that is no field of the kind (Rule.input_fields) refuses the whole file,
    naming it and the closest field; nothing is decided or recorded, no output written."""
    source = tmp_path / "typo.csv"
    source.write_text(SPLIT_CSV.replace("list_price", "list_prize"), encoding="utf-8")
    result = invoke("batch", str(source), "--kind", "subsidy_split", "-o", "out.xlsx")
    assert result.exit_code == 2
    assert result.stderr.endswith(
        "Error: CSV column 'list_prize' is not a field of subsidy_split (did you mean "
        "'list_price'?); its fields are category, cost_price, floor_price, list_price, "
        "lowest_price_30d, other_platform_prices, platform_subsidy, product_id, quantity, "
        "registration_price, subsidy_price (and request_id, merchant_id, campaign); "
        "headings may also be the labels pricecalc writes: 请求号 (request_id), 商家 "
        "(merchant_id), 活动 (campaign), 类型 (kind), 订单号 (order_id); skip a remarks "
        "column such as 备注 with --ignore-column NAME\n"
    )
    assert not store.exists() and not (tmp_path / "out.xlsx").exists()
    nested = tmp_path / "claims.csv"
    nested.write_text("order_id,confirmed,line[0].paid_amount\nO-1,true,1.00\n", encoding="utf-8")
    wrong = invoke("batch", str(nested), "--kind", "counterfeit_compensation", "-o", "o.csv")
    assert wrong.exit_code == 2
    assert "CSV column 'line[0].paid_amount' is not a field of counterfeit_compensation " in (
        wrong.stderr
    )
    assert "(did you mean 'lines'?)" in wrong.stderr


def test_csv_for_excel_has_a_bom_and_crlf(invoke: Invoke, tmp_path: Path) -> None:
    """--excel: UTF-8 with a byte-order mark and CRLF line ends, so Chinese opens correctly
    in Excel on Windows; without it, plain UTF-8 (CRLF, RFC 4180)."""
    source = tmp_path / "in.jsonl"
    source.write_text(jsonl({**CLAWBACK, "merchant_id": "深圳小店"}), encoding="utf-8")
    assert invoke("batch", str(source), "-o", "excel.csv", "--excel").exit_code == 0
    data = (tmp_path / "excel.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbfline,request_id,kind,status,")
    assert data.count(b"\r\n") == 2 and data.count(b"\n") == 2
    assert "深圳小店" in data.decode("utf-8-sig")
    assert invoke("batch", str(source), "-o", "plain.csv").exit_code == 0
    assert (tmp_path / "plain.csv").read_bytes().startswith(b"line,request_id,")


def test_formula_cells_are_neutralised_in_csv(invoke: Invoke, tmp_path: Path) -> None:
    """A CSV text cell a spreadsheet would run as a formula gets a leading "'": = + - @,
    also after leading spaces and in full-width form (＝); other text is left alone, and
    audit.unescape_csv_cell undoes it exactly."""
    ids = ["=1+2", " =HYPERLINK(\"x\")", "＝SUM(A1)", "  @cmd", "＋1", "plain id", " O-1"]
    source = tmp_path / "in.jsonl"
    source.write_text(
        jsonl(*({**COUNTERFEIT, "request_id": rid} for rid in ids)), encoding="utf-8"
    )
    assert invoke("batch", str(source), "-o", "out.csv").exit_code == 0
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out.csv").read_text(encoding="utf-8"))))
    # request_id is an identifier (SPEC §1): stripped and NFKC-normalised (＝ is =) first
    assert [r["request_id"] for r in rows] == [
        "'=1+2", "'=HYPERLINK(\"x\")", "'=SUM(A1)", "'@cmd", "'+1", "plain id", "O-1",
    ]  # fmt: skip
    normalised = ["=1+2", "=HYPERLINK(\"x\")", "=SUM(A1)", "@cmd", "+1"]
    assert [audit.unescape_csv_cell(r["request_id"]) for r in rows[:5]] == normalised


@pytest.fixture
def mixed_xlsx(invoke: Invoke, tmp_path: Path) -> tuple[Path, Any]:
    """A batch with every kind, a rejection, an invalid line and a replayed line, to xlsx
    (Chinese headings, the default); returns the file and the run's result."""
    source = tmp_path / "in.jsonl"
    evil = {**COUNTERFEIT, "request_id": '=HYPERLINK("http://x","y")', "input": {
        **COUNTERFEIT["input"], "order_id": "O-78"}}  # fmt: skip
    source.write_text(
        jsonl(SPLIT, SPLIT_REJECTED, CLAIM, COUNTERFEIT, CLAWBACK, '{"kind": ', evil),
        encoding="utf-8",
    )
    assert invoke("decide", input=json.dumps(SPLIT)).exit_code == 0  # so line 1 replays
    out = tmp_path / "out.xlsx"
    result = invoke("batch", str(source), "-o", str(out))
    assert result.exit_code == 1, result.output
    return out, result


def test_xlsx_is_laid_out_for_people(mixed_xlsx: tuple[Path, Any]) -> None:
    """Issue 12: bold, frozen heading row with an auto-filter over the data, sensible
    widths, headings a Chinese finance clerk reads (平台补贴合计), money numbers 0.00, an
    id starting with = shown as recorded in a string cell (never a formula, no "'")."""
    out, _ = mixed_xlsx
    book = openpyxl.load_workbook(out)
    assert book.sheetnames == ["decisions", "summary", "columns"]
    sheet = book["decisions"]
    headings = [c.value for c in sheet[1]]
    assert headings == [
        "行号", "请求号", "类型", "状态", "是否重放", "商家", "活动", "原因代码", "原因说明",
        "错误", "订单号", "商家补贴", "平台补贴", "价保退款", "假一赔十退款", "假一赔十赔偿",
        "假一赔十赔付合计", "转寄追回补贴", "结果(JSON，不计入合计)", "记录号", "哈希",
    ]  # fmt: skip
    assert all(c.font.b for c in sheet[1])
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:U8"
    widths = {k: v.width for k, v in sheet.column_dimensions.items()}
    assert widths["B"] == 26 and widths["J"] == 60 and widths["L"] == 14
    rows = {
        r[0].value: dict(zip(headings, r, strict=True)) for r in sheet.iter_rows(min_row=2)
    }
    assert rows[3]["价保退款"].value == 42 and rows[3]["价保退款"].number_format == "0.00"
    assert rows[1]["是否重放"].value is True
    assert rows[1]["平台补贴"].value is None  # replayed: paid by the run that recorded it
    # the explanations follow the command's language (English here), not --headers
    assert rows[2]["原因说明"].value == (
        "registration price above the list price;floor price below the cost price"
    )
    assert rows[6]["状态"].value == "invalid"
    assert rows[7]["请求号"].value == '=HYPERLINK("http://x","y")'
    assert rows[7]["请求号"].data_type == "s"
    with zipfile.ZipFile(out) as archive:
        assert "<f>" not in archive.read("xl/worksheets/sheet1.xml").decode()
    legend = [tuple(r) for r in book["columns"].iter_rows(values_only=True)]
    assert legend[0] == ("列名", "字段名 (field)")
    assert ("平台补贴", "platform_subsidy") in legend


def test_the_summary_sheet_has_the_terminal_summarys_figures(
    mixed_xlsx: tuple[Path, Any],
) -> None:
    """The summary sheet and the terminal summary come from one Summary: the same counts
    (new and replayed apart) and the same money totals, to the fen."""
    out, result = mixed_xlsx
    terminal = result.stdout
    assert terminal.startswith(
        "7 lines: 5 new decisions recorded, 1 already recorded (replayed), 1 invalid\n"
    )
    sheet = openpyxl.load_workbook(out)["summary"]
    cells = [tuple(r) for r in sheet.iter_rows(values_only=True)]
    assert cells[0][0] == "汇总" and sheet["A1"].font.b
    assert cells[1][0] == "共 7 行：新记录 5 个决定，1 个已记录过(重放)，无效 1 行"
    counts = {row[0]: row[1] for row in cells[2:7]}
    assert counts == {"行数": 7, "新记录的决定": 5, "已记录过(重放)": 1, "冲突": 0, "无效行": 1}
    start = cells.index(("类型", "状态", "新记录", "重放"))
    decisions = cells[start + 1 : cells.index((None, None, None, None), start)]
    assert decisions == [
        ("counterfeit_compensation", "approved", 2, 0),
        ("forwarding_clawback", "approved", 1, 0),
        ("price_protection", "approved", 1, 0),
        ("subsidy_split", "approved", 0, 1),
        ("subsidy_split", "rejected", 1, 0),
        ("—", "invalid", 1, 0),
    ]
    for kind, status, new, replayed in decisions:
        assert f"  {kind:<26} {status:<10} {new:>3}   {replayed:>8}" in terminal
    start = cells.index(("合计(仅已批准的决定)", "新记录(元)", "重放(元)", None))
    money = {row[0]: (row[1], row[2]) for row in cells[start + 1 : start + 8]}
    assert money == {
        "商家补贴": (0, 60), "平台补贴": (0, 40), "价保退款": (42, 0), "假一赔十退款": (136, 0),
        "假一赔十赔偿": (1360, 0), "假一赔十赔付合计": (1496, 0), "转寄追回补贴": (400, 0),
    }  # fmt: skip
    assert "  merchant subsidy                  0.00            60.00" in terminal
    assert "  price protection refunds         42.00             0.00" in terminal
    assert "  counterfeit refunds             136.00             0.00" in terminal
    assert "  counterfeit compensation       1360.00             0.00" in terminal
    assert all(
        sheet.cell(row=start + 2 + i, column=c).number_format == "0.00"
        for i in range(7) for c in (2, 3)
    )  # fmt: skip


def test_headers_en_keeps_the_machine_names(invoke: Invoke, tmp_path: Path) -> None:
    """--headers en: the field names as headings (xlsx and CSV), the summary sheet in the
    terminal's words, no columns legend; --headers zh gives CSV the Chinese headings."""
    source = tmp_path / "in.jsonl"
    source.write_text(jsonl(COUNTERFEIT), encoding="utf-8")
    assert invoke("batch", str(source), "-o", "en.xlsx", "--headers", "en").exit_code == 0
    book = openpyxl.load_workbook(tmp_path / "en.xlsx")
    assert book.sheetnames == ["decisions", "summary"]
    assert [c.value for c in book["decisions"][1]][:3] == ["line", "request_id", "kind"]
    summary = [r[0] for r in book["summary"].iter_rows(values_only=True)]
    assert summary[:3] == [
        "Summary",
        "1 line: 1 new decision recorded, 0 already recorded (replayed), 0 invalid",
        "lines",
    ]
    assert invoke("batch", str(source), "-o", "zh.csv", "--headers", "zh").exit_code == 0
    first = (tmp_path / "zh.csv").read_text(encoding="utf-8").splitlines()[0]
    assert first.split(",")[:4] == ["行号", "请求号", "类型", "状态"]
    assert set(COLUMN_LABELS.values()) >= set(first.split(","))


def test_batch_writes_csv_to_standard_output(invoke: Invoke, tmp_path: Path) -> None:
    """`batch -o - --format csv`: CSV on standard output (the summary on stderr); --format
    wins over the file's extension (JSON Lines into out.csv)."""
    source = tmp_path / "in.jsonl"
    source.write_text(jsonl(COUNTERFEIT), encoding="utf-8")
    result = invoke("batch", str(source), "-o", "-", "--format", "csv")
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["request_id"], r["counterfeit_compensation"]) for r in rows] == [("cf-1", "680.00")]
    assert result.stderr.startswith("1 line: 1 new decision recorded, 0 already recorded")
    wins = invoke("batch", str(source), "-o", "out.csv", "--format", "jsonl")
    assert wins.exit_code == 0
    assert json.loads((tmp_path / "out.csv").read_text(encoding="utf-8"))["request_id"] == "cf-1"


@pytest.fixture
def recorded(invoke: Invoke, tmp_path: Path) -> Path:
    source = tmp_path / "in.jsonl"
    source.write_text(jsonl(SPLIT, SPLIT_REJECTED, CLAIM, COUNTERFEIT, CLAWBACK), encoding="utf-8")
    assert invoke("batch", str(source), "-o", "o.jsonl").exit_code == 0
    return source


def test_audit_export_formats_limit_and_beijing_time(
    invoke: Invoke, recorded: Path, tmp_path: Path, store: Path
) -> None:
    """audit export: --format csv|jsonl|xlsx (winning over the extension), --limit, and a
    recorded_at_beijing column (text in CSV/JSON Lines, a real date cell in Excel, in
    Beijing time: UTC + 8 hours)."""
    as_csv = invoke("audit", "export", "-o", "-", "--format", "csv", "--limit", "2")
    assert as_csv.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [r["seq"] for r in rows] == ["1", "2"]
    utc = datetime.fromisoformat(rows[0]["recorded_at"].replace("Z", "+00:00"))
    beijing = (utc + timedelta(hours=8)).replace(tzinfo=None, microsecond=0)
    assert rows[0]["recorded_at_beijing"] == beijing.strftime("%Y-%m-%d %H:%M:%S")
    lines = invoke("audit", "export", "-o", "records.txt", "--format", "jsonl", "--limit", "3")
    assert lines.stdout == "exported 3 records to records.txt\n"
    exported = [json.loads(x) for x in (tmp_path / "records.txt").read_text().splitlines()]
    assert exported[0]["recorded_at_beijing"] == rows[0]["recorded_at_beijing"]
    book = invoke("audit", "export", "-o", "records.xlsx", "--quiet")
    assert book.exit_code == 0 and book.stdout == ""
    sheet = openpyxl.load_workbook(tmp_path / "records.xlsx")["audit"]
    headings = [c.value for c in sheet[1]]
    assert headings[:4] == ["记录号", "记录时间(UTC)", "记录时间(北京时间)", "类型"]
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref == "A1:Z6"
    moment = sheet.cell(row=2, column=3)
    assert moment.is_date and moment.value == beijing
    assert moment.number_format == "yyyy-mm-dd hh:mm:ss"
    money = sheet.cell(row=2, column=headings.index("平台补贴") + 1)
    assert money.value == 40 and money.number_format == "0.00"
    assert count(store) == 5


def test_more_rows_than_an_excel_sheet_holds_write_no_workbook(
    invoke: Invoke, recorded: Path, tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Excel holds 1,048,576 rows a sheet, the heading included (here lowered to 4: a
    heading and 3 rows). Three rows fit; a fourth is refused in one sentence (exit 1) and no
    workbook is left, instead of one Excel opens with rows lost. In a batch the decisions
    are recorded, and the message says how to finish."""
    import pricecalc.files.writing

    monkeypatch.setattr(pricecalc.files.writing, "EXCEL_MAX_ROWS", 4)
    fits = invoke("audit", "export", "-o", "three.xlsx", "--limit", "3")
    assert fits.exit_code == 0, fits.output
    assert openpyxl.load_workbook(tmp_path / "three.xlsx")["audit"].max_row == 4
    refusal = (
        "an Excel sheet holds at most 3 rows below its heading, and this output has more: "
        "write CSV or JSON Lines instead (--format csv), or narrow what is written; no "
        "workbook was written"
    )
    export = invoke("audit", "export", "-o", "all.xlsx")
    assert (export.exit_code, export.stderr) == (1, f"Error: {refusal}\n")
    assert not (tmp_path / "all.xlsx").exists()
    batch = invoke("batch", str(recorded), "-o", "decisions.xlsx", "--quiet")
    assert (batch.exit_code, batch.stderr) == (
        1,
        f"Error: {refusal}. The lines decided so far are recorded: run the same command with "
        "--format csv (or a .csv or .jsonl --output) to finish; they are replayed, never "
        "recorded twice.\n",
    )
    assert not (tmp_path / "decisions.xlsx").exists()
    assert count(store) == 5  # the batch's lines were recorded once, by the fixture
    again = invoke("batch", str(recorded), "-o", "decisions.csv", "--quiet")
    assert again.exit_code == 0 and count(store) == 5


def test_excel_never_goes_to_standard_output(invoke: Invoke, recorded: Path) -> None:
    """xlsx to standard output is refused (exit 2), by --format or otherwise."""
    for args in (("batch", str(recorded)), ("audit", "export")):
        result = invoke(*args, "-o", "-", "--format", "xlsx")
        assert result.exit_code == 2
        assert result.stderr.endswith(
            "Error: an Excel workbook cannot be written to standard output: give a file "
            "name (--output decisions.xlsx), or --format csv or jsonl for standard output\n"
        )


def test_money_in_excel_is_exact(invoke: Invoke, tmp_path: Path) -> None:
    """A Decimal amount becomes the spreadsheet number of the same value (39.90 → 39.9)."""
    source = tmp_path / "in.jsonl"
    cheap = {**COUNTERFEIT, "input": {**COUNTERFEIT["input"], "lines": [
        {"line_id": "L1", "paid_amount": "39.90"}]}}  # fmt: skip
    source.write_text(jsonl(cheap), encoding="utf-8")
    assert invoke("batch", str(source), "-o", "o.xlsx").exit_code == 0
    sheet = openpyxl.load_workbook(tmp_path / "o.xlsx")["decisions"]
    assert Decimal(str(sheet["O2"].value)) == Decimal("39.9")  # counterfeit_refunds
