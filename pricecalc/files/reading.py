"""Reading batch input: JSON Lines and CSV files, one request (or one error) per line.

Everything streams: lines are read one at a time with the bytes read so far (for the
progress bar). Choices the SPEC leaves open (docs/cli.md repeats them for users):

* **Line numbers** are 1-based physical lines for JSON Lines; for CSV and xlsx, the row
  number as a spreadsheet shows it (a header in row 1 makes the first request row 2). A
  blank JSON line is an invalid line; a sheet row with every cell empty is a blank line
  (:attr:`FileLine.blank`: skipped and counted, SPEC §1).
* **Sheets** (CSV and xlsx alike, :func:`read_csv_sheet`, :func:`read_xlsx_sheet`): the
  header is found below title rows (or given), headings are field names or the labels
  pricecalc writes (:func:`pricecalc.files.rows.heading_field`), pricecalc's own result columns
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
  byte-order mark is UTF-8 whatever was named. :func:`open_source` decodes the whole
  file once, as it hashes it, so bytes that do not decode refuse the file before anything
  is decided, with the line and byte and the encoding that would read it
  (:class:`EncodingProblem`). JSON Lines are UTF-8 (RFC 8259): a line that is not is an
  invalid line, and the others still run.
* **Hostile JSON** — nesting beyond what the parser can follow, a number of more than
  4,300 digits — is an invalid line (a request too deep for SPEC §1 is refused later, by
  the envelope, naming the field).
"""

from __future__ import annotations

import codecs
import csv
import difflib
import hashlib
import io
import itertools
import json
import math
import os
import re
import sys
import tempfile
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from datetime import time as dt_time
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Literal

import attrs

from pricecalc.fields import BEIJING, SheetText
from pricecalc.i18n import N_, describe, msg
from pricecalc.serialize import MAX_DEPTH, loads

InputFormat = Literal["jsonl", "csv", "xlsx"]
INPUT_SUFFIXES: dict[str, InputFormat] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".xlsx": "xlsx",
}
_BLOCK = 1 << 20
#: CSV columns that are envelope fields (SPEC §8), not input fields.
ENVELOPE_TEXT = ("request_id", "merchant_id", "campaign")
#: Every column a CSV file may have besides the kind's input fields.
ENVELOPE_COLUMNS = frozenset({*ENVELOPE_TEXT, "kind"})
UTF8_BOM = codecs.BOM_UTF8
#: Encoding families: when a file does not decode as one, the other is tried, to suggest.
_UTF = frozenset({"utf-8", "utf-8-sig"})
_GB = frozenset({"gb18030", "gbk", "gb2312"})


class EncodingProblem(ValueError):
    """The input's bytes are not text in the encoding asked for; the message says where
    and which encoding to pass. Raised before anything is read as a request."""


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


def csv_problem(exc: Exception) -> str:
    """Why the csv module could not read a row, in a clerk's words; its own phrase
    (``line contains NUL``) is shown through the catalog
    (:data:`pricecalc.foreign.CSV_MESSAGES`)."""
    text = str(exc)
    if "field limit" in text:
        return msg("a cell is longer than {limit:,} characters", limit=csv.field_size_limit())
    return msg(text) if text else text


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


@attrs.frozen
class Source:
    """An input file ready to read: its path (a spooled copy for stdin), SHA-256 and size.

    ``encoding`` is what its text is read as (``utf-8-sig`` for UTF-8: a byte-order mark
    is dropped); ``note`` says when that is not what the caller asked (a byte-order mark
    overrode it). ``empty``: no bytes but, perhaps, a byte-order mark.
    """

    path: Path
    digest: str
    size: int
    encoding: str = "utf-8-sig"
    note: str | None = None
    empty: bool = False


