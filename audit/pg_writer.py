"""Writing to the PostgreSQL audit store: the open write transaction (:class:`_Writer`)
and the stored Merkle tree read through one connection (:class:`_PgTreeView`).

The store (:mod:`audit.postgres`) opens a ``_Writer`` under its chain lock and hands it
out from ``transaction()``; the writer inserts records and their tree nodes with the
statements the store prepared, and imports records made elsewhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

import psycopg
from psycopg.pq import Escaping, TransactionStatus

from audit.chain import ChainTransaction, TreeMismatch, grow, record_leaf
from audit.errors import AuditError, DuplicateKey, StoreLocked, TamperedError
from audit.merkle import CompactTree, Node, frontier_nodes, leaf_hash
from audit.pg_rows import (
    _checked,
    _first_line,
    _literal,
    _node_values,
    _record,
    _record_values,
    _row,
    _tree_copy_rows,
)
from audit.pg_statements import Statements
from audit.protocol import GENESIS_HASH, Checkpoint, Record
from audit.records import Sealed, Sealer, _check_text, checked_leaf, record_carries

#: The largest seq a row can hold (``bigint``).
_MAX_SEQ = 2**63 - 1


class _StoreForWriter(Protocol):
    """What the writer and the tree view use of their store
    (:class:`audit.postgres.PostgresAuditStore`): its statements (:mod:`audit.pg_statements`),
    its sealer and clock, the tree's edge it last saw, and how it turns a
    database error into an audit error. Named as a protocol so that imports run one way
    (the store imports this module, never the reverse)."""

    hmac_key: bytes | None
    _sealer: Sealer
    _clock: Callable[[], datetime] | None
    _tree_cache: CompactTree | None
    _sql: Statements

    def _failure(
        self, exc: psycopg.Error, doing: str, *, committing: bool = False
    ) -> AuditError: ...


class _Writer(ChainTransaction):
    """The open write transaction of a :class:`audit.postgres.PostgresAuditStore`
    (a ``Transaction``: :class:`audit.chain.ChainTransaction` over the database).

    The head is read once, with the chain lock, and checked before anything is chained
    onto it; later appends chain onto the transaction's own last record. Appends are
    sealed at once and kept here; :meth:`commit` sends them — records and tree nodes in
    bulk — with the COMMIT in one round trip, so the database enforces the chain on them
    (its triggers fire row by row as ever) and they become durable together. Until then
    reads of the block's own records are answered by :class:`ChainTransaction` from
    memory. Every committed record read for a decision is checked (:func:`_checked`).
    """

    def __init__(
        self, store: _StoreForWriter, conn: psycopg.Connection[Any], doing: str = "transaction"
    ) -> None:
        super().__init__(store._sealer)
        self._store = store
        self._conn = conn
        self._doing = doing  # what the store was asked to do (for error messages)
        self.begun = False  # BEGIN sent (the transaction may have failed since)
        self._opened = False  # BEGIN sent and the chain lock held
        self._prepared: tuple[Any, ...] | None = None  # the head read with the lock
        self._prepared_keys: set[str] = set()  # the keys it looked up
        self._head: Checkpoint | None = None  # checked, then this block's last record
        self._clock: Callable[[], datetime] | None = None
        self._tree_size = 0  # the tree table's size, as read with the head
        self._frontier: list[bytes] | None = None  # its right edge's hashes, ditto
        self._rows: list[tuple[Any, ...]] = []  # sealed, not yet sent
        self._tree_rows: list[tuple[int, int, int, bytes]] = []
        self._found: dict[str, Record] = {}  # committed records prefetched by key (checked)
        self.aborted: str | None = None  # a database error inside spoilt the transaction
        self._escape = Escaping(conn.pgconn).escape_literal
        self._locked_out: StoreLocked | None = None  # the chain lock was not granted in time
        self.committed = False  # the COMMIT went through (the flush barrier may not have)

    def _check(self) -> None:
        super()._check()
        if self._locked_out is not None:  # every later call hears why, as the first did
            raise StoreLocked(str(self._locked_out))
        if self.aborted is not None:
            raise AuditError(
                f"the transaction was aborted by an earlier error ({self.aborted}); "
                "nothing of it will be recorded"
            )

    def _failed(self, exc: psycopg.Error, doing: str) -> AuditError:
        self.aborted = _first_line(exc)
        return self._store._failure(exc, doing)

    def _start(self, keys: list[str], doing: str, query: bytes | None = None) -> list[Any]:
        """Begin the transaction with its first question: BEGIN, the chain lock, the head
        read (asking which of ``keys`` are recorded) and ``query`` (a statement with its
        arguments written in) go to the server as one simple query — one round trip — and
        ``query``'s rows come back. Nothing is read before the lock is held (each statement
        reads after the one before it ended), so opening late is the same as opening
        first."""
        sql = self._store._sql
        self.begun = True
        statements = [
            _BEGIN,
            sql.lock,  # and synchronous_commit off, with a barrier
            sql.run_prepare % (_literal(self._escape, keys),),  # the head, after the lock
        ]
        if query is not None:
            statements.append(query)
        try:
            results = _simple(self._conn, statements)
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.errors.LockNotAvailable):
                doing = f"{self._doing}: taking the chain lock"
            failure = self._failed(exc, doing)
            if isinstance(failure, StoreLocked):
                self._locked_out = failure
            raise failure from exc
        self._prepared = results[2][0]
        self._opened = True
        self._prepared_keys = set(keys)
        return results[3] if query is not None else []

    def _select(self, doing: str, run: bytes, param: Any) -> list[Any]:
        """The rows of prepared read ``run`` (``EXECUTE name(%s)``) for ``param``: with the
        transaction's first round trip when it has not begun, else one of its own."""
        query = run % (_literal(self._escape, param),)
        if not self._opened:
            return self._start([], doing, query)
        try:
            return _simple(self._conn, [query])[0]
        except psycopg.Error as exc:
            raise self._failed(exc, doing) from exc

    def _committed_get(self, key: str) -> Record | None:
        known = self._found.get(key)
        if known is not None:
            return known
        _check_text(key, "the idempotency key")  # PQescapeLiteral would cut it at a NUL
        found = self._select("get", self._store._sql.run_get, key)
        return _checked(found[0], self._store.hmac_key, key=key)[0] if found else None

    def _committed_keys(self, keys: set[str]) -> set[str]:
        """Which of ``keys`` are recorded — their records fetched and checked now, in the
        same round trip, so ``get`` then answers from them."""
        for key in keys:
            _check_text(key, "the idempotency key")  # PQescapeLiteral would cut it at a NUL
        hmac_key = self._store.hmac_key
        present: set[str] = set()
        for row in self._select("prefetch", self._store._sql.run_keys, list(keys)):
            record = _checked(row, hmac_key)[0]
            if record.key not in keys and not any(record_carries(record, key=k) for k in keys):
                raise TamperedError(
                    record.seq, f"record {record.seq} was found by a key it does not carry"
                )
            assert record.key is not None
            self._found[record.key] = record
            present.add(record.key)
        return present

    def _committed_find(self, tag: str) -> list[Record]:
        _check_text(tag, "a tag")  # PQescapeLiteral would cut it at a NUL
        hmac_key = self._store.hmac_key
        rows = self._select("find", self._store._sql.run_find, tag)
        return [_checked(row, hmac_key, tag=tag)[0] for row in rows]

    def _committed_record(self, seq: int) -> Record | None:
        if seq > _MAX_SEQ:  # past any record; as a literal it would abort the transaction
            return None
        found = self._select("record", self._store._sql.run_record, seq)
        return _checked(found[0], self._store.hmac_key, seq=seq)[0] if found else None

    def _begin(self, keys: list[str]) -> tuple[Checkpoint, Callable[[], datetime]]:
        """The head (checked), the clock, and ``keys`` refused if already recorded.

        The first append of the block uses the head read with the chain lock (one round
        trip, with the lock); later ones chain onto the block's own last record
        and ask the database only about keys no earlier lookup answered."""
        store = self._store
        unasked = keys
        if self._head is None or self._clock is None:
            if not self._opened:
                self._start(keys, "append")
            row, self._prepared = self._prepared, None
            assert row is not None
            server_now, taken, tree_size, frontier = row[_HEAD_COLUMNS : _HEAD_COLUMNS + 4]
            if taken:
                key = next(k for k in keys if k in taken)
                raise DuplicateKey(key, int(taken[key]))
            unasked = [key for key in keys if key not in self._prepared_keys]
            if row[0] is None:
                head = Checkpoint(0, GENESIS_HASH)
            else:  # never chain onto a row this store did not write (SPEC §7)
                record = _checked(row[:_HEAD_COLUMNS], store.hmac_key)[0]
                head = Checkpoint(record.seq, record.hash)
            self._tree_size = tree_size or 0
            self._frontier = [bytes(value) for value in frontier or ()]
            self._head, self._clock = head, _clock_from(store._clock, server_now)
        if unasked:
            rows = self._select("append", store._sql.run_keys, unasked)
            if rows:
                raise DuplicateKey(str(rows[0][3]), int(rows[0][0]))
        return self._head, self._clock

    def _tree_at(self, head: Checkpoint) -> CompactTree:
        try:
            return self._grown_tree(head.seq, self._tree_size).copy()
        except psycopg.Error as exc:
            raise self._failed(exc, "append") from exc

    def _keep(self, sealed: list[Sealed], nodes: list[tuple[int, bytes]]) -> None:
        """Keep the sealed records and their tree nodes for :meth:`commit`."""
        self._rows.extend(_row(s.record, s.recorded_us) for s in sealed)
        self._tree_rows.extend(_tree_copy_rows(nodes))
        last = sealed[-1].record
        self._head = Checkpoint(last.seq, last.hash)

    def _send(self) -> None:
        """Send the kept records and tree nodes (inside the transaction, not committed)."""
        rows, tree_rows = self._rows, self._tree_rows
        if not rows and not tree_rows:
            return
        self._rows, self._tree_rows = [], []
        store, conn = self._store, self._conn
        if len(rows) < _COPY_FROM:
            with conn.cursor() as cur:
                cur.executemany(store._sql.insert, rows)
                cur.executemany(store._sql.tree_insert, tree_rows)
        else:
            with conn.cursor() as cur:
                with cur.copy(store._sql.copy) as copy:
                    for row in rows:
                        copy.write_row(row)
                with cur.copy(store._sql.tree_copy) as copy:
                    for node in tree_rows:
                        copy.write_row(node)

    def commit(self) -> None:
        """Insert what the block appended, COMMIT, and make it durable: a group of fewer
        than :data:`_COPY_FROM` records as one multi-row INSERT of its records and one of
        its tree nodes sent with the COMMIT and the flush barrier as one simple query (one
        round trip); a larger one by ``COPY`` first.

        Where the store has a barrier (``Statements.durable``) the transaction commits
        asynchronously (``synchronous_commit = off``, set when it began), which lets the
        chain lock go as soon as the commit record is written; the barrier that follows
        waits, outside the lock, until the write-ahead log is on disk up to that record
        (and so up to every record this block read: an earlier commit is earlier in the
        log). Concurrent writers' flushes then overlap, and PostgreSQL serves them with
        one. Raises the :class:`psycopg.Error`; the store turns it into its own (and rolls
        back). Nothing to do when the block never reached the database."""
        if not self._opened:
            return
        conn, sql = self._conn, self._store._sql
        if len(self._rows) >= _COPY_FROM:
            self._send()
        statements = []
        if self._rows:
            statements.append(sql.insert_values + _record_values(self._escape, self._rows))
        if self._tree_rows:
            statements.append(sql.tree_values + _node_values(self._tree_rows))
        self._rows, self._tree_rows = [], []
        statements.append(b"COMMIT")
        if sql.durable is not None:
            statements.append(sql.durable)
        try:
            _simple(conn, statements)
        except psycopg.Error:
            # The server stops at the first failing statement: when that was the barrier,
            # after the COMMIT, the connection is idle again (else the transaction failed).
            self.committed = (
                not conn.broken and conn.info.transaction_status == TransactionStatus.IDLE
            )
            raise
        self.committed = True

    def _grown_tree(self, head_seq: int, tree_size: int) -> CompactTree:
        """The tree's right edge at ``tree_size`` leaves, grown to ``head_seq`` if records
        were added without their leaves (by SQL, or before the tree existed)."""
        store = self._store
        tree = self.tree if self.tree is not None and self.tree.size == head_seq else None
        if tree is None:
            cached = store._tree_cache
            if cached is not None and cached.size == tree_size:
                tree = cached.copy()
            elif self._frontier is not None and len(self._frontier) == tree_size.bit_count():
                tree = CompactTree(tree_size, list(self._frontier))  # read with the head
            else:
                wanted = frontier_nodes(tree_size)
                found = _PgTreeView(store, self._conn).nodes(wanted)
                tree = CompactTree(tree_size, [found[node] for node in wanted])
        if tree.size < head_seq:
            rows = self._conn.execute(store._sql.range, (tree.size, head_seq)).fetchall()
            leaves = []
            for row in rows:  # checked: a leaf is never made of a forged row
                leaves.append(leaf_hash(_checked(row, store.hmac_key)[1]))
            lagging = tree.copy()
            nodes = list(_tree_copy_rows(_grow_hashes(lagging, leaves)))
            with self._conn.cursor() as cur, cur.copy(store._sql.tree_copy) as copy:
                for node in nodes:
                    copy.write_row(node)
            tree = lagging
        self.tree = tree
        return tree

    def import_records(self, records: Iterable[Record]) -> Checkpoint:
        self._check()
        store = self._store
        try:
            if self._rows:
                self._send()
            head, _ = self._begin([])
            tree = self._grown_tree(head.seq, self._tree_size).copy()
            leaves: list[bytes] = []
            with self._conn.cursor() as cur, cur.copy(store._sql.copy) as copy:
                for record in records:
                    problem, leaf = _import_problem(record, head, store.hmac_key)
                    if problem is not None:
                        self.aborted = problem
                        raise TamperedError(record.seq, problem)
                    copy.write_row(_row(record))
                    assert leaf is not None
                    leaves.append(leaf)
                    head = Checkpoint(record.seq, record.hash)
            with self._conn.cursor() as cur, cur.copy(store._sql.tree_copy) as copy:
                for node in _tree_copy_rows(grow(tree, leaves)):
                    copy.write_row(node)
            self.tree = tree
            self._head = head
        except psycopg.Error as exc:
            raise self._failed(exc, "import") from exc
        return head


