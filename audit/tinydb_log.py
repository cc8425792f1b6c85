"""The log of the embedded backend: one hash-chained JSON Lines file, appended in place.

:class:`AuditLogStorage` is TinyDB's ``Storage`` for :mod:`audit.tinydb_store`, with its
stock model (read the whole database, write it all back) replaced: an append writes only
the new lines at the end (``O_APPEND``) and fsyncs them, under a thread lock, an
inter-process lock (``<log>.lock``, :mod:`audit.flock`) and a lock on the log file itself,
after catching up on what other processes appended.
A group's sync runs after the writer lock is let go and covers every group written before
it, whoever wrote it (docs/scaling.md). :class:`StoreTransaction` is one such append (the
chain rules of :mod:`audit.chain`). Beside it: TinyDB's read view
(:mod:`audit.tinydb_view`), the high-water mark that is also the durable point
(:mod:`audit.mark`), and the sidecar index and tree cache, kept in step by
:class:`audit.tinydb_index.IndexKeeper`.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar, cast

import attrs
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
    RolledBack,
    StoreLocked,
    StoreUnusable,
    TamperedError,
)
from audit.flock import Flock, LockTimeout
from audit.index import IndexBroken, IndexState, SidecarIndex, key_name, tag_name
from audit.logfile import LogFile, WriteFailed, iter_lines, read_blocks
from audit.mark import SLOT, HighWaterMark, Mark, format_mark, parse_mark
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
from audit.tinydb_index import (
    INDEX_FAILURES,
    KEPT_FROM_LEVEL,
    IndexKeeper,
    IndexUnavailable,
    LogTree,
    index_damaged,
    record_names,
)
from audit.tinydb_view import RecordsView
from audit.verifying import line_fields, verify_blocks

__all__ = ["AuditLogStorage", "RecordsView", "StoreTransaction"]

logger = logging.getLogger("audit")


_MISSING = object()

#: What a store stamps its records' times by.
Clock = Callable[[], datetime]

_T = TypeVar("_T")


class _BadRecord(IndexBroken):
    """A record found through the index does not check out against its own hash."""

    def __init__(self, seq: int, problem: str) -> None:
        super().__init__(problem)
        self.seq = seq
        self.problem = problem


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

    Files: ``path`` (the log, which the writer also locks itself), ``path + ".lock"``
    (the writer lock of earlier versions, still taken first), ``path + ".head"`` (the
    high-water mark: the last record a writer wrote, see :meth:`accept_rollback`) and
    ``path + ".idx"`` (the SQLite index, with its ``-wal``/``-shm`` companions) — each
    beside the real log when ``path`` is a symlink. The parent directory must exist.
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
    ) -> None:
        super().__init__()
        if hmac_key is not None and (not isinstance(hmac_key, bytes) or not hmac_key):
            raise TypeError("hmac_key must be non-empty bytes (or None)")
        self.path = os.fspath(path)
        self.hmac_key = hmac_key
        self.lock_timeout = float(lock_timeout)
        self._clock: Clock = clock if clock is not None else _utcnow
        self._sealer = Sealer(hmac_key)
        self._pid = os.getpid()
        self._closed = False
        self._tlock = threading.RLock()
        # The files beside the log sit beside the *real* log: opened through a symlink by
        # one writer and by its real path by another, the log keeps one mark, index, lock.
        # (Named as given when that is already the real path, as messages show it.)
        beside = os.path.realpath(self.path)
        if beside == os.path.abspath(self.path):
            beside = self.path
        self._lock_path = beside + ".lock"
        self._lock_fd: int | None = None  # open while the lock is held
        self._writers_flock = Flock()  # each holds back a wait after its abandoned one ends
        self._log_flock = Flock()
        self._depth = 0
        self._tx_thread: int | None = None
        self._index = SidecarIndex(beside + ".idx", hmac_key)
        self._mark_path = beside + ".head"
        self._mark = HighWaterMark(self._mark_path, self.path, self.lock_timeout)
        self._mark_ok: Checkpoint | None = None  # a head known to be at or past the mark
        # What this handle knows of the file, valid while it holds the lock:
        self._end: int | None = None  # offset up to which it has read (a line boundary)
        self._head = Checkpoint(0, GENESIS_HASH)
        self._head_problem: TamperedError | None = None  # the head cannot be trusted
        self._cut_back: TamperedError | None = None  # the file shrank under this handle
        self._unusable: StoreUnusable | None = None  # a write or sync failed
        # The offset up to which this handle knows the log durable (a sync it made or saw
        # covered it); with the mark's, the durable point the index is brought up to.
        self._durable = 0
        self._durable_lock = threading.Lock()
        self._point: int | None = None  # the durable point, once per lock hold
        # The records past the index (read while catching up, or written here): every
        # lookup checks them as well as the index. ``(offset, line, record)``, contiguous
        # over ``[_tail_from, _tail_to)``.
        self._tail: list[tuple[int, bytes, Record | None]] = []
        self._tail_from = self._tail_to = -1
        self._file = LogFile(self.path)
        # Keeps the index and the tree cache in step with the log, under ``_locked()``.
        self._keeper = IndexKeeper(
            self._index, self._file, hmac_key, self._log_lines, self._index_witness,
            lambda end: self._durable_point() if self._end == end else 0,
        )
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
            self._lock_writers()
            try:
                self._lock_log()
            except BaseException:
                self._unlock_writers()
                raise
            self._depth = 1
            self._keeper.forget_sync()
            self._point = None
            try:
                self._refresh()
                yield
            finally:
                self._keeper.forget_sync()
                self._depth = 0
                with contextlib.suppress(OSError):
                    fcntl.flock(self._file.fd, fcntl.LOCK_UN)
                self._unlock_writers()
        finally:
            self._tlock.release()

    def _lock_writers(self) -> None:
        """Take the writers' lock file ``<log>.lock`` (what writers before 0.3 took alone:
        kept so that one of them running during an upgrade still waits its turn). A waiter
        blocks in the kernel rather than polling (:mod:`audit.flock`)."""
        try:
            fd = os.open(
                self._lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644
            )
        except OSError as exc:
            raise StoreLocked(f"the writer lock {self._lock_path}: {exc}") from exc
        try:
            self._writers_flock.acquire(fd, self.lock_timeout)
        except LockTimeout:
            os.close(fd)
            raise StoreLocked(
                f"could not take the writer lock {self._lock_path} within "
                f"{self.lock_timeout:g}s: another process holds it"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise StoreLocked(f"the writer lock {self._lock_path}: {exc}") from exc
        except BaseException:  # interrupted: never leave the descriptor (and a lock) behind
            _release(fd)
            raise
        self._lock_fd = fd

    def _unlock_writers(self) -> None:
        """Let go of ``<log>.lock``: unlocked, then closed (closing alone would leave it
        locked while a process forked meanwhile still has the descriptor)."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            _release(fd)

    def _lock_log(self) -> None:
        """Lock the log file itself (its inode, through this handle's descriptor).

        The ``.lock`` file alone can be deleted or replaced under a writer, letting a second
        one in; the log's own inode cannot be swapped without the handle noticing (below),
        so the log's lock is what really keeps writers one at a time.
        """
        try:
            self._log_flock.acquire(self._file.fd, self.lock_timeout)
        except LockTimeout:
            raise StoreLocked(
                f"could not lock the audit log {self.path} within "
                f"{self.lock_timeout:g}s: another writer holds it"
            ) from None
        except BaseException:  # interrupted, perhaps just as the lock came: let go of it
            with contextlib.suppress(OSError):
                fcntl.flock(self._file.fd, fcntl.LOCK_UN)
            raise
        try:
            same = os.stat(self.path).st_ino == os.fstat(self._file.fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            fcntl.flock(self._file.fd, fcntl.LOCK_UN)
            raise StoreUnusable(
                f"the audit log {self.path} was replaced or removed while this handle had it "
                "open; open the store again"
            )

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

    def _acknowledged_tail(self, start: int, size: int) -> bool:
        """Whether the unterminated last line at ``start`` is the record the high-water
        mark names (same seq, hash and offset; its bytes hash right): it was acknowledged
        and lost only its newline (a script rewrote the log), so the newline is restored
        rather than the record cut off. Only ever called under the lock."""
        mark = self._mark.read()
        if mark is None or mark[2] != start:
            return False
        record = decode_line(self._file.pread(start, size - start) + b"\n", self.hmac_key)
        if record.record is None or record.problem is not None:
            return False
        if (record.record.seq, record.record.hash) != mark[:2]:
            return False
        try:
            self._file.append(b"\n", size)
        except OSError as exc:
            raise StoreUnusable(
                f"cannot restore the newline after record {mark[0]} of {self.path}: {exc}"
            ) from exc
        _warn(
            f"audit store {self.path}: the last record ({mark[0]}) had lost its newline; "
            "restored (the high-water mark names that record)"
        )
        return True

    def _load_tail(self, size: int) -> None:
        """Find the head by reading the file backwards from its end (never the whole file)."""
        end = self._file.last_newline_end(size)
        if end < size and self._acknowledged_tail(end, size):
            end = size + 1
        else:
            self._drop_torn_tail(end, size)
        self._end = end
        self._head = Checkpoint(0, GENESIS_HASH)
        self._head_problem = None
        self._durable = 0  # re-learnt from the mark: the file may not be what it was
        self._point = None
        self._tail, self._tail_from, self._tail_to = [], -1, -1
        self._keeper.drop_pending()
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
            fields = line_fields(line, self.hmac_key)  # its bytes hash to its hash
            if (
                fields is not None
                and fields[0] == self._head.seq + 1
                and fields[1] == self._head.hash.encode("ascii")
            ):
                self._tail_add(offset, line, None)  # decoded when looked up
                self._head = Checkpoint(fields[0], fields[2].decode("ascii"))
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
            self._tail_add(offset, line, record)
            if problem is not None:
                self._head_problem = TamperedError(expected, problem)
                continue
            assert record is not None
            self._head = Checkpoint(record.seq, record.hash)
        self._drop_torn_tail(complete, size)
        self._end = complete
        self._point = None

    # -- the index (kept by audit.tinydb_index) --------------------------------------
    def _sync_index(self) -> None:
        """Bring the sidecar index up to the durable point (under the lock): it never
        names a record a power cut could still take, so that its head can witness the
        mark. The records past it are read from the log (:meth:`_tail_records`)."""
        assert self._end is not None
        self._keeper.sync(self._end)

    def _durable_point(self) -> int:
        """The offset up to which the log is known durable: what this handle synced or
        saw synced, or the end of the record the high-water mark names (it is written only
        after a sync that covered that record). Once per lock hold and log end."""
        assert self._end is not None
        if self._point is not None:
            return self._point
        point = min(self._durable, self._end)
        if point == self._end:  # its own sync covered all it knows: no need to ask
            self._point = point
            return point
        best = self._mark.slots()
        if best is not None and point < best[4] <= self._end:
            point = best[4]
        self._point = point
        return point

    def _note_durable(self, end: int) -> None:
        with self._durable_lock:
            if end > self._durable:
                self._durable = end

    def _settle(self) -> None:
        """Under the lock: sync the log when this handle cannot tell it durable to its end
        — for the reads that need the index at the end (the tree, verify, the index
        check, accepting a rollback). Nothing on a handle whose sync failed."""
        assert self._end is not None
        if self._durable_point() >= self._end or self._unusable is not None:
            return
        try:
            self._file.sync()
        except OSError as exc:
            logger.warning("audit store %s: could not sync the log (%s)", self.path, exc)
            return
        self._note_durable(self._end)
        self._point = self._end

    def _tail_records(self) -> list[tuple[int, bytes, Record | None]]:
        """The log's lines past the index, up to the end (under the lock, after
        :meth:`_sync_index`): the groups whose syncs may still be in flight. Kept between
        lock holds (catching up and committing add to them), read from the log otherwise."""
        assert self._end is not None
        start = self._keeper.indexed()[0]
        if not self._tail_from <= start <= self._tail_to or self._tail_to > self._end:
            self._tail, self._tail_from, self._tail_to = [], start, start
        elif start > self._tail_from:
            self._tail = [item for item in self._tail if item[0] >= start]
            self._tail_from = start
        if self._tail_to < self._end:
            for offset, line in iter_lines(self.path, self._tail_to, self._end):
                self._tail.append((offset, line, None))
                self._tail_to = offset + len(line)
        tail = self._tail
        for i, (offset, line, record) in enumerate(tail):
            if record is None:  # read while catching up, or unreadable
                found = decode_line(line, None, check=False).record
                if found is not None:
                    tail[i] = (offset, line, found)
        return tail

    def _tail_add(self, offset: int, line: bytes, record: Record | None) -> None:
        """Keep a line just read or written at ``offset`` for the lookups past the index
        (a bounded cache: past ``_TAIL_KEPT`` lines it is dropped, and read again from the
        log by the next lookup that needs it)."""
        if self._tail_to != offset:
            return
        if len(self._tail) >= _TAIL_KEPT:
            self._tail, self._tail_from, self._tail_to = [], -1, -1
            return
        self._tail.append((offset, line, record))
        self._tail_to = offset + len(line)

    def _tail_named(self, name: str) -> list[Record]:
        """The records past the index holding ``name``, each checked."""
        return [
            self._checked_line(record.seq, line, name, offset)
            for offset, line, record in self._tail_records()
            if record is not None and name in record_names(record)
        ]

    def _log_lines(self, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        """``(offset, line)`` of the log's lines in ``[start, end)`` (how the keeper reads
        the log to catch the index up)."""
        return iter_lines(self.path, start, end)

    # -- writing --------------------------------------------------------------------
    def _check_appendable(self) -> None:
        if self._unusable is not None:
            raise StoreUnusable(str(self._unusable))
        links = os.fstat(self._file.fd).st_nlink
        if links > 1:
            raise StoreUnusable(
                f"the audit log {self.path} has {links} names (hard links): its high-water "
                "mark, index and lock sit beside one name, so a writer through another would "
                "not see them. Appends are refused until the other links are removed (keep a "
                "copy with cp instead)"
            )
        if self._cut_back is not None:
            raise TamperedError(self._cut_back.seq, self._cut_back.problem)
        if self._head_problem is not None:
            raise TamperedError(
                self._head_problem.seq,
                f"{self._head_problem.problem}; refusing to append on top of it",
            )
        self._check_mark()

    # -- the high-water mark (SPEC §7: a rolled-back log is refused for writing) -------
    def _write_mark(self, head: Checkpoint, offset: int, end: int | None = None) -> None:
        """Move the high-water mark to ``head`` (:meth:`audit.mark.HighWaterMark.write`);
        this handle then knows its head at or past the mark."""
        if self._mark.write(head, offset, end):
            self._mark_ok = head

    def _publish(self, head: Checkpoint, offset: int, end: int) -> None:
        """Say (in the writer lock file ``<log>.lock``, under that lock) which record the
        last complete group written ends with, so that the next sync — whoever makes it —
        covers it and can move the mark to it. Best effort: a sync without it covers its
        own records."""
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.pwrite(self._lock_fd, format_mark(0, head, offset, end), 0)

    def _written_slot(self, at_least: int) -> Mark | None:
        """The group ``<log>.lock`` says was written last, when the log holds it (its
        line read back and compared) and it ends at or past ``at_least``."""
        try:
            fd = os.open(self._lock_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            slot = parse_mark(os.pread(fd, SLOT, 0))
        except OSError:
            return None
        finally:
            os.close(fd)
        if slot is None or slot[4] < at_least or slot[4] > self._file.size():
            return None
        line = self._file.pread(slot[3], slot[4] - slot[3])
        if not line.endswith(b"\n") or line.count(b"\n") != 1:
            return None
        record = decode_line(line, None, check=False).record
        if record is None or (record.seq, record.hash) != (slot[1], slot[2]):
            return None
        return slot

    def _log_holds(self, seq: int, digest: str, offset: int) -> bool:
        """Whether the log still holds record ``seq`` with hash ``digest`` at ``offset``."""
        if seq == 0:
            return True
        if seq > self._head.seq:
            return False
        if seq == self._head.seq:
            return digest == self._head.hash
        assert self._end is not None
        if offset < self._end:
            chunk = self._file.pread(offset, min(4096, self._end - offset))
            cut = chunk.find(b"\n")
            if cut >= 0 and (offset == 0 or self._file.pread(offset - 1, 1) == b"\n"):
                record = decode_line(chunk[: cut + 1], None, check=False).record
                return record is not None and record.seq == seq and record.hash == digest
        for _, line in iter_lines(self.path, offset, self._end):
            record = decode_line(line, None, check=False).record
            return record is not None and record.seq == seq and record.hash == digest
        return False

    def _index_witness(self, state: IndexState) -> None:
        """The index (its state's MAC checked) is about to be thrown away. It is the mark's
        second witness: when it knew a record the log no longer holds (the log restored
        from an old copy together with its mark, or the mark deleted), the mark is raised
        to that record first, so the rebuild cannot make a rolled-back log acceptable."""
        if state.seq == 0 or self._log_holds(state.seq, state.last_hash, state.last_offset):
            return
        mark = self._mark.read()
        if mark is not None and mark[0] >= state.seq:
            return
        logger.warning(
            "audit store %s: its index knew record %d (hash %s), which the log does not "
            "hold; the high-water mark is raised to it",
            self.path, state.seq, state.last_hash,
        )
        self._write_mark(Checkpoint(state.seq, state.last_hash), state.last_offset)

    def _check_mark(self) -> None:
        """Refuse to write on a log behind its high-water mark (restored from an old copy,
        cut back, or replaced by a fork), naming the lost head. The index is brought up to
        the log first: an index that knew a later head raises the mark (its witness)."""
        head = self._head
        if self._mark_ok == head:
            return
        with contextlib.suppress(IndexUnavailable):
            self._sync_index()
        if self._mark_ok == head:
            return
        mark = self._mark.read()
        if mark is None and self._mark.garbled:
            raise RolledBack(
                0,
                "",
                f"the high-water mark {self._mark_path} is unreadable: the audit log "
                f"{self.path} may have been rolled back with it. Appends are refused until "
                "an operator accepts the rollback (audit accept-rollback)",
            )
        if mark is not None and not self._log_holds(*mark):
            seq, digest, _ = mark
            raise RolledBack(
                seq,
                digest,
                f"the audit log {self.path} was rolled back: record {seq} (hash {digest}) "
                f"was written to it, but the log now ends at record {head.seq} and does not "
                "hold it (restored from an older copy, cut back, or replaced). Records up "
                f"to {seq} may be lost; appends are refused until an operator accepts the "
                "rollback (audit accept-rollback)",
            )
        self._mark_ok = head

    def accept_rollback(self) -> tuple[Checkpoint | None, Checkpoint]:
        """Accept the log as it is: move the high-water mark to its head. Returns the mark
        that was given up (None when the log was not behind it) and the head accepted.
        Records nothing in the log."""
        with self._locked():
            assert self._end is not None
            head = self._head
            with contextlib.suppress(IndexUnavailable):
                self._sync_index()  # an index that knew a later head raises the mark first
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
        for record, line in zip(tx._records, tx._lines, strict=True):
            self._tail_add(offset, line, record)
            offset += len(line)
        self._keeper.hold(at, tx.tree, tx._records, tx._lines, tx._micros, tx._nodes)
        last_at = self._end - len(tx._lines[-1])
        tx._written = Written(at, self._end, self._head, last_at, len(tx._records))
        if sync:
            self._note_durable(self._end)
            self._point = self._end
            with contextlib.suppress(AuditError):  # else the next lookup catches it up
                self._sync_index()  # the rows held just now go in
            self._write_mark(self._head, last_at, self._end)
        else:
            self._publish(self._head, last_at, self._end)

    # -- syncing after the lock (issue 22) -------------------------------------------
    def _make_durable(self, end: int, written: Written | None) -> None:
        """Return once the log is known durable up to ``end`` (what a lock hold saw and
        wrote; ``written``: the group it wrote, or None for a read). Runs after the writer
        lock is let go, so that one process's sync overlaps another's append: under the
        mark's lock, a sync is made only when no sync since ``end`` was written has
        covered it (the mark says so), and it covers — and the mark then names — the last
        group any process wrote before it began. A failed sync makes this handle unusable;
        what became of ``written`` is said (:meth:`_sync_failed`)."""
        if self._durable >= end:
            return
        try:
            self._sync_covering(end, written)
        except OSError as exc:
            self._sync_failed(exc, written)

    def _sync_covering(self, end: int, written: Written | None) -> None:
        with self._mark.locked() as fd:
            best = self._mark.slots(fd) if fd is not None else None
            if best is not None and best[4] >= end:
                self._note_durable(best[4])  # another process's sync covered it
                return
            if self._unusable is not None:  # a sync after a failed one is not trusted
                raise StoreUnusable(
                    f"{self._unusable} (a sync of this handle failed before; whether what "
                    "it read or wrote is durable is unknown)"
                )
            target = None
            if fd is not None and (written is None or self._file.size() != written.end):
                target = self._written_slot(end)  # others wrote after: cover them too
            self._file.sync()
            mark: tuple[Checkpoint, int, int] | None = None
            if target is not None:
                self._note_durable(target[4])
                mark = (Checkpoint(target[1], target[2]), target[3], target[4])
            else:
                self._note_durable(end)
                mark = None if written is None else (written.head, written.last_at, end)
            if fd is not None and mark is not None and (best is None or mark[0].seq > best[1]):
                try:
                    self._mark.put(fd, best, *mark)
                except OSError as exc:
                    logger.warning(
                        "audit store %s: could not write its high-water mark (%s)", self.path, exc
                    )

    def _sync_failed(self, exc: OSError, written: Written | None) -> NoReturn:
        """A sync after the lock failed: this handle refuses further appends. Its own
        records are cut back off the log when nothing was appended after them and no
        mark names them (under the writer lock, then the mark's); otherwise others may
        have chained onto them, so they stay, and the caller is told the outcome is
        unknown — a retry under the same key replays them if they are recorded."""
        if written is None:
            self._unusable = StoreUnusable(
                f"the audit store {self.path} could not sync what other writers appended: "
                f"fsync failed: {exc.strerror or exc}. This handle refuses further appends; "
                "open the store again once the cause is fixed"
            )
            raise StoreUnusable(str(self._unusable)) from exc
        note, cut = self._cut_unsynced(written)
        failed = WriteFailed("fsync", exc, rolled_back=cut, note=note)
        outcome = (
            "They are NOT recorded"
            if cut
            else "Whether they are recorded is unknown: a retry under the same key replays "
            "them if they are"
        )
        self._unusable = StoreUnusable(
            f"the audit store {self.path} could not record {written.count} record(s): "
            f"{failed}. {outcome}. This handle refuses further appends; open the store again "
            "once the cause is fixed"
        )
        raise StoreUnusable(str(self._unusable)) from exc

    def _cut_unsynced(self, written: Written) -> tuple[str, bool]:
        """Cut ``written`` back off the log if it is still its last group and no mark
        names it (under the writer lock, then the mark's); say what became of it."""
        unknown = "they were written but not synced, and may or may not survive"
        with self._tlock:
            try:
                self._lock_writers()
            except StoreLocked:
                return unknown, False
            try:
                try:
                    self._lock_log()
                except (StoreLocked, StoreUnusable):
                    return unknown, False
                try:
                    self._end = None  # re-read the file before anything else
                    with self._mark.locked() as fd:
                        best = self._mark.slots(fd) if fd is not None else None
                        first = written.head.seq - written.count + 1
                        if self._file.size() != written.end or (
                            best is not None and best[1] >= first
                        ):
                            return (
                                "others appended or synced after them, so they stay in "
                                "the log, written but not known durable",
                                False,
                            )
                        try:
                            self._file.truncate(written.start)
                        except OSError as cut:
                            return (
                                f"could not cut the file back to {written.start} bytes "
                                f"({cut.strerror or cut})",
                                False,
                            )
                        if self._lock_fd is not None:  # no sync may take them for written
                            with contextlib.suppress(OSError):
                                os.ftruncate(self._lock_fd, 0)
                        try:
                            self._file.sync()
                        except OSError:
                            return (
                                f"the file was cut back to {written.start} bytes (that cut "
                                "is not yet synced)",
                                True,
                            )
                        return f"the file was cut back to {written.start} bytes", True
                finally:
                    with contextlib.suppress(OSError):
                        fcntl.flock(self._file.fd, fcntl.LOCK_UN)
            finally:
                self._unlock_writers()

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

    # -- reading --------------------------------------------------------------------
    # Every record found through the index is read from the log and checked (its hash or
    # HMAC, its seq, the key or tag it was found by); an answer of none comes only from an
    # index whose head is the log's and whose chain proves it complete (audit.index).
    # Anything else rebuilds the index from the log and asks once more.
    def _lookup(self, find: Callable[[], _T], scan: Callable[[], _T]) -> _T:
        assert self._end is not None
        try:
            try:
                self._sync_index()
                return find()
            except sqlite3.OperationalError as exc:
                if not index_damaged(exc, self._index.path):
                    raise
                self._keeper.rebuild(self._end, exc)
            except INDEX_FAILURES as exc:
                self._keeper.rebuild(self._end, exc)
            try:
                return find()
            except _BadRecord as exc:
                raise TamperedError(exc.seq, exc.problem) from None
            except sqlite3.OperationalError:
                raise
            except INDEX_FAILURES as exc:
                raise AuditError(
                    f"the index {self._index.path} disagrees with the log even after a "
                    f"rebuild: {exc}"
                ) from exc
        except (IndexUnavailable, sqlite3.OperationalError) as exc:
            if self._tx_thread is not None:  # a decision waits on it: never guess
                raise AuditError(f"the index {self._index.path} is unavailable: {exc}") from exc
            logger.warning("audit: %s; reading the log instead", _unavailable(self, exc))
            return scan()

    def _checked_line(self, seq: int, line: bytes, name: str | None, offset: int) -> Record:
        """The record in ``line`` — which the index placed at ``offset`` as record ``seq``
        holding ``name`` — once its hash (one hash of the line) and all that hold."""
        fields = line_fields(line, self.hmac_key)
        if fields is None:
            decoded = decode_line(line, self.hmac_key)
            if decoded.record is None or decoded.record.seq != seq:
                raise IndexBroken(
                    f"record {seq} is not where the index says (offset {offset})"
                )
            raise _BadRecord(seq, decoded.problem or f"record {seq} does not check out")
        if fields[0] != seq:
            raise IndexBroken(f"record {seq} is not where the index says (offset {offset})")
        record = decode_line(line, None, check=False).record
        if record is None:  # its bytes hash right, so this cannot happen but by a bug
            raise _BadRecord(seq, f"record {seq} cannot be decoded")
        if name is not None and name not in record_names(record):
            raise IndexBroken(f"record {seq} does not hold the {name!r} it was found by")
        return record

    def _read_seq(self, seq: int, name: str | None) -> Record:
        found = self._keeper.location(seq)
        if found is None:
            raise IndexBroken(f"the index names record {seq}, past its own head")
        _, offset, length = found
        return self._checked_line(seq, self._file.pread(offset, length), name, offset)

    def _scan_names(self, name: str) -> list[Record]:
        """The records holding ``name``, by streaming the log (when the index cannot be
        used), each checked."""
        assert self._end is not None
        found = []
        for offset, line in iter_lines(self.path, 0, self._end):
            record = decode_line(line, None, check=False).record
            if record is not None and name in record_names(record):
                try:
                    found.append(self._checked_line(record.seq, line, name, offset))
                except _BadRecord as exc:
                    raise TamperedError(exc.seq, exc.problem) from None
        return found

    def _get_locked(self, key: str) -> Record | None:
        name = key_name(key)

        def find() -> Record | None:
            seqs = self._keeper.seqs_by_key(key)
            if seqs:
                return self._read_seq(seqs[0], name)
            found = self._tail_named(name)
            return found[0] if found else None

        def scan() -> Record | None:
            found = self._scan_names(name)
            return found[0] if found else None

        return self._lookup(find, scan)

    def _keys_present_locked(self, keys: Collection[str]) -> set[str]:
        def find() -> set[str]:
            present = {key for key in keys if self._keeper.seqs_by_key(key)}
            names = {key_name(key): key for key in keys if key not in present}
            if names:
                for offset, line, record in self._tail_records():
                    if record is None or record.key is None:
                        continue
                    key = names.pop(key_name(record.key), None)
                    if key is not None:
                        self._checked_line(record.seq, line, key_name(key), offset)
                        present.add(key)
            return present

        def scan() -> set[str]:
            return {key for key in keys if self._scan_names(key_name(key))}

        return self._lookup(find, scan)

    def _find_locked(self, tag: str) -> list[Record]:
        name = tag_name(tag)

        def find() -> list[Record]:
            found = [self._read_seq(seq, name) for seq in self._keeper.seqs_by_tag(tag)]
            return found + self._tail_named(name)

        return self._lookup(find, lambda: self._scan_names(name))

    def _durable_answer(self, read: Callable[[], _T]) -> _T:
        """``read()`` under the lock, returned once the log is durable up to what it saw
        (a record found may be another process's, its sync still in flight)."""
        with self._locked():
            answer = read()
            seen = self._end
            if seen is not None and self._durable_point() >= seen:
                seen = None  # nothing past the durable point was seen
        if seen is not None:
            self._make_durable(seen, None)
        return answer

    def get(self, key: str) -> Record | None:
        """The record with idempotency key ``key``, or None."""
        return self._durable_answer(lambda: self._get_locked(key))

    def find(self, tag: str) -> list[Record]:
        """Every record tagged ``tag``, in seq order."""
        return self._durable_answer(lambda: self._find_locked(tag))

    def _record_locked(self, seq: int) -> Record | None:
        assert self._end is not None
        if seq > self._head.seq or seq < 1:
            return None

        def scan() -> Record | None:
            for offset, line in iter_lines(self.path, 0, self._end or 0):
                record = decode_line(line, None, check=False).record
                if record is not None and record.seq == seq:
                    try:
                        return self._checked_line(seq, line, None, offset)
                    except _BadRecord as exc:
                        raise TamperedError(exc.seq, exc.problem) from None
            return None

        def find() -> Record | None:
            if seq <= self._keeper.indexed()[1]:
                return self._read_seq(seq, None)
            for offset, line, record in self._tail_records():
                if record is not None and record.seq == seq:
                    return self._checked_line(seq, line, None, offset)
            raise IndexBroken(f"record {seq} is neither in the index nor past it")

        return self._lookup(find, scan)

    def record_at(self, seq: int) -> Record | None:
        """Record number ``seq`` (1-based), or None."""
        return self._durable_answer(lambda: self._record_locked(seq))

    def head(self) -> Checkpoint:
        """The chain head; raises :class:`TamperedError` if the tail does not check out."""

        def read() -> Checkpoint:
            if self._head_problem is not None:
                raise TamperedError(self._head_problem.seq, self._head_problem.problem)
            return self._head

        return self._durable_answer(read)

    def count(self) -> int:
        """How many records the log holds (the head's seq)."""
        return self._durable_answer(lambda: self._head.seq)

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
                start, end = self._lookup(
                    lambda: self._checked_span(since_us, until_us), lambda: (0, end)
                )
        return self._scan(start, end, conditions, since_us, until_us)

    def _checked_span(self, since_us: int | None, until_us: int | None) -> tuple[int, int]:
        """Where to stream ``[since, until)`` from: the index's span, widened to the whole
        log unless the lines just outside it are outside the period (the records' times
        rise with their seq, so then nothing in the period lies beyond the span)."""
        assert self._end is not None
        span = self._keeper.span(since_us, until_us)
        if span is None:
            return 0, self._end  # a none that cannot be proven cheaply: stream it all
        start, end = span[0], min(span[1], self._end)
        before = self._file.line_before(start) if start > 0 else None
        if before is not None and not _outside(before[1], since_us, None):
            start = 0
        if end < self._end:
            after = next(iter_lines(self.path, end, self._end), None)
            if after is not None and not _outside(after[1], None, until_us):
                end = self._end
        return start, end

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
                self._sync_index()
            except IndexUnavailable as exc:  # a full disk: the log itself verified
                logger.warning("audit: %s; its tree was not checked", exc)
                return report
            try:
                why = self._keeper.tree_mismatch(report.count, report.root, damaged=False)
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
                self._sync_index()  # the index reaches the log's end (what is compared)
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
                self._sync_index()
            except IndexUnavailable as exc:
                if self._tx_thread is not None:
                    raise
                logger.warning(
                    "audit: %s; the tree is recomputed from the log", _unavailable(self, exc)
                )
                yield LogTree(iter_lines(self.path, 0, self._end), self.hmac_key)
                return
            try:
                yield self._keeper.view()
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
                self._sync_index()
        with self._tlock:
            self._closed = True
            self._file.close()
            self._index.close()


#: A group of this many records or more is synced under the lock, its index rows added at
#: once (as before 0.4): one sync already serves many records, and its rows — thousands,
#: for a batch — are not left for the next reader to add.
_SYNC_UNDER_LOCK = 64
#: How many lines past the index a handle keeps in memory between lookups.
_TAIL_KEPT = 1024

def _release(fd: int) -> None:
    """Unlock and close a lock file's descriptor."""
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def _unavailable(storage: AuditLogStorage, exc: Exception) -> str:
    if isinstance(exc, IndexUnavailable):
        return str(exc)
    return f"the index {storage._index.path} is unavailable: {exc}"


def _outside(line: bytes, since_us: int | None, until_us: int | None) -> bool:
    """Whether the record in ``line`` was recorded before ``since`` / at or after
    ``until`` (False when it cannot be read: then the span is not trusted)."""
    record = decode_line(line, None, check=False).record
    if record is None:
        return False
    try:
        moment = epoch_micros(parse_timestamp(record.recorded_at))
    except ValueError:
        return False
    if since_us is not None:
        return moment < since_us
    return until_us is not None and moment > until_us


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


@attrs.frozen
class Written:
    """Where a commit wrote its group: ``[start, end)``, ending with ``head`` (its line
    at ``last_at``); ``count`` records."""

    start: int
    end: int
    head: Checkpoint
    last_at: int
    count: int


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
        tree = storage._keeper.tree
        return tree.copy() if tree is not None and tree.size == head.seq else None

    def _keep(self, sealed: list[Sealed], nodes: list[tuple[int, bytes]]) -> None:
        for item in sealed:
            self._lines.append(item.line)
            self._micros.append(item.recorded_us)
        self._nodes.extend(nodes)
        last = sealed[-1].record
        self._head = Checkpoint(last.seq, last.hash)