class _TextCheck:
    """Decodes the input block by block as it is hashed: where the first bytes that do
    not decode are (line and byte), and whether the other family of encodings (UTF-8 for
    a GB file, GB18030 for a UTF-8 one) reads the whole file — to say what to pass."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        family = "utf-8" if encoding in _UTF else "gb18030" if encoding in _GB else None
        self.other = {"utf-8": "gb18030", "gb18030": "utf-8"}.get(family or "")
        self._decoder = codecs.getincrementaldecoder(encoding)("strict")
        self._other = codecs.getincrementaldecoder(self.other)("strict") if self.other else None
        self.other_reads = self._other is not None
        self.offset = 0
        self.lines = 1
        self.bad: tuple[int, int, bytes] | None = None  # line, 1-based byte, the bytes
        self.ascii = True

    def feed(self, block: bytes, final: bool = False) -> None:
        if self.ascii and not block.isascii():
            self.ascii = False
        if self.bad is None:
            pending = self._decoder.getstate()[0]
            try:
                self._decoder.decode(block, final)
            except UnicodeDecodeError as exc:
                data = pending + block
                at = self.offset - len(pending) + exc.start
                line = self.lines + block[: max(0, at - self.offset)].count(b"\n")
                self.bad = (line, at + 1, data[exc.start : min(exc.end, exc.start + 4)])
        if self._other is not None and self.other_reads:
            try:
                self._other.decode(block, final)
            except UnicodeDecodeError:
                self.other_reads = False
        self.lines += block.count(b"\n")
        self.offset += len(block)

    def problem(self, display: str) -> str | None:
        """What is wrong with the file as text, or None (call after the last block)."""
        asked = _encoding_name(self.encoding)
        if self.bad is not None:
            line, byte, data = self.bad
            shown = " ".join(f"0x{b:02x}" for b in data)
            head = msg(
                "{display} is not {asked} text: line {line} has bytes that do not decode "
                "({shown} at byte {byte:,})",
                display=display, asked=asked, line=line, shown=shown, byte=byte,
            )  # fmt: skip
            if self.other == "gb18030" and self.other_reads:
                return msg(
                    "{head}; it reads as GB18030, the Chinese encoding Excel on Windows "
                    "saves CSV files in: run again with --encoding gb18030 (or save it from "
                    'Excel as "CSV UTF-8")',
                    head=head,
                )
            if self.other == "utf-8" and self.other_reads:
                return msg("{head}; it reads as UTF-8: run again with --encoding utf-8", head=head)
            return msg(
                "{head}: give the encoding it was saved in with --encoding (gb18030, "
                'gbk, big5, …), or save it from Excel as "CSV UTF-8"',
                head=head,
            )
        if self.other == "utf-8" and self.other_reads and not self.ascii:
            return msg(
                "{display} is UTF-8 text, not {asked}: read as {asked} its Chinese would "
                "be garbled; run again with --encoding utf-8",
                display=display, asked=asked,
            )  # fmt: skip
        return None


def _encoding_name(encoding: str) -> str:
    return {"utf-8-sig": "UTF-8", "utf-8": "UTF-8"}.get(encoding, encoding.upper())


@contextmanager
def open_source(
    name: str, stdin: IO[bytes], *, encoding: str | None = None
) -> Iterator[Source]:
    """Hash the input (one streaming pass). ``-`` copies stdin to a temporary file first.

    With ``encoding`` (CSV input) the same pass decodes the file as that encoding — a
    UTF-8 byte-order mark makes it UTF-8 — and raises :class:`EncodingProblem` when its
    bytes are not that text (module docstring).
    """
    display = "standard input" if name == "-" else name
    spool = None
    if name == "-":
        spool = tempfile.NamedTemporaryFile(prefix="pricecalc-stdin-", delete=False)  # noqa: SIM115
    try:
        digest = hashlib.sha256()
        check: _TextCheck | None = None
        note = None
        first = True
        with spool if spool is not None else Path(name).open("rb") as fp:
            reader = stdin if spool is not None else fp
            for block in iter(lambda: reader.read(_BLOCK), b""):
                digest.update(block)
                if spool is not None:
                    spool.write(block)
                if first and encoding is not None:
                    effective = _effective_encoding(encoding, block)
                    if _encoding_name(effective) != _encoding_name(encoding):
                        note = msg(
                            "{display} starts with a UTF-8 byte-order mark: read as UTF-8, "
                            "not {asked}",
                            display=display, asked=_encoding_name(encoding),
                        )  # fmt: skip
                    check = _TextCheck(effective)
                first = False
                if check is not None:
                    check.feed(block)
        if check is not None:
            check.feed(b"", final=True)
            problem = check.problem(display)
            if problem is not None:
                raise EncodingProblem(problem)
        path = Path(spool.name) if spool is not None else Path(name)
        size = path.stat().st_size
        empty = size == 0 or (size == len(UTF8_BOM) and path.read_bytes() == UTF8_BOM)
        yield Source(
            path,
            digest.hexdigest(),
            size,
            encoding=check.encoding if check is not None else "utf-8-sig",
            note=note,
            empty=empty,
        )
    finally:
        if spool is not None:
            os.unlink(spool.name)


def _effective_encoding(asked: str, head: bytes) -> str:
    """UTF-8 (dropping the mark) for a file that starts with the UTF-8 byte-order mark or
    was asked as UTF-8; otherwise the encoding asked for."""
    if head.startswith(UTF8_BOM) or asked in _UTF:
        return "utf-8-sig"
    return asked


class _Counting(io.RawIOBase):
    """A raw reader that counts the bytes read through it (for the progress bar)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)


