"""Records on the wire: building, hashing, encoding, decoding and checking the chain.

Everything here is independent of where records are kept, so every backend (the TinyDB
file today, a server database later) hashes and verifies records the same way.

A record is the canonical JSON object (:mod:`audit.canonical`) with the fields
``seq``, ``id``, ``recorded_at``, ``key``, ``tags``, ``payload``, ``prev_hash`` and
``hash``. ``hash`` is SHA-256 (or HMAC-SHA256 with the store's key) in lowercase hex over
the canonical JSON bytes of the record without ``hash``; ``prev_hash`` is the previous
record's ``hash``, or :data:`GENESIS_HASH` for record 1.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from audit.canonical import canonical_bytes, dumps_plain, to_json_value
from audit.protocol import GENESIS_HASH, Checkpoint, Entry, Record, VerifyReport

__all__ = [
    "RECORD_FIELDS",
    "ChainChecker",
    "Decoded",
    "build_record",
    "check_entry",
    "decode_line",
    "encode_line",
    "format_timestamp",
    "parse_timestamp",
    "record_body",
    "record_hash",
    "record_to_dict",
    "verify_lines",
]

RECORD_FIELDS = ("seq", "id", "recorded_at", "key", "tags", "payload", "prev_hash", "hash")
_FIELD_SET = frozenset(RECORD_FIELDS)
_HEX64 = re.compile(r"[0-9a-f]{64}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def format_timestamp(moment: datetime) -> str:
    """``recorded_at`` text: UTC, microseconds, ``Z`` (``2024-05-01T08:00:00.000000Z``)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"the clock must give aware datetimes, got {moment!r}")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> datetime:
    """Parse a ``recorded_at`` text (``Z`` or an explicit offset) into an aware datetime."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"recorded_at {text!r} has no UTC offset")
    return moment


def epoch_micros(moment: datetime) -> int:
    """Microseconds since 1970-01-01 UTC of an aware datetime (an index-friendly integer)."""
    if moment.tzinfo is None:
        raise ValueError(f"expected an aware datetime, got {moment!r}")
    return (moment - _EPOCH) // timedelta(microseconds=1)


def record_hash(body: bytes, hmac_key: bytes | None) -> str:
    """SHA-256 hex of ``body``, or HMAC-SHA256 hex with ``hmac_key`` when one is given."""
    if hmac_key is None:
        return hashlib.sha256(body).hexdigest()
    return hmac.new(hmac_key, body, hashlib.sha256).hexdigest()


def record_body(
    *,
    seq: int,
    id: str,
    recorded_at: str,
    key: str | None,
    tags: Iterable[str],
    payload: Mapping[str, Any],
    prev_hash: str,
    plain: bool = False,
) -> bytes:
    """The canonical JSON bytes that ``hash`` is computed over (the record minus ``hash``).

    ``plain=True`` promises that ``payload`` is already plain JSON data (no Decimal, no
    float, str keys), which skips the conversion; otherwise it is converted and checked.
    """
    fields = {
        "seq": seq,
        "id": id,
        "recorded_at": recorded_at,
        "key": key,
        "tags": list(tags),
        "payload": payload,
        "prev_hash": prev_hash,
    }
    return dumps_plain(fields) if plain else canonical_bytes(fields)


def _line_from_body(body: bytes, digest: str) -> bytes:
    # "hash" sorts before every other field name, so the canonical JSON of the whole record
    # is the body with the hash member put first. No second encoding pass is needed.
    return b'{"hash":"' + digest.encode("ascii") + b'",' + body[1:] + b"\n"


def encode_line(record: Record) -> bytes:
    """The stored form of ``record``: its canonical JSON (``hash`` included) and ``\\n``."""
    body = record_body(
        seq=record.seq,
        id=record.id,
        recorded_at=record.recorded_at,
        key=record.key,
        tags=record.tags,
        payload=record.payload,
        prev_hash=record.prev_hash,
    )
    return _line_from_body(body, record.hash)


def record_to_dict(record: Record) -> dict[str, Any]:
    """``record`` as a plain JSON object (what one JSON Lines line holds)."""
    return {
        "seq": record.seq,
        "id": record.id,
        "recorded_at": record.recorded_at,
        "key": record.key,
        "tags": list(record.tags),
        "payload": record.payload,
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }


def check_entry(entry: Entry) -> tuple[str | None, tuple[str, ...], dict[str, Any]]:
    """Validate an :class:`Entry`; return its key, tags and payload as plain JSON data.

    Raises :class:`TypeError` / :class:`ValueError` naming what is wrong (a float in the
    payload, an empty key, a tag that is not a string, ...).
    """
    if not isinstance(entry, Entry):
        raise TypeError(f"expected an audit.Entry, got {type(entry).__name__}")
    key = entry.key
    if key is not None and (not isinstance(key, str) or not key):
        raise ValueError(f"an idempotency key must be a non-empty string, got {key!r}")
    raw_tags: Any = entry.tags
    if isinstance(raw_tags, str) or not isinstance(raw_tags, Iterable):
        raise TypeError(f"tags must be a sequence of strings, got {raw_tags!r}")
    tags = tuple(raw_tags)
    for tag in tags:
        if not isinstance(tag, str) or not tag:
            raise ValueError(f"every tag must be a non-empty string, got {tag!r}")
    if entry.plain and type(entry.payload) is dict:
        return key, tags, entry.payload  # already plain JSON data (see Entry.plain)
    if not isinstance(entry.payload, Mapping):
        raise TypeError(f"payload must be a mapping, got {type(entry.payload).__name__}")
    payload = to_json_value(entry.payload)
    assert isinstance(payload, dict)
    return key, tags, payload


def build_record(
    entry: Entry,
    *,
    seq: int,
    prev_hash: str,
    recorded_at: datetime,
    hmac_key: bytes | None,
    record_id: str | None = None,
    checked: tuple[str | None, tuple[str, ...], dict[str, Any]] | None = None,
) -> tuple[Record, bytes]:
    """Make record ``seq`` from ``entry`` chained to ``prev_hash``; return it and its line.

    ``checked`` is what :func:`check_entry` already returned for ``entry`` (so a batch
    validated up front is not walked twice).
    """
    key, tags, payload = checked if checked is not None else check_entry(entry)
    rid = record_id if record_id is not None else uuid.uuid4().hex
    stamp = format_timestamp(recorded_at)
    body = record_body(
        seq=seq,
        id=rid,
        recorded_at=stamp,
        key=key,
        tags=tags,
        payload=payload,
        prev_hash=prev_hash,
        plain=True,
    )
    digest = record_hash(body, hmac_key)
    record = Record(
        seq=seq,
        id=rid,
        recorded_at=stamp,
        key=key,
        tags=tags,
        payload=payload,
        prev_hash=prev_hash,
        hash=digest,
    )
    return record, _line_from_body(body, digest)


@attrs.frozen
class Decoded:
    """One decoded line: the record (when the line could be read) and what is wrong with it.

    ``problem`` is None for a good record. ``record`` is None when the line is not a record
    at all (not JSON, missing or mistyped fields).
    """

    record: Record | None
    problem: str | None


def _malformed(why: str) -> Decoded:
    return Decoded(record=None, problem=why)


def decode_line(line: bytes, hmac_key: bytes | None, *, check: bool = True) -> Decoded:
    """Decode one stored line (with or without its ``\\n``) and, with ``check``, verify it.

    The check recomputes ``hash`` and requires the line to be exactly the canonical
    encoding of the record it holds (so two readers can never see different content,
    e.g. through a duplicated JSON member).
    """
    text = line[:-1] if line.endswith(b"\n") else line
    try:
        obj = _DECODER.decode(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return _malformed(f"not valid JSON ({exc})")
    if not isinstance(obj, dict):
        return _malformed("not a JSON object")
    if set(obj) != _FIELD_SET:
        missing = sorted(_FIELD_SET - set(obj))
        extra = sorted(set(obj) - _FIELD_SET)
        return _malformed(f"wrong fields (missing {missing}, unexpected {extra})")
    seq, rid, stamp, key = obj["seq"], obj["id"], obj["recorded_at"], obj["key"]
    tags, payload, prev, digest = obj["tags"], obj["payload"], obj["prev_hash"], obj["hash"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        return _malformed(f"seq is not a positive integer ({seq!r})")
    if not (isinstance(rid, str) and isinstance(stamp, str)):
        return _malformed("id and recorded_at must be strings")
    if key is not None and not isinstance(key, str):
        return _malformed(f"key is not a string ({key!r})")
    if not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        return _malformed("tags is not a list of strings")
    if not isinstance(payload, dict):
        return _malformed("payload is not an object")
    if not (isinstance(prev, str) and isinstance(digest, str)):
        return _malformed("prev_hash and hash must be strings")
    record = Record(
        seq=seq,
        id=rid,
        recorded_at=stamp,
        key=key,
        tags=tuple(tags),
        payload=payload,
        prev_hash=prev,
        hash=digest,
    )
    if not check:
        return Decoded(record=record, problem=None)
    return Decoded(record=record, problem=check_record(record, text, hmac_key, plain=True))


def _no_float(text: str) -> Any:
    raise ValueError(f"a float ({text}) has no canonical form")


_DECODER = json.JSONDecoder(parse_float=_no_float, parse_constant=_no_float)


def check_record(
    record: Record, stored: bytes | None, hmac_key: bytes | None, *, plain: bool = False
) -> str | None:
    """What is wrong with one record on its own (hash, form, timestamp), or None.

    ``stored``, when given, are the bytes the record was read from (without the newline):
    they must be exactly its canonical encoding. ``plain`` as in :func:`record_body`.
    """
    if not (_HEX64.fullmatch(record.prev_hash) and _HEX64.fullmatch(record.hash)):
        return f"record {record.seq}: prev_hash and hash must be 64 lowercase hex digits"
    try:
        body = record_body(
            seq=record.seq,
            id=record.id,
            recorded_at=record.recorded_at,
            key=record.key,
            tags=record.tags,
            payload=record.payload,
            prev_hash=record.prev_hash,
            plain=plain,
        )
    except (TypeError, ValueError) as exc:
        return f"record {record.seq} has no canonical form ({exc})"
    if not hmac.compare_digest(record_hash(body, hmac_key), record.hash):
        return (
            f"record {record.seq} hash mismatch: its content was edited "
            "(or it was hashed with a different hmac_key)"
        )
    if stored is not None and _line_from_body(body, record.hash)[:-1] != stored.rstrip(b"\n"):
        return f"record {record.seq} is not stored in canonical form: the line was edited"
    try:
        parse_timestamp(record.recorded_at)
    except ValueError:
        return f"record {record.seq} has an unreadable recorded_at ({record.recorded_at!r})"
    return None


class ChainChecker:
    """Check a stream of stored lines, in file order, against the hash chain.

    Feed it every line with :meth:`feed` (False once a problem was found) and read the
    result with :meth:`report`. ``checkpoint`` (a head taken earlier and kept elsewhere)
    additionally catches a store that was cut back or re-hashed since.
    """

    def __init__(self, hmac_key: bytes | None, checkpoint: Checkpoint | None = None) -> None:
        self._key = hmac_key
        self._checkpoint = checkpoint
        self._head = Checkpoint(0, GENESIS_HASH)
        self._count = 0
        self._bad_seq: int | None = None
        self._problem: str | None = None
        if checkpoint is not None and checkpoint.seq == 0 and checkpoint.hash != GENESIS_HASH:
            self._fail(0, "the checkpoint is invalid: seq 0 must carry the genesis hash")

    @property
    def failed(self) -> bool:
        return self._problem is not None

    def _fail(self, seq: int, problem: str) -> bool:
        self._bad_seq, self._problem = seq, problem
        return False

    def feed(self, line: bytes, next_line: bytes | None = None) -> bool:
        """Check the next line. ``next_line`` (if known) tells a deletion from a reordering."""
        if self._problem is not None:
            return False
        return self._feed(decode_line(line, self._key), next_line)

    def feed_record(self, record: Record) -> bool:
        """Check the next record of a backend that keeps fields rather than lines
        (PostgreSQL): the checks of :meth:`feed`, without encoding and decoding a line.
        ``record.payload`` must be what :func:`json.loads` gives (plain JSON data)."""
        if self._problem is not None:
            return False
        return self._feed(Decoded(record, check_record(record, None, self._key, plain=True)), None)

    def _feed(self, decoded: Decoded, next_line: bytes | None) -> bool:
        expected = self._head.seq + 1
        record = decoded.record
        if record is None:
            return self._fail(expected, f"record {expected} is unreadable: {decoded.problem}")
        if record.seq > expected:
            upcoming = _peek_seq(next_line)
            if upcoming is not None and upcoming <= expected:
                why = f"records were reordered (record {record.seq} comes before {upcoming})"
            else:
                why = (
                    f"record {expected} is missing (deleted)"
                    if record.seq == expected + 1
                    else f"records {expected}..{record.seq - 1} are missing (deleted)"
                )
            return self._fail(expected, f"seq gap: expected {expected}, found {record.seq}: {why}")
        if record.seq < expected:
            if record.seq == self._head.seq and record.hash == self._head.hash:
                return self._fail(record.seq, f"record {record.seq} appears twice (duplicated)")
            return self._fail(
                expected,
                f"seq repeat: expected {expected}, found {record.seq} again: "
                "a record was duplicated, inserted or moved",
            )
        if decoded.problem is not None:
            return self._fail(record.seq, decoded.problem)
        if record.prev_hash != self._head.hash:
            return self._fail(
                record.seq,
                f"record {record.seq} prev_hash does not match record {self._head.seq}'s hash: "
                "a record before it was replaced or inserted, or the chain was forked",
            )
        cp = self._checkpoint
        if cp is not None and cp.seq == record.seq and cp.hash != record.hash:
            return self._fail(
                record.seq,
                f"record {record.seq} was rewritten since the checkpoint "
                f"(hash {record.hash[:16]}…, checkpoint {cp.hash[:16]}…)",
            )
        self._head = Checkpoint(record.seq, record.hash)
        self._count += 1
        return True

    def report(self) -> VerifyReport:
        """The verdict so far (call it after the last line)."""
        cp = self._checkpoint
        if self._problem is None and cp is not None and cp.seq > self._head.seq:
            self._fail(
                self._head.seq + 1,
                f"the store ends at record {self._head.seq} but the checkpoint names record "
                f"{cp.seq}: records were cut off (truncated) since the checkpoint",
            )
        return VerifyReport(
            ok=self._problem is None,
            count=self._count,
            head=self._head,
            bad_seq=self._bad_seq,
            problem=self._problem,
        )


def _peek_seq(line: bytes | None) -> int | None:
    if line is None:
        return None
    try:
        seq = json.loads(line).get("seq")
    except (ValueError, AttributeError):
        return None
    return seq if isinstance(seq, int) else None


def verify_lines(
    lines: Iterable[bytes], hmac_key: bytes | None, checkpoint: Checkpoint | None = None
) -> VerifyReport:
    """Check a whole stream of stored lines (see :class:`ChainChecker`)."""
    checker = ChainChecker(hmac_key, checkpoint)
    it: Iterator[bytes] = iter(lines)
    current = next(it, None)
    while current is not None:
        following = next(it, None)
        if not checker.feed(current, following):
            break
        current = following
    return checker.report()
