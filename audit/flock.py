"""A POSIX ``flock`` that waits without polling, with a timeout.

The writer's locks (``<log>.lock`` and the log's own inode) are held for a group of
records at a time by one process among several. A waiter that polls (try, sleep a
millisecond, try again) hands the lock on up to a millisecond late — longer than the
group it waits for — and burns the cores the holder needs. So a waiter first tries once
without blocking; when the lock is held, it blocks in the kernel, which wakes it the moment
the lock is released. ``flock(2)`` has no timeout, so the blocking call runs in a short-lived
helper thread on a duplicate of the descriptor (the same open file description, hence the
same lock) while the caller waits for it with its timeout; a helper whose caller gave up
(its timeout passed, or it was interrupted) releases the lock as soon as it gets it and
closes its descriptor.

Until such an abandoned helper has ended, the same open file description must not be
locked again: its ``flock`` would succeed at once when the helper gets the lock (a
description that holds a lock is granted it again), and the helper's release would then
release the new holder's lock. :class:`Flock` — one owner locking over and over — waits
for its abandoned helper first, which also keeps it to one helper however often it times
out.

A store's writer waits once per group while others write: a new thread for each wait
cost more CPU than the wait's own work. :class:`Flock` ``(keep=True)`` — the store's
writer lock — keeps its helper thread between waits (parked, holding no descriptor) for
up to :data:`LINGER` seconds, or until :meth:`Flock.close`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Callable

#: How long a kept helper thread waits, idle, for its owner's next wait before it ends.
LINGER = 0.5


class LockTimeout(Exception):
    """The lock was not free within the time allowed."""


def lock_exclusive(fd: int, timeout: float) -> None:
    """Take an exclusive ``flock`` on ``fd``, waiting at most ``timeout`` seconds (a negative
    timeout waits for ever). Raises :class:`LockTimeout` when the time runs out, and the
    ``OSError`` of ``flock`` itself for anything else."""
    Flock().acquire(fd, timeout)


class Flock:
    """The exclusive ``flock`` one owner takes over and over (on one open file description,
    or on a new one each time). Not thread-safe: its owner calls it under its own lock."""

    __slots__ = ("_helper", "_keep", "_left")

    def __init__(self, *, keep: bool = False) -> None:
        self._left: _Waiter | None = None  # a wait given up whose helper may still run
        self._keep = keep  # keep the helper thread between waits (see the module's notes)
        self._helper: _Helper | None = None

    def acquire(self, fd: int, timeout: float) -> None:
        """:func:`lock_exclusive`, after the helper of a wait given up before has ended."""
        left = self._left
        if left is not None:
            start = time.monotonic()
            if not left.ended(timeout):
                raise LockTimeout
            self._left = None
            if timeout > 0:
                timeout = max(0.0, timeout - (time.monotonic() - start))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if timeout == 0:
                raise LockTimeout from None
        if timeout < 0:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return
        waiter = _Waiter(fd)
        self._left = waiter  # until its wait is known to have taken the lock
        waiter.wait(timeout, self._start if self._keep else None)
        self._left = None

    def _start(self, job: Callable[[], None]) -> None:
        """Run ``job`` in the kept helper thread (a new one if it has ended)."""
        helper = self._helper
        if helper is None or not helper.give(job):
            helper = _Helper()  # may raise RuntimeError: no thread to be had
            self._helper = helper
            helper.give(job)

    def close(self) -> None:
        """Let the kept helper thread end (at once when idle; after its wait otherwise)."""
        helper, self._helper = self._helper, None
        if helper is not None:
            helper.close()


class _Helper:
    """A helper thread kept between waits: it runs one job at a time, given by
    :meth:`give`, and ends after :data:`LINGER` seconds without one, or when closed."""

    __slots__ = ("_busy", "_closed", "_go", "_gone", "_job", "_pid", "_state")

    def __init__(self) -> None:
        self._state = threading.Lock()
        self._go = threading.Lock()
        self._go.acquire()
        self._job: Callable[[], None] | None = None
        self._busy = False  # a job was given and has not finished
        self._closed = False
        self._gone = False  # the thread has ended (or will, without running another job)
        self._pid = os.getpid()
        threading.Thread(target=self._run, name="audit-flock", daemon=True).start()

    def give(self, job: Callable[[], None]) -> bool:
        """Hand ``job`` to the thread; False when it has ended (or in a forked child)."""
        if os.getpid() != self._pid:  # a forked child: the thread (and its state) is not here
            return False
        with self._state:
            if self._gone or self._closed or self._busy:
                return False
            self._job = job
            self._busy = True
        self._go.release()
        return True

    def close(self) -> None:
        with self._state:
            if self._closed:
                return
            self._closed = True
            wake = not self._busy and not self._gone
        if wake:
            self._go.release()

    def _run(self) -> None:
        while True:
            got = self._go.acquire(timeout=LINGER)
            with self._state:
                if not got:
                    if self._busy:  # a job was given just as the wait ran out
                        continue
                    self._gone = True
                    return
                job, self._job = self._job, None
                if job is None:  # closed while idle
                    self._gone = True
                    return
            try:
                job()
            finally:
                with self._state:
                    self._busy = False
                    if self._closed:
                        self._gone = True
            if self._gone:
                return


class _Waiter:
    """One blocking ``flock`` in a helper thread, abandoned if its caller stops waiting."""

    __slots__ = ("_abandoned", "_done", "_error", "_fd", "_got", "_state")

    def __init__(self, fd: int) -> None:
        self._fd = os.dup(fd)  # closed by the helper: its own, whatever the caller does
        self._state = threading.Lock()
        self._done = threading.Event()
        self._got = False
        self._abandoned = False
        self._error: OSError | None = None

    def wait(self, timeout: float, start: Callable[[Callable[[], None]], None] | None) -> None:
        """Block in a helper thread (a new one, or through ``start``), at most ``timeout``
        seconds."""
        try:
            try:
                if start is None:
                    threading.Thread(target=self._block, name="audit-flock", daemon=True).start()
                else:
                    start(self._block)
            except RuntimeError:  # no thread (can't start new thread): none will end this
                os.close(self._fd)
                self._done.set()
                raise
            self._done.wait(timeout)
        finally:  # on a timeout, and on an interruption (KeyboardInterrupt) too
            with self._state:
                if not self._got:
                    self._abandoned = True  # the helper lets go when the lock comes
        if self._error is not None:
            raise self._error
        if not self._got:
            raise LockTimeout

    def ended(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` seconds, for ever when negative) for the helper to end."""
        return self._done.wait(None if timeout < 0 else timeout)

    def _block(self) -> None:
        fd = self._fd
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as exc:
                with self._state:
                    self._error = exc
                return
            with self._state:
                if self._abandoned:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                else:
                    self._got = True
        finally:
            with contextlib.suppress(OSError):  # the lock stays with the caller's description
                os.close(fd)
            self._done.set()


__all__ = ["Flock", "LockTimeout", "lock_exclusive"]
