"""Attacks on what the store trusts since issue 22 (the index that lags, the
held commits, the byte pre-filter of lookups past the index; PostgreSQL statements sent
with their values as literals)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from postgres_support import PgStore

import audit
import audit.tinydb_index
from audit.postgres import PostgresAuditStore
from audit.protocol import AuditStore

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
    """Hole: a transaction's reads send their text through libpq's
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


# -- one transaction: keys and tags compared in their lookup form ---------------------------
RESPELLED = [("ABC", "ＡＢＣ"), ("k1", " k1 "), ("ﬁx", "fix")]


@pytest.mark.parametrize(("first", "again"), RESPELLED, ids=["fullwidth", "spaces", "ligature"])
def test_a_key_respelled_within_one_transaction_is_a_duplicate(
    store: AuditStore, first: str, again: str
) -> None:
    """Hole: the file store's keys are unique in their lookup form (NFKC, ends
    stripped: a second transaction appending ``ＡＢＣ`` after ``ABC`` is refused), but
    within one transaction — or one ``append_many`` — pending keys were compared as
    spelled, so the same key was recorded twice. Now, on every backend, ``tx.get`` of the
    respelling answers the pending record and a second append of it is refused."""
    with pytest.raises(audit.DuplicateKey) as many:
        store.append_many([audit.Entry(key=first, payload={}), audit.Entry(key=again, payload={})])
    assert str(many.value) == (
        f"idempotency key {again!r} is pending in this transaction (or batch); keys are "
        "unique in a store"
    )
    with store.transaction() as tx:
        tx.prefetch([first, again])
        record = tx.append(audit.Entry(key=first, payload={"n": 1}))
        assert tx.get(again) == record
        with pytest.raises(audit.DuplicateKey) as caught:
            tx.append(audit.Entry(key=again, payload={"n": 2}))
        assert str(caught.value) == (
            f"idempotency key {again!r} is pending in this transaction (or batch) as record "
            f"{record.seq}; keys are unique in a store"
        )
    assert store.head().seq == 1 and store.get(first) == record
    assert store.verify().ok


def test_a_tag_respelled_within_one_transaction_finds_its_pending_records(
    store: AuditStore,
) -> None:
    """Hole: ``tx.find`` compared the transaction's own records' tags as
    spelled, while the file store finds committed records in lookup form — a claim on
    order line ``order:Ｏ1`` pending in the transaction was not seen by
    ``find("order:O1")`` before it committed (and was after)."""
    committed = store.append(audit.Entry(key="c", tags=("order:O1",), payload={}))
    with store.transaction() as tx:
        pending = tx.append(audit.Entry(key="p", tags=("order:Ｏ1", " order:O1"), payload={}))
        assert tx.find("order:O1") == [committed, pending]
    if isinstance(store, audit.TinyDBAuditStore):
        assert store.find("order:O1") == [committed, pending]


# -- the file store: lookups past a lagging index (the byte pre-filter) ---------------------
SPELLINGS = [("ＡＢＣ-1", "ABC-1"), ("ABC-2", "ＡＢＣ-2"), (" k-3\t", "k-3"), ("k-4", " k-4 "),
             ("ﬁx-5", "fix-5"), ("a\\b-6", "a\\b-6"), ("q\"7", "q\"7"), ("é-8", "é-8")]  # fmt: skip


@pytest.mark.parametrize("many", [False, True], ids=["one-by-one", "prefetch-of-20"])
def test_keys_and_tags_respelled_past_a_lagging_index_are_found(
    tmp_path: Path, many: bool
) -> None:
    """Records written by another handle (so read from the log, undecoded, past an index
    that lags) under one spelling are found by another: the pre-filter never skips a line
    whose key or tag has the asked text in lookup form — a second append of the key is
    refused, and ``find`` of the respelled tag returns the record."""
    path = tmp_path / "log.jsonl"
    reader = audit.TinyDBAuditStore(path)
    writer = audit.TinyDBAuditStore(path)
    try:
        reader.get("warm")  # the index checked and current from here on
        written = [
            writer.append(audit.Entry(key=stored, tags=(stored,), payload={"n": i}))
            for i, (stored, _) in enumerate(SPELLINGS)
        ]
        assert path.stat().st_size < audit.tinydb_index.LAG
        asked = [again for _, again in SPELLINGS]
        if many:
            with reader.transaction() as tx:
                tx.prefetch(asked + [f"none-{i}" for i in range(12)])
                assert [tx.get(key) for key in asked] == written
        for record, key in zip(written, asked, strict=True):
            assert reader.get(key) == record
            assert reader.find(key) == [record]
            with pytest.raises(audit.DuplicateKey):
                reader.append(audit.Entry(key=key, payload={}))
        assert reader.storage._keeper.indexed()[1] == 0  # type: ignore[attr-defined]
        assert reader.check_index() == [] and reader.verify().ok
    finally:
        reader.close()
        writer.close()


@pytest.mark.parametrize("seq", [2**63 - 1, 2**63, 2**70])
def test_a_seq_past_any_record_is_none_in_a_transaction_which_goes_on(
    store: AuditStore, seq: int
) -> None:
    """Hole: PostgreSQL's transaction sent ``tx.record(2**63)`` as a literal
    out of bigint's range — an error that aborted the whole transaction, so one void
    naming such a seq failed every other request of its ``serve`` group. A seq past the
    head is no record (None, as ``store.record`` says), and the transaction commits."""
    store.append(audit.Entry(key="a", payload={}))
    with store.transaction() as tx:
        assert tx.record(seq) is None
        appended = tx.append(audit.Entry(key="b", payload={}))
    assert store.record(seq) is None
    assert store.get("b") == appended and store.verify().ok
