"""The file store's log handle: opening the log, its locks, catching up on what other
processes appended, and the high-water mark it is checked against before writing.

:class:`LogHandle` is the state every later layer works through — the log file, the
head this handle knows, the records read past the index — valid while it holds the
lock (:meth:`LogHandle._locked`): the thread lock, the writers' lock ``<log>.lock`` and
the log file's own lock (:mod:`audit.flock`), taken in that order; on first entry it
reads what others appended since it last looked, checking each record's bytes against
its hash and link (:meth:`LogHandle._catch_up`). The layers above it: making the log
durable after the lock (:mod:`audit.tinydb_sync`), the lookups (:mod:`audit.tinydb_lookup`),
the transaction and its commit (:mod:`audit.tinydb_commit`), and the TinyDB storage
(:mod:`audit.tinydb_log`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from audit.errors import (
    AuditError,
    IncompleteRecordWarning,
    RolledBack,
    StoreLocked,
    StoreUnusable,
    TamperedError,
)
from audit.flock import Flock, LockTimeout
from audit.index import IndexState, SidecarIndex, record_names
from audit.logfile import LogFile, iter_lines
from audit.mark import HighWaterMark
from audit.protocol import (
    GENESIS_HASH,
    Checkpoint,
    Record,
)
from audit.records import (
    Sealer,
    decode_line,
)
from audit.tinydb_index import (
    IndexKeeper,
    IndexUnavailable,
)
from audit.verifying import line_fields

__all__ = ["Clock", "LogHandle", "TailLine"]

logger = logging.getLogger("audit")

#: What a store stamps its records' times by.
Clock = Callable[[], datetime]

#: How many lines past the index a handle keeps in memory between lookups.
_TAIL_KEPT = 1024

#: A line past the index: ``(offset, line, record, the record's index names)``; the
#: record None and the names empty until it is decoded.
TailLine = tuple[int, bytes, Record | None, tuple[str, ...]]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _warn(message: str) -> None:
    logger.warning("%s", message)
    warnings.warn(message, IncompleteRecordWarning, stacklevel=2)


def _release(fd: int) -> None:
    """Unlock and close a lock file's descriptor."""
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


class LogHandle:
    """One handle on a hash-chained JSON Lines log: its files, its locks, and what it
    knows of the log (valid while it holds the lock). See
    :class:`audit.tinydb_log.AuditLogStorage` for the files beside the log."""

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
        # Each holds back a wait after its abandoned one ends; the writers' lock, waited
        # for once a group while others write, keeps its helper thread between waits.
        self._writers_flock = Flock(keep=True)
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
        # lookup checks them as well as the index. ``(offset, line, record, its names)``
        # (record None, names empty: not yet decoded), contiguous over
        # ``[_tail_from, _tail_to)``.
        self._tail: list[TailLine] = []
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
    def _sync_index(self, *, full: bool = False) -> None:
        """Check the sidecar index and bring it up to the durable point (under the lock): it
        never names a record a power cut could still take, so that its head can witness
        the mark. Unless ``full``, it may stay behind by up to
        :data:`audit.tinydb_index.LAG` bytes; the records past it are read from the lines
        kept, or the log (:meth:`_tail_records`)."""
        assert self._end is not None
        if full:
            self._keeper.sync_fully(self._end)
        else:
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


    def _tail_add(
        self,
        offset: int,
        line: bytes,
        record: Record | None,
        names: tuple[str, ...] | None = None,
    ) -> None:
        """Keep a line just read or written at ``offset`` for the lookups past the index
        (a bounded cache: past ``_TAIL_KEPT`` lines it is dropped, and read again from the
        log by the next lookup that needs it); ``names``: its record's, when known."""
        if self._tail_to != offset:
            return
        if len(self._tail) >= _TAIL_KEPT:
            self._tail, self._tail_from, self._tail_to = [], -1, -1
            return
        if names is None:
            names = () if record is None else record_names(record)
        self._tail.append((offset, line, record, names))
        self._tail_to = offset + len(line)


    def _log_lines(self, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        """``(offset, line)`` of the log's lines in ``[start, end)`` (how the keeper reads
        the log to catch the index up)."""
        return iter_lines(self.path, start, end)


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
