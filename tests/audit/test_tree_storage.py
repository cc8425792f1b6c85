"""Where each backend keeps the Merkle tree (SPEC §9): in the TinyDB store's sidecar
index, a rebuildable cache checked against the log; in PostgreSQL, a table under the same
append-only protections as the records."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from audit_support import FakeClock, entry, fill, read_lines, write_lines
from postgres_support import PgStore

import audit
from audit.chain import TreeMismatch
from audit.merkle import stored_index

Opener = Callable[..., audit.TinyDBAuditStore]


def index_of(path: Path) -> Path:
    return Path(str(path) + ".idx")


def test_a_deleted_index_rebuilds_the_same_tree(open_tinydb: Opener, store_path: Path) -> None:
    store = open_tinydb()
    fill(store, 21)
    root, path = store.root(), store.inclusion_proof(7)
    store.close()
    for suffix in ("", "-wal", "-shm"):
        Path(str(index_of(store_path)) + suffix).unlink(missing_ok=True)
    again = open_tinydb()
    assert (again.tree_size(), again.root(), again.inclusion_proof(7)) == (21, root, path)


def test_an_index_of_the_previous_version_is_rebuilt(open_tinydb: Opener, store_path: Path) -> None:
    """A store written before the tree existed opens, verifies and is proven: its old
    index (schema 1) is rebuilt from the log, the tree with it."""
    store = open_tinydb()
    fill(store, 5)
    root = store.root()
    store.close()
    with sqlite3.connect(index_of(store_path)) as conn:
        conn.execute("UPDATE state SET version = 1")
        conn.execute("DELETE FROM tree")
    again = open_tinydb()
    assert again.verify().ok and again.root() == root and again.tree_size() == 5


def test_a_tampered_tree_node_is_found_and_rebuilt(open_tinydb: Opener, store_path: Path) -> None:
    """verify compares the cached tree with the log's; a proof is checked before it is
    handed out. Either way a bad node resets the cache, which is rebuilt from the log.
    (The index keeps the nodes of 16 records and more: 40 records give some to damage.)"""
    store = open_tinydb()
    fill(store, 40)
    good_root, good_path = store.root(), store.inclusion_proof(3)
    store.close()
    with sqlite3.connect(index_of(store_path)) as conn:  # node (4, 1): on record 3's path
        conn.execute("UPDATE tree SET hash = zeroblob(32) WHERE id = ?", (stored_index(4, 1),))
    again = open_tinydb()
    with pytest.raises(TreeMismatch, match=r"does not match the log.*rebuilt from the log"):
        again.inclusion_proof(3)
    assert again.inclusion_proof(3) == good_path
    again.close()
    with sqlite3.connect(index_of(store_path)) as conn:  # node (5, 0): the size-40 frontier
        conn.execute("UPDATE tree SET hash = zeroblob(32) WHERE id = ?", (stored_index(5, 0),))
    third = open_tinydb()
    report = third.verify()
    assert not report.ok and report.problem is not None
    assert "does not match the log at size 40" in report.problem
    assert third.verify().ok and third.root() == good_root


def test_a_tampered_tree_edge_is_found_and_rebuilt(open_tinydb: Opener, store_path: Path) -> None:
    """The tree's right edge the index keeps for appends (state.frontier) is covered by
    the state's MAC (issue 19): a wrong one is noticed when the index is opened, and the
    index rebuilt from the log before it grows a wrong tree."""
    store = open_tinydb()
    fill(store, 21)
    good_root = store.root()
    store.close()
    with sqlite3.connect(index_of(store_path)) as conn:
        conn.execute("UPDATE state SET frontier = zeroblob(96)")  # 21 = 16 + 4 + 1
    again = open_tinydb()
    assert again.verify().ok and again.root() == good_root
    with sqlite3.connect(index_of(store_path)) as conn:
        assert conn.execute("SELECT frontier FROM state").fetchone()[0] != bytes(96)
    again.append(entry(22))
    assert again.verify().ok


def test_the_tree_stops_at_a_damaged_record(open_tinydb: Opener, store_path: Path) -> None:
    store = open_tinydb()
    fill(store, 8)
    store.close()
    lines = read_lines(store_path)
    lines[4] = lines[4].replace(b'"n":5', b'"n":6')
    write_lines(store_path, lines)
    index_of(store_path).unlink()
    again = open_tinydb()
    assert again.tree_size() == 4
    assert again.verify().bad_seq == 5


# -- PostgreSQL -------------------------------------------------------------------------


@pytest.mark.postgres
def test_the_tree_table_is_append_only(pg_store: Callable[..., PgStore]) -> None:
    pg = pg_store()
    with audit.open_store(pg.app_url, clock=FakeClock()) as store:
        fill(store, 4)
        root = store.root()
    with (
        pg.app() as conn,
        pytest.raises(
            psycopg.errors.InsufficientPrivilege,
            match=r"^permission denied for table pricecalc_audit_tree$",
        ),
    ):
        conn.execute("UPDATE pricecalc_audit_tree SET hash = hash WHERE id = 0")
    with pg.admin() as conn:
        for change in ("DELETE FROM pricecalc_audit_tree", "TRUNCATE pricecalc_audit_tree"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(change)
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="two children"):
            conn.execute(
                "INSERT INTO pricecalc_audit_tree VALUES (7, 2, 1, decode(repeat('00', 32), 'hex'))"
            )
    with audit.open_store(pg.app_url) as store:
        assert store.root() == root and store.verify().ok


@pytest.mark.postgres
def test_a_version_1_store_gets_its_tree_on_init(pg_store: Callable[..., PgStore]) -> None:
    """init_store's migration 2 builds the tree of the records already there."""
    pg = pg_store()
    with audit.open_store(pg.app_url, hmac_key=b"k", clock=FakeClock()) as store:
        fill(store, 9)
        root = store.root()
    with pg.admin() as conn:
        conn.execute("DROP TABLE pricecalc_audit_tree CASCADE")
        conn.execute("DROP FUNCTION pricecalc_audit_tree_link")
        conn.execute("DELETE FROM pricecalc_audit_schema_version WHERE version = 2")
    with pytest.raises(audit.AuditError, match="at version 1, this pricecalc needs 2"):
        audit.open_store(pg.app_url)
    done = audit.init_store(pg.admin_url)
    assert "applied migration 2" in done and "built the Merkle tree of the 9 existing" in done
    with audit.open_store(pg.app_url, hmac_key=b"k", clock=FakeClock()) as store:
        assert store.root() == root and store.verify().ok
        fill_more = store.append(audit.Entry({"n": 10}))
        assert store.tree_size() == fill_more.seq == 10


@pytest.mark.postgres
def test_records_added_by_sql_get_their_leaves_on_the_next_append(
    pg_store: Callable[..., PgStore], tmp_path: Path
) -> None:
    """A record inserted without its leaf (the chain-link trigger lets a careful SQL writer
    append) is given one by the next pricecalc writer, under the chain lock."""
    pg = pg_store()
    with audit.TinyDBAuditStore(tmp_path / "a.jsonl", clock=FakeClock()) as source:
        records = fill(source, 3)
        expected = source.root()
    with audit.open_store(pg.app_url) as store:
        store.import_records(records[:2])  # type: ignore[attr-defined]
    with pg.app() as conn:
        r = records[2]
        conn.execute(
            "INSERT INTO pricecalc_audit_record (seq, id, recorded_at, recorded_us, key, tags, "
            "payload, prev_hash, hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (r.seq, r.id, r.recorded_at, 1750233602000000, r.key, list(r.tags),
             psycopg.types.json.Jsonb(r.payload), r.prev_hash, r.hash),
        )  # fmt: skip
    with audit.open_store(pg.app_url) as store:
        assert store.tree_size() == 2
        store.append(audit.Entry({"n": 4}))
        assert store.tree_size() == 4 and store.root(3) == expected
