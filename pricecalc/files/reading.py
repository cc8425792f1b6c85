"""Reading batch input: JSON Lines, CSV and xlsx files, one request (or one error) per line.

This module holds what every input shares — :class:`FileLine`, the input formats, JSON
Lines (:func:`read_jsonl`) and :class:`Ahead`, the one look ahead at a batch's lines;
:mod:`pricecalc.files.source` opens, hashes and decodes an input file once;
:mod:`pricecalc.files.sheets` reads CSV files and Excel sheets.

Everything streams: lines are read one at a time with the bytes read so far (for the
progress bar). Choices the SPEC leaves open (docs/cli.md repeats them for users):

* **Line numbers** are 1-based physical lines for JSON Lines; for CSV and xlsx, the row
  number as a spreadsheet shows it (a header in row 1 makes the first request row 2). A
  blank JSON line is an invalid line; a sheet row with every cell empty is a blank line
  (:attr:`FileLine.blank`: skipped and counted, SPEC §1).
* **Sheets** (CSV and xlsx alike, :func:`~pricecalc.files.sheets.read_csv_sheet`,
  :func:`~pricecalc.files.sheets.read_xlsx_sheet`): the
  header is found below title rows (or given), headings are field names or the labels
  pricecalc writes (:func:`pricecalc.files.columns.heading_field`), pricecalc's own result columns
  (a batch output fed back) and ``ignore``d columns are skipped, and each row keeps its
  cells as written for the round trip's output. Cells are :class:`SheetText`, where a
  count may be written ``2.00`` (SPEC §1).
* **CSV flattening** (one kind per file): columns are the SPEC's field names; an empty
  cell is an absent field; ``a.b`` fills a nested object (``event.start``,
  ``merchant.experience_score``); ``a[0].b`` fills the objects of a list
  (``lines[0].paid_amount``, ``lines[1].paid_amount``); a cell starting with ``[`` or
  ``{`` is JSON (numbers read as exact decimals); ``other_platform_prices`` may also be
  written ``platform:price;platform:price``. ``request_id``, ``merchant_id`` and
  ``campaign`` columns are the request's envelope fields (SPEC §8). A column that is no
  field of the kind (``list_prize``, for a rule that declares its
  :attr:`~pricecalc.registry.Rule.input_fields`) refuses the whole file, naming it.
* **CSV text** is UTF-8 unless the caller names another encoding (``gb18030``, ``gbk``:
  what Excel on Chinese Windows saves as "CSV"); a file starting with the UTF-8
  byte-order mark is UTF-8 whatever was named. :func:`~pricecalc.files.source.open_source`
  decodes the whole
  file once, as it hashes it, so bytes that do not decode refuse the file before anything
  is decided, with the line and byte and the encoding that would read it
  (:class:`~pricecalc.files.source.EncodingProblem`). JSON Lines are UTF-8 (RFC 8259): a
  line that is not is an invalid line, and the others still run.
* **Hostile JSON** — nesting beyond what the parser can follow, a number of more than
  4,300 digits — is an invalid line (a request too deep for SPEC §1 is refused later, by
  the envelope, naming the field).
"""

from __future__ import annotations

import json
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from typing import IO, Any, Literal

import attrs

from pricecalc.i18n import N_, msg
from pricecalc.serialize import MAX_DEPTH, loads

InputFormat = Literal["jsonl", "csv", "xlsx"]
INPUT_SUFFIXES: dict[str, InputFormat] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".xlsx": "xlsx",
}


def json_problem(exc: ValueError | RecursionError) -> str:
    """Why a JSON text could not be read, in a clerk's words (not Python's); the json
    module's own phrase (``Expecting value``) is shown through the catalog
    (:data:`pricecalc.foreign.JSON_MESSAGES`)."""
    if isinstance(exc, json.JSONDecodeError):
        return msg("{problem} at column {column}", problem=msg(exc.msg), column=exc.colno)
    if isinstance(exc, UnicodeDecodeError):
        return msg("it is not UTF-8 text (byte {byte:,})", byte=exc.start + 1)
    if isinstance(exc, RecursionError):
        return msg(
            "it is nested too deeply to read (a request may nest at most {depth} "
            "levels of objects and lists)",
            depth=MAX_DEPTH,
        )
    if "integer string conversion" in str(exc):
        return msg("a number has more than {digits:,} digits", digits=sys.get_int_max_str_digits())
    return str(exc)


@attrs.frozen
class FileLine:
    """One input line: its number and its request, or why it could not be read. A CSV row
    that could not be made a request still carries, as ``request``, what was read of its
    envelope (its ``kind`` and ``request_id``: SPEC §8 wants them on its invalid row)."""

    number: int
    request: Any = None
    error: str | None = None
    #: A sheet row's cells as written (CSV/xlsx), repeated beside its result (round trip).
    cells: tuple[str | None, ...] | None = None
    #: A sheet row with every cell empty: skipped and counted as blank (SPEC §1).
    blank: bool = False
    #: A JSON line not read yet (:func:`read_jsonl` with ``parse=False``): read where it
    #: is decided — a worker process — by :meth:`parsed`.
    raw: bytes | None = None

    def parsed(self) -> FileLine:
        """This line with its request read (itself when it was read already)."""
        return self if self.raw is None else _parse_json_line(self.number, self.raw)


def read_jsonl(fp: IO[bytes], *, parse: bool = True) -> Iterator[tuple[FileLine, int]]:
    """Each physical line as a parsed request (or an error), with the bytes read so far.
    With ``parse=False`` each line is left as it was read (:attr:`FileLine.raw`), to be
    read by whoever decides it (:meth:`FileLine.parsed`)."""
    position = 0
    for number, raw in enumerate(fp, start=1):
        position += len(raw)
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        yield (_parse_json_line(number, raw) if parse else FileLine(number, raw=raw)), position


def _parse_json_line(number: int, raw: bytes) -> FileLine:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        said = msg("line is not UTF-8 text (byte {byte})", byte=exc.start + 1)
        return FileLine(number, error=said)
    text = text.rstrip("\r\n")
    if not text.strip():
        return FileLine(number, error=N_("line is empty; expected a JSON request"))
    try:
        return FileLine(number, request=loads(text))
    except (ValueError, RecursionError) as exc:
        return FileLine(number, error=msg("not valid JSON: {problem}", problem=json_problem(exc)))


class Ahead(Iterator[tuple[FileLine, int]]):
    """A batch's lines (with the bytes read so far), read ahead only as far as someone
    asks: the one look at the stream before it is decided — is there a line at all (an
    empty file), is there more than one chunk (workers or not) — whoever asks first."""

    def __init__(self, lines: Iterable[tuple[FileLine, int]]) -> None:
        self._lines = iter(lines)
        self._head: deque[tuple[FileLine, int]] = deque()

    def ahead(self, count: int) -> int:
        """How many of the next ``count`` lines there are (up to ``count``), read ahead."""
        while len(self._head) < count:
            item = next(self._lines, None)
            if item is None:
                break
            self._head.append(item)
        return len(self._head)

    def __next__(self) -> tuple[FileLine, int]:
        if self._head:
            return self._head.popleft()
        return next(self._lines)
