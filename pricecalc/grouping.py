"""Group commit for concurrent callers of one :class:`pricecalc.Calculator` (issue 22).

Every decision is durable before it is returned, and one durable write costs one sync of
the disk (a few hundred microseconds on this machine) however many records it carries.
So threads that call ``decide`` at the same time coalesce. Each first *prepares* its
request in its own thread (parsing, keying, evaluating it away from the store: what needs
no lock), so callers prepare while a leader's group syncs. The first to find the
calculator free becomes the **leader**; it waits for callers still preparing (and for
the last group's callers not yet back) — at most :data:`LINGER`, and only while there are
such callers: a caller alone goes at once, with no timer — then takes every request
waiting (up to :data:`MAX_GROUP`, in arrival order), decides and records them as one
store transaction with one sync — the path :meth:`Calculator.decide_prepared` takes — and
hands each caller its own decision or its own exception. It wakes exactly its group's
callers, and hands the lead to the first caller still queued, whose group is what
arrived while the last one synced.

A caller's outcome is set only after its group's transaction has committed (its records
written *and* synced) or failed; a failed commit fails every caller of that group, so
nothing is half-reported. Requests in one group are decided in arrival order, each
against the store's history and the records before it in the group, so every
idempotency, conflict, once-only and history rule holds as if they had come one by one
(two claims for one order line in one group: the first pays, the second is told it was
paid).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")

#: The most requests one group takes (a group of many is written as one transaction;
#: the bound keeps one leader from working for everybody for ever).
MAX_GROUP = 256

#: The longest a leader waits for callers that are preparing a request (parsing and
#: evaluating it in their own threads) to join its group: about what one sync costs, so
#: waiting never costs a caller more than the sync its group would have waited for anyway.
LINGER = 0.0005


class Waiting(Generic[T]):
    """One caller's request while it waits: what the leader decides it with, and its
    outcome — a value, or the exception to raise in the caller's own thread."""

    __slots__ = ("done", "error", "lead", "request", "thread", "value", "wake")

    def __init__(self, request: T) -> None:
        self.request = request
        self.thread = threading.get_ident()
        self.done = False
        self.lead = False  # appointed the next leader by the one stepping down
        self.value: object = None
        self.error: BaseException | None = None
        #: Held until this caller is to wake: its group is done, or it is to lead. Each
        #: caller is woken by itself, never all of them for every group.
        self.wake = threading.Lock()
        self.wake.acquire()


