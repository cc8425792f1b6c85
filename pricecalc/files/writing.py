"""Writing rows: JSON Lines, CSV and Excel, for batch output and ``audit export`` alike.

Output money: JSON and CSV carry two-decimal strings; Excel cells are numbers made from
the exact ``Decimal`` with the number format ``0.00`` (openpyxl writes 16 significant
digits, exact for every amount below 10^13 yuan; a larger one is written as text).

**Text.** Everything is written as UTF-8 (CSV ``excel`` flavour: with a byte-order mark,
so Excel on Windows reads Chinese correctly; CSV lines always end CRLF, RFC 4180). A
lone surrogate or U+0000 can never reach a file: SPEC §1 refuses both in requests, and
:func:`safe_text` escapes them here too (``\\ud800``), so one hostile line cannot stop a
batch or leave a file that is not UTF-8.

**Formulas.** A CSV text cell that a spreadsheet would read as a formula — one starting
with ``= + - @``, a tab or CR (:func:`audit.export.escape_csv_cell`), with their full-width
forms ``＝ ＋ － ＠``, or with spaces before any of them — is prefixed with ``'``
(:func:`neutralise`; :func:`audit.unescape_csv_cell` undoes it). Amounts and whole
numbers, which pricecalc produces itself, are not (a negative amount stays ``-10.00``).
Excel cells need no prefix: text is written as a string cell, never a formula, so an id
reads exactly as recorded.

**Excel workbooks** (:class:`XlsxWriter`): a bold, frozen heading row with an auto-filter,
column widths from :data:`pricecalc.files.columns.COLUMN_WIDTHS`, Beijing times as real date cells,
a ``summary`` sheet with the batch summary's figures (from the same
:class:`~pricecalc.files.rows.Summary` the terminal prints) or any other command's summary given
as rows (:class:`SummarySheet`: the settlement statement's totals and checkpoint) and,
with Chinese headings, a ``columns`` sheet pairing each heading with its field name.

**Where output goes** (:class:`Output`): standard output, or a file written through
:class:`~pricecalc.files.target.AtomicFile`, the one writer of every output file
(:mod:`pricecalc.files.target`: written under a temporary name and renamed at the end;
the store's own files refused). The temporary is created when the :class:`Output` is
made — before anything is decided — so a folder, a missing or read-only folder is
refused (:class:`~pricecalc.files.target.OutputProblem`) naming the path as the user
typed it.
"""

from __future__ import annotations

import contextlib
import csv
import unicodedata
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Literal, Protocol

import attrs

from audit.export import FORMULA_TRIGGERS, escape_csv_cell
from pricecalc.beijing import read_wall_clock
from pricecalc.errors import InvalidInput, PricecalcError
from pricecalc.files.columns import (
    AMOUNT_COLUMNS,
    COLUMN_LABELS,
    COLUMN_WIDTHS,
    INTEGER_COLUMNS,
    TIME_COLUMNS,
    RowLayout,
    summary_word,
)
from pricecalc.files.rows import Summary
from pricecalc.files.target import (
    AtomicFile,
    OutputProblem,
    cannot_create,
    refuse_store_files,
    writable_target,
)
from pricecalc.i18n import msg
from pricecalc.serialize import dumps, map_json, text_problem

OutputFormat = Literal["jsonl", "csv", "xlsx"]
Headers = Literal["zh", "en"]
OUTPUT_SUFFIXES: dict[str, OutputFormat] = {".jsonl": "jsonl", ".csv": "csv", ".xlsx": "xlsx"}
#: Amounts below this are exact as spreadsheet numbers (openpyxl writes 16 significant
#: digits; a double holds every two-decimal amount below 10^13 exactly enough to round-trip).
EXACT_IN_EXCEL = Decimal(10) ** 13
#: The most characters an Excel cell holds.
EXCEL_CELL_LIMIT = 32_767
#: The most rows an Excel sheet holds, the heading row included (Excel's own limit: a
#: workbook with more opens with rows lost, or not at all).
EXCEL_MAX_ROWS = 1_048_576
#: The full-width forms of the formula triggers (an IME types them; spreadsheets read them).
FULL_WIDTH_TRIGGERS = ("＝", "＋", "－", "＠")
_TRIGGERS = (*FORMULA_TRIGGERS, *FULL_WIDTH_TRIGGERS)
EXCEL_TIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
EXCEL_MONEY_FORMAT = "0.00"