def read_jsonl(fp: IO[bytes]) -> Iterator[tuple[FileLine, int]]:
    """Each physical line as a parsed request (or an error), with the bytes read so far."""
    position = 0
    for number, raw in enumerate(fp, start=1):
        position += len(raw)
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        yield _parse_json_line(number, raw), position


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


#: The most columns a CSV header may have (docs/cli.md): a request has a few dozen fields
#: at most; a wider file is refused at once, naming this cap.
MAX_COLUMNS = 1_000
_SEGMENT = re.compile(r"^(?P<name>[^\W\d]\w*)(?:\[(?P<index>\d+)\])?$")
Path_ = tuple[tuple[str, int | None], ...]


def parse_column(column: str) -> Path_:
    """``lines[0].paid_amount`` → ``(("lines", 0), ("paid_amount", None))``."""
    parts: list[tuple[str, int | None]] = []
    for segment in column.strip().split("."):
        match = _SEGMENT.match(segment)
        if match is None:
            raise ValueError(
                msg(
                    "CSV column {column!r} is not a field name (use names such as "
                    "list_price, event.start or lines[0].paid_amount)",
                    column=column,
                )
            )
        index = match.group("index")
        parts.append((match.group("name"), int(index) if index is not None else None))
    return tuple(parts)


def check_header(
    header: Sequence[str], fields: Collection[str] | None = None, kind: str | None = None
) -> list[Path_]:
    """Parse every column; refuse more than :data:`MAX_COLUMNS` columns, duplicates, a
    column that is also a parent of another and — when the kind's ``fields`` are known — a
    column that is no field of it. Linear in the columns (times their depth)."""
    if len(header) > MAX_COLUMNS:
        raise ValueError(
            msg(
                "the CSV header has {count:,} columns; at most {limit:,} are read "
                "(a request has far fewer fields): remove the extra columns, or check the "
                "file's delimiter",
                count=len(header), limit=MAX_COLUMNS,
            )
        )  # fmt: skip
    paths = [parse_column(name) for name in header]
    if fields is not None:
        allowed = sorted({*fields, *ENVELOPE_COLUMNS})
        for name, path in zip(header, paths, strict=True):
            top = path[0][0]
            if top not in allowed:
                close = difflib.get_close_matches(top, allowed, n=1, cutoff=0.75)
                hint = msg(" (did you mean {name!r}?)", name=close[0]) if close else ""
                raise ValueError(
                    msg(
                        "CSV column {name!r} is not a field of {kind}{hint}; its fields are "
                        "{fields} (and request_id, merchant_id, campaign)",
                        name=name, kind=kind or "this kind", hint=hint,
                        fields=tuple(sorted(fields)),
                    )
                )  # fmt: skip
    seen: dict[Path_, str] = {}
    for name, path in zip(header, paths, strict=True):
        if path in seen:
            raise ValueError(msg("CSV column {name!r} appears twice", name=name))
        seen[path] = name
    flat = [tuple(x for seg in p for x in (seg[0], seg[1]) if x is not None) for p in paths]
    index = {path: i for i, path in enumerate(flat)}
    # A column that is a parent of another: look each column's own prefixes up (not every
    # pair of columns); the first such pair in header order is named.
    clash = min(
        (
            (index[b[:cut]], j)
            for j, b in enumerate(flat)
            for cut in range(1, len(b))
            if b[:cut] in index
        ),
        default=None,
    )
    if clash is not None:
        i, j = clash
        raise ValueError(
            msg(
                "CSV columns {first!r} and {second!r} both give {first!r}",
                first=header[i], second=header[j],
            )
        )  # fmt: skip
    return paths


