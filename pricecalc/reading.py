"""Reading batch input: JSON Lines and CSV files, one request (or one error) per line.

Everything streams: lines are read one at a time with the bytes read so far (for the
progress bar). Choices the SPEC leaves open (docs/cli.md repeats them for users):

* **Line numbers** are 1-based physical lines for JSON Lines; for CSV, the row number as a
  spreadsheet shows it (the header is row 1, the first request row 2). A blank line is an
  invalid line (one output row per input line, always).
* **CSV flattening** (one kind per file): columns are the SPEC's field names; an empty
  cell is an absent field; ``a.b`` fills a nested object (``event.start``,
  ``merchant.experience_score``); ``a[0].b`` fills the objects of a list
  (``lines[0].paid_amount``, ``lines[1].paid_amount``); a cell starting with ``[`` or
  ``{`` is JSON (numbers read as exact decimals); ``other_platform_prices`` may also be
  written ``platform:price;platform:price``. ``request_id``, ``merchant_id`` and
  ``campaign`` columns are the request's envelope fields (SPEC §8).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Literal

import attrs

from pricecalc.serialize import loads

InputFormat = Literal["jsonl", "csv"]
INPUT_SUFFIXES: dict[str, InputFormat] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
_BLOCK = 1 << 20
#: CSV columns that are envelope fields (SPEC §8), not input fields.
ENVELOPE_TEXT = ("request_id", "merchant_id", "campaign")


@attrs.frozen
class FileLine:
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
        return FileLine(number, error=f"line is not UTF-8 text (byte {exc.start + 1})")
    text = text.rstrip("\r\n")
    if not text.strip():
        return FileLine(number, error="line is empty; expected a JSON request")
    try:
        return FileLine(number, request=loads(text))
    except json.JSONDecodeError as exc:
        return FileLine(number, error=f"not valid JSON: {exc.msg} at column {exc.colno}")
    except (ValueError, RecursionError) as exc:
        return FileLine(number, error=f"not valid JSON: {exc}")


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
        if len(path) == 1 and path[0][0] in ENVELOPE_TEXT and path[0][1] is None:
            request[path[0][0]] = cell.strip()
        elif path == (("kind", None),):
            if cell.strip() != kind:
                raise ValueError(f"column kind says {cell.strip()!r} but --kind is {kind!r}")
        else:
            _place(data, path, _cell_value(column, path, cell))
    request["input"] = _listify(data)
    return request


def read_csv(fp: IO[bytes], kind: str) -> Iterator[tuple[FileLine, int]]:
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
            yield FileLine(number, error=f"row is not UTF-8 text: {exc.reason}"), counting.count
            return  # the decoder cannot resynchronise: the rest of the file is unreadable
        except csv.Error as exc:
            yield FileLine(number, error=f"row is not valid CSV: {exc}"), counting.count
            continue
        if not row or not any(cell.strip() for cell in row):
            yield FileLine(number, error="row is empty"), counting.count
            continue
        if len(row) > len(header):
            yield (
                FileLine(number, error=f"row has {len(row)} cells, the header {len(header)}"),
                counting.count,
            )
            continue
        cells: list[str | None] = [*row, *([None] * (len(header) - len(row)))]
        try:
            yield FileLine(number, request=csv_request(kind, header, paths, cells)), counting.count
        except ValueError as exc:
            yield FileLine(number, error=str(exc)), counting.count


def read_lines(fp: IO[bytes], fmt: InputFormat, kind: str | None) -> Iterator[tuple[FileLine, int]]:
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
    first: tuple[FileLine, int] | None, rest: Iterator[tuple[FileLine, int]]
) -> Iterator[tuple[FileLine, int]]:
    if first is not None:
        yield first
        yield from rest
