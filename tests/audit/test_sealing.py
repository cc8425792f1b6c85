"""Sealing new records fast without changing a byte (docs/audit.md, "The record format"):
the cached timestamp text, the pooled record ids and the record body written member by
member give exactly what the reference forms give."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from audit.canonical import canonical_bytes
from audit.protocol import Entry
from audit.records import (
    RecordIds,
    Sealer,
    Stamper,
    check_entry,
    epoch_micros,
    format_timestamp,
    seal_record,
)

zones = st.sampled_from(
    [
        UTC,
        timezone(timedelta(hours=8)),
        timezone(timedelta(hours=-5, minutes=-30)),
        timezone(timedelta(seconds=1, microseconds=7)),
    ]
)
moments = st.builds(
    lambda micros, zone: (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros))
    .astimezone(zone),
    st.integers(min_value=-(10**15), max_value=10**17),
    zones,
)


@given(st.lists(moments, min_size=1, max_size=6), st.integers(0, 2_000_000))
def test_the_stamper_writes_what_format_timestamp_writes(
    readings: list[datetime], step: int
) -> None:
    """recorded_at text and the index's microseconds, for readings within and across
    seconds, in any zone (the text is always UTC)."""
    stamper = Stamper()
    for moment in readings + [r + timedelta(microseconds=step) for r in readings]:
        assert stamper.stamp(moment) == (format_timestamp(moment), epoch_micros(moment))


def test_the_stamper_refuses_naive_readings() -> None:
    with pytest.raises(ValueError, match="the clock must give aware datetimes"):
        Stamper().stamp(datetime(2026, 11, 11, 8, 0))


def test_record_ids_are_random_uuid4s_in_hex() -> None:
    """The id field is what uuid.uuid4().hex gives: 32 lowercase hex digits, version 4,
    the RFC variant; never twice."""
    ids = RecordIds()
    seen = [ids.next() for _ in range(1000)]
    assert len(set(seen)) == 1000
    for rid in seen:
        parsed = uuid.UUID(rid)
        assert (parsed.hex, parsed.version, parsed.variant) == (rid, 4, uuid.RFC_4122)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=15,
)
texts = st.text(min_size=1)


@settings(max_examples=300)
@given(
    st.dictionaries(st.text(), json_values, max_size=5),
    st.none() | texts,
    st.lists(texts, max_size=3),
    st.integers(1, 2**40),
)
def test_a_sealed_record_is_its_canonical_encoding(
    payload: dict[str, Any], key: str | None, tags: list[str], seq: int
) -> None:
    """The stored line is the canonical JSON of the whole record and the hash is SHA-256
    of it without ``hash``, however the payload, key and tags look (escapes, non-ASCII,
    big integers)."""
    try:
        checked = check_entry(Entry(payload, key=key, tags=tuple(tags)))
    except ValueError:
        return  # text no store keeps (a lone surrogate): refused before sealing
    try:
        sealed = seal_record(
            checked,
            seq=seq,
            prev_hash="ab" * 32,
            stamp="2026-11-11T08:00:00.000001Z",
            hmac_key=None,
            record_id="0527a795bad04576968fb5a167872439",
            recorded_us=0,
        )
    except ValueError as exc:
        assert "U+0000" in str(exc) or "surrogate" in str(exc)
        return
    body = {
        "seq": seq,
        "id": "0527a795bad04576968fb5a167872439",
        "recorded_at": "2026-11-11T08:00:00.000001Z",
        "key": key,
        "tags": tags,
        "payload": payload,
        "prev_hash": "ab" * 32,
    }
    expected = canonical_bytes(body)
    digest = hashlib.sha256(expected).hexdigest()
    assert sealed.record.hash == digest and sealed.leaf == bytes.fromhex(digest)
    assert sealed.line == canonical_bytes({**body, "hash": digest}) + b"\n"


def test_a_sealer_chains_what_it_seals() -> None:
    clock = iter(datetime(2026, 11, 11, 8, 0, s, tzinfo=UTC) for s in range(3))
    checked = [check_entry(Entry({"n": n}, key=f"k{n}")) for n in range(3)]
    sealed = Sealer(None).seal(checked, 4, "0" * 64, lambda: next(clock))
    assert [s.record.seq for s in sealed] == [5, 6, 7]
    assert [s.record.prev_hash for s in sealed[1:]] == [s.record.hash for s in sealed[:-1]]
    assert sealed[2].record.recorded_at == "2026-11-11T08:00:02.000000Z"
    assert sealed[2].recorded_us == epoch_micros(datetime(2026, 11, 11, 8, 0, 2, tzinfo=UTC))
