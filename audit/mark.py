"""The high-water mark ``<log>.head``: the last record the log is known to hold durably.

SPEC §7: a log rolled back (restored from an old copy, cut back, replaced) is refused for
writing, naming the record it lost; the mark beside it is how the store knows. It is
also the store's shared *durable point*: it is written only after a sync that covered its
record (by whichever process made it), so the index is brought up to it and no further
(:mod:`audit.tinydb_log`).

The file holds two slots of :data:`SLOT` bytes written in turn, each with a checksum and a
generation number, so that a write torn by a crash spoils one slot and the other still
holds the mark before it. Writers take the file's own ``flock`` (:meth:`HighWaterMark.locked`):
marks are written one at a time and never move back. It is not fsynced: the log is,
first, so after a crash the mark can lag the log, never lead it.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from json.encoder import encode_basestring_ascii as _json_string  # json.dumps' own
from typing import Any

from audit.flock import Flock, LockTimeout
from audit.protocol import Checkpoint

logger = logging.getLogger("audit")

#: The size of one slot (two slots make the file).
SLOT = 256

#: A slot: ``(generation, seq, hash, offset of its line, end of its line or -1)``.
Mark = tuple[int, int, str, int, int]


def format_mark(generation: int, head: Checkpoint, offset: int, end: int | None = None) -> bytes:
    """One slot naming ``head`` (its line at ``offset``, ending at ``end``).

    The body is what ``json.dumps(fields, separators=(",", ":"))`` writes, put together
    by hand when every number is a plain int (json.dumps with its own separators builds
    an encoder per call: a third of this function's time, once per group)."""
    seq, digest = head.seq, head.hash
    if (
        type(generation) is int
        and type(seq) is int
        and type(offset) is int
        and (end is None or type(end) is int)
        and type(digest) is str
    ):
        tail = "}" if end is None else f',"end":{end}}}'
        body = (
            f'{{"gen":{generation},"seq":{seq},"hash":{_json_string(digest)},'
            f'"offset":{offset}{tail}'
        )
    else:  # anything else as json.dumps writes it
        fields: dict[str, Any] = {"gen": generation, "seq": seq, "hash": digest, "offset": offset}
        if end is not None:
            fields["end"] = end
        body = json.dumps(fields, separators=(",", ":"))
    check = hashlib.sha256(body.encode("ascii")).hexdigest()[:16]
    line = f"{body} {check}\n".encode("ascii")
    slot = line.ljust(SLOT - 1, b" ") + b"\n"
    if (
        len(slot) == SLOT
        and type(digest) is str
        and all(type(v) is int and v >= 0 for v in (generation, seq, offset))
        and (end is None or type(end) is int)
    ):
        # What parse_mark reads from these very bytes (tests/audit/test_mark.py): this
        # process reads back each slot it writes, once per sync.
        if len(_made) >= 8:
            try:
                del _made[next(iter(_made))]  # the oldest
            except (RuntimeError, StopIteration, KeyError):  # another thread's meanwhile
                _made.clear()
        last = end if end is not None and end > offset else -1
        _made[slot] = (generation, seq, digest, offset, last)
    return slot


#: The slots this process wrote lately, with the mark each holds.
_made: dict[bytes, Mark] = {}


def parse_mark(slot: bytes) -> Mark | None:
    """The mark a slot holds, or None (torn, forged, written by hand).

    Remembered for the last few slots read or written (a pure function of the bytes):
    with several processes on one log, each reads the mark and the note in
    ``<log>.lock`` a few times per group, and they change once per sync."""
    made = _made.get(slot)
    return made if made is not None else _parse_mark(slot)


@functools.lru_cache(maxsize=8)
def _parse_mark(slot: bytes) -> Mark | None:
    text = slot.rstrip(b" \n\0")
    body, _, check = text.rpartition(b" ")
    if not body or hashlib.sha256(body).hexdigest()[:16].encode("ascii") != check:
        return None
    try:
        obj = json.loads(body)
        found = (obj["gen"], obj["seq"], obj["hash"], obj["offset"])
    except (ValueError, KeyError, TypeError):
        return None
    if not all(isinstance(v, t) for v, t in zip(found, (int, int, str, int), strict=True)):
        return None
    if found[0] < 0 or found[1] < 0 or found[3] < 0:  # written by hand: no writer's mark
        return None
    end = obj.get("end", -1)
    if not isinstance(end, int) or isinstance(end, bool) or end <= found[3]:
        end = -1
    return (*found, end)


class HighWaterMark:
    """The mark file of the log at ``log_path`` (named in warnings), at ``path``."""

    def __init__(self, path: str, log_path: str, lock_timeout: float) -> None:
        self.path = path
        self._log_path = log_path
        self.lock_timeout = lock_timeout
        #: The file held bytes but no readable slot when it was last read.
        self.garbled = False
        # Syncs after the writer lock wait here for each other's: the threads of this
        # process one at a time, and for the file's lock a helper thread kept between
        # waits (audit.flock), not one started per wait.
        self._guard = threading.Lock()
        self._flock = Flock(keep=True)

    def close(self) -> None:
        """Let the kept helper thread go (the store is closing)."""
        self._flock.close()

    def slots(self, fd: int | None = None) -> Mark | None:
        """The newest good slot (``end`` -1 when the slot does not say, as marks before
        0.4 did not); None when there is none. Read through ``fd`` when given."""
        if fd is None:
            try:
                own = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except FileNotFoundError:
                return None
            try:
                data = os.pread(own, 2 * SLOT, 0)
            finally:
                os.close(own)
        else:
            data = os.pread(fd, 2 * SLOT, 0)
        best = None
        for i in (0, 1):
            slot = parse_mark(data[i * SLOT : (i + 1) * SLOT])
            if slot is not None and (best is None or slot[0] > best[0]):
                best = slot
        self.garbled = best is None and bool(data.strip(b"\0 \n"))
        if self.garbled:
            logger.warning("audit store %s: its high-water mark is unreadable", self._log_path)
        return best

    def read(self) -> tuple[int, str, int] | None:
        """The mark ``(seq, hash, offset of its line)``; None when there is none (a store
        written before marks existed)."""
        best = self.slots()
        return None if best is None else (best[1], best[2], best[3])

    def write(self, head: Checkpoint, offset: int, end: int | None = None) -> bool:
        """Move the mark to ``head`` (its line at ``offset``, ending at ``end``) under the
        file's lock: the next slot is overwritten in place. False (with a warning) when it
        could not be written."""
        with self.locked() as fd:
            if fd is None:
                return False
            try:
                self.put(fd, self.slots(fd), head, offset, end)
            except OSError as exc:
                logger.warning(
                    "audit store %s: could not write its high-water mark (%s)",
                    self._log_path, exc,
                )  # fmt: skip
                return False
        return True

    @staticmethod
    def put(fd: int, best: Mark | None, head: Checkpoint, offset: int, end: int | None) -> None:
        """Write the slot after ``best`` (the newest read through ``fd``, locked)."""
        generation = best[0] + 1 if best is not None else 1
        os.pwrite(fd, format_mark(generation, head, offset, end), (generation % 2) * SLOT)

    @contextmanager
    def locked(self) -> Iterator[int | None]:
        """The mark file, open and locked (``flock``): whoever moves the mark holds it, so
        marks are written one at a time and never move back. Taken alone (a sync after
        the writer lock is let go) or inside the writer lock — never the other way round.
        None (with a warning) when the file cannot be opened or locked: the mark stays."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            logger.warning(
                "audit store %s: cannot open its high-water mark (%s)", self._log_path, exc
            )
            yield None
            return
        guarded = False
        try:
            try:
                start = time.monotonic()
                timeout = self.lock_timeout
                guarded = self._guard.acquire(timeout=-1 if timeout < 0 else timeout)
                if not guarded:
                    raise LockTimeout
                if timeout > 0:
                    timeout = max(0.0, timeout - (time.monotonic() - start))
                self._flock.acquire(fd, timeout)
            except (LockTimeout, OSError) as exc:
                logger.warning(
                    "audit store %s: cannot lock its high-water mark (%s)",
                    self._log_path, exc or "timed out",
                )  # fmt: skip
                yield None
                return
            yield fd
        finally:
            # Unlocked, then closed: closing alone would leave it locked while a process
            # forked meanwhile still has the descriptor.
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            if guarded:
                self._guard.release()


__all__ = ["SLOT", "HighWaterMark", "Mark", "format_mark", "parse_mark"]
