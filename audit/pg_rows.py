"""How the PostgreSQL audit store's rows look, and how it connects: what both
the store (:mod:`audit.postgres`) and its schema (:mod:`audit.pg_schema`) need.

The record table's columns as a :class:`~audit.protocol.Record` reads them
(:func:`_record`) and writes them (:func:`_row`); the rows of the Merkle tree table
(:func:`_tree_copy_rows`); the libpq connection string with our defaults and an error's
first line. Nothing here talks to a database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb

from audit.canonical import dumps_plain
from audit.errors import AuditError, TamperedError
from audit.merkle import node_at
from audit.protocol import Record
from audit.records import checked_leaf, record_carries
from audit.stamps import epoch_micros, parse_timestamp

_APPLICATION_NAME = "pricecalc-audit"
_FETCH = 2000  # rows per round trip when streaming

_COLUMNS = "seq, id, recorded_at, key, tags, payload, prev_hash, hash"


def _conninfo(url: str, **extra: Any) -> str:
    """``url`` with our defaults (application name, connect timeout) where it names none."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise AuditError(f"not a PostgreSQL URL or connection string: {exc}") from exc
    params.setdefault("application_name", _APPLICATION_NAME)
    params.setdefault("connect_timeout", 10)
    params.update(extra)
    return make_conninfo("", **params)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _record(row: Sequence[Any]) -> Record:
    seq, rid, recorded_at, key, tags, payload, prev_hash, digest = row[:8]
    return Record(
        seq=seq,
        id=rid,
        recorded_at=recorded_at,
        key=key,
        tags=tuple(tags),
        payload=payload,
        prev_hash=prev_hash,
        hash=digest,
    )


def _checked(
    row: Sequence[Any],
    hmac_key: bytes | None,
    *,
    key: str | None = None,
    tag: str | None = None,
    seq: int | None = None,
) -> tuple[Record, bytes]:
    """The record of a row read for a decision, and its leaf data, once it checks out
    (SPEC §7, "what the store may trust"): its hash recomputed from its canonical body
    (the HMAC in a keyed store), and the ``key`` / ``tag`` / ``seq`` it was looked up by
    really its own. Anything else raises :class:`TamperedError` naming the row's seq —
    a row the application role inserted itself, past the store's code, is not believed."""
    record = _record(row)
    problem, leaf = checked_leaf(record, None, hmac_key, plain=True)
    if problem is None and not record_carries(record, key=key, tag=tag):
        what = f"key {key!r}" if key is not None else f"tag {tag!r}"
        problem = f"record {record.seq} was found by {what} but does not carry it"
    if problem is None and seq is not None and record.seq != seq:
        problem = f"record {record.seq} was found as record {seq}"
    if problem is not None or leaf is None:
        raise TamperedError(
            record.seq,
            f"{problem}; a row this store did not write (forged or edited past its "
            "code): no decision relies on it — run `pricecalc audit verify`",
        )
    return record, leaf


def _row(record: Record, recorded_us: int | None = None) -> tuple[Any, ...]:
    """The columns of ``record``: its fields plus ``recorded_us`` (the time index; from
    ``recorded_at`` unless given)."""
    return (
        record.seq,
        record.id,
        record.recorded_at,
        epoch_micros(parse_timestamp(record.recorded_at)) if recorded_us is None else recorded_us,
        record.key,
        list(record.tags),
        Jsonb(record.payload),
        record.prev_hash,
        record.hash,
    )


def _tree_copy_rows(nodes: Iterable[tuple[int, bytes]]) -> Iterator[tuple[int, int, int, bytes]]:
    """Rows of the tree table for stored nodes ``(position, hash)``."""
    for position, value in nodes:
        level, index = node_at(position)
        yield position, level, index, value



Escape = Callable[[bytes], bytes]


def _literal(escape: Escape, value: Any) -> bytes:
    """``value`` as an SQL literal, for a statement sent as a simple query: text through
    ``escape`` (libpq's ``PQescapeLiteral`` on the store's connection, which knows its
    encoding and string settings), integers written out, a list as a ``text[]``, bytes
    decoded from hex and a :class:`Jsonb` as its JSON text. Nothing else is expected here.
    """
    if value is None:
        return b"NULL"
    if isinstance(value, str):
        return escape(value.encode("utf-8"))
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value).encode("ascii")
    if isinstance(value, list):
        return _text_array(escape, value)
    if isinstance(value, bytes):
        return b"decode('" + value.hex().encode("ascii") + b"', 'hex')"
    if isinstance(value, Jsonb):
        return escape(dumps_plain(value.obj)) + b"::jsonb"
    raise TypeError(f"no SQL literal for {type(value).__name__}")


def _text_array(escape: Escape, texts: Sequence[str]) -> bytes:
    if not texts:
        return b"'{}'::text[]"
    return b"ARRAY[" + b",".join(escape(text.encode("utf-8")) for text in texts) + b"]::text[]"


def _record_values(escape: Escape, rows: Iterable[Sequence[Any]]) -> bytes:
    """Record rows as made by :func:`_row`, as the ``(…), (…)`` of a multi-row ``VALUES``:
    what :func:`_literal` writes for each value, without asking each value its type (this
    runs under the chain lock)."""
    return b",".join(
        b"(%d,%s,%s,%d,%s,%s,%s::jsonb,%s,%s)"
        % (
            seq,
            escape(rid.encode("utf-8")),
            escape(recorded_at.encode("utf-8")),
            recorded_us,
            b"NULL" if key is None else escape(key.encode("utf-8")),
            _text_array(escape, tags),
            escape(dumps_plain(payload.obj)),
            escape(prev_hash.encode("utf-8")),
            escape(digest.encode("utf-8")),
        )
        for seq, rid, recorded_at, recorded_us, key, tags, payload, prev_hash, digest in rows
    )


def _node_values(rows: Iterable[tuple[int, int, int, bytes]]) -> bytes:
    """Tree rows as made by :func:`_tree_copy_rows`, as the ``(…), (…)`` of a ``VALUES``."""
    return b",".join(
        b"(%d,%d,%d,decode('%s', 'hex'))" % (position, level, index, value.hex().encode("ascii"))
        for position, level, index, value in rows
    )
