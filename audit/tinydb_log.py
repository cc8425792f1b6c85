"""The log of the embedded backend: one hash-chained JSON Lines file, appended in place.

:class:`AuditLogStorage` is TinyDB's ``Storage`` for :mod:`audit.tinydb_store`, with its
stock model (read the whole database, write it all back) replaced: an append writes only
the new lines at the end (``O_APPEND``) and fsyncs them, under a thread lock and an
inter-process :mod:`filelock` lock, after catching up on what other processes appended.
:class:`StoreTransaction` is one such append (the chain rules of :mod:`audit.chain`);
:class:`RecordsView` is the read-only, streaming view TinyDB's table reads through. The
sidecar index and the tree cache are kept in step by :class:`audit.tinydb_index.IndexKeeper`.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, NoReturn, cast

import attrs
import filelock
from tinydb import TinyDB
from tinydb.storages import Storage

from audit.canonical import canonical_text, to_json_value
from audit.chain import (
    ChainTransaction,
    TreeMismatch,
    TreeQuestions,
    TreeView,
    check_entries,
)
from audit.errors import (
    AppendOnlyViolation,
    AuditError,
    DuplicateKey,
    IncompleteRecordWarning,
    StoreLocked,
    StoreUnusable,
    TamperedError,
)
from audit.index import Location, SidecarIndex
from audit.logfile import LogFile, iter_lines, os_ftruncate, read_blocks
from audit.merkle import CompactTree
from audit.protocol import (
    GENESIS_HASH,
    Checkpoint,
    Entry,
    Record,
    VerifyReport,
)
from audit.records import (
    Sealed,
    Sealer,
    decode_line,
    epoch_micros,
    parse_timestamp,
    record_to_dict,
)
from audit.tinydb_index import KEPT_FROM_LEVEL, IndexKeeper
from audit.verifying import verify_blocks

__all__ = ["AuditLogStorage", "RecordsView", "StoreTransaction"]

logger = logging.getLogger("audit")

Clock = Callable[[], datetime]

_MISSING = object()


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _warn(message: str) -> None:
    logger.warning("%s", message)
    warnings.warn(message, IncompleteRecordWarning, stacklevel=2)


class AuditLogStorage(Storage, TreeQuestions):
    """A TinyDB ``Storage`` for one hash-chained, append-only JSON Lines log.

    Besides TinyDB's whole-database ``read`` (a lazy, streaming view) and ``write``
    (refused: the log is never rewritten), it offers what the store needs: durable
    appends, transactions, lookups through the sidecar index, streaming and verify.

    Files: ``path`` (the log), ``path + ".lock"`` (the writer lock) and ``path + ".idx"``
    (the SQLite index, with its ``-wal``/``-shm`` companions). The parent directory must
    exist.
    """

    #: The one table an audit log holds (TinyDB's default table name).
    table_name = TinyDB.default_table_name

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        hmac_key: bytes | None = None,
        lock_timeout: float = 30.0,
        clock: Clock | None = None,
        poll_interval: float = 0.001,
    ) -> None:
        super().__init__()
        if hmac_key is not None and (not isinstance(hmac_key, bytes) or not hmac_key):
            raise TypeError("hmac_key must be non-empty bytes (or None)")
        self.path = os.fspath(path)
        self.hmac_key = hmac_key
        self.lock_timeout = float(lock_timeout)
        self._clock: Clock = clock if clock is not None else _utcnow
        self._sealer = Sealer(hmac_key)
        self._poll_interval = poll_interval
        self._pid = os.getpid()
        self._closed = False
        self._tlock = threading.RLock()
        self._flock = filelock.FileLock(self.path + ".lock")
        self._depth = 0
        self._tx_thread: int | None = None
        self._index = SidecarIndex(self.path + ".idx")
        # What this handle knows of the file, valid while it holds the lock:
        self._end: int | None = None  # offset up to which it has read (a line boundary)
        self._head = Checkpoint(0, GENESIS_HASH)
        self._head_problem: TamperedError | None = None  # the head cannot be trusted
        self._cut_back: TamperedError | None = None  # the file shrank under this handle
        self._unusable: StoreUnusable | None = None  # a write or sync failed
        self._file = LogFile(self.path)
        # Keeps the index and the tree cache in step with the log, under ``_locked()``.
        self._keeper = IndexKeeper(self._index, self._file, hmac_key, self._log_lines)
        try:
            with self._locked():
                pass
        except BaseException:
            self._file.close()
            raise

    # -- locking and catching up ----------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the thread lock and the file lock; on first entry, catch up on the file."""
        self._check_open()
        wait = self.lock_timeout if self.lock_timeout >= 0 else -1
        if not self._tlock.acquire(timeout=wait):
            raise StoreLocked(
                f"another thread held the audit store {self.path} for more than "
                f"{self.lock_timeout:g}s"
            )
        try:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            try:
                self._flock.acquire(timeout=self.lock_timeout, poll_interval=self._poll_interval)
            except filelock.Timeout as exc:
                raise StoreLocked(
                    f"could not take the writer lock {self.path}.lock within "
                    f"{self.lock_timeout:g}s: another process holds it"
                ) from exc
            except RuntimeError as exc:  # filelock refuses a wait that could never end
                raise StoreLocked(f"the writer lock {self.path}.lock: {exc}") from exc
            self._depth = 1
            self._keeper.forget_sync()
            try:
                self._refresh()
                yield
            finally:
                self._keeper.forget_sync()
                self._depth = 0
                self._flock.release()
        finally:
            self._tlock.release()

    def _check_open(self) -> None:
        if self._closed:
            raise AuditError(f"the audit store {self.path} is closed")
        if os.getpid() != self._pid:
            raise AuditError(
                "this audit store handle was opened in another process (before a fork); "
                "open the store again in this process"
            )

    def _refresh(self) -> None:
        """Learn the current head: read what others appended since this handle last looked."""
        size = self._file.size()
        if self._end is None:
            self._load_tail(size)
        elif size < self._end:
            self._cut_back = TamperedError(
                self._head.seq,
                f"the log shrank from {self._end} to {size} bytes while this handle had it "
                "open: acknowledged records were removed",
            )
            self._load_tail(size)
        elif size > self._end:
            self._catch_up(size)

    def _drop_torn_tail(self, complete: int, size: int) -> None:
        """Cut an incomplete last line (a crash mid-append). Only ever called under the lock,
        so no writer is half-way through a write."""
        if complete >= size:
            return
        try:
            self._file.cut(complete)
        except OSError as exc:
            raise StoreUnusable(
                f"cannot cut the incomplete last record off {self.path}: {exc}"
            ) from exc
        _warn(
            f"audit store {self.path}: cut off an incomplete last record "
            f"({size - complete} bytes at offset {complete}); it was never acknowledged"
        )

    def _load_tail(self, size: int) -> None:
        """Find the head by reading the file backwards from its end (never the whole file)."""
        end = self._file.last_newline_end(size)
        self._drop_torn_tail(end, size)
        self._end = end
        self._head = Checkpoint(0, GENESIS_HASH)
        self._head_problem = None
        last = self._file.line_before(end)
        if last is None:
            return
        start, line = last
        decoded = decode_line(line, self.hmac_key)
        record = decoded.record
        if record is None:
            self._head_problem = TamperedError(
                None, f"the last line of the log (offset {start}) is not a record: "
                f"{decoded.problem}"
            )
            return
        self._head = Checkpoint(record.seq, record.hash)
        problem = decoded.problem
        if problem is None:
            before = self._file.line_before(start)
            if before is None:
                if record.seq != 1 or record.prev_hash != GENESIS_HASH:
                    problem = f"record {record.seq} is the first line but does not start the chain"
            else:
                prev = decode_line(before[1], self.hmac_key, check=False).record
                if prev is None or prev.seq != record.seq - 1 or prev.hash != record.prev_hash:
                    problem = (
                        f"record {record.seq} does not chain to the line before it "
                        "(a record was removed, replaced or moved)"
                    )
        if problem is not None:
            self._head_problem = TamperedError(record.seq, problem)

    def _catch_up(self, size: int) -> None:
        """Read the records other handles appended since ``self._end``, checking each."""
        assert self._end is not None
        complete = self._end
        for offset, line in iter_lines(self.path, self._end, size):
            complete = offset + len(line)
            if self._head_problem is not None:
                continue
            decoded = decode_line(line, self.hmac_key)
            record = decoded.record
            expected = self._head.seq + 1
            if record is None:
                problem: str | None = f"record {expected} is unreadable: {decoded.problem}"
            elif record.seq != expected:
                problem = f"expected record {expected}, found {record.seq}"
            elif record.prev_hash != self._head.hash:
                problem = f"record {record.seq} does not chain to record {self._head.seq}"
            else:
                problem = decoded.problem
            if problem is not None:
                self._head_problem = TamperedError(expected, problem)
                continue
            assert record is not None
            self._head = Checkpoint(record.seq, record.hash)
        self._drop_torn_tail(complete, size)
        self._end = complete

    # -- the index (kept by audit.tinydb_index) --------------------------------------
    def _sync_index(self) -> None:
        """Bring the sidecar index up to ``self._end`` (under the lock)."""
        assert self._end is not None
        self._keeper.sync(self._end)

    def _log_lines(self, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        """``(offset, line)`` of the log's lines in ``[start, end)`` (how the keeper reads
        the log to catch the index up)."""
        return iter_lines(self.path, start, end)

    # -- writing --------------------------------------------------------------------
    def _check_appendable(self) -> None:
        if self._unusable is not None:
            raise StoreUnusable(str(self._unusable))
        if self._cut_back is not None:
            raise TamperedError(self._cut_back.seq, self._cut_back.problem)
        if self._head_problem is not None:
            raise TamperedError(
                self._head_problem.seq,
                f"{self._head_problem.problem}; refusing to append on top of it",
            )

    def _check_no_transaction(self) -> None:
        if self._tx_thread == threading.get_ident():
            raise AuditError(
                "a transaction is open on this store in this thread: append through it "
                "(tx.append), not through the store"
            )

    def _commit(self, tx: StoreTransaction, *, sync: bool = True) -> None:
        """Write and fsync a transaction's records in one go (``sync=False``: write only,
        the caller syncs after releasing the lock, :meth:`_sync_after`). Any failure makes
        this handle unusable."""
        assert self._end is not None
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
        tx._written = (at, self._end)
        last = tx._records[-1]
        self._head = Checkpoint(last.seq, last.hash)
        self._keeper.committed(at, tx.tree, tx._records, tx._lines, tx._micros, tx._nodes)

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
            outermost = self._depth == 1
            self._commit(tx, sync=not outermost)
        if outermost:
            self._sync_after(len(records), tx._written)
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
            outermost = self._depth == 1
            try:
                yield tx
                tx.close()
                if tx._records:
                    self._commit(tx, sync=not outermost)
            finally:
                tx.close()
                self._tx_thread = None
        if tx._records and outermost:
            self._sync_after(len(tx._records), tx._written)

    def _sync_after(self, count: int, written: tuple[int, int]) -> None:
        """Sync a transaction's records after the lock is released (issue 22): another
        process may append meanwhile; this sync covers everything written before it, so
        it covers these records whoever wrote after them. The records are reported only
        once it succeeds. On a failed sync they are cut back off the log if nobody has
        appended since (``written`` = their ``(start, end)`` offsets), as an append under
        the lock does; if somebody has, they cannot be (others chained on top of them):
        they stay written but unacknowledged — like a crash between write and reply, a
        retry replays them if they survived. Either way this handle refuses further
        appends."""
        try:
            self._file.sync()
            if self._unusable is not None:
                # A sync of this handle failed meanwhile; the kernel reports a write-back
                # error once per open file, so this success proves nothing.
                raise OSError(errno.EIO, "an earlier sync of this handle failed")
        except OSError as exc:
            what = self._cut_unsynced(*written)
            verdict = "acknowledged" if "may or may not" in what else "recorded"
            self._unusable = StoreUnusable(
                f"the audit store {self.path} could not record {count} record(s): fsync "
                f"failed: {exc.strerror or exc}; {what}. They are NOT {verdict}. This handle "
                "refuses further appends; open the store again once the cause is fixed"
            )
            raise StoreUnusable(str(self._unusable)) from exc

    def _cut_unsynced(self, start: int, end: int) -> str:
        """After a failed sync: cut ``[start, end)`` off the log if it is still the last
        thing in it (under both locks); say what became of it."""
        with self._tlock:
            try:
                self._flock.acquire(timeout=self.lock_timeout, poll_interval=self._poll_interval)
            except (filelock.Timeout, RuntimeError):
                return "they were written but not synced, and may or may not survive"
            try:
                self._end = None  # re-read the file before anything else
                if self._file.size() != end:
                    return (
                        "others appended after them, so they stay written but unsynced, "
                        "and may or may not survive; a retry replays them if they do"
                    )
                try:
                    os_ftruncate(self._file.fd, start)
                except OSError as cut:
                    return f"could not cut the file back to {start} bytes ({cut})"
                try:
                    self._file.sync()
                except OSError:
                    return f"the file was cut back to {start} bytes (that cut is not yet synced)"
                return f"the file was cut back to {start} bytes"
            finally:
                self._flock.release()

    # -- reading --------------------------------------------------------------------
    def _read_at(self, location: Location) -> Record:
        seq, offset, length = location
        line = self._file.pread(offset, length)
        decoded = decode_line(line, self.hmac_key)
        record = decoded.record
        if record is None or record.seq != seq or not line.endswith(b"\n"):
            raise TamperedError(
                seq,
                f"record {seq} is not where the index says (offset {offset}): the log was "
                "changed in place; run verify()",
            )
        if decoded.problem is not None:
            raise TamperedError(seq, decoded.problem)
        return record

    def _get_locked(self, key: str) -> Record | None:
        self._sync_index()
        found = self._index.by_key(key)
        return None if found is None else self._read_at(found)

    def _keys_present_locked(self, keys: Collection[str]) -> set[str]:
        self._sync_index()
        return self._index.keys_present(keys)

    def _find_locked(self, tag: str) -> list[Record]:
        self._sync_index()
        return [self._read_at(location) for location in self._index.by_tag(tag)]

    def get(self, key: str) -> Record | None:
        """The record with idempotency key ``key``, or None."""
        with self._locked():
            return self._get_locked(key)

    def find(self, tag: str) -> list[Record]:
        """Every record tagged ``tag``, in seq order."""
        with self._locked():
            return self._find_locked(tag)

    def _record_locked(self, seq: int) -> Record | None:
        self._sync_index()
        found = self._index.by_seq(seq)
        return None if found is None else self._read_at(found)

    def record_at(self, seq: int) -> Record | None:
        """Record number ``seq`` (1-based), or None."""
        with self._locked():
            return self._record_locked(seq)

    def head(self) -> Checkpoint:
        """The chain head; raises :class:`TamperedError` if the tail does not check out."""
        with self._locked():
            if self._head_problem is not None:
                raise TamperedError(self._head_problem.seq, self._head_problem.problem)
            return self._head

    def count(self) -> int:
        """How many records the log holds (the head's seq)."""
        with self._locked():
            return self._head.seq

    def _snapshot_end(self) -> int:
        with self._locked():
            assert self._end is not None
            return self._end

    def iter_lines(self) -> Iterator[tuple[int, bytes]]:
        """``(offset, line)`` of every committed line, streamed from a snapshot of the end."""
        return iter_lines(self.path, 0, self._snapshot_end())

    def iter_dicts(self) -> Iterator[dict[str, Any]]:
        """Every committed record as a plain dict (TinyDB's document form), streamed."""
        for offset, line in self.iter_lines():
            record = decode_line(line, None, check=False).record
            if record is None:
                raise TamperedError(None, f"the line at offset {offset} is not a record")
            yield record_to_dict(record)

    def query(
        self,
        where: Mapping[str, Any] | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[Record]:
        """Stream the records whose payload matches ``where`` recorded in ``[since, until)``.

        ``where`` maps dotted payload paths to required values. The snapshot is taken now;
        records appended later are not included.
        """
        conditions = [
            (tuple(path.split(".")), to_json_value(value)) for path, value in (where or {}).items()
        ]
        since_us = None if since is None else epoch_micros(since)
        until_us = None if until is None else epoch_micros(until)
        with self._locked():
            assert self._end is not None
            start, end = 0, self._end
            if since_us is not None or until_us is not None:
                self._sync_index()
                span = self._index.span(since_us, until_us)
                if span is None:
                    return iter(())
                start, end = span[0], min(span[1], end)
        return self._scan(start, end, conditions, since_us, until_us)

    def _scan(
        self,
        start: int,
        end: int,
        conditions: list[tuple[tuple[str, ...], Any]],
        since_us: int | None,
        until_us: int | None,
    ) -> Iterator[Record]:
        for offset, line in iter_lines(self.path, start, end):
            record = decode_line(line, None, check=False).record
            if record is None:
                raise TamperedError(None, f"the line at offset {offset} is not a record")
            if since_us is not None or until_us is not None:
                moment = epoch_micros(parse_timestamp(record.recorded_at))
                if since_us is not None and moment < since_us:
                    continue
                if until_us is not None and moment >= until_us:
                    continue
            if all(_matches(record.payload, path, value) for path, value in conditions):
                yield record

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
        if report.root is None or report.count == 0:
            return report
        with self._locked():
            self._sync_index()
            why = self._keeper.tree_mismatch(report.count, report.root, damaged=not report.ok)
            if why is None:
                return report
            self._keeper.reset()
        problem = (
            f"the Merkle tree kept in {self._index.path} does not match the log {why}; "
            "it was reset and will be rebuilt from the log"
        )
        return attrs.evolve(report, ok=False, bad_seq=None, problem=problem)

    # -- the Merkle tree (SPEC §9) ----------------------------------------------------
    @contextmanager
    def _tree_view(self) -> Iterator[TreeView]:
        """The tree under the lock, caught up with the log; a mismatch resets the index."""
        with self._locked():
            self._sync_index()
            try:
                yield self._keeper.view()
            except TreeMismatch as exc:
                self._keeper.reset()
                raise TreeMismatch(
                    f"the Merkle tree kept in {self._index.path} does not match the log: "
                    f"{exc}; it was reset and will be rebuilt from the log, try again"
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
        with self._tlock:
            self._closed = True
            self._file.close()
            self._index.close()


def _matches(payload: Mapping[str, Any], path: tuple[str, ...], expected: Any) -> bool:
    value: Any = payload
    for part in path:
        if not isinstance(value, Mapping):
            return False
        value = value.get(part, _MISSING)
        if value is _MISSING:
            return False
    # ``1 == True`` in Python but not in JSON: confirm an equal value has the same encoding.
    return bool(value == expected) and canonical_text(value) == canonical_text(expected)


class StoreTransaction(ChainTransaction):
    """The handle a :meth:`AuditLogStorage.transaction` block works through
    (:class:`audit.chain.ChainTransaction` over the log file).

    Reads see committed records and this transaction's pending appends; appends get their
    seq and hash at once but are written (one write, one fsync) only when the block exits
    cleanly. Belongs to the thread that opened it.
    """

    def __init__(self, storage: AuditLogStorage) -> None:
        super().__init__(storage._sealer)
        self.kept_from_level = KEPT_FROM_LEVEL
        self._storage = storage
        self._head = storage._head
        self._lines: list[bytes] = []
        self._micros: list[int] = []  # each pending record's time (the index's column)
        self._nodes: list[tuple[int, bytes]] = []  # the tree nodes they completed
        self._written = (0, 0)  # where the commit wrote them: (start, end) offsets

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
        storage._check_appendable()
        if keys:
            storage._sync_index()
            for key in keys:
                found = storage._index.by_key(key)
                if found is not None:
                    raise DuplicateKey(key, found[0])
        return self._head, storage._clock

    def _tree_at(self, head: Checkpoint) -> CompactTree | None:
        storage = self._storage
        try:
            storage._sync_index()
        except AuditError as exc:  # appends go on; the index catches up later
            logger.warning("audit index %s unavailable (%s)", storage._index.path, exc)
            return None
        tree = storage._keeper.tree
        return tree.copy() if tree is not None and tree.size == head.seq else None

    def _keep(self, sealed: list[Sealed], nodes: list[tuple[int, bytes]]) -> None:
        for item in sealed:
            self._lines.append(item.line)
            self._micros.append(item.recorded_us)
        self._nodes.extend(nodes)
        last = sealed[-1].record
        self._head = Checkpoint(last.seq, last.hash)


class RecordsView(Mapping[str, Mapping[str, Any]]):
    """TinyDB's view of the table (doc_id string → document), read lazily from the log."""

    def __init__(self, storage: AuditLogStorage) -> None:
        self._storage = storage

    def __getitem__(self, doc_id: str) -> Mapping[str, Any]:
        try:
            seq = int(doc_id)
        except ValueError:
            raise KeyError(doc_id) from None
        record = self._storage.record_at(seq)
        if record is None:
            raise KeyError(doc_id)
        return record_to_dict(record)

    def __iter__(self) -> Iterator[str]:
        for doc in self._storage.iter_dicts():
            yield str(doc["seq"])

    def __len__(self) -> int:
        return self._storage.count()

    def items(self) -> _StreamingItems:  # type: ignore[override]
        return _StreamingItems(self)


class _StreamingItems:
    def __init__(self, view: RecordsView) -> None:
        self._view = view

    def __iter__(self) -> Iterator[tuple[str, Mapping[str, Any]]]:
        for doc in self._view._storage.iter_dicts():
            yield str(doc["seq"]), doc

    def __len__(self) -> int:
        return len(self._view)


