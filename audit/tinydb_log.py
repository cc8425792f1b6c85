"""The log of the embedded backend: one hash-chained JSON Lines file, appended in place.

:class:`AuditLogStorage` is TinyDB's ``Storage`` for :mod:`audit.tinydb_store`, with its
stock model (read the whole database, write it all back) replaced: an append writes only
the new lines at the end (``O_APPEND``) and fsyncs them, under a thread lock, an
inter-process lock (``<log>.lock``, :mod:`audit.flock`) and a lock on the log file itself,
after catching up on what other processes appended.
A group's sync runs after the writer lock is let go and covers every group written before
it, whoever wrote it (docs/scaling.md).

The log handle is built in layers, one module per job, each on the one before:

* :mod:`audit.tinydb_handle` — opening the log, its locks, catching up on others'
  appends, the high-water mark check (:class:`~audit.tinydb_handle.LogHandle`);
* :mod:`audit.tinydb_sync` — making the log durable after the lock;
* :mod:`audit.tinydb_lookup` — lookups through the index, checked against the log;
* :mod:`audit.tinydb_commit` — :class:`StoreTransaction` (the chain rules of
  :mod:`audit.chain`) and its commit;
* here — TinyDB's interface, verify, the index check and the Merkle tree.

Beside them: TinyDB's read view (:mod:`audit.tinydb_view`), the high-water mark that is
also the durable point (:mod:`audit.mark`), and the sidecar index and tree cache, kept in
step by :class:`audit.tinydb_index.IndexKeeper`.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, cast

import attrs
from tinydb import TinyDB
from tinydb.storages import Storage

from audit.chain import (
    TreeMismatch,
    TreeQuestions,
    TreeView,
)
from audit.errors import (
    AppendOnlyViolation,
    AuditError,
    RolledBack,
)
from audit.index import IndexBroken
from audit.logfile import iter_lines, read_blocks
from audit.protocol import (
    Checkpoint,
    VerifyReport,
)
from audit.tinydb_commit import LogWriter, StoreTransaction
from audit.tinydb_handle import Clock
from audit.tinydb_index import (
    INDEX_FAILURES,
    IndexUnavailable,
    index_damaged,
)
from audit.tinydb_lookup import unavailable
from audit.tinydb_tree import KeptTree, LogTree, tree_mismatch
from audit.tinydb_view import RecordsView
from audit.verifying import verify_blocks

__all__ = ["AuditLogStorage", "Clock", "RecordsView", "StoreTransaction"]

logger = logging.getLogger("audit")


class AuditLogStorage(LogWriter, Storage, TreeQuestions):
    """A TinyDB ``Storage`` for one hash-chained, append-only JSON Lines log.

    Besides TinyDB's whole-database ``read`` (a lazy, streaming view) and ``write``
    (refused: the log is never rewritten), it offers what the store needs: durable
    appends, transactions, lookups through the sidecar index, streaming and verify.

    Files: ``path`` (the log, which the writer also locks itself), ``path + ".lock"``
    (the writer lock of earlier versions, still taken first), ``path + ".head"`` (the
    high-water mark: the last record a writer wrote, see :meth:`accept_rollback`) and
    ``path + ".idx"`` (the SQLite index, with its ``-wal``/``-shm`` companions) — each
    beside the real log when ``path`` is a symlink. The parent directory must exist.
    """

    #: The one table an audit log holds (TinyDB's default table name).
    table_name = TinyDB.default_table_name

    def verify(self, checkpoint: Checkpoint | None = None, *, deep: bool = False) -> VerifyReport:
        """Stream the whole log and check every record and link, and the Merkle tree kept in
        the index against the tree of the log (see docs/audit.md). ``deep`` re-derives
        every record's canonical form instead of checking its bytes against its hash.

        Of the kept tree, the root at the verified size is compared: it is what every proof
        is checked against before it leaves the store (with the record's own leaf), so a
        kept node that is wrong elsewhere can never make a wrong proof — the proof that
        needs it is refused, and the tree is reset and rebuilt from the log.
        """
        report = verify_blocks(
            read_blocks(self.path, self._snapshot_end()), self.hmac_key, checkpoint, deep=deep
        )
        if not report.ok or report.root is None or report.count == 0:
            # The chain's own diagnosis (with its record number) comes first: a tree cache
            # built over a damaged log cannot be judged before the log is.
            return report
        with self._locked():
            try:  # a chain intact but behind what this store once wrote (SPEC §7)
                self._check_mark()
            except RolledBack as exc:
                return attrs.evolve(report, ok=False, bad_seq=exc.seq, problem=str(exc))
            self._settle()  # the tree is checked at the log's end
            try:
                self._sync_index(full=True)
            except IndexUnavailable as exc:  # a full disk: the log itself verified
                logger.warning("audit: %s; its tree was not checked", exc)
                return report
            try:
                why = tree_mismatch(self._keeper, report.count, report.root, damaged=False)
            except sqlite3.OperationalError as exc:
                if not index_damaged(exc, self._index.path):
                    logger.warning("audit: the index's tree was not checked (%s)", exc)
                    return report
                why = f"(it cannot be read: {exc})"
            except INDEX_FAILURES as exc:
                why = f"(it cannot be read: {exc})"
            if why is None:
                return report
            self._keeper.reset()
        problem = (
            f"the Merkle tree kept in {self._index.path} does not match the log {why}; "
            "it was reset and will be rebuilt from the log"
        )
        return attrs.evolve(report, ok=False, bad_seq=None, problem=problem)

    def check_index(self) -> list[str]:
        """Cross-check the whole index against the log (``audit verify --deep``): every
        disagreement, as sentences (empty: the index is exactly what the log makes). A
        disagreeing index is thrown away, to be rebuilt from the log at its next use."""
        with self._locked():
            assert self._end is not None
            self._settle()
            with contextlib.suppress(AuditError):
                self._sync_index(full=True)  # the index reaches the log's end (compared)
            problems = self._keeper.check(self._end)
            if problems:
                self._keeper.reset()
            return problems

    # -- the Merkle tree (SPEC §9) ----------------------------------------------------
    @contextmanager
    def _tree_view(self) -> Iterator[TreeView]:
        """The tree under the lock, caught up with the log; a mismatch resets the index."""
        with self._locked():
            assert self._end is not None
            if self._tx_thread is None:
                self._settle()  # the tree at the head: the index brought to the end
            try:
                self._sync_index(full=True)
            except IndexUnavailable as exc:
                if self._tx_thread is not None:
                    raise
                logger.warning(
                    "audit: %s; the tree is recomputed from the log", unavailable(self, exc)
                )
                yield LogTree(iter_lines(self.path, 0, self._end), self.hmac_key)
                return
            try:
                yield KeptTree(self._keeper)
            except TreeMismatch as exc:
                self._keeper.reset()
                raise TreeMismatch(
                    f"the Merkle tree kept in {self._index.path} does not match the log: "
                    f"{exc}; it was reset and will be rebuilt from the log, try again"
                ) from exc
            except sqlite3.OperationalError as exc:
                if not index_damaged(exc, self._index.path):
                    raise
                self._keeper.reset()
                raise TreeMismatch(
                    f"the Merkle tree kept in {self._index.path} cannot be read ({exc}); "
                    "it was reset and will be rebuilt from the log, try again"
                ) from exc
            except (sqlite3.DatabaseError, IndexBroken) as exc:  # never a raw traceback
                self._keeper.reset()
                raise TreeMismatch(
                    f"the Merkle tree kept in {self._index.path} cannot be read ({exc}); "
                    "it was reset and will be rebuilt from the log, try again"
                ) from exc

    # -- TinyDB's Storage interface -------------------------------------------------
    def read(self) -> dict[str, dict[str, Any]] | None:
        """TinyDB's whole-database read, as a lazy view that streams from the log."""
        return {self.table_name: cast(dict[str, Any], RecordsView(self))}

    def write(self, data: dict[str, dict[str, Any]]) -> NoReturn:
        """TinyDB's whole-database write. Refused: an audit log is only ever appended to."""
        raise AppendOnlyViolation(
            "the audit log cannot be rewritten (TinyDB Storage.write); records are only "
            "ever appended"
        )

    def close(self) -> None:
        if self._closed:
            return
        if self._unusable is None and os.getpid() == self._pid:
            # The last group's rows, held until its sync, go into the index now.
            with contextlib.suppress(AuditError, OSError, sqlite3.Error), self._locked():
                self._sync_index(full=True)
        with self._tlock:
            self._closed = True
            self._writers_flock.close()
            self._mark.close()
            self._file.close()
            self._index.close()
