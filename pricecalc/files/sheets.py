"""CSV files and Excel sheets as batch input (module docstring of
:mod:`pricecalc.files.reading` for the choices): the header found and checked, each row
flattened back into a request (``lines[0].paid_amount`` fills a list of objects), its cells
kept as written for the round trip.
"""

import csv
import difflib
import io
import itertools
import math
import re
from collections.abc import Collection, Iterator, Sequence
from datetime import date, datetime, time as dt_time
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import attrs

from pricecalc.beijing import naive_beijing
from pricecalc.fields import SheetText
from pricecalc.files.columns import heading_field, known_headings, results_start, round_trip_column
from pricecalc.files.reading import FileLine, json_problem
from pricecalc.files.writing import neutralise
from pricecalc.i18n import msg
from pricecalc.messages import describe
from pricecalc.serialize import loads

#: CSV columns that are envelope fields (SPEC §8), not input fields.
ENVELOPE_TEXT = ("request_id", "merchant_id", "campaign")
#: Every column a CSV file may have besides the kind's input fields.
ENVELOPE_COLUMNS = frozenset({*ENVELOPE_TEXT, "kind"})


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


#: The most columns a CSV header may have (docs/cli.md): a request has a few dozen fields
#: at most; a wider file is refused at once, naming this cap.
MAX_COLUMNS = 1_000
_SEGMENT = re.compile(r"^(?P<name>[^\W\d]\w*)(?:\[(?P<index>\d+)\])?$")
Path_ = tuple[tuple[str, int | None], ...]


def csv_problem(exc: Exception) -> str:
    """Why the csv module could not read a row, in a clerk's words; its own phrase
    (``line contains NUL``) is shown through the catalog
    (:data:`pricecalc.foreign.CSV_MESSAGES`)."""
    text = str(exc)
    if "field limit" in text:
        return msg("a cell is longer than {limit:,} characters", limit=csv.field_size_limit())
    return msg(text) if text else text


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
#: (:data:`pricecalc.files.columns.ROUND_TRIP_COLUMNS`): fed back, they are recognised and skipped.
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
    :func:`pricecalc.files.columns.heading_field`, one table used both ways). Raises
    ``ValueError`` naming an unknown column and the known headings."""
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
            raise ValueError(msg("--header-row {row}: the sheet has no such row", row=header_row))
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
        value = naive_beijing(value)
        if value.time() == dt_time(0):
            return str(value.date().isoformat())
        return str(value.isoformat())
    if isinstance(value, date | dt_time):
        return str(value.isoformat())
    return str(value)


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