def other_platform_cell(text: str) -> list[dict[str, str]]:
    """``百亿补贴:172.00;拼团:175.00`` → ``[{"platform", "price"}, …]`` (prices kept as text)."""
    out: list[dict[str, str]] = []
    for part in text.split(";"):
        if not part.strip():
            continue
        platform, sep, price = part.rpartition(":")
        if not sep or not platform.strip():
            raise ValueError(
                msg(
                    "other_platform_prices: {part!r} is not platform:price "
                    "(write e.g. 百亿补贴:172.00;拼团:175.00)",
                    part=part.strip(),
                )
            )
        out.append({"platform": platform.strip(), "price": price.strip()})
    return out


def _cell_value(column: str, path: Path_, text: str) -> Any:
    stripped = SheetText(text.strip())  # a spreadsheet's cell (SPEC §1: 2.00 is a count 2)
    if stripped[:1] in ("[", "{"):
        try:
            return loads(stripped)
        except (ValueError, RecursionError) as exc:
            raise ValueError(
                msg(
                    "column {column}: the cell looks like JSON but is not ({problem})",
                    column=column, problem=json_problem(exc),
                )
            ) from exc  # fmt: skip
    if path == (("other_platform_prices", None),):
        return other_platform_cell(stripped)
    return stripped


def _place(target: dict[str, Any], path: Path_, value: Any) -> None:
    node: Any = target
    for depth, (name, index) in enumerate(path):
        last = depth == len(path) - 1
        if index is None:
            if last:
                node[name] = value
            else:
                node = node.setdefault(name, {})
        else:
            slots = node.setdefault(name, {})  # index → element, made a list at the end
            if last:
                slots[index] = value
            else:
                node = slots.setdefault(index, {})


def _listify(node: Any) -> Any:
    if isinstance(node, dict):
        if node and all(isinstance(k, int) for k in node):
            return [_listify(node[k]) for k in sorted(node)]
        return {k: _listify(v) for k, v in node.items()}
    return node


def csv_request(
    kind: str, header: Sequence[str], paths: Sequence[Path_], cells: Sequence[str | None]
) -> dict[str, Any]:
    """Build the SPEC §8 request of one CSV row (see the module docstring for the rules)."""
    request: dict[str, Any] = {"kind": kind}
    data: dict[str, Any] = {}
    for column, path, cell in zip(header, paths, cells, strict=True):
        if cell is None or not cell.strip():
            continue
        if len(path) == 1 and path[0][0] in ENVELOPE_TEXT and path[0][1] is None:
            request[path[0][0]] = str(cell).strip()
        elif path == (("kind", None),):
            if cell.strip() != kind:
                raise ValueError(
                    msg(
                        "column kind says {cell!r} but --kind is {kind!r}",
                        cell=cell.strip(), kind=kind,
                    )
                )  # fmt: skip
        else:
            _place(data, path, _cell_value(column, path, cell))
    request["input"] = _listify(data)
    return request


def _envelope_cells(
    kind: str, header: Sequence[str], cells: Sequence[str | None]
) -> dict[str, str]:
    """What a row says of its envelope: the file's kind and the row's ``request_id``."""
    read = {"kind": kind}
    for column, cell in zip(header, cells, strict=True):
        if column == "request_id" and cell is not None and cell.strip():
            read["request_id"] = cell.strip()
    return read


# -- sheets: CSV and xlsx alike ----------------------------------------------------------
#: Result columns pricecalc writes beside the input's own in a CSV/xlsx batch output
#: (:data:`pricecalc.files.rows.ROUND_TRIP_COLUMNS`): fed back, they are recognised and skipped.
#: How far down a header row is looked for below title rows.
HEADER_SEARCH_ROWS = 20
#: The first bytes of a zip archive: an .xlsx workbook, whatever its name says.
ZIP_SIGNATURE = b"PK\x03\x04"


