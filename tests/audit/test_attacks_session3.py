"""Session 3 attacks on the trust-sensitive changes of issue 22 (the index that lags, the
held commits, the byte pre-filter of lookups past the index; PostgreSQL statements sent
with their values as literals)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from postgres_support import PgStore

import audit
from audit.postgres import PostgresAuditStore

NASTY = [
    "it's", "a\\b", "$$x$$", "E'\\x41'", "'; DROP TABLE records; --", "\\'", "é ü 中文",
    "\U0001f600", "a\u2028b", "\x7f", "x" * 20000, "\\\\'\\", "'$1'", "\u00a0k\u00a0",
]


@pytest.mark.postgres
def test_postgres_stores_and_finds_hostile_text_exactly(
    pg_store: Callable[..., PgStore],
) -> None:
    """Keys, tags and payload text with quotes, backslashes, dollar quotes, E'' forms,
    non-ASCII and very long text go into the rows as hashed: each key found, each tag
    found, verify passes, and a second append of a key is refused as a duplicate."""
    pg = pg_store()
    store = PostgresAuditStore(pg.app_url)
    try:
        written = []
        for i, text in enumerate(NASTY):
            written.append(store.append(audit.Entry(
                key=f"{text}|{i}", tags=(f"t:{text}",), payload={"v": text, text[:50]: i},
            )))
        for i, (text, record) in enumerate(zip(NASTY, written, strict=True)):
            assert store.get(f"{text}|{i}") == record
            assert record in store.find(f"t:{text}")
            assert store.record(record.seq) == record
        with store.transaction() as tx:
            tx.prefetch([f"{t}|{i}" for i, t in enumerate(NASTY)])
            assert [tx.get(f"{t}|{i}") for i, t in enumerate(NASTY)] == written
        assert store.verify().ok
    finally:
        store.close()
    reopened = PostgresAuditStore(pg.app_url)
    try:
        assert reopened.get(f"{NASTY[0]}|0") == written[0]
        assert reopened.verify().ok
    finally:
        reopened.close()


NUL_KEY = "the audit store cannot store the character U+0000 (NUL) in text; remove it from "


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("read", "what"),
    [
        (lambda tx: tx.get("a\x00b"), "the idempotency key"),
        (lambda tx: tx.prefetch(["z", "a\x00b"]), "the idempotency key"),
        (lambda tx: tx.find("t\x00b"), "a tag"),
    ],
    ids=["get", "prefetch", "find"],
)
def test_postgres_a_transaction_lookup_with_a_nul_is_refused_not_cut_short(
    pg_store: Callable[..., PgStore], read: Callable[[Any], object], what: str
) -> None:
    """Hole (session 3): a transaction's reads send their text through libpq's
    ``PQescapeLiteral``, which stops at a NUL byte — ``tx.get("a\\x00b")`` asked for
    ``'a'``, found record ``a`` and called the genuine store tampered ("a row this store
    did not write"). A NUL is refused with the message an append gives, the store usable."""
    pg = pg_store()
    store = PostgresAuditStore(pg.app_url)
    try:
        record = store.append(audit.Entry(key="a", tags=("t",), payload={}))
        with store.transaction() as tx:
            with pytest.raises(ValueError) as caught:
                read(tx)
            assert str(caught.value) == NUL_KEY + what
            assert tx.get("a") == record and tx.find("t") == [record]
        assert store.verify().ok
    finally:
        store.close()