def _clock_from(
    given: Callable[[], datetime] | None, server_now: datetime
) -> Callable[[], datetime]:
    """The store's clock, or the server's time at the lock carried on by this machine's
    steady clock (records of one block never go backwards, nor before the lock)."""
    if given is not None:
        return given
    began = time.monotonic()

    def clock() -> datetime:
        return server_now + timedelta(seconds=time.monotonic() - began)

    return clock


_BEGIN = b"BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE"
def _simple(conn: psycopg.Connection[Any], statements: list[bytes]) -> list[list[Any]]:
    """Send ``statements`` (arguments written in) as one simple query; the rows of each."""
    results: list[list[Any]] = []
    with conn.cursor() as cur:
        # never prepared by psycopg (the text is new each time; the reads it runs are
        # the session's prepared statements), and rows asked for only where there are
        # some (``description`` would build every column's description first)
        cur.execute(b"; ".join(statements), prepare=False)
        while True:
            result = cur.pgresult
            results.append(cur.fetchall() if result is not None and result.ntuples else [])
            if not cur.nextset():
                return results


# The prepared head row: the head record's columns, then the server clock, the keys
# already taken (of those it was asked about), the tree's size and its frontier's hashes.
_HEAD_COLUMNS = 8
# From this many records on, a group is sent by COPY (two COPYs, then the COMMIT: more
# round trips, less server work per row) rather than as INSERTs sent with the COMMIT
# (one round trip). Measured when those INSERTs were pipelined (not again since they
# became one multi-row INSERT), on the 2-core development machine under load: in one
# process, alternating, the two were level from 8 to 256 records and COPY 3.5x faster at
# 1,024; across 1-8 writer processes (bench/audit_postgres.py --groups) COPY was ahead
# at 64.
_COPY_FROM = 64


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
        row = self._conn.execute(self._store._sql.tree_size).fetchone()
        return int(row[0]) if row else 0

    def nodes(self, wanted: Sequence[Node]) -> dict[Node, bytes]:
        if not wanted:
            return {}
        rows = self._conn.execute(
            self._store._sql.nodes, ([n[0] for n in wanted], [n[1] for n in wanted])
        ).fetchall()
        found = {(int(level), int(idx)): bytes(value) for level, idx, value in rows}
        missing = [node for node in wanted if node not in found]
        if missing:
            raise TreeMismatch(f"node {missing[0]} is missing")
        return found

    def leaf(self, seq: int) -> bytes:
        rows = self._conn.execute(self._store._sql.record, (seq,)).fetchall()
        if not rows:
            raise TreeMismatch(f"record {seq} is missing")
        record = _record(rows[0])
        return record_leaf(record, checked_leaf(record, None, self._store.hmac_key, plain=True))