def is_workbook(path: Path) -> bool:
    """True when the file is a zip archive (an .xlsx workbook), by its first bytes."""
    try:
        with path.open("rb") as fp:
            return fp.read(4) == ZIP_SIGNATURE
    except OSError:
        return False


def _heading(text: Any) -> str:
    return str(text).strip().lstrip("\ufeff").strip() if text is not None else ""


@attrs.frozen
class SheetHeader:
    """A sheet's header row: the headings as written (``written``, for a round trip's
    output), the row they stand in, and for each column the field it fills (``None``: a
    column skipped — pricecalc's own result columns, ``--ignore-column``)."""

    row: int
    written: tuple[str, ...]
    names: tuple[str | None, ...]
    paths: tuple[Path_ | None, ...]


def sheet_header(
    rows: Sequence[Sequence[Any]],
    kind: str,
    fields: Collection[str] | None,
    *,
    header_row: int | None = None,
    ignore: Collection[str] = (),
    first_row: int = 1,
) -> SheetHeader:
    """Find and check the header among the first rows (``rows[0]`` is row ``first_row``):
    row ``header_row`` when given, else the first row whose headings are all known (title
    rows above it are skipped), else the row with the most known headings. Headings are
    the SPEC's field names or the labels pricecalc writes (请求号, 商家 …:
    :func:`pricecalc.files.rows.heading_field`, one table used both ways). Raises
    ``ValueError`` naming an unknown column and the known headings."""
    from pricecalc.files.rows import heading_field, known_headings, results_start, round_trip_column

    ignored = {_heading(name) for name in ignore}
    allowed = None if fields is None else {*fields, *ENVELOPE_COLUMNS}

    def known(cell: Any) -> bool:
        text = _heading(cell)
        if not text or text in ignored or round_trip_column(text, fields):
            return True
        name = heading_field(text)
        try:
            top = parse_column(name)[0][0]
        except ValueError:
            return False
        return allowed is None or top in allowed

    index = None
    if header_row is not None:
        index = header_row - first_row
        if not 0 <= index < len(rows):
            raise ValueError(
                msg("--header-row {row}: the sheet has no such row", row=header_row)
            )
    else:
        filled = [i for i, row in enumerate(rows) if any(_heading(c) for c in row)]
        index = next((i for i in filled if all(known(c) for c in rows[i])), None)
        if index is None:  # the row most like a header: the most known headings, earliest
            index = max(
                filled or [0],
                key=lambda i: (sum(1 for c in rows[i] if _heading(c) and known(c)), -i),
            )
    written = tuple(_heading(c) for c in rows[index]) if rows else ()
    while written and not written[-1]:
        written = written[:-1]
    names: list[str | None] = []
    results = results_start(written)  # pricecalc's own output: its columns from there on
    for position, text in enumerate(written):
        if (
            (results is not None and position >= results)
            or not text
            or text in ignored
            or (round_trip_column(text, fields))
        ):
            names.append(None)
        else:
            names.append(heading_field(text))
    kept = [n for n in names if n is not None]
    try:
        kept_paths = iter(check_header(kept, fields, kind))
    except ValueError as exc:
        if "is not a field" in str(exc):
            raise ValueError(
                msg(
                    "{problem}; headings may also be the labels pricecalc writes: {labels}; "
                    "skip a remarks column such as 备注 with --ignore-column NAME",
                    problem=exc.args[0], labels=", ".join(known_headings()),
                )
            ) from exc  # fmt: skip
        raise
    paths = tuple(next(kept_paths) if n is not None else None for n in names)
    return SheetHeader(index + first_row, written, tuple(names), paths)