class TooManyRows(PricecalcError):
    """More rows than an Excel sheet holds: the workbook is not written (the command drops
    its partial file) rather than written with rows missing."""

    def __init__(self) -> None:
        super().__init__(
            msg(
                "an Excel sheet holds at most {limit:,} rows below its heading, and this "
                "output has more: write CSV or JSON Lines instead (--format csv), or narrow "
                "what is written; no workbook was written",
                limit=EXCEL_MAX_ROWS - 1,
            )
        )


# -- cells ---------------------------------------------------------------------------------
def safe_text(text: str) -> str:
    """Text fit for any file: a lone surrogate becomes its escape (``\\ud800``) and U+0000
    ``\\x00``. Text without either is returned as it is."""
    if text_problem(text) is None:
        return text
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def neutralise(text: str) -> str:
    """Defuse formula injection in a CSV text cell (module docstring): ``'`` before a cell
    a spreadsheet would read as a formula.

    >>> neutralise("=1+2"), neutralise(" =1+2"), neutralise("＝1+2"), neutralise("O-1")
    ("'=1+2", "' =1+2", "'＝1+2", 'O-1')
    """
    escaped = escape_csv_cell(text)
    if len(escaped) != len(text):
        return escaped
    if text.startswith(FULL_WIDTH_TRIGGERS) or (
        text[:1].isspace() and text.lstrip().startswith(_TRIGGERS)
    ):
        return "'" + text
    return text


def _cell_text(value: Any) -> str:
    """A cell's value as text: lists joined with ``;``, objects as JSON."""
    if isinstance(value, list | tuple):
        return ";".join("" if v is None else str(v) for v in value)
    if isinstance(value, Mapping):
        return dumps(_scrubbed(value))
    return str(value)


def text_cell(column: str, value: Any, amounts: frozenset[str] = AMOUNT_COLUMNS) -> str:
    """A cell as CSV text: lists joined with ``;``, objects as JSON, text neutralised
    (``amounts``: the columns holding amounts, never neutralised)."""
    if value is None:
        return ""
    text = safe_text(_cell_text(value))
    if column in amounts or column in INTEGER_COLUMNS:
        return text  # produced by pricecalc: an amount or a whole number, never text
    return neutralise(text)


def _safe_leaf(value: Any) -> Any:
    return safe_text(value) if isinstance(value, str) else value


def _scrubbed(value: Any) -> Any:
    """``value`` with every text (keys too) made :func:`safe_text`."""
    return map_json(value, _safe_leaf, key=_safe_leaf)


def display_width(text: str) -> int:
    """How many columns ``text`` takes in a spreadsheet (CJK characters take two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def column_width(column: str, heading: str) -> int:
    """A spreadsheet column's width: its usual content, or its heading if wider."""
    return max(COLUMN_WIDTHS.get(column, 14), display_width(heading) + 2)


# -- writers -------------------------------------------------------------------------------
@attrs.frozen
class Heading:
    """A bold cell of a :class:`SummarySheet`."""

    text: str


@attrs.frozen
class SummarySheet:
    """A workbook's ``summary`` sheet given as rows of cells: a :class:`Heading` is bold, a
    ``Decimal`` an amount (a number ``0.00``), an ``int`` a number, anything else text;
    an empty row is a blank line. ``widths``: the columns' widths, from A."""

    rows: tuple[tuple[Any, ...], ...]
    widths: tuple[int, ...] = (34, 16)


#: What a writer's ``close`` may be given for a workbook's summary sheet.
SummaryOf = Summary | SummarySheet


class RowWriter(Protocol):
    """Where batch and export rows go. ``tabular`` writers want flat rows. ``close`` is
    given the run's :class:`~pricecalc.files.rows.Summary` (or :class:`SummarySheet`) when there
    is one (a workbook writes it as its ``summary`` sheet)."""

    tabular: bool

    def write(self, row: Mapping[str, Any]) -> None: ...

    def close(self, summary: SummaryOf | None = None) -> None: ...


