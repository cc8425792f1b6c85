"""Making the file store's log durable after the writer lock is let go (issue 22).

A group's sync runs after the writer lock, under the high-water mark's own lock, and
covers every group written before it, whoever wrote it (docs/scaling.md): the writer
says in ``<log>.lock`` which group it wrote last (:meth:`DurableLog._publish`), the next
sync covers it and moves the mark to it. A failed sync makes the handle unusable and
says what became of its group (cut back when nobody chained on it, else unknown).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Callable
from typing import NoReturn, TypeVar

import attrs

from audit.errors import (
    StoreLocked,
    StoreUnusable,
)
from audit.logfile import WriteFailed
from audit.mark import SLOT, Mark, format_mark, parse_mark
from audit.protocol import (
    Checkpoint,
)
from audit.records import (
    decode_line,
)
from audit.tinydb_handle import LogHandle

__all__ = ["DurableLog", "Written"]

logger = logging.getLogger("audit")

_T = TypeVar("_T")


@attrs.frozen
class Written:
    """Where a commit wrote its group: ``[start, end)``, ending with ``head`` (its line
    at ``last_at``); ``count`` records."""

    start: int
    end: int
    head: Checkpoint
    last_at: int
    count: int


class DurableLog(LogHandle):
    """The log handle's syncs: under the lock for the reads that need the log durable to
    its end (:meth:`_settle`), after it for groups and answers (:meth:`_make_durable`)."""

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
