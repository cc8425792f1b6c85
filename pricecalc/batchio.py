"""Batch files: reading requests (JSON Lines, CSV), writing rows (JSON Lines, CSV, Excel),
and running a file through :meth:`pricecalc.Calculator.decide_many` in chunks.

Everything streams: a file is read, decided and written ``chunk_size`` lines at a time
(one group commit per chunk), so memory stays flat whatever the file's size.

Choices the SPEC leaves open (docs/cli.md repeats them for users):

* **Stable ids.** A request without ``request_id`` gets
  ``batch-<first 16 hex digits of the file's SHA-256>-line-<n>`` — the same file run again
  gives the same ids, so an interrupted batch re-run records nothing twice. Standard input
  is first copied to a temporary file (streamed, not held in memory) and hashed the same
  way, so the same content piped twice is recognised. Editing the file changes its hash:
  files that are edited between runs should carry their own ``request_id``.
* **Line numbers** are 1-based physical lines for JSON Lines; for CSV, the row number as a
  spreadsheet shows it (the header is row 1, the first request row 2). A blank line is an
  invalid line (one output row per input line, always).
* **CSV flattening** (one kind per file): columns are the SPEC's field names; an empty
  cell is an absent field; ``a.b`` fills a nested object (``event.start``,
  ``merchant.experience_score``); ``a[0].b`` fills the objects of a list
  (``lines[0].paid_amount``, ``lines[1].paid_amount``); a cell starting with ``[`` or
  ``{`` is JSON (numbers read as exact decimals); ``other_platform_prices`` may also be
  written ``platform:price;platform:price``. A ``request_id`` column is the request's id.
* **Output money**: JSON and CSV carry two-decimal strings; Excel cells are numbers made
  from the exact ``Decimal`` with the number format ``0.00`` (openpyxl writes 16
  significant digits, exact for every amount below 10^13 yuan; a larger one is written as
  text). Text cells in CSV and Excel are escaped against formula injection with
  :func:`audit.export.escape_csv_cell`; amounts and whole numbers, which pricecalc
  produces itself, are not (a negative amount stays ``-10.00``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Literal, Protocol

import attrs

from pricecalc.calculator import Calculator
from pricecalc.errors import InvalidInput, PricecalcError
from pricecalc.report import INTEGER_COLUMNS, MONEY_COLUMNS, Summary, as_recorded, decision_row
from pricecalc.serialize import dumps, loads

InputFormat = Literal["jsonl", "csv"]
OutputFormat = Literal["jsonl", "csv", "xlsx"]

INPUT_SUFFIXES: dict[str, InputFormat] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
OUTPUT_SUFFIXES: dict[str, OutputFormat] = {".jsonl": "jsonl", ".csv": "csv", ".xlsx": "xlsx"}
DEFAULT_CHUNK_SIZE = 500
#: Amounts below this are exact as spreadsheet numbers (openpyxl writes 16 significant
#: digits; a double holds every two-decimal amount below 10^13 exactly enough to round-trip).
EXACT_IN_EXCEL = Decimal(10) ** 13
_BLOCK = 1 << 20


# -- input ---------------------------------------------------------------------------------
@attrs.frozen
class Line:
    """One input line: its number and its request, or why it could not be read."""

    number: int
    request: Any = None
    error: str | None = None


@attrs.frozen
class Source:
    """An input file ready to read: its path (a spooled copy for stdin) and SHA-256."""

    path: Path
    digest: str
    size: int


@contextmanager
def open_source(name: str, stdin: IO[bytes]) -> Iterator[Source]:
    """Hash the input (one streaming pass). ``-`` copies stdin to a temporary file first."""
    if name != "-":
        path = Path(name)
        digest = hashlib.sha256()
        with path.open("rb") as fp:
            for block in iter(lambda: fp.read(_BLOCK), b""):
                digest.update(block)
        yield Source(path, digest.hexdigest(), path.stat().st_size)
        return
    spool = tempfile.NamedTemporaryFile(prefix="pricecalc-stdin-", delete=False)  # noqa: SIM115
    try:
        digest = hashlib.sha256()
        with spool:
            for block in iter(lambda: stdin.read(_BLOCK), b""):
                digest.update(block)
                spool.write(block)
        path = Path(spool.name)
        yield Source(path, digest.hexdigest(), path.stat().st_size)
    finally:
        os.unlink(spool.name)


def stable_request_id(digest: str, number: int) -> str:
    """The id given to a request without ``request_id``: file content hash + line number."""
    return f"batch-{digest[:16]}-line-{number}"


def with_request_id(request: Any, digest: str, number: int) -> Any:
    """The request with a stable ``request_id`` when it has none (objects only)."""
    if isinstance(request, dict) and request.get("request_id") is None:
        return {**request, "request_id": stable_request_id(digest, number)}
    return request


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


def read_jsonl(fp: IO[bytes]) -> Iterator[tuple[Line, int]]:
    """Each physical line as a parsed request (or an error), with the bytes read so far."""
    position = 0
    for number, raw in enumerate(fp, start=1):
        position += len(raw)
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        yield _parse_json_line(number, raw), position


def _parse_json_line(number: int, raw: bytes) -> Line:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Line(number, error=f"line is not UTF-8 text (byte {exc.start + 1})")
    text = text.rstrip("\r\n")
    if not text.strip():
        return Line(number, error="line is empty; expected a JSON request")
    try:
        return Line(number, request=loads(text))
    except json.JSONDecodeError as exc:
        return Line(number, error=f"not valid JSON: {exc.msg} at column {exc.colno}")
    except (ValueError, RecursionError) as exc:
        return Line(number, error=f"not valid JSON: {exc}")


_SEGMENT = re.compile(r"^(?P<name>[^\W\d]\w*)(?:\[(?P<index>\d+)\])?$")
Path_ = tuple[tuple[str, int | None], ...]


def parse_column(column: str) -> Path_:
    """``lines[0].paid_amount`` → ``(("lines", 0), ("paid_amount", None))``."""
    parts: list[tuple[str, int | None]] = []
    for segment in column.strip().split("."):
        match = _SEGMENT.match(segment)
        if match is None:
            raise ValueError(
                f"CSV column {column!r} is not a field name (use names such as "
                "list_price, event.start or lines[0].paid_amount)"
            )
        index = match.group("index")
        parts.append((match.group("name"), int(index) if index is not None else None))
    return tuple(parts)


def check_header(header: Sequence[str]) -> list[Path_]:
    """Parse every column; refuse duplicates and a column that is also a parent of another."""
    paths = [parse_column(name) for name in header]
    seen: dict[Path_, str] = {}
    for name, path in zip(header, paths, strict=True):
        if path in seen:
            raise ValueError(f"CSV column {name!r} appears twice")
        seen[path] = name
    flat = [tuple(x for seg in p for x in (seg[0], seg[1]) if x is not None) for p in paths]
    for i, a in enumerate(flat):
        for j, b in enumerate(flat):
            if i != j and len(a) < len(b) and b[: len(a)] == a:
                raise ValueError(
                    f"CSV columns {header[i]!r} and {header[j]!r} both give {header[i]!r}"
                )
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
                f"other_platform_prices: {part.strip()!r} is not platform:price "
                "(write e.g. 百亿补贴:172.00;拼团:175.00)"
            )
        out.append({"platform": platform.strip(), "price": price.strip()})
    return out


def _cell_value(column: str, path: Path_, text: str) -> Any:
    stripped = text.strip()
    if stripped[:1] in ("[", "{"):
        try:
            return loads(stripped)
        except (ValueError, RecursionError) as exc:
            raise ValueError(
                f"column {column}: the cell looks like JSON but is not ({exc})"
            ) from exc
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
        if path == (("request_id", None),):
            request["request_id"] = cell.strip()
        elif path == (("kind", None),):
            if cell.strip() != kind:
                raise ValueError(f"column kind says {cell.strip()!r} but --kind is {kind!r}")
        else:
            _place(data, path, _cell_value(column, path, cell))
    request["input"] = _listify(data)
    return request


def read_csv(fp: IO[bytes], kind: str) -> Iterator[tuple[Line, int]]:
    """Each CSV row as a request (or an error), with the bytes read so far.

    Raises ``ValueError`` for an unusable header (the whole file is refused).
    """
    counting = _Counting(fp)
    text = io.TextIOWrapper(io.BufferedReader(counting), encoding="utf-8-sig", newline="")
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        return
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ValueError(f"the CSV header cannot be read: {exc}") from exc
    header = [name.strip() for name in header]
    paths = check_header(header)
    number = 1
    while True:
        number += 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            yield Line(number, error=f"row is not UTF-8 text: {exc.reason}"), counting.count
            return  # the decoder cannot resynchronise: the rest of the file is unreadable
        except csv.Error as exc:
            yield Line(number, error=f"row is not valid CSV: {exc}"), counting.count
            continue
        if not row or not any(cell.strip() for cell in row):
            yield Line(number, error="row is empty"), counting.count
            continue
        if len(row) > len(header):
            yield (
                Line(number, error=f"row has {len(row)} cells, the header {len(header)}"),
                counting.count,
            )
            continue
        cells: list[str | None] = [*row, *([None] * (len(header) - len(row)))]
        try:
            yield Line(number, request=csv_request(kind, header, paths, cells)), counting.count
        except ValueError as exc:
            yield Line(number, error=str(exc)), counting.count


def read_lines(fp: IO[bytes], fmt: InputFormat, kind: str | None) -> Iterator[tuple[Line, int]]:
    """The input's lines (with the bytes read so far), JSON Lines or CSV.

    A CSV header is read at once, so an unusable one raises ``ValueError`` here, before
    anything is decided.
    """
    if fmt == "jsonl":
        return read_jsonl(fp)
    if not kind:
        raise ValueError("a CSV file holds one kind of request: give its kind")
    rows = read_csv(fp, kind)
    first = next(rows, None)
    return _prepend(first, rows)


def _prepend(
    first: tuple[Line, int] | None, rest: Iterator[tuple[Line, int]]
) -> Iterator[tuple[Line, int]]:
    if first is not None:
        yield first
        yield from rest


# -- output --------------------------------------------------------------------------------
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


# -- the batch loop ------------------------------------------------------------------------
class BatchStopped(PricecalcError):
    """A line could not be decided for a reason that is not its input (a plugin, the policy).

    Lines before it have been decided, recorded and written; running the same file again
    replays them and goes on from here.
    """

    def __init__(self, line: int, cause: Exception) -> None:
        self.line = line
        self.cause = cause
        super().__init__(f"line {line}: {cause}")


Emit = Callable[[Line, Mapping[str, Any] | None, str | None], None]


def _chunks(items: Iterable[tuple[Line, int]], size: int) -> Iterator[list[tuple[Line, int]]]:
    chunk: list[tuple[Line, int]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def run_batch(
    calc: Calculator,
    lines: Iterable[tuple[Line, int]],
    digest: str,
    emit: Emit,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Callable[[int], None] = lambda position: None,
) -> Summary:
    """Decide ``lines`` in chunks (one group commit each), emitting one row per line in order.

    ``emit(line, decision_dict, error)`` gets the SPEC §8 decision (with ``audit``) or the
    error of an invalid line. Requests without ``request_id`` get a stable one
    (:func:`stable_request_id`). Decisions already in the store are replayed, not recorded
    again. Raises :class:`BatchStopped` when a line fails for a reason that is not its input.
    """
    summary = Summary()
    start_seq = calc.store.head().seq
    for chunk in _chunks(lines, max(1, chunk_size)):
        pending = [
            (line, with_request_id(line.request, digest, line.number))
            for line, _ in chunk
            if line.error is None
        ]
        decided: dict[int, Mapping[str, Any] | str] = {}
        try:
            items = calc.decide_many([req for _, req in pending], on_invalid="collect")
        except (PricecalcError, TypeError):
            # Something other than one line's input failed (a plugin, the policy): decide
            # the chunk line by line so that the lines before it are kept, and name it.
            for line, req in pending:
                try:
                    decided[line.number] = calc.decide(req).to_dict()
                except InvalidInput as exc:
                    decided[line.number] = str(exc)
                except (PricecalcError, TypeError) as exc:
                    _emit_chunk(chunk, decided, emit, summary, start_seq, stop=line.number)
                    raise BatchStopped(line.number, exc) from exc
        else:
            for (line, _), item in zip(pending, items, strict=True):
                if item.decision is not None:
                    decided[line.number] = item.decision.to_dict()
                else:
                    decided[line.number] = str(item.error)
        _emit_chunk(chunk, decided, emit, summary, start_seq)
        progress(chunk[-1][1])
    return summary


def _emit_chunk(
    chunk: Sequence[tuple[Line, int]],
    decided: Mapping[int, Mapping[str, Any] | str],
    emit: Emit,
    summary: Summary,
    start_seq: int,
    stop: int | None = None,
) -> None:
    for line, _ in chunk:
        if stop is not None and line.number >= stop:
            return
        outcome = decided.get(line.number, line.error)
        if isinstance(outcome, Mapping):
            audit = outcome.get("audit") or {}
            summary.add_decision(outcome, replayed=int(audit.get("seq", 0)) <= start_seq)
            emit(line, outcome, None)
        else:
            summary.add_invalid()
            emit(line, None, outcome)


def batch_row(line: Line, decision: Mapping[str, Any] | None, error: str | None) -> dict[str, Any]:
    """The JSON Lines output of one line: the SPEC §8 decision, or the invalid-line shape."""
    if decision is not None:
        return as_recorded(decision)
    return {"line": line.number, "status": "invalid", "error": error}


def flat_batch_row(
    line: Line, decision: Mapping[str, Any] | None, error: str | None
) -> dict[str, Any]:
    """The CSV / Excel output of one line (:data:`pricecalc.report.BATCH_COLUMNS`)."""
    request = line.request if isinstance(line.request, Mapping) else {}
    return decision_row(line.number, decision, error, request=request)
