"""Requests gathered on the event loop and handed to a decide thread a group at a time.

``pricecalc serve`` decides on the store's pace, not a thread per request: a request
joins the loop's pending list; when a decide thread is free, everything pending (up to
``bound``, in arrival order) is handed to it at once, at the end of that turn of the
loop, and decided and recorded as one group (one transaction, one sync); the requests
that arrive meanwhile are the next group. So a group of N requests costs two thread
hand-offs, not 2N, and no thread waits on another's lock. With ``depth`` 2 (the
service's), the next group is prepared and decided while the last one syncs — the
store syncs after its lock is let go — so a sync does not leave the process idle.

Each request gets its own outcome (a value, or an exception raised in its own task), set
only once the thread has returned its group: after the commit. A request whose task is
cancelled meanwhile still waits for its group (as anyio's ``to_thread`` does): a decision
under way is never left running unheld. Requests in different groups were in flight at
the same time (none was answered before the other was sent), so either order is one a
client could have seen; two with one key are never in flight at once (409).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import Future as ThreadFuture, ThreadPoolExecutor
from typing import Generic, TypeVar
from weakref import WeakKeyDictionary

T = TypeVar("T")
R = TypeVar("R")

class _Queue(Generic[T, R]):
    """One event loop's pending requests and whether a group of them is running."""

    __slots__ = ("pending", "running", "starting")

    def __init__(self) -> None:
        self.pending: list[tuple[T, asyncio.Future[R]]] = []
        self.running = 0  # groups handed to the threads, not yet back
        self.starting = False  # a group's start is scheduled for the end of this turn


class LoopGroups(Generic[T, R]):
    """Hand requests to ``run`` in groups, in one thread: ``run(items)`` returns one
    outcome per item, in order (a value, or the exception that item's caller is to get);
    whatever ``run`` raises instead is every item's exception."""

    def __init__(
        self,
        run: Callable[[Sequence[T]], Sequence[R | Exception]],
        bound: int,
        depth: int = 1,
        name: str = "pricecalc-decide",
    ) -> None:
        self._run = run
        self._bound = bound
        self._depth = depth
        self._thread = ThreadPoolExecutor(depth, thread_name_prefix=name)
        self._queues: WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue[T, R]] = (
            WeakKeyDictionary()
        )

    async def submit(self, item: T) -> R:
        """``item``'s outcome, once the group it joined is done."""
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _Queue()
        future: asyncio.Future[R] = loop.create_future()
        queue.pending.append((item, future))
        self._wake(loop, queue)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            await asyncio.wait((future,))
            raise

    def _wake(self, loop: asyncio.AbstractEventLoop, queue: _Queue[T, R]) -> None:
        """Start a group at the end of this turn of the loop, not now — the requests whose
        tasks are ready in the same turn (data that came in together) join it — when a
        thread is free for it."""
        if queue.pending and not queue.starting and queue.running < self._depth:
            queue.starting = True
            loop.call_soon(self._start, loop, queue)

    def _start(self, loop: asyncio.AbstractEventLoop, queue: _Queue[T, R]) -> None:
        queue.starting = False
        if not queue.pending or queue.running >= self._depth:
            return
        group = queue.pending[: self._bound]
        del queue.pending[: self._bound]
        queue.running += 1
        items = [item for item, _ in group]
        try:
            done = self._thread.submit(self._run, items)
        except RuntimeError as exc:  # closed (the service is shutting down): told, not hung
            refused: ThreadFuture[Sequence[R | Exception]] = ThreadFuture()
            refused.set_exception(exc)
            self._finish(loop, queue, group, refused)
            return

        def finished(done: ThreadFuture[Sequence[R | Exception]]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
                loop.call_soon_threadsafe(self._finish, loop, queue, group, done)

        done.add_done_callback(finished)

    def _finish(
        self,
        loop: asyncio.AbstractEventLoop,
        queue: _Queue[T, R],
        group: list[tuple[T, asyncio.Future[R]]],
        done: ThreadFuture[Sequence[R | Exception]],
    ) -> None:
        error = done.exception()
        outcomes = done.result() if error is None else ()
        for index, (_, future) in enumerate(group):
            outcome = error if error is not None else outcomes[index]
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        queue.running -= 1
        self._wake(loop, queue)  # what arrived while this group ran: the next group

    def close(self) -> None:
        """Wait for the group under way, then stop the thread."""
        self._thread.shutdown(wait=True)


__all__ = ["LoopGroups"]