class TextSink:
    """Text written as UTF-8 bytes to a binary stream (a file, or standard output's bytes,
    whatever the console's own encoding). What cannot be encoded is escaped."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw

    def write(self, text: str) -> int:
        self._raw.write(text.encode("utf-8", "backslashreplace"))
        return len(text)

    def flush(self) -> None:
        self._raw.flush()


def jsonl_text(row: Mapping[str, Any]) -> str:
    """One JSON Lines row's text (without its newline): compact JSON, text SPEC §1 refuses
    escaped rather than refused (an output never stops at a row)."""
    try:
        return dumps(row)
    except (InvalidInput, TypeError):
        return dumps(_scrubbed(row))


class JsonlWriter:
    tabular = False

    def __init__(self, out: TextSink | IO[str]) -> None:
        self._out = out

    def write(self, row: Mapping[str, Any]) -> None:
        self._out.write(jsonl_text(row) + "\n")

    def write_text(self, text: str) -> None:
        """A row already written as :func:`jsonl_text` (by a worker process, say)."""
        self._out.write(text + "\n")

    def close(self, summary: SummaryOf | None = None) -> None:
        self._out.flush()


@attrs.frozen
class Headings:
    """A tabular output's headings and amount columns: ``labels`` (machine name → the
    Chinese heading, :data:`pricecalc.files.columns.COLUMN_LABELS` and the money columns' declared
    labels) used with ``--headers zh``; ``amounts``: the columns holding amounts."""

    labels: Mapping[str, str] = attrs.field(factory=lambda: dict(COLUMN_LABELS))
    amounts: frozenset[str] = AMOUNT_COLUMNS

    def heading(self, column: str, headers: str) -> str:
        return self.labels.get(column, column) if headers == "zh" else column


DEFAULT_HEADINGS = Headings()


def headings_of(layout: RowLayout) -> Headings:
    """The headings of outputs whose rows ``layout`` makes: every money column of the
    installed kinds by its declared Chinese label, and an amount (SPEC §10)."""
    return Headings(layout.labels(), layout.amount_columns())


class CsvWriter:
    tabular = True

    def __init__(
        self,
        out: TextSink | IO[str],
        columns: Sequence[str],
        headers: Headers = "en",
        headings: Headings = DEFAULT_HEADINGS,
    ) -> None:
        self._out = out
        self._columns = tuple(columns)
        self._amounts = headings.amounts
        self._csv = csv.writer(out, lineterminator="\r\n")
        self._csv.writerow([headings.heading(c, headers) for c in self._columns])

    def write(self, row: Mapping[str, Any]) -> None:
        self._csv.writerow([text_cell(c, row.get(c), self._amounts) for c in self._columns])

    def close(self, summary: SummaryOf | None = None) -> None:
        self._out.flush()


class XlsxWriter:
    """An Excel workbook written row by row (openpyxl's write-only mode streams to disk,
    so memory stays flat). See the module docstring for what the workbook holds."""

    tabular = True

    def __init__(
        self,
        path: Path,
        columns: Sequence[str],
        title: str,
        headers: Headers = "zh",
        headings: Headings = DEFAULT_HEADINGS,
    ) -> None:
        from openpyxl import Workbook
        from openpyxl.utils import get_column_letter

        self._path = path
        self._columns = tuple(columns)
        self._headers = headers
        self._headings = headings
        self._book = Workbook(write_only=True)
        self._sheet = self._book.create_sheet(title)
        headings_row = [headings.heading(c, headers) for c in self._columns]
        # Widths and the frozen row go before the first row (write-only mode streams).
        for index, (column, heading) in enumerate(
            zip(self._columns, headings_row, strict=True), 1
        ):
            self._sheet.column_dimensions[get_column_letter(index)].width = column_width(
                column, heading
            )
        self._sheet.freeze_panes = "A2"
        self._sheet.append([self._bold(h) for h in headings_row])
        self._rows = 1

    def _bold(self, value: Any, sheet: Any = None) -> Any:
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.styles import Font

        cell = WriteOnlyCell(sheet or self._sheet, value=value)
        cell.font = Font(bold=True)
        return cell

    def _formatted(self, value: Any, number_format: str, sheet: Any = None) -> Any:
        from openpyxl.cell import WriteOnlyCell

        cell = WriteOnlyCell(sheet or self._sheet, value=value)
        cell.number_format = number_format
        return cell

    def _money(self, value: Decimal, sheet: Any = None) -> Any:
        if abs(value) >= EXACT_IN_EXCEL:
            return str(value)  # too large for an exact spreadsheet number: keep as text
        return self._formatted(value, EXCEL_MONEY_FORMAT, sheet)  # 16 digits: exact

    def _text(self, text: str) -> Any:
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

        text = ILLEGAL_CHARACTERS_RE.sub("\ufffd", safe_text(text))[:EXCEL_CELL_LIMIT]
        if not text.startswith("="):
            return text
        cell = WriteOnlyCell(self._sheet, value=text)  # openpyxl takes "=…" for a formula:
        cell.data_type = "s"  # a string cell is never evaluated, so it needs no "'"
        return cell

    def _cell(self, column: str, value: Any) -> Any:
        if value is None:
            return None
        if column in self._headings.amounts:
            return self._money(Decimal(str(value)))
        if column in INTEGER_COLUMNS and isinstance(value, int) and not isinstance(value, bool):
            return value
        if column in TIME_COLUMNS and isinstance(value, str):
            try:  # naive, in Beijing time: what the clerk's clock said
                moment = read_wall_clock(value)
            except ValueError:
                return self._text(value)
            return self._formatted(moment, EXCEL_TIME_FORMAT)
        if isinstance(value, bool):
            return value
        return self._text(_cell_text(value))

    def write(self, row: Mapping[str, Any]) -> None:
        if self._rows >= EXCEL_MAX_ROWS:
            raise TooManyRows
        self._sheet.append([self._cell(c, row.get(c)) for c in self._columns])
        self._rows += 1

    def close(self, summary: SummaryOf | None = None) -> None:
        from openpyxl.utils import get_column_letter

        last = get_column_letter(len(self._columns))
        self._sheet.auto_filter.ref = f"A1:{last}{self._rows}"
        if isinstance(summary, SummarySheet):
            self._rows_sheet(summary)
        elif summary is not None:
            self._summary_sheet(summary)
        if self._headers == "zh":
            self._columns_sheet()
        self._book.save(self._path)

    def discard(self) -> None:
        """Give the workbook up (an interrupted run): close its streams quietly, so that
        nothing is left to fail when the interpreter exits."""
        for sheet in self._book.worksheets:
            with contextlib.suppress(Exception):  # already closed, or cut off mid-row
                sheet.close()

    def _summary_sheet(self, summary: Summary) -> None:
        """The batch summary, figure for figure as the terminal prints it (new and replayed
        apart; money of approved decisions as numbers ``0.00``)."""
        sheet = self._book.create_sheet("summary")
        for letter, width in zip("ABCD", (34, 16, 16, 16), strict=True):
            sheet.column_dimensions[letter].width = width

        def word(name: str) -> str:
            return summary_word(name, self._headers)

        def bold(value: Any) -> Any:
            from openpyxl.cell import WriteOnlyCell
            from openpyxl.styles import Font

            cell = WriteOnlyCell(sheet, value=value)
            cell.font = Font(bold=True)
            return cell

        sheet.append([bold(word("summary"))])
        sheet.append([summary.headline(self._headers)])
        for name, count in summary.counts_table():
            sheet.append([word(name), count])
        sheet.append([])
        sheet.append([bold(word("decisions"))])
        sheet.append([bold(word(n)) for n in ("kind", "status", "new_column", "replayed_column")])
        for kind, status, new, replayed in summary.rows():
            sheet.append([kind, status, new, replayed])
        sheet.append([])
        sheet.append([bold(word("money"))])
        sheet.append([bold(word(n)) for n in ("total", "new_money", "replayed_money")])
        for column in summary.layout.money:  # by their declared labels (SPEC §10)
            sheet.append(
                [
                    column.label(self._headers),
                    self._money(summary.totals.sums[column.name], sheet),
                    self._money(summary.replayed_totals.sums[column.name], sheet),
                ]
            )
        sheet.append([])
        sheet.append([word("pay_note")])

    def _rows_sheet(self, summary: SummarySheet) -> None:
        """A :class:`SummarySheet`, row by row."""
        from openpyxl.utils import get_column_letter

        sheet = self._book.create_sheet("summary")
        for index, width in enumerate(summary.widths, 1):
            sheet.column_dimensions[get_column_letter(index)].width = width

        def cell(value: Any) -> Any:
            if isinstance(value, Heading):
                return self._bold(value.text, sheet)
            if isinstance(value, Decimal):
                return self._money(value, sheet)
            if value is None or (isinstance(value, int) and not isinstance(value, bool)):
                return value
            return self._text(_cell_text(value))

        for row in summary.rows:
            sheet.append([cell(v) for v in row])

    def _columns_sheet(self) -> None:
        """Each Chinese heading with its field name (what JSON Lines and ``--headers en``
        call the column), so that nothing needs a glossary either way."""
        sheet = self._book.create_sheet("columns")
        sheet.column_dimensions["A"].width = 24
        sheet.column_dimensions["B"].width = 26
        sheet.append([self._bold("列名"), self._bold("字段名 (field)")])
        for column in self._columns:
            sheet.append([self._headings.labels.get(column, column), column])


# -- where the rows go ---------------------------------------------------------------------
class Output:
    """An output destination: standard output, or a file replaced only when the run
    completes (module docstring). ``headers`` picks the heading row of CSV and Excel
    (``en``: the field names; ``zh``: ``headings``' labels, :class:`Headings`); ``excel``
    writes CSV with a UTF-8 byte-order mark.

    Raises :class:`OutputProblem` when the file cannot be created — at once, before the
    caller decides anything.
    """

    def __init__(
        self,
        name: str,
        fmt: OutputFormat,
        columns: Sequence[str],
        stdout: IO[str],
        title: str = "pricecalc",
        *,
        headers: Headers = "en",
        excel: bool = False,
        store: str | None = None,
        headings: Headings = DEFAULT_HEADINGS,
    ) -> None:
        self.name = name
        self.fmt = fmt
        self.excel = excel
        self.to_stdout = name == "-"
        self._file: IO[bytes] | None = None
        self._atomic: AtomicFile | None = None
        self._stdout = stdout
        self.writer: RowWriter
        sink: TextSink | IO[str]
        if self.to_stdout:
            if fmt == "xlsx":
                raise OutputProblem(
                    "an Excel workbook cannot be written to standard output: give a file name"
                )
            stdout.flush()
            raw = getattr(stdout, "buffer", None)
            sink = TextSink(raw) if raw is not None else stdout
        else:
            target = writable_target(name, f"{title}.{fmt}")
            refuse_store_files(name, store)
            try:
                self._atomic = AtomicFile(target)
            except OSError as exc:
                raise OutputProblem(cannot_create(name, target, exc)) from exc
            self._file = self._atomic.file
            if fmt == "xlsx":
                self._file.close()
                self._file = None
                self.writer = XlsxWriter(self._atomic.path, columns, title, headers, headings)
                return
            sink = TextSink(self._file)
        if excel and fmt == "csv":
            sink.write("\ufeff")  # the UTF-8 byte-order mark: Excel then reads UTF-8
        self.writer = (
            JsonlWriter(sink) if fmt == "jsonl" else CsvWriter(sink, columns, headers, headings)
        )

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()
        elif self.to_stdout:
            self.writer.close()

    def commit(self, summary: SummaryOf | None = None) -> None:
        """Finish the output (a workbook gets ``summary`` as its summary sheet): flush, and
        move a file into place."""
        self.writer.close(summary)
        if self._atomic is not None:
            self._atomic.commit()

    def abandon(self) -> None:
        """Drop a partial file (the run did not complete). Never raises for the file."""
        if isinstance(self.writer, XlsxWriter):
            self.writer.discard()
        if self._atomic is not None:
            self._atomic.discard()
