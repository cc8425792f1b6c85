"""The high-water mark's slot (audit/mark.py): written by hand, byte for byte what
json.dumps with compact separators writes."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from hypothesis import given, settings, strategies as st

import audit.mark
from audit.mark import SLOT, format_mark, parse_mark
from audit.protocol import Checkpoint


def _by_json(generation: Any, seq: Any, digest: Any, offset: Any, end: Any) -> bytes:
    """format_mark as it was: the body from json.dumps."""
    fields: dict[str, Any] = {"gen": generation, "seq": seq, "hash": digest, "offset": offset}
    if end is not None:
        fields["end"] = end
    body = json.dumps(fields, separators=(",", ":"))
    check = hashlib.sha256(body.encode("ascii")).hexdigest()[:16]
    return f"{body} {check}\n".encode("ascii").ljust(SLOT - 1, b" ") + b"\n"


def test_a_slot_byte_for_byte() -> None:
    head = Checkpoint(12, "ab" * 32)
    slot = format_mark(3, head, 4096, 4400)
    body = b'{"gen":3,"seq":12,"hash":"' + b"ab" * 32 + b'","offset":4096,"end":4400}'
    check = hashlib.sha256(body).hexdigest()[:16].encode("ascii")
    assert slot == (body + b" " + check + b"\n").ljust(SLOT - 1, b" ") + b"\n"
    assert len(slot) == SLOT
    assert parse_mark(slot) == (3, 12, "ab" * 32, 4096, 4400)
    assert format_mark(0, head, 7) == _by_json(0, 12, "ab" * 32, 7, None)
    assert parse_mark(format_mark(0, head, 7)) == (0, 12, "ab" * 32, 7, -1)


def test_values_json_writes_differently_go_through_json() -> None:
    """A bool is not an int to JSON; a hash with quotes or non-ASCII is escaped."""
    head = Checkpoint(True, 'a"b\\é')  # type: ignore[arg-type]
    assert format_mark(1, head, 0) == _by_json(1, True, 'a"b\\é', 0, None)
    assert b'"seq":true' in format_mark(1, head, 0)
    assert format_mark(1, Checkpoint(2, 'q"é'), 5, 9) == _by_json(1, 2, 'q"é', 5, 9)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=0, max_value=2**63),
    st.integers(min_value=0, max_value=2**63),
    st.text(max_size=40) | st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    st.integers(min_value=0, max_value=2**63),
    st.none() | st.integers(min_value=-1, max_value=2**63),
)
def test_format_mark_is_what_json_dumps_writes(
    generation: int, seq: int, digest: str, offset: int, end: int | None
) -> None:
    slot = format_mark(generation, Checkpoint(seq, digest), offset, end)
    assert slot == _by_json(generation, seq, digest, offset, end)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=-2, max_value=2**40),
    st.integers(min_value=-2, max_value=2**40),
    st.text(max_size=70) | st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    st.integers(min_value=-2, max_value=2**40),
    st.none() | st.integers(min_value=-2, max_value=2**40),
)
def test_a_slot_written_here_reads_back_as_parsing_its_bytes_does(
    generation: int, seq: int, digest: str, offset: int, end: int | None
) -> None:
    """format_mark remembers the mark of the slot it wrote (this process reads it back
    once per sync): always what parsing those bytes gives — None for what no writer
    writes (a negative number), -1 for an end not past the offset."""
    audit.mark._made.clear()
    slot = format_mark(generation, Checkpoint(seq, digest), offset, end)
    remembered = audit.mark._made.get(slot)
    parsed = audit.mark._parse_mark(slot[:SLOT])
    assert parse_mark(slot[:SLOT]) == parsed
    if remembered is not None:
        assert remembered == parsed
    else:
        assert parsed is None or len(slot) > SLOT


def test_a_written_slot_is_not_parsed_again() -> None:
    audit.mark._made.clear()
    slot = format_mark(4, Checkpoint(9, "cd" * 32), 100, 350)
    assert audit.mark._made == {slot: (4, 9, "cd" * 32, 100, 350)}
    assert parse_mark(slot) == (4, 9, "cd" * 32, 100, 350)
    tampered = slot.replace(b'"seq":9', b'"seq":8')
    assert parse_mark(tampered) is None  # its checksum no longer holds
