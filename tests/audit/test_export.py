"""CSV formula-injection escaping (audit.export), reused by the pricecalc CLI."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, strategies as st

from audit.export import escape_csv_cell, unescape_csv_cell, write_records


@pytest.mark.parametrize(
    ("cell", "escaped"),
    [
        ("=1+2", "'=1+2"),
        ("+33 1 23", "'+33 1 23"),
        ("-5.00", "'-5.00"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\tTAB", "'\tTAB"),
        ("\rCR", "'\rCR"),
        ("'quoted", "''quoted"),
        ("O1", "O1"),
        ("12.30", "12.30"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_escape_csv_cell(cell: str, escaped: str) -> None:
    """Cells a spreadsheet would read as a formula get a leading ' (OWASP CSV injection)."""
    assert escape_csv_cell(cell) == escaped
    assert unescape_csv_cell(escaped) == cell


@given(st.text())
def test_escaping_is_safe_and_reversible(cell: str) -> None:
    escaped = escape_csv_cell(cell)
    assert not escaped.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert unescape_csv_cell(escaped) == cell


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown export format 'xml'"):
        write_records(io.StringIO(), "xml", [])  # type: ignore[arg-type]
