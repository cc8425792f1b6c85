"""The file store's writes: a transaction (:class:`StoreTransaction`, the chain rules of
:mod:`audit.chain` over the log), its commit — one write, synced after the writer lock
is let go (:mod:`audit.tinydb_sync`) or under it for a big group — and accepting a
rollback.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from audit.chain import (
    ChainTransaction,
    check_entries,
)
from audit.errors import (
    AuditError,
    DuplicateKey,
    StoreUnusable,
)
from audit.index import record_names
from audit.merkle import CompactTree
from audit.protocol import (
    Checkpoint,
    Entry,
    Record,
)
from audit.records import (
    Sealed,
)
from audit.tinydb_handle import Clock
from audit.tinydb_index import (
    KEPT_FROM_LEVEL,
    IndexUnavailable,
)
from audit.tinydb_lookup import LogLookups
from audit.tinydb_sync import Written

__all__ = ["LogWriter", "StoreTransaction"]

logger = logging.getLogger("audit")

#: A group of this many records or more is synced under the lock, its index rows added at
#: once (as before 0.4): one sync already serves many records, and its rows — thousands,
#: for a batch — are not left for the next reader to add.
_SYNC_UNDER_LOCK = 64


class LogWriter(LogLookups):
    """The writes of the log handle: appends and transactions, each one group commit."""

    def accept_rollback(self) -> tuple[Checkpoint | None, Checkpoint]:
        """Accept the log as it is: move the high-water mark to its head. Returns the mark
        that was given up (None when the log was not behind it) and the head accepted.
        Records nothing in the log."""
        with self._locked():
            assert self._end is not None
            head = self._head
            with contextlib.suppress(IndexUnavailable):
                self._sync_index(full=True)  # an index that knew a later head raises the mark first
            mark = self._mark.read()
            lost = None
            if mark is not None and not self._log_holds(*mark):
                lost = Checkpoint(mark[0], mark[1])
            last = self._file.line_before(self._end)
            self._keeper.reset(witness=False)  # its memory of the lost head is given up too
            self._settle()  # the mark names only durable records
            self._write_mark(head, last[0] if last is not None else 0, self._end)
            if self._mark_ok != head:
                raise AuditError(f"could not write the high-water mark {self._mark_path}")
            return lost, head

    def _check_no_transaction(self) -> None:
        if self._tx_thread == threading.get_ident():
            raise AuditError(
                "a transaction is open on this store in this thread: append through it "
                "(tx.append), not through the store"
            )

    def _commit(self, tx: StoreTransaction, *, sync: bool) -> None:
        """Write a transaction's records in one go; with ``sync``, fsync them too (here,
        under the lock). Without, the caller makes them durable once the lock is let go
        (:meth:`_make_durable`). A failed write makes this handle unusable."""
        assert self._end is not None
        # The checks before a transaction's first append are made once; the mark is the one
        # thing that can move after them: the index, brought up by the appends (or a read),
        # witnessed a rollback and raised it. Writing over it would accept the rollback.
        self._check_mark()  # one comparison unless the mark moved
        at = self._end
        data = b"".join(tx._lines)
        try:
            if sync:
                self._file.append(data, at)
            else:
                self._file.write(data, at)
        except OSError as exc:
            self._end = None  # re-read the file before anything else
            self._unusable = StoreUnusable(
                f"the audit store {self.path} could not record {len(tx._records)} "
                f"record(s): {exc}. They are NOT recorded. This handle refuses further "
                "appends; open the store again once the cause is fixed"
            )
            raise StoreUnusable(str(self._unusable)) from exc
        except BaseException:
            self._end = None
            self._unusable = StoreUnusable(
                f"an append to the audit store {self.path} was interrupted; nothing was "
                "acknowledged. This handle refuses further appends; open the store again"
            )
            raise
        self._end = at + len(data)
        self._point = None
        last = tx._records[-1]
        self._head = Checkpoint(last.seq, last.hash)
        self._mark_ok = self._head  # it chains onto a head that held the mark
        offset = at
        names = [record_names(record) for record in tx._records]  # for both, once
        for record, line, held in zip(tx._records, tx._lines, names, strict=True):
            self._tail_add(offset, line, record, held)
            offset += len(line)
        self._keeper.hold(at, tx.tree, tx._records, tx._lines, tx._micros, tx._nodes, names)
        last_at = self._end - len(tx._lines[-1])
        tx._written = Written(at, self._end, self._head, last_at, len(tx._records))
        if sync:
            self._note_durable(self._end)
            self._point = self._end
            with contextlib.suppress(AuditError):  # else the next lookup catches it up
                self._sync_index(full=True)  # the rows held just now go in
            self._write_mark(self._head, last_at, self._end)
        else:
            self._publish(self._head, last_at, self._end)

    def append_entries(self, entries: Sequence[Entry]) -> list[Record]:
        """Durably append ``entries`` as one group commit (one write, one fsync)."""
        checked = check_entries(entries)
        if not checked:
            return []
        with self._locked():
            self._check_no_transaction()
            tx = StoreTransaction(self)
            try:
                records = tx.append_checked(checked)
            finally:
                tx.close()
            later = self._depth == 1 and len(tx._records) < _SYNC_UNDER_LOCK
            self._commit(tx, sync=not later)  # else synced after the lock is let go
            seen = self._end
        if later and seen is not None:
            self._make_durable(seen, tx._written)
        return records

    @contextmanager
    def transaction(self) -> Iterator[StoreTransaction]:
        """Hold both locks across read → decide → append; commit once on a clean exit."""
        with self._locked():
            if self._tx_thread is not None:
                raise AuditError("a transaction is already open on this store in this thread")
            self._check_appendable()
            tx = StoreTransaction(self)
            self._tx_thread = threading.get_ident()
            later = self._depth == 1  # the sync, after the lock is let go
            try:
                yield tx
                tx.close()
                if tx._records:
                    later = later and len(tx._records) < _SYNC_UNDER_LOCK
                    self._commit(tx, sync=not later)
            finally:
                tx.close()
                self._tx_thread = None
            seen = self._end
            if tx._written is None and seen is not None and self._durable_point() >= seen:
                seen = None  # nothing past the durable point was seen
        # Nothing is answered — a new record or one found (another process's, maybe still
        # being synced) — before the log is durable up to what the transaction saw.
        if later and seen is not None:
            self._make_durable(seen, tx._written)


class StoreTransaction(ChainTransaction):
    """The handle a :meth:`LogWriter.transaction` block works through
    (:class:`audit.chain.ChainTransaction` over the log file).

    Reads see committed records and this transaction's pending appends; appends get their
    seq and hash at once but are written (one write, one fsync) only when the block exits
    cleanly. Belongs to the thread that opened it.
    """

    def __init__(self, storage: LogWriter) -> None:
        super().__init__(storage._sealer)
        self.kept_from_level = KEPT_FROM_LEVEL
        self._storage = storage
        self._head = storage._head
        self._lines: list[bytes] = []
        self._micros: list[int] = []  # each pending record's time (the index's column)
        self._nodes: list[tuple[int, bytes]] = []  # the tree nodes they completed
        self._appendable = False  # the store's checks before a first append were made
        self._written: Written | None = None  # where the commit wrote them

    def _committed_get(self, key: str) -> Record | None:
        return self._storage._get_locked(key)

    def _committed_keys(self, keys: set[str]) -> set[str]:
        return self._storage._keys_present_locked(keys)

    def _committed_find(self, tag: str) -> list[Record]:
        return self._storage._find_locked(tag)

    def _committed_record(self, seq: int) -> Record | None:
        return self._storage._record_locked(seq)

    def _begin(self, keys: list[str]) -> tuple[Checkpoint, Clock]:
        storage = self._storage
        if not self._appendable:  # once a transaction: nothing it checks changes under the lock
            storage._check_appendable()
            self._appendable = True
        if keys:
            for key in keys:
                found = storage._get_locked(key)
                if found is not None:
                    raise DuplicateKey(key, found.seq)
        return self._head, storage._clock

    def _tree_at(self, head: Checkpoint) -> CompactTree | None:
        storage = self._storage
        try:
            storage._sync_index()
        except AuditError as exc:  # appends go on; the index catches up later
            logger.warning("audit index %s unavailable (%s)", storage._index.path, exc)
            return None
        return storage._keeper.tree_at(head)

    def _keep(self, sealed: list[Sealed], nodes: list[tuple[int, bytes]]) -> None:
        for item in sealed:
            self._lines.append(item.line)
            self._micros.append(item.recorded_us)
        self._nodes.extend(nodes)
        last = sealed[-1].record
        self._head = Checkpoint(last.seq, last.hash)
