"""A payload handed over with its canonical bytes (audit.records.CanonicalPayload): sealed
as it is, the same record, byte for byte, as the payload sealed the ordinary way — so a
writer can take what a worker process encoded (docs/audit.md, "The record format")."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, strategies as st

import audit
from audit.canonical import canonical_bytes
from audit.protocol import Entry
from audit.records import CanonicalPayload, check_entry, seal_record

NOW = datetime(2026, 11, 11, 8, 0, tzinfo=UTC)

json_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"))
plain = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | json_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(json_text, inner, max_size=3),
    max_leaves=8,
)


@given(st.dictionaries(json_text, plain, max_size=5), st.booleans())
def test_its_bytes_are_the_canonical_encoding(payload: dict[str, Any], promised: bool) -> None:
    """encode() writes the canonical JSON of the payload; decode() gives the payload back."""
    encoded = CanonicalPayload.encode(payload, plain=promised)
    assert encoded is not None
    assert encoded.canonical == canonical_bytes(payload)
    assert encoded == payload
    assert CanonicalPayload.decode(encoded.canonical) == payload


def test_it_converts_as_every_payload_is_converted() -> None:
    """Without the plain promise, Decimals become text and tuples lists (to_json_value)."""
    encoded = CanonicalPayload.encode({"amount": Decimal("1.50"), "lines": ("L1", "L2")})
    assert encoded is not None
    assert encoded == {"amount": "1.50", "lines": ["L1", "L2"]}
    assert encoded.canonical == b'{"amount":"1.50","lines":["L1","L2"]}'


@given(st.dictionaries(json_text, plain, max_size=5))
def test_it_seals_the_same_record_as_the_plain_payload(payload: dict[str, Any]) -> None:
    """The body, hash and line of a record are the same whether its payload came with its
    canonical bytes or not."""
    encoded = CanonicalPayload.encode(payload)
    assert encoded is not None
    entries = [Entry(payload, key="k", tags=("t",), plain=True),
               Entry(encoded, key="k", tags=("t",), plain=True)]  # fmt: skip
    stamp = "2026-11-11T08:00:00.000000Z"
    sealed = [
        seal_record(
            check_entry(entry), seq=3, prev_hash="a" * 64, stamp=stamp, hmac_key=None,
            record_id="0" * 32, recorded_us=0,
        )
        for entry in entries
    ]
    assert sealed[1].line == sealed[0].line
    assert sealed[1].record.hash == sealed[0].record.hash


@pytest.mark.parametrize(
    "payload",
    [{"n": 1.5}, {"n": 2**64}, {"text": "\ud800"}, {1: "not a text key"}],
    ids=["float", "int beyond 64 bits", "lone surrogate", "int key"],
)
def test_what_needs_the_general_encoding_is_not_encoded(payload: dict[Any, Any]) -> None:
    """A payload orjson cannot write canonically is refused (None): the caller appends it
    as an ordinary entry, which converts or refuses it with its own message."""
    assert CanonicalPayload.encode(payload) is None


def test_a_store_keeps_and_verifies_it(tmp_path: Path) -> None:
    """Appended through a transaction, the record reads back as the payload and the
    store verifies."""
    encoded = CanonicalPayload.encode({"kind": "x", "amount": "1.00", "n": [1, 2]})
    assert encoded is not None
    with audit.open_store(str(tmp_path / "a.jsonl"), clock=lambda: NOW) as store:
        with store.transaction() as tx:
            record = tx.append(Entry(encoded, key="k-1", tags=("kind:x",), plain=True))
        got = store.get("k-1")
        assert got is not None
        assert (got.seq, got.hash, dict(got.payload)) == (1, record.hash, dict(encoded))
        assert store.verify().ok
