"""Exporting records as JSON Lines or CSV, streamed, with spreadsheet formulas defused.

CSV columns: ``seq, id, recorded_at, key, tags, prev_hash, hash, payload``; ``tags`` and
``payload`` are canonical JSON, an absent key is an empty cell. Every text cell goes
through :func:`escape_csv_cell`, so a value such as ``=HYPERLINK(...)`` opens in a
spreadsheet as text, not as a formula.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import TextIO

from audit.canonical import canonical_text
from audit.protocol import ExportFormat, Record
from audit.records import record_to_dict

__all__ = ["CSV_COLUMNS", "escape_csv_cell", "unescape_csv_cell", "write_records"]

CSV_COLUMNS = ("seq", "id", "recorded_at", "key", "tags", "prev_hash", "hash", "payload")

#: A cell starting with one of these is read as a formula by spreadsheet programs
#: (OWASP "CSV injection"); ``'`` is included so that escaping can be undone exactly.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "'")


def escape_csv_cell(value: str) -> str:
    """Defuse formula injection: prefix ``'`` to a cell starting with ``= + - @``, tab, CR
    (or ``'`` itself, so that :func:`unescape_csv_cell` can undo the escaping exactly).

    >>> escape_csv_cell("=1+2"), escape_csv_cell("-5"), escape_csv_cell("O1")
    ("'=1+2", "'-5", 'O1')
    """
    return "'" + value if value.startswith(FORMULA_TRIGGERS) else value


def unescape_csv_cell(value: str) -> str:
    """Undo :func:`escape_csv_cell`.

    >>> unescape_csv_cell(escape_csv_cell("'quoted'"))
    "'quoted'"
    """
    return value[1:] if value.startswith("'") else value


def _csv_row(record: Record) -> list[str]:
    return [
        str(record.seq),
        escape_csv_cell(record.id),
        escape_csv_cell(record.recorded_at),
        "" if record.key is None else escape_csv_cell(record.key),
        escape_csv_cell(canonical_text(list(record.tags))),
        escape_csv_cell(record.prev_hash),
        escape_csv_cell(record.hash),
        escape_csv_cell(canonical_text(record.payload)),
    ]


def write_records(out: TextIO, fmt: ExportFormat, records: Iterable[Record]) -> int:
    """Write ``records`` to ``out`` one at a time; return how many were written.

    ``jsonl``: each full record as canonical JSON, one per line (the stored form).
    ``csv``: a header row and one row per record (open ``out`` with ``newline=""``).
    """
    count = 0
    if fmt == "jsonl":
        for record in records:
            out.write(canonical_text(record_to_dict(record)))
            out.write("\n")
            count += 1
    elif fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for record in records:
            writer.writerow(_csv_row(record))
            count += 1
    else:
        raise ValueError(f"unknown export format {fmt!r}: use 'jsonl' or 'csv'")
    return count