def _sheet_lines(
    header: SheetHeader,
    rows: Iterator[tuple[int, Sequence[Any] | str, int]],
    kind: str,
) -> Iterator[tuple[FileLine, int]]:
    """Each row below the header as a request (or an error); a row with every cell empty
    is a blank line (skipped and counted, SPEC §1). ``rows`` gives (row number, cells or
    the error reading them, position)."""
    names = [n for n in header.names if n is not None]
    paths = [p for p in header.paths if p is not None]
    width = len(header.written)
    for number, row, position in rows:
        if isinstance(row, str):
            yield FileLine(number, error=row), position
            continue
        cells = [_cell_text(c) for c in row]
        while len(cells) > width and cells[-1] is None:
            cells.pop()
        if not any(c is not None and c.strip() for c in cells):
            yield FileLine(number, blank=True), position
            continue
        if len(cells) > width:
            yield (
                FileLine(
                    number,
                    error=msg(
                        "row has {cells} cells, the header {width}", cells=len(cells), width=width
                    ),
                ),
                position,
            )
            continue
        cells += [None] * (width - len(cells))
        kept = [c for c, n in zip(cells, header.names, strict=True) if n is not None]
        written = tuple(cells)
        try:
            request = csv_request(kind, names, paths, kept)
        except ValueError as exc:
            yield (
                FileLine(number, request=_envelope_cells(kind, names, kept), error=describe(exc),
                         cells=written),
                position,
            )  # fmt: skip
            continue
        yield FileLine(number, request=request, cells=written), position


def _cell_text(value: Any) -> str | None:
    """A cell as text (SPEC §1, "what a spreadsheet does to a value"): an xlsx number
    through its shortest decimal text, a date cell as a Beijing time (a date alone when it
    holds no time), text as it is; an empty cell is None."""
    if value is None:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)  # the shortest text that reads back as this number
        if not math.isfinite(value):
            return text
        number = Decimal(text)
        if number == number.to_integral_value():
            return str(int(number))
        return format(number, "f")
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(BEIJING).replace(tzinfo=None)
        if value.time() == dt_time(0):
            return str(value.date().isoformat())
        return str(value.isoformat())
    if isinstance(value, date | dt_time):
        return str(value.isoformat())
    return str(value)


def read_csv(
    fp: IO[bytes],
    kind: str,
    *,
    encoding: str = "utf-8-sig",
    fields: Collection[str] | None = None,
    header_row: int | None = None,
    ignore: Collection[str] = (),
) -> Iterator[tuple[FileLine, int]]:
    """Each CSV row as a request (or an error), with the bytes read so far.

    Raises ``ValueError`` for an unusable header (the whole file is refused): a column
    that is no field of ``kind`` when its ``fields`` are given.
    """
    header, lines = read_csv_sheet(
        fp, kind, encoding=encoding, fields=fields, header_row=header_row, ignore=ignore
    )
    if header is not None:
        yield from lines


def read_csv_sheet(
    fp: IO[bytes],
    kind: str,
    *,
    encoding: str = "utf-8-sig",
    fields: Collection[str] | None = None,
    header_row: int | None = None,
    ignore: Collection[str] = (),
) -> tuple[SheetHeader | None, Iterator[tuple[FileLine, int]]]:
    """A CSV file's header (None when the file is empty) and its rows as requests."""
    counting = _Counting(fp)
    text = io.TextIOWrapper(io.BufferedReader(counting), encoding=encoding, newline="")
    reader = csv.reader(text)
    head: list[list[str]] = []
    stopped: Exception | None = None  # a row below the header that cannot be read
    while len(head) < (header_row or HEADER_SEARCH_ROWS):
        try:
            row = next(reader)
        except StopIteration:
            break
        except (csv.Error, UnicodeDecodeError) as exc:
            if not head:
                raise ValueError(
                    msg("the CSV header cannot be read: {problem}", problem=csv_problem(exc))
                ) from exc
            stopped = exc
            break
        head.append(row)
    if not head:
        return None, iter(())
    header = sheet_header(head, kind, fields, header_row=header_row, ignore=ignore)

    def problem(exc: Exception) -> str:
        if isinstance(exc, UnicodeDecodeError):
            return msg("row is not text: {reason}", reason=exc.reason)
        return msg("row is not valid CSV: {problem}", problem=csv_problem(exc))

    def rows() -> Iterator[tuple[int, Sequence[Any] | str, int]]:
        number = header.row
        for row in head[header.row :]:
            number += 1
            yield number, [_unneutralised(c) for c in row], counting.count
        if stopped is not None:
            number += 1
            yield number, problem(stopped), counting.count
            if isinstance(stopped, UnicodeDecodeError):
                return
        while True:
            number += 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except UnicodeDecodeError as exc:  # the file changed since open_source checked it
                yield number, problem(exc), counting.count
                return  # the decoder cannot resynchronise: the rest of the file is unreadable
            except csv.Error as exc:
                yield number, problem(exc), counting.count
                continue
            yield number, [_unneutralised(c) for c in row], counting.count

    return header, _sheet_lines(header, rows(), kind)


