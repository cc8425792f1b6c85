"""Records on the wire: building, hashing, sealing, encoding, decoding and checking one
record. Checking a whole log — the chain and its tree — is :mod:`audit.verifying`.

Everything here is independent of where records are kept, so every backend (the TinyDB
file, PostgreSQL) hashes and verifies records the same way.

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
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

import attrs

from audit.canonical import canonical_bytes, dumps_plain, to_json_value

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - a dependency (see audit.canonical)
    _orjson = None  # type: ignore[assignment]
from audit.protocol import Entry, Record
from audit.stamps import RecordIds, Stamper, epoch_micros, format_timestamp, parse_timestamp

__all__ = [
    "RECORD_FIELDS",
    "Decoded",
    "RecordIds",
    "Sealed",
    "Sealer",
    "Stamper",
    "build_record",
    "check_entry",
    "checked_leaf",
    "decode_line",
    "encode_line",
    "epoch_micros",
    "format_timestamp",
    "parse_timestamp",
    "record_body",
    "record_carries",
    "record_hash",
    "record_leaf_data",
    "record_to_dict",
    "refuse_nul",
    "seal_record",
]

RECORD_FIELDS = ("seq", "id", "recorded_at", "key", "tags", "payload", "prev_hash", "hash")
_FIELD_SET = frozenset(RECORD_FIELDS)
_HEX64 = re.compile(r"[0-9a-f]{64}")
def record_hash(body: bytes, hmac_key: bytes | None) -> str:
    """SHA-256 hex of ``body``, or HMAC-SHA256 hex with ``hmac_key`` when one is given."""
    if hmac_key is None:
        return hashlib.sha256(body).hexdigest()
    return hmac.digest(hmac_key, body, "sha256").hex()


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


def body_of(record: Record, *, plain: bool = False) -> bytes:
    """:func:`record_body` of a stored record's own fields (everything but ``hash``)."""
    return record_body(
        seq=record.seq,
        id=record.id,
        recorded_at=record.recorded_at,
        key=record.key,
        tags=record.tags,
        payload=record.payload,
        prev_hash=record.prev_hash,
        plain=plain,
    )


def _line_from_body(body: bytes, digest: str) -> bytes:
    # "hash" sorts before every other field name, so the canonical JSON of the whole record
    # is the body with the hash member put first. No second encoding pass is needed.
    return b'{"hash":"' + digest.encode("ascii") + b'",' + body[1:] + b"\n"


def encode_line(record: Record) -> bytes:
    """The stored form of ``record``: its canonical JSON (``hash`` included) and ``\\n``."""
    return _line_from_body(body_of(record), record.hash)


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


def _check_text(text: str, what: str) -> None:
    """Keys and tags are looked up before a record is built: refuse what no store can keep
    (U+0000, lone surrogates) here, with the messages the payload check gives."""
    if "\x00" in text:
        raise ValueError(
            f"the audit store cannot store the character U+0000 (NUL) in text; remove it "
            f"from {what}"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"text must be valid Unicode: {what} holds the lone surrogate "
            f"U+{ord(text[exc.start]):04X}, which UTF-8 cannot encode"
        ) from None


def record_leaf_data(record: Record) -> bytes:
    """SHA-256 of ``record``'s canonical body (its leaf data, SPEC §9), unchecked; the
    payload must be plain JSON data."""
    return hashlib.sha256(body_of(record, plain=True)).digest()


def normal_text(text: str) -> str:
    """The generic form keys and tags are compared in: Unicode NFKC, surrounding
    whitespace removed (so a record written before normalisation is still found). The
    store knows nothing of the rules' own identifier form (SPEC §1); this is the part of
    it any text shares."""
    return unicodedata.normalize("NFKC", text).strip()


def record_carries(record: Record, *, key: str | None = None, tag: str | None = None) -> bool:
    """Whether ``record`` really carries the idempotency ``key`` / the ``tag`` it was
    found by (SPEC §7: a store checks what a lookup hands back, not only its hash).

    Both sides are compared in :func:`normal_text`, so a record written before its keys
    and tags were normalised is still recognised as the one asked for.
    """
    if key is not None and (record.key is None or normal_text(record.key) != normal_text(key)):
        return False
    if tag is not None:
        wanted = normal_text(tag)
        if not any(normal_text(have) == wanted for have in record.tags):
            return False
    return True


#: What :func:`check_entry` returns: an entry's key, tags and payload as plain JSON data.
Checked = tuple[str | None, tuple[str, ...], dict[str, Any]]