class GroupCommit(Generic[T]):
    """Coalesce concurrent calls into groups handed to ``run`` one group at a time.

    ``run(group)`` must set each waiting request's ``value`` or ``error`` (and return
    only once they may be reported: after the commit); whatever it raises instead becomes
    the error of every request of the group that has no outcome yet.
    """

    def __init__(
        self,
        run: Callable[[Sequence[Waiting[T]]], None],
        bound: int = MAX_GROUP,
        linger: float = LINGER,
    ) -> None:
        self._run = run
        self._bound = bound
        lock = threading.Lock()
        self._lock = lock  # guards everything below
        #: Notified when the leader waiting in :meth:`_take` for arriving callers has no
        #: one left to wait for (see :meth:`_joined`).
        self._gathered = threading.Condition(lock)
        self._gathering = False  # a leader waits on ``_gathered``
        self._arriving = 0  # callers preparing a request, not yet queued
        self._recent: set[int] = set()  # threads of the last group, not yet back
        self._linger = linger
        self._queue: list[Waiting[T]] = []
        self._busy = False
        self._leader: int | None = None  # the leading thread's ident

    def submit(self, request: T) -> object:
        """Decide ``request`` in the next group; return its value or raise its error."""
        return self.submit_from(lambda: request)

    def submit_from(self, prepare: Callable[[], T]) -> object:
        """Prepare a request in the caller's own thread, then decide it in the next group;
        return its value or raise its error.

        ``prepare`` (parsing, evaluating away from the store: whatever needs no lock) runs
        before the request joins the queue, so callers prepare while a leader's group
        syncs. While it runs, the caller counts as *arriving*: a leader about to take a
        group waits for arriving callers — at most :data:`LINGER` seconds — so that they
        join it instead of the next one. A caller alone has no one to wait for.
        An exception from ``prepare`` is the caller's own; nothing is queued.
        """
        lock = self._lock
        me = threading.get_ident()
        with lock:
            self._arriving += 1
            self._recent.discard(me)
        queued = False
        try:
            mine = Waiting(prepare())
            if self._leader == me:
                # Called from inside the group being run (a plugin deciding while it is
                # decided): waiting for the group would wait for ever; run it alone, as
                # the store would (it refuses a second transaction in one thread).
                self._run([mine])
                if mine.error is not None:
                    raise mine.error
                return mine.value
            leads = False
            with lock:
                self._arriving -= 1
                queued = True
                self._queue.append(mine)
                self._joined()
                if not self._busy:
                    self._busy = leads = True  # this caller leads
        finally:
            if not queued:  # prepare failed or was interrupted: nothing joins a group
                with lock:
                    self._arriving -= 1
                    self._joined()
        try:
            if not leads:
                self._wait(mine)  # until its group is done, or it is appointed to lead
                leads = mine.lead and not mine.done
            if leads:
                self._lead(mine)
        finally:
            if leads:
                self._step_down()
        if mine.error is not None:
            raise mine.error
        return mine.value

    def _wait(self, mine: Waiting[T]) -> None:
        """Sleep until ``mine`` is woken. Interrupted (KeyboardInterrupt in the main
        thread), it leaves the queue if no group has taken it yet — and if it had just been
        appointed to lead, it passes the lead on: nobody is left waiting for a leader that
        went away. (Taken into a running group, it is decided whether it waits or not.)"""
        try:
            mine.wake.acquire()
        except BaseException:
            appointed = False
            with self._lock:
                if not mine.done and mine in self._queue:
                    self._queue.remove(mine)
                    appointed, mine.lead = mine.lead, False
            if appointed:
                self._step_down()
            raise

    def _gather_more(self) -> bool:
        """Whether the leader has callers to wait for: some are preparing, or the last
        group's have not come back, and the group is not full. With the lock held."""
        return bool(self._arriving or self._recent) and len(self._queue) < self._bound

    def _joined(self) -> None:
        """A caller joined the queue or gave up preparing (with the lock held): wake the
        leader gathering a group only once it has no one left to wait for — not at every
        arrival, which would wake it (and hand it the interpreter) once per caller."""
        if self._gathering and not self._gather_more():
            self._gathered.notify()

    def _take(self) -> list[Waiting[T]]:
        """The next group: what is queued, once the callers still preparing have joined it
        (or :data:`LINGER` has passed). Called with the lock held."""
        if self._gather_more():
            deadline = time.monotonic() + self._linger
            self._gathering = True
            try:
                while self._gather_more():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._gathered.wait(remaining)
            finally:
                self._gathering = False
        self._recent.clear()
        group = self._queue[: self._bound]
        del self._queue[: self._bound]
        return group

    def _lead(self, mine: Waiting[T]) -> None:
        """Run groups until this caller's own request has been in one (the caller then
        steps down: :meth:`_step_down`)."""
        lock = self._lock
        self._leader = threading.get_ident()
        try:
            while not mine.done:
                with lock:
                    group = self._take()
                try:
                    self._run(group)
                except BaseException as exc:  # every caller of the group hears of it
                    for waiting in group:
                        if waiting.error is None and waiting.value is None:
                            waiting.error = exc
                    if not isinstance(exc, Exception):
                        raise  # an interruption goes on in the leader's thread too
                finally:
                    with lock:
                        for waiting in group:
                            waiting.done = True
                        if len(group) > 1:  # callers likely to call again, soon
                            self._recent.update(waiting.thread for waiting in group)
                    for waiting in group:
                        if waiting is not mine:
                            waiting.wake.release()
        finally:
            self._leader = None

    def _step_down(self) -> None:
        """Hand the lead to the first caller still queued, or leave the calculator free."""
        with self._lock:
            successor = self._queue[0] if self._queue else None
            if successor is None:
                self._busy = False
            else:
                successor.lead = True  # the calculator stays busy: it leads next
        if successor is not None:
            successor.wake.release()


__all__ = ["LINGER", "MAX_GROUP", "GroupCommit", "Waiting"]
