"""Writing rows: JSON Lines, CSV and Excel, for batch output and ``audit export`` alike.

Output money: JSON and CSV carry two-decimal strings; Excel cells are numbers made from
the exact ``Decimal`` with the number format ``0.00`` (openpyxl writes 16 significant
digits, exact for every amount below 10^13 yuan; a larger one is written as text). Text
cells in CSV and Excel are escaped against formula injection with
:func:`audit.export.escape_csv_cell`; amounts and whole numbers, which pricecalc produces
itself, are not (a negative amount stays ``-10.00``).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Literal, Protocol

from pricecalc.rows import INTEGER_COLUMNS, MONEY_COLUMNS
from pricecalc.serialize import dumps

OutputFormat = Literal["jsonl", "csv", "xlsx"]
OUTPUT_SUFFIXES: dict[str, OutputFormat] = {".jsonl": "jsonl", ".csv": "csv", ".xlsx": "xlsx"}
#: Amounts below this are exact as spreadsheet numbers (openpyxl writes 16 significant
#: digits; a double holds every two-decimal amount below 10^13 exactly enough to round-trip).
EXACT_IN_EXCEL = Decimal(10) ** 13


class RowWriter(Protocol):
    """Where batch and export rows go. ``tabular`` writers want flat rows."""

    tabular: bool

    def write(self, row: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


def _escape(text: str) -> str:
    from audit.export import escape_csv_cell  # the audit package owns the escaping rule

    return escape_csv_cell(text)


def text_cell(column: str, value: Any) -> str:
    """A cell as CSV text: lists joined with ``;``, objects as JSON, text escaped."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        value = ";".join("" if v is None else str(v) for v in value)
    elif isinstance(value, Mapping):
        value = dumps(value)
    if column in MONEY_COLUMNS or column in INTEGER_COLUMNS:
        return str(value)  # produced by pricecalc: an amount or a whole number, never text
    return _escape(str(value))


class JsonlWriter:
    tabular = False

    def __init__(self, out: IO[str]) -> None:
        self._out = out

    def write(self, row: Mapping[str, Any]) -> None:
        self._out.write(dumps(row) + "\n")

    def close(self) -> None:
        self._out.flush()


class CsvWriter:
    tabular = True

    def __init__(self, out: IO[str], columns: Sequence[str]) -> None:
        self._out = out
        self._columns = tuple(columns)
        self._csv = csv.writer(out, lineterminator="\r\n")
        self._csv.writerow(self._columns)

    def write(self, row: Mapping[str, Any]) -> None:
        self._csv.writerow([text_cell(c, row.get(c)) for c in self._columns])

    def close(self) -> None:
        self._out.flush()


class XlsxWriter:
    """An Excel workbook written row by row (openpyxl's write-only mode streams to disk).

    Money cells are numbers made from the exact ``Decimal`` with the format ``0.00``.
    """

    tabular = True

    def __init__(self, path: Path, columns: Sequence[str], title: str) -> None:
        from openpyxl import Workbook

        self._path = path
        self._columns = tuple(columns)
        self._book = Workbook(write_only=True)
        self._sheet = self._book.create_sheet(title)
        self._sheet.append(list(self._columns))

    def _cell(self, column: str, value: Any) -> Any:
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

        if value is None:
            return None
        if column in MONEY_COLUMNS:
            amount = Decimal(str(value))
            if abs(amount) >= EXACT_IN_EXCEL:
                return str(value)  # too large for an exact spreadsheet number: keep as text
            cell = WriteOnlyCell(self._sheet)
            cell.value = amount  # written with 16 significant digits: exact below 10^13
            cell.number_format = "0.00"
            return cell
        if column in INTEGER_COLUMNS and isinstance(value, int):
            return value
        text = text_cell(column, value)
        return ILLEGAL_CHARACTERS_RE.sub("\ufffd", text)

    def write(self, row: Mapping[str, Any]) -> None:
        self._sheet.append([self._cell(c, row.get(c)) for c in self._columns])

    def close(self) -> None:
        self._book.save(self._path)


class Output:
    """An output destination: stdout, or a file replaced only when the run completes.

    A file is written under a hidden temporary name beside it and renamed over the target
    by :meth:`commit`, so an interrupted run never leaves a half-written file that looks
    complete.
    """

    def __init__(
        self,
        name: str,
        fmt: OutputFormat,
        columns: Sequence[str],
        stdout: IO[str],
        title: str = "pricecalc",
    ) -> None:
        self.name = name
        self.to_stdout = name == "-"
        self._file: IO[str] | None = None
        self.writer: RowWriter
        if self.to_stdout:
            self._partial = None
            self.writer = JsonlWriter(stdout)
            return
        target = Path(name)
        self._partial = target.with_name(f".{target.name}.partial")
        if fmt == "xlsx":
            self.writer = XlsxWriter(self._partial, columns, title)
            return
        self._file = self._partial.open("w", encoding="utf-8", newline="")
        self.writer = JsonlWriter(self._file) if fmt == "jsonl" else CsvWriter(self._file, columns)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()
        elif self.to_stdout:
            self.writer.close()

    def commit(self) -> None:
        """Finish the output: flush, and move a file into place."""
        self.writer.close()
        if self._file is not None:
            self._file.close()
        if self._partial is not None:
            os.replace(self._partial, self.name)

    def abandon(self) -> None:
        """Drop a partial file (the run did not complete)."""
        if self._file is not None:
            self._file.close()
        if self._partial is not None and self._partial.exists():
            self._partial.unlink()