class CanonicalPayload(dict[str, Any]):
    """A plain payload (see :attr:`audit.protocol.Entry.plain`) that carries its canonical
    JSON bytes, made where the payload was built — a worker process, say — so the writer
    seals those bytes as they are instead of encoding the payload again under its lock.

    :meth:`encode` makes one from plain JSON data (its bytes are what sealing would write);
    :meth:`decode` makes the dict back from such bytes (the writer's side: decoding is
    cheaper than encoding, and a record keeps its payload as data). Like ``plain=True``,
    the bytes are a promise that is not re-checked on append: ``verify`` re-encodes every
    record and names a line not in canonical form.
    """

    __slots__ = ("canonical",)

    def __init__(self, payload: Mapping[str, Any], canonical: bytes) -> None:
        super().__init__(payload)
        self.canonical = canonical

    @classmethod
    def encode(cls, payload: Mapping[str, Any], *, plain: bool = False) -> CanonicalPayload | None:
        """``payload`` converted as every payload is (:func:`to_json_value`: Decimal to text,
        tuples to lists, floats refused) with its canonical bytes — or, with ``plain=True``,
        taken as it is on the caller's promise that it is plain JSON data (as
        :attr:`Entry.plain`). None when it needs the store's general path (a float, a key
        that is not text, text that is not valid Unicode, an integer beyond 64 bits):
        append it as an ordinary :class:`Entry`, which converts it or says what is wrong."""
        if _orjson is None:  # pragma: no cover - orjson is a dependency
            return None
        try:
            data = payload if plain else to_json_value(payload)
            if not isinstance(data, dict):
                return None
            return cls(data, _orjson.dumps(data, option=_orjson.OPT_SORT_KEYS))
        except (TypeError, ValueError):
            return None

    @classmethod
    def decode(cls, canonical: bytes) -> CanonicalPayload:
        """The payload :meth:`encode` gave ``canonical`` for, with those bytes."""
        assert _orjson is not None
        return cls(_orjson.loads(canonical), canonical)


def check_entry(entry: Entry) -> Checked:
    """Validate an :class:`Entry`; return its key, tags and payload as plain JSON data.

    Raises :class:`TypeError` / :class:`ValueError` naming what is wrong (a float in the
    payload, an empty key, a tag that is not a string, ...).
    """
    if not isinstance(entry, Entry):
        raise TypeError(f"expected an audit.Entry, got {type(entry).__name__}")
    key = entry.key
    if key is not None and (not isinstance(key, str) or not key):
        raise ValueError(f"an idempotency key must be a non-empty string, got {key!r}")
    if key is not None:
        _check_text(key, "the idempotency key")
    raw_tags: Any = entry.tags
    if isinstance(raw_tags, str) or not isinstance(raw_tags, Iterable):
        raise TypeError(f"tags must be a sequence of strings, got {raw_tags!r}")
    tags = tuple(raw_tags)
    for tag in tags:
        if not isinstance(tag, str) or not tag:
            raise ValueError(f"every tag must be a non-empty string, got {tag!r}")
        _check_text(tag, "a tag")
    if entry.plain and (type(entry.payload) is dict or type(entry.payload) is CanonicalPayload):
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
    checked: Checked | None = None,
) -> tuple[Record, bytes]:
    """Make record ``seq`` from ``entry`` chained to ``prev_hash``; return it and its line.

    ``checked`` is what :func:`check_entry` already returned for ``entry`` (so a batch
    validated up front is not walked twice).
    """
    stamp, micros = Stamper().stamp(recorded_at)
    if record_id is not None and not _SAFE_TEXT.fullmatch(record_id):
        raise ValueError(f"a record id is letters, digits and ':.+-' only, got {record_id!r}")
    sealed = seal_record(
        checked if checked is not None else check_entry(entry),
        seq=seq,
        prev_hash=prev_hash,
        stamp=stamp,
        hmac_key=hmac_key,
        record_id=record_id if record_id is not None else RecordIds().next(),
        recorded_us=micros,
    )
    return sealed.record, sealed.line


class Sealed(NamedTuple):
    """A new record, its stored line, its leaf data (SHA-256 of the body, SPEC §9) and its
    time in microseconds since the epoch (the index's time column)."""

    record: Record
    line: bytes
    leaf: bytes
    recorded_us: int


# U+0000 in any string of a record, as canonical JSON writes it: ``\u0000`` after an even
# number of backslashes (``\\`` is an escaped backslash, not the start of an escape).
_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def refuse_nul(body: bytes) -> None:
    """Refuse U+0000 in any text of a record (PostgreSQL cannot store it; neither store
    keeps what the other could not)."""
    if b"\\u0000" in body and _NUL.search(body):
        raise ValueError(
            "the audit store cannot store the character U+0000 (NUL) in text; remove it "
            "from the payload, key or tags"
        )


_sha256 = hashlib.sha256
_hmac_digest = hmac.digest
_SAFE_TEXT = re.compile(r"[0-9A-Za-z:.+-]*")  # needs no JSON escape
_BODY = b'{"id":"%s","key":%s,"payload":%s,"prev_hash":"%s","recorded_at":"%s","seq":%d,"tags":%s}'


