"""Canonical JSON (docs/audit.md): the exact bytes record hashes are computed over."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit.canonical import canonical_bytes, canonical_text, to_json_value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"b": 1, "a": [True, None, "x"]}, b'{"a":[true,null,"x"],"b":1}'),
        ({"z": {"y": 1, "x": 2}}, b'{"z":{"x":2,"y":1}}'),
        ({"amount": Decimal("12.30")}, b'{"amount":"12.30"}'),
        ({"t": ("a", "b")}, b'{"t":["a","b"]}'),
        ({"name": "超值购"}, '{"name":"超值购"}'.encode()),
        ({"q": 'say "hi"\n\\'}, b'{"q":"say \\"hi\\"\\n\\\\"}'),
        ({"ctl": "\x01"}, b'{"ctl":"\\u0001"}'),
        ({"big": 10**30}, b'{"big":1000000000000000000000000000000}'),
        ({}, b"{}"),
    ],
)
def test_canonical_bytes(value: Any, expected: bytes) -> None:
    """Sorted keys, no whitespace, UTF-8 as is, Decimal as its string, tuples as arrays."""
    assert canonical_bytes(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": 1.5}, "floats have no canonical JSON form"),
        ({"a": [{"b": float("nan")}]}, "floats"),
        ({1: "a"}, "keys must be str"),
        ({"a": b"bytes"}, "bytes has no canonical JSON form"),
        ({"a": {1, 2}}, "set has no canonical JSON form"),
    ],
)
def test_values_without_a_canonical_form_are_refused(value: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        canonical_bytes(value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(json_values)
def test_canonical_json_round_trips(value: Any) -> None:
    """Parsing canonical JSON and encoding it again gives the same bytes (what a verifier
    without this package relies on)."""
    text = canonical_text(value)
    assert canonical_text(json.loads(text)) == text
    assert json.loads(text) == to_json_value(value)