def _unneutralised(cell: str) -> str:
    """A CSV cell as the clerk wrote it: the ``'`` pricecalc put before a cell a
    spreadsheet would run as a formula (:func:`pricecalc.files.writing.neutralise`, a round
    trip's CSV output fed back) taken off again."""
    if not cell.startswith("'"):
        return cell
    from pricecalc.files.writing import neutralise

    return cell[1:] if neutralise(cell[1:]) == cell else cell


def read_xlsx_sheet(
    path: Path,
    kind: str,
    *,
    sheet: str | None = None,
    fields: Collection[str] | None = None,
    header_row: int | None = None,
    ignore: Collection[str] = (),
    display: str | None = None,
) -> tuple[SheetHeader | None, Iterator[tuple[FileLine, int]]]:
    """An .xlsx workbook's sheet (the first, or ``sheet``) read as :func:`read_csv_sheet`
    reads a CSV file, streaming (openpyxl's read-only mode); cells as SPEC §1 says
    (:func:`_cell_text`). Raises ``ValueError`` for a workbook that cannot be read, a
    missing sheet or an unusable header."""
    from openpyxl import load_workbook

    shown = display or str(path)
    handle = path.open("rb")  # a file object: openpyxl judges a path by its extension
    try:
        book = load_workbook(handle, read_only=True, data_only=True)
    except Exception as exc:  # a damaged or foreign zip: openpyxl raises many kinds
        handle.close()
        raise ValueError(
            msg("{name} cannot be read as an Excel workbook: {reason}", name=shown, reason=exc)
        ) from exc

    def close() -> None:
        book.close()
        handle.close()

    if sheet is not None:
        if sheet not in book.sheetnames:
            close()
            raise ValueError(
                msg(
                    "{name} has no sheet {sheet!r}; its sheets are {sheets}",
                    name=shown, sheet=sheet, sheets=", ".join(book.sheetnames),
                )
            )  # fmt: skip
        worksheet: Any = book[sheet]
    else:
        worksheet = book.worksheets[0]
    size = path.stat().st_size
    values = worksheet.iter_rows(values_only=True)
    head: list[Sequence[Any]] = []
    for row in values:
        head.append(row)
        if len(head) >= (header_row or HEADER_SEARCH_ROWS):
            break
    if not head or not any(_cell_text(c) for row in head for c in row):
        close()
        return None, iter(())
    try:
        header = sheet_header(head, kind, fields, header_row=header_row, ignore=ignore)
    except ValueError:
        close()
        raise

    def rows() -> Iterator[tuple[int, Sequence[Any] | str, int]]:
        try:
            number = header.row
            for row in itertools.chain(head[header.row :], values):
                number += 1
                yield number, row, 0
        finally:
            close()

    def with_end() -> Iterator[tuple[FileLine, int]]:
        # A zip is not read in order of its bytes: the progress bar stays at the start and
        # reaches the end with the last row.
        pending = None
        for line, _ in _sheet_lines(header, rows(), kind):
            if pending is not None:
                yield pending, 0
            pending = line
        if pending is not None:
            yield pending, size

    return header, with_end()


def read_lines(
    fp: IO[bytes],
    fmt: InputFormat,
    kind: str | None,
    *,
    encoding: str = "utf-8-sig",
    fields: Collection[str] | None = None,
) -> Iterator[tuple[FileLine, int]]:
    """The input's lines (with the bytes read so far), JSON Lines or CSV.

    A CSV header is read at once, so an unusable one raises ``ValueError`` here, before
    anything is decided. ``encoding`` and ``fields`` are for CSV (:func:`read_csv`).
    """
    if fmt == "jsonl":
        return read_jsonl(fp)
    if not kind:
        raise ValueError(msg("a CSV file holds one kind of request: give its kind"))
    rows = read_csv(fp, kind, encoding=encoding, fields=fields)
    first = next(rows, None)
    return _prepend(first, rows)


def _prepend(
    first: tuple[FileLine, int] | None, rest: Iterator[tuple[FileLine, int]]
) -> Iterator[tuple[FileLine, int]]:
    if first is not None:
        yield first
        yield from rest