def _body(
    seq: int,
    record_id: str,
    stamp: str,
    key: str | None,
    tags: tuple[str, ...],
    payload: Mapping[str, Any],
    prev_hash: str,
) -> bytes:
    """:func:`record_body` (``plain=True``) for a record being sealed.

    The record's members in sorted order, the id, time and prev_hash written as they are
    (:func:`seal_record`'s callers make them of letters, digits and ``:.+-``, which JSON
    never escapes), the rest by orjson: the same bytes as the canonical encoding of the whole record
    (tests/audit compare them), without building and sorting an outer object. Anything
    else goes the general way.
    """
    if _orjson is not None:
        dumps = _orjson.dumps
        try:
            return _BODY % (
                record_id.encode("ascii"),
                dumps(key),
                payload.canonical
                if type(payload) is CanonicalPayload
                else dumps(payload, option=_orjson.OPT_SORT_KEYS),
                prev_hash.encode("ascii"),
                stamp.encode("ascii"),
                seq,
                dumps(tags),
            )
        except (TypeError, UnicodeEncodeError):
            pass  # the general way encodes it or says what is wrong
    return record_body(
        seq=seq,
        id=record_id,
        recorded_at=stamp,
        key=key,
        tags=tags,
        payload=payload,
        prev_hash=prev_hash,
        plain=True,
    )


def seal_record(
    checked: Checked,
    *,
    seq: int,
    prev_hash: str,
    stamp: str,
    hmac_key: bytes | None,
    record_id: str,
    recorded_us: int,
) -> Sealed:
    """Encode, check and hash record ``seq`` (checked entry data, ``recorded_at`` text and
    its microseconds). ``record_id`` and ``stamp`` are written as they are: letters,
    digits and ``:.+-`` only (what :class:`RecordIds` and :class:`Stamper` make).

    Raises :class:`ValueError` for text that is not valid Unicode or holds U+0000, before
    anything is written anywhere.
    """
    key, tags, payload = checked
    body = _body(seq, record_id, stamp, key, tags, payload, prev_hash)
    if b"\\" in body:  # a backslash (rare): maybe an escaped U+0000
        refuse_nul(body)
    leaf = _sha256(body).digest()
    digest = leaf.hex() if hmac_key is None else _hmac_digest(hmac_key, body, "sha256").hex()
    record = Record(seq, record_id, stamp, key, tags, payload, prev_hash, digest)
    line = b'{"hash":"' + digest.encode("ascii") + b'",' + body[1:] + b"\n"
    return Sealed(record, line, leaf, recorded_us)


class Sealer:
    """Chains new records for one store handle: each sealed (encoded, checked, hashed) in
    turn onto the head given, stamped by a clock, with a fresh random id."""

    __slots__ = ("_ids", "_key", "_stamper")

    def __init__(self, hmac_key: bytes | None) -> None:
        self._key = hmac_key
        self._stamper = Stamper()
        self._ids = RecordIds()

    def seal(
        self, checked: Iterable[Checked], seq: int, prev_hash: str, clock: Callable[[], datetime]
    ) -> list[Sealed]:
        """Records ``seq + 1``, ``seq + 2``, … chained onto ``prev_hash``."""
        out: list[Sealed] = []
        stamp, new_id, key = self._stamper.stamp, self._ids.next, self._key
        for valid in checked:
            seq += 1
            text, micros = stamp(clock())
            sealed = seal_record(
                valid,
                seq=seq,
                prev_hash=prev_hash,
                stamp=text,
                hmac_key=key,
                record_id=new_id(),
                recorded_us=micros,
            )
            out.append(sealed)
            prev_hash = sealed.record.hash
        return out


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
    return checked_leaf(record, stored, hmac_key, plain=plain)[0]


def checked_leaf(
    record: Record, stored: bytes | None, hmac_key: bytes | None, *, plain: bool = False
) -> tuple[str | None, bytes | None]:
    """:func:`check_record`'s verdict and the record's leaf data (SHA-256 of its canonical
    body, SPEC §9) when it has a canonical form."""
    if not (_HEX64.fullmatch(record.prev_hash) and _HEX64.fullmatch(record.hash)):
        return f"record {record.seq}: prev_hash and hash must be 64 lowercase hex digits", None
    try:
        body = body_of(record, plain=plain)
    except (TypeError, ValueError) as exc:
        return f"record {record.seq} has no canonical form ({exc})", None
    leaf = hashlib.sha256(body).digest()
    mac = leaf.hex() if hmac_key is None else record_hash(body, hmac_key)
    if not hmac.compare_digest(mac, record.hash):
        return (
            f"record {record.seq} hash mismatch: its content was edited "
            "(or it was hashed with a different hmac_key)"
        ), leaf
    if stored is not None and _line_from_body(body, record.hash)[:-1] != stored.rstrip(b"\n"):
        return f"record {record.seq} is not stored in canonical form: the line was edited", leaf
    try:
        parse_timestamp(record.recorded_at)
    except ValueError:
        return (
            f"record {record.seq} has an unreadable recorded_at ({record.recorded_at!r})"
        ), leaf
    return None, leaf
