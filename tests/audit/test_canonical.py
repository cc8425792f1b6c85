"""Canonical JSON (docs/audit.md): the exact bytes record hashes are computed over."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from audit.canonical import canonical_bytes, canonical_text, reference_bytes, to_json_value


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


# -- the fast encoder (orjson) writes exactly the rule's bytes ------------------------------

HOSTILE = [
    "".join(chr(c) for c in range(0x20)),  # every control character
    "\u007f\u0080\u009f\u00a0",  # DEL and the C1 controls: written as themselves
    "\u2028\u2029",  # JavaScript's line separators: not escaped by the rule
    "\U0001f600\U00010000\U0010ffff",  # non-BMP
    "\ufeff\ufffe\uffff\ue000",  # BOM, non-characters, private use
    '"\\/</script>',  # quote, backslash, solidus (not escaped)
    "é\u0301 ﬁ Å",  # combining forms stay as given (no normalisation)
]
hostile_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40
) | st.sampled_from(HOSTILE)
plain_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 5, max_value=2**70)
    | st.integers(min_value=-(2**70), max_value=-(2**63) + 5)
    | hostile_text,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(hostile_text, children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=500)
@given(plain_values)
def test_the_fast_encoder_is_byte_identical_to_the_rule(value: Any) -> None:
    """For every plain JSON value — hostile text, keys that sort differently in UTF-16,
    integers beyond 64 bits — canonical_bytes equals json.dumps' bytes (docs/audit.md)."""
    assert canonical_bytes(value) == reference_bytes(value)
    assert canonical_bytes(value) == json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_round_trips(text: str) -> None:
    value = {text: text, "k": [text]}
    assert canonical_bytes(value) == reference_bytes(value)
    assert json.loads(canonical_bytes(value)) == value


def test_keys_sort_by_code_point_not_utf16() -> None:
    """U+FFFF sorts before U+10000 (code points, as UTF-8 bytes do); in UTF-16 it would not."""
    value = {"\U00010000": 1, "\uffff": 2, "\ue000": 3}
    assert canonical_bytes(value) == '{"\ue000":3,"\uffff":2,"\U00010000":1}'.encode()


@pytest.mark.parametrize("value", [{"a": "x\ud800"}, {"\udfff": 1}, {"a": ["\ud83d"]}])
def test_lone_surrogates_are_refused_clearly(value: Any) -> None:
    """Text that is not valid Unicode has no UTF-8 form: a ValueError naming it."""
    with pytest.raises(ValueError, match=r"lone surrogate U\+D[89A-F][0-9A-F]{2}"):
        canonical_bytes(value)


def test_deep_nesting_falls_back_to_the_rule() -> None:
    value: Any = "leaf"
    for _ in range(300):  # deeper than orjson recurses
        value = [value]
    assert canonical_bytes(value) == reference_bytes(value)
