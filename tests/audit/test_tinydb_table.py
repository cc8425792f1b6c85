"""TinyDB's own API over the audit log: inserts append, searches stream, nothing rewrites."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from audit_support import entry, read_lines
from tinydb import Query, TinyDB
from tinydb.table import Document

import audit
from audit.tinydb_store import AppendOnlyTable, AuditLogStorage, AuditTinyDB

Opener = Callable[..., audit.TinyDBAuditStore]


def test_insert_appends_a_record_with_the_document_as_payload(open_tinydb: Opener) -> None:
    store = open_tinydb()
    db = store.db
    assert db.insert({"kind": "x", "n": 1}) == 1
    assert db.insert_multiple([{"kind": "y"}, {"kind": "x", "n": 2}]) == [2, 3]
    assert len(db) == 3
    docs = db.search(Query().payload.kind == "x")
    assert [(d.doc_id, d["payload"]) for d in docs] == [(1, {"kind": "x", "n": 1}),
                                                        (3, {"kind": "x", "n": 2})]
    assert docs[0]["prev_hash"] == audit.GENESIS_HASH
    assert store.verify().ok


def test_reads_go_through_the_log(open_tinydb: Opener) -> None:
    """get/contains/count/all/iteration work on the streamed log (no stale query cache)."""
    store = open_tinydb()
    db = store.db
    db.insert({"kind": "x"})
    assert db.count(Query().payload.kind == "x") == 1
    other = open_tinydb()
    other.append(entry(2))  # another handle appends: the first one's search sees it
    assert db.count(Query().key == "k2") == 1
    got = db.get(doc_id=2)
    assert isinstance(got, Document) and got["key"] == "k2"
    assert db.get(doc_id=9) is None
    assert db.contains(Query().payload.n == 2)
    assert db.get(Query().payload.kind == "x") == db.all()[0]
    assert [d.doc_id for d in db] == [1, 2]
    assert db.tables() == {"_default"}


@pytest.mark.parametrize(
    ("operation", "call"),
    [
        ("update", lambda db: db.update({"payload": {}})),
        ("update", lambda db: db.update({"payload": {}}, doc_ids=[1])),
        ("update_multiple", lambda db: db.update_multiple([({"a": 1}, Query().seq == 1)])),
        ("remove", lambda db: db.remove(Query().seq == 1)),
        ("remove", lambda db: db.remove(doc_ids=[1])),
        ("truncate", lambda db: db.truncate()),
        ("upsert", lambda db: db.upsert({"payload": {}}, Query().seq == 1)),
        ("upsert", lambda db: db.upsert(Document({"payload": {}}, doc_id=1))),
        ("insert with an explicit doc_id", lambda db: db.insert(Document({"a": 1}, doc_id=7))),
        ("insert_multiple with an explicit doc_id",
         lambda db: db.insert_multiple([{"a": 1}, Document({"a": 2}, doc_id=1)])),
    ],
)
def test_rewrites_are_refused(
    open_tinydb: Opener, store_path: Path, operation: str, call: Callable[[TinyDB], object]
) -> None:
    """update/remove/truncate/upsert and inserts that pick their own doc_id raise
    AppendOnlyViolation, and the file is untouched."""
    store = open_tinydb()
    store.db.insert({"kind": "x"})
    before = store_path.read_bytes()
    with pytest.raises(audit.AppendOnlyViolation, match=f"{operation} is not allowed"):
        call(store.db)
    assert store_path.read_bytes() == before
    assert store.head().seq == 1


def test_whole_database_writes_are_refused(open_tinydb: Opener) -> None:
    """TinyDB's drop_tables/drop_table would rewrite the storage: refused."""
    db = open_tinydb().db
    db.insert({"kind": "x"})
    with pytest.raises(audit.AppendOnlyViolation, match="cannot be rewritten"):
        db.drop_tables()
    with pytest.raises(audit.AppendOnlyViolation, match="cannot be rewritten"):
        db.drop_table("_default")
    assert len(db) == 1


def test_plain_tinydb_with_the_custom_classes(store_path: Path) -> None:
    """``TinyDB(path, storage=AuditLogStorage)`` with ``table_class = AppendOnlyTable`` is the
    same store; AuditTinyDB is exactly that."""

    class MyDB(TinyDB):
        table_class = AppendOnlyTable

    db = MyDB(str(store_path), storage=AuditLogStorage)
    db.insert({"kind": "x"})
    db.close()
    with AuditTinyDB(str(store_path)) as again:
        assert isinstance(again.table("_default"), AppendOnlyTable)
        assert again.all()[0]["payload"] == {"kind": "x"}
        with pytest.raises(audit.AuditError, match="holds one table"):
            again.table("other")
    assert len(read_lines(store_path)) == 1


def test_the_stock_table_cannot_rewrite_the_log(store_path: Path) -> None:
    """Even TinyDB's stock Table over the audit storage cannot change a record: its
    read-modify-write ends in Storage.write, which refuses."""
    db = TinyDB(str(store_path), storage=AuditLogStorage)
    try:
        with pytest.raises(
            audit.AppendOnlyViolation,
            match=r"^the audit log cannot be rewritten \(TinyDB Storage\.write\); records are only",
        ):
            db.insert({"kind": "x"})
        assert store_path.read_bytes() == b""
    finally:
        db.close()


def test_the_store_exposes_its_tinydb(open_tinydb: Opener) -> None:
    store = open_tinydb()
    record = store.append(entry(1))
    assert isinstance(store.db, AuditTinyDB) and isinstance(store.table, AppendOnlyTable)
    assert store.db.search(Query().key == "k1")[0]["hash"] == record.hash
