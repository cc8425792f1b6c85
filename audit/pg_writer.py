"""Writing to the PostgreSQL audit store: the open write transaction (:class:`_Writer`)
and the stored Merkle tree read through one connection (:class:`_PgTreeView`).

The store (:mod:`audit.postgres`) opens a ``_Writer`` under its chain lock and hands it
out from ``transaction()``; the writer inserts records and their tree nodes with the
statements the store prepared, and imports records made elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

import psycopg

from audit.chain import ChainTransaction, TreeMismatch, grow, record_leaf
from audit.errors import AuditError, DuplicateKey, TamperedError
from audit.merkle import CompactTree, Node, frontier_nodes, leaf_hash
from audit.pg_rows import _first_line, _record, _row, _tree_copy_rows
from audit.protocol import GENESIS_HASH, Checkpoint, Record
from audit.records import Sealed, Sealer, checked_leaf, record_leaf_data


class _StoreForWriter(Protocol):
    """What the writer and the tree view use of their store
    (:class:`audit.postgres.PostgresAuditStore`): its statements, prepared once per
    connection, its sealer and clock, the tree's edge it last saw, and how it turns a
    database error into an audit error. Named as a protocol so that imports run one way
    (the store imports this module, never the reverse)."""

    hmac_key: bytes | None
    _sealer: Sealer
    _clock: Callable[[], datetime] | None
    _tree_cache: CompactTree | None
    _sql_prepare: bytes
    _sql_head: bytes
    _sql_get: bytes
    _sql_keys: bytes
    _sql_find: bytes
    _sql_record: bytes
    _sql_range: bytes
    _sql_insert: bytes
    _sql_copy: bytes
    _sql_tree_size: bytes
    _sql_nodes: bytes
    _sql_tree_insert: bytes
    _sql_tree_copy: bytes

    def _failure(
        self, exc: psycopg.Error, doing: str, *, committing: bool = False
    ) -> AuditError: ...

class _Writer(ChainTransaction):
    """The open write transaction of a :class:`audit.postgres.PostgresAuditStore`
    (a ``Transaction``: :class:`audit.chain.ChainTransaction` over the database).

    Its appends are inserted at once, inside the database transaction, so the database
    enforces the chain on them as they come; they become durable (and visible to others)
    only when the block commits.
    """

    def __init__(
        self,
        store: _StoreForWriter,
        conn: psycopg.Connection[Any],
        prepared: tuple[Any, ...] | None = None,
    ) -> None:
        super().__init__(store._sealer)
        self._store = store
        self._conn = conn
        self._prepared = prepared  # the head read pipelined with the lock, if any
        self._tree_size = 0  # the tree table's size, as read with the head
        self.commit_with_append = False  # the next append carries the COMMIT
        self.committed = False  # the last append carried the COMMIT
        self.aborted: str | None = None  # a database error inside spoilt the transaction

    def _failed(self, exc: psycopg.Error, doing: str) -> AuditError:
        self.aborted = _first_line(exc)
        return self._store._failure(exc, doing)

    def _select(self, doing: str, query: bytes, param: Any) -> list[Any]:
        try:
            return self._conn.execute(query, (param,)).fetchall()
        except psycopg.Error as exc:
            raise self._failed(exc, doing) from exc

    def _committed_get(self, key: str) -> Record | None:
        found = self._select("get", self._store._sql_get, key)
        return _record(found[0]) if found else None

    def _committed_keys(self, keys: set[str]) -> set[str]:
        return {row[0] for row in self._select("get", self._store._sql_keys, list(keys))}

    def _committed_find(self, tag: str) -> list[Record]:
        return [_record(row) for row in self._select("find", self._store._sql_find, tag)]

    def _committed_record(self, seq: int) -> Record | None:
        found = self._select("record", self._store._sql_record, seq)
        return _record(found[0]) if found else None

    def _begin(self, keys: list[str]) -> tuple[Checkpoint, Callable[[], datetime]]:
        """The head, the server's clock and the keys already taken, in one round trip
        after the chain lock (pipelined with the lock for a plain append)."""
        store = self._store
        row, self._prepared = self._prepared, None
        if row is None:
            try:
                row = self._conn.execute(store._sql_prepare, (keys,)).fetchone()
            except psycopg.Error as exc:
                raise self._failed(exc, "append") from exc
        assert row is not None
        seq, prev, server_now, taken, tree_size = row
        if taken:
            key = next(k for k in keys if k in taken)
            raise DuplicateKey(key, int(taken[key]))
        self._tree_size = tree_size or 0
        clock = store._clock if store._clock is not None else (lambda: server_now)
        return Checkpoint(seq or 0, prev or GENESIS_HASH), clock

    def _tree_at(self, head: Checkpoint) -> CompactTree:
        try:
            return self._grown_tree(head.seq, self._tree_size).copy()
        except psycopg.Error as exc:
            raise self._failed(exc, "append") from exc

    def _keep(self, sealed: list[Sealed], nodes: list[tuple[int, bytes]]) -> None:
        """Insert the records and their tree nodes; with :attr:`commit_with_append`, COMMIT
        in the same round trip (a plain append: nothing follows it in the transaction)."""
        store = self._store
        commit, self.commit_with_append = self.commit_with_append, False
        rows = [_row(s.record, s.recorded_us) for s in sealed]
        tree_rows = list(_tree_copy_rows(nodes))
        # One record: INSERT and COMMIT in one round trip. A batch: COPY (a third faster
        # than row-by-row INSERTs at 100 records; triggers fire the same), then COMMIT.
        committing = False
        try:
            if len(rows) == 1:
                committing = commit
                with self._conn.pipeline():
                    self._conn.execute(store._sql_insert, rows[0])
                    with self._conn.cursor() as cur:
                        cur.executemany(store._sql_tree_insert, tree_rows)
                    if commit:
                        self._conn.execute(b"COMMIT")
            else:
                with self._conn.cursor() as cur:
                    with cur.copy(store._sql_copy) as copy:
                        for row in rows:
                            copy.write_row(row)
                    with cur.copy(store._sql_tree_copy) as copy:
                        for node in tree_rows:
                            copy.write_row(node)
                if commit:
                    committing = True
                    self._conn.execute(b"COMMIT")
        except psycopg.Error as exc:
            self.aborted = _first_line(exc)
            raise store._failure(exc, "append", committing=committing) from exc
        self.committed = commit

    def _grown_tree(self, head_seq: int, tree_size: int) -> CompactTree:
        """The tree's right edge at ``tree_size`` leaves, grown to ``head_seq`` if records
        were added without their leaves (by SQL, or before the tree existed)."""
        store = self._store
        tree = self.tree if self.tree is not None and self.tree.size == head_seq else None
        if tree is None:
            cached = store._tree_cache
            if cached is not None and cached.size == tree_size:
                tree = cached.copy()
            else:
                wanted = frontier_nodes(tree_size)
                found = _PgTreeView(store, self._conn).nodes(wanted)
                tree = CompactTree(tree_size, [found[node] for node in wanted])
        if tree.size < head_seq:
            rows = self._conn.execute(store._sql_range, (tree.size, head_seq)).fetchall()
            leaves = []
            for row in rows:
                leaves.append(leaf_hash(record_leaf_data(_record(row))))
            lagging = tree.copy()
            nodes = list(_tree_copy_rows(_grow_hashes(lagging, leaves)))
            with self._conn.cursor() as cur, cur.copy(store._sql_tree_copy) as copy:
                for node in nodes:
                    copy.write_row(node)
            tree = lagging
        self.tree = tree
        return tree

    def import_records(self, records: Iterable[Record]) -> Checkpoint:
        self._check()
        store = self._store
        try:
            row = self._conn.execute(store._sql_head).fetchone()
            head = Checkpoint(0, GENESIS_HASH) if row is None else Checkpoint(row[0], row[1])
            tree_row = self._conn.execute(store._sql_tree_size).fetchone()
            tree = self._grown_tree(head.seq, tree_row[0] if tree_row else 0).copy()
            leaves: list[bytes] = []
            with self._conn.cursor() as cur, cur.copy(store._sql_copy) as copy:
                for record in records:
                    problem, leaf = _import_problem(record, head, store.hmac_key)
                    if problem is not None:
                        self.aborted = problem
                        raise TamperedError(record.seq, problem)
                    copy.write_row(_row(record))
                    assert leaf is not None
                    leaves.append(leaf)
                    head = Checkpoint(record.seq, record.hash)
            with self._conn.cursor() as cur, cur.copy(store._sql_tree_copy) as copy:
                for node in _tree_copy_rows(grow(tree, leaves)):
                    copy.write_row(node)
            self.tree = tree
        except psycopg.Error as exc:
            raise self._failed(exc, "import") from exc
        return head


def _import_problem(
    record: Record, head: Checkpoint, hmac_key: bytes | None
) -> tuple[str | None, bytes | None]:
    if record.seq != head.seq + 1:
        return f"expected record {head.seq + 1} next, got record {record.seq}", None
    if record.prev_hash != head.hash:
        return f"record {record.seq} prev_hash does not match record {head.seq}'s hash", None
    return checked_leaf(record, None, hmac_key)


def _grow_hashes(tree: CompactTree, leaf_hashes: Iterable[bytes]) -> list[tuple[int, bytes]]:
    nodes: list[tuple[int, bytes]] = []
    for value in leaf_hashes:
        nodes.extend(tree.append(value))
    return nodes


class _PgTreeView:
    """The PostgreSQL store's tree (chain.TreeView) through one connection."""

    def __init__(self, store: _StoreForWriter, conn: psycopg.Connection[Any]) -> None:
        self._store = store
        self._conn = conn

    def size(self) -> int:
        row = self._conn.execute(self._store._sql_tree_size).fetchone()
        return int(row[0]) if row else 0

    def nodes(self, wanted: Sequence[Node]) -> dict[Node, bytes]:
        if not wanted:
            return {}
        rows = self._conn.execute(
            self._store._sql_nodes, ([n[0] for n in wanted], [n[1] for n in wanted])
        ).fetchall()
        found = {(int(level), int(idx)): bytes(value) for level, idx, value in rows}
        missing = [node for node in wanted if node not in found]
        if missing:
            raise TreeMismatch(f"node {missing[0]} is missing")
        return found

    def leaf(self, seq: int) -> bytes:
        rows = self._conn.execute(self._store._sql_record, (seq,)).fetchall()
        if not rows:
            raise TreeMismatch(f"record {seq} is missing")
        record = _record(rows[0])
        return record_leaf(record, checked_leaf(record, None, self._store.hmac_key, plain=True))
