"""The JSON Lines log file: durable appends, rollback, tail scanning and streaming reads.

Every byte the store writes and every sync goes through the module-level names
:data:`os_write`, :data:`os_fsync` and :data:`os_ftruncate`, looked up at call time. Tests
(and anyone who wants to rehearse a full disk) replace them to inject ``ENOSPC``/``EIO``::

    monkeypatch.setattr(audit.logfile, "os_fsync", failing_fsync)

They call :mod:`os` at call time, so patching ``os.fsync`` itself is seen as well.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
from collections.abc import Iterator

__all__ = [
    "LogFile",
    "WriteFailed",
    "iter_lines",
    "os_fsync",
    "os_ftruncate",
    "os_write",
    "read_blocks",
    "read_lines",
]



def os_write(fd: int, data: bytes | memoryview) -> int:
    """``os.write`` (looked up at call time, so patching ``os.write`` works too)."""
    return os.write(fd, data)


def os_fsync(fd: int) -> None:
    """``os.fsync`` (looked up at call time, so patching ``os.fsync`` works too)."""
    os.fsync(fd)


def os_ftruncate(fd: int, length: int) -> None:
    """``os.ftruncate`` (looked up at call time)."""
    os.ftruncate(fd, length)


_CHUNK = 1024 * 1024


class WriteFailed(OSError):
    """A durable append failed; ``rolled_back`` tells whether the file was cut back."""

    def __init__(self, step: str, cause: OSError, *, rolled_back: bool, note: str) -> None:
        super().__init__(cause.errno, f"{step} failed: {cause.strerror or cause}; {note}")
        self.step = step
        self.cause = cause
        self.rolled_back = rolled_back


def fsync_directory(path: str) -> None:
    """fsync the directory holding ``path`` so that a newly created entry survives a crash."""
    directory = os.path.dirname(os.path.abspath(path))
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os_fsync(fd)
    finally:
        os.close(fd)


class LogFile:
    """An open log file. Not thread-safe by itself: the store serialises writers."""

    def __init__(self, path: str) -> None:
        self.path = path
        flags = os.O_RDWR | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        try:
            self.fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            self.fd = os.open(path, flags)
            self.created = False
        else:
            self.created = True
            fsync_directory(path)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def pread(self, offset: int, length: int) -> bytes:
        parts: list[bytes] = []
        while length > 0:
            chunk = os.pread(self.fd, length, offset)
            if not chunk:
                break
            parts.append(chunk)
            offset += len(chunk)
            length -= len(chunk)
        return b"".join(parts)

    def last_newline_end(self, size: int) -> int:
        """The offset just after the last ``\\n`` before ``size`` (0 when there is none)."""
        end, step = size, 4096  # records are usually small: start small, grow
        while end > 0:
            start = max(0, end - step)
            chunk = self.pread(start, end - start)
            pos = chunk.rfind(b"\n")
            if pos >= 0:
                return start + pos + 1
            end, step = start, min(step * 2, _CHUNK)
        return 0

    def line_before(self, end: int) -> tuple[int, bytes] | None:
        """The complete line that ends at ``end`` (just after its ``\\n``): (offset, bytes)."""
        if end <= 0:
            return None
        start = self.last_newline_end(end - 1)
        return start, self.pread(start, end - start)

    def append(self, data: bytes, at: int) -> None:
        """Write ``data`` at the end (``at`` is the current size) and fsync it.

        On any failure the file is cut back to ``at`` (so no partial record stays visible)
        and :class:`WriteFailed` is raised; the caller must treat the handle as unusable.
        """
        self.write(data, at, sync=True)

    def _fail(self, step: str, exc: OSError, at: int) -> None:
        try:
            os_ftruncate(self.fd, at)
        except OSError as cut:
            raise WriteFailed(
                step, exc, rolled_back=False,
                note=f"could not cut the file back to {at} bytes ({cut.strerror or cut})",
            ) from exc
        try:
            os_fsync(self.fd)
        except OSError:
            note = f"the file was cut back to {at} bytes (that cut is not yet synced)"
        else:
            note = f"the file was cut back to {at} bytes"
        raise WriteFailed(step, exc, rolled_back=True, note=note) from exc

    def write(self, data: bytes, at: int, *, sync: bool = False) -> None:
        """Write ``data`` at the end (``at`` is the current size); with ``sync``, fsync it
        too (:meth:`append`). Without, :meth:`sync` follows once the writer lock is
        released, so that one process's sync overlaps another's append and covers it too
        (issue 22). A failed or interrupted write (or sync) is cut back to ``at``."""
        view = memoryview(data)
        step = "write"
        try:
            done = 0
            while done < len(view):
                n = os_write(self.fd, view[done:])
                if n <= 0:
                    raise OSError(errno.EIO, "write returned no progress")
                done += n
            if sync:
                step = "fsync"
                os_fsync(self.fd)
        except OSError as exc:
            self._fail(step, exc, at)
        except BaseException:
            # Interrupted (KeyboardInterrupt, ...): nothing was acknowledged, drop what
            # may have been written, then let the interruption go on.
            with contextlib.suppress(OSError):
                os_ftruncate(self.fd, at)
            raise

    def sync(self) -> None:
        """fsync the file: everything written to it before, by any process, is durable."""
        os_fsync(self.fd)

    def truncate(self, at: int) -> None:
        """Cut the file back to ``at`` bytes (not synced)."""
        os_ftruncate(self.fd, at)

    def cut(self, at: int) -> None:
        """Cut the file back to ``at`` bytes and sync (used to drop a torn last line)."""
        os_ftruncate(self.fd, at)
        os_fsync(self.fd)


def iter_lines(path: str, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """Yield ``(offset, line)`` for the complete lines of ``path`` in ``[start, end)``.

    Uses its own file object, so a reader never disturbs (or is disturbed by) a writer.
    Lines keep their ``\\n``; anything past ``end`` is ignored.
    """
    if end <= start:
        return
    with open(path, "rb", buffering=1024 * 1024) as fh:
        fh.seek(start)
        offset = start
        for line in fh:
            if offset + len(line) > end or not line.endswith(b"\n"):
                return
            yield offset, line
            offset += len(line)
            if offset >= end:
                return


def read_lines(path: str, end: int, chunk: int = _CHUNK) -> Iterator[bytes]:
    """Yield the complete lines of ``path`` in ``[0, end)`` **without** their ``\\n``,
    reading in large chunks (:func:`iter_lines` without offsets or newlines). Like
    :func:`iter_lines`, it stops before a last line that has no ``\\n``."""
    return itertools.chain.from_iterable(read_blocks(path, end, chunk))


def _join(parts: list[bytes]) -> bytes:
    """``b"".join`` (a module name, so a test can count the bytes a read copies)."""
    return b"".join(parts)


def read_blocks(path: str, end: int, chunk: int = _CHUNK) -> Iterator[list[bytes]]:
    """:func:`read_lines` a block at a time: the lines of each ``chunk`` bytes read, as a
    list (the streaming read of ``verify``, which loops over each list).

    Linear in the length of every line: a line longer than a chunk is kept as its pieces
    and joined once, when its end is read (never re-copied chunk after chunk)."""
    with open(path, "rb", buffering=0) as fh:
        done = 0
        pending: list[bytes] = []  # the start of the current line, one piece per chunk
        while done < end:
            data = fh.read(min(chunk, end - done))
            if not data:
                break
            done += len(data)
            cut = data.rfind(b"\n")
            if cut < 0:
                pending.append(data)
                continue
            if pending:
                pending.append(data[:cut])
                lines = _join(pending).split(b"\n")
                pending = []
            else:
                lines = data[:cut].split(b"\n")
            if cut + 1 < len(data):
                pending.append(data[cut + 1 :])
            yield lines
