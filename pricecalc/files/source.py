"""An input file opened once: hashed (SHA-256, for the 0.1 keys) and, for CSV, decoded as
it is hashed, so bytes that are not text in the encoding asked for refuse the file before
anything is decided — naming the line and byte and the encoding that would read it
(:class:`EncodingProblem`). Standard input is spooled to a temporary file on the way.
"""

import codecs
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import attrs

from pricecalc.i18n import msg

_BLOCK = 1 << 20
UTF8_BOM = codecs.BOM_UTF8
#: Encoding families: when a file does not decode as one, the other is tried, to suggest.
_UTF = frozenset({"utf-8", "utf-8-sig"})
_GB = frozenset({"gb18030", "gbk", "gb2312"})


class EncodingProblem(ValueError):
    """The input's bytes are not text in the encoding asked for; the message says where
    and which encoding to pass. Raised before anything is read as a request."""


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
def open_source(name: str, stdin: IO[bytes], *, encoding: str | None = None) -> Iterator[Source]:
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
