"""Requests gathered on the event loop and handed to one thread a group at a time.

``pricecalc serve`` decides on the store's pace, not a thread per request: a request
joins the loop's pending list; when no group is running, everything pending (up to
``bound``, in arrival order) is handed at once to the one decide thread, which decides
and records it as one group (one transaction, one sync); the requests that arrived
meanwhile are the next group, handed over as soon as that one is done. So a group of N
requests costs two thread hand-offs, not 2N, and no thread waits on another's lock — the
decide thread holds the GIL only for decisions, the loop only for HTTP.

Each request gets its own outcome (a value, or an exception raised in its own task), set
only once the thread has returned its group: after the commit. A request whose task is
cancelled meanwhile still waits for its group (as anyio's ``to_thread`` does): a decision
under way is never left running unheld.
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

    __slots__ = ("pending", "running")

    def __init__(self) -> None:
        self.pending: list[tuple[T, asyncio.Future[R]]] = []
        self.running = False


class LoopGroups(Generic[T, R]):
    """Hand requests to ``run`` in groups, in one thread: ``run(items)`` returns one
    outcome per item, in order (a value, or the exception that item's caller is to get);
    whatever ``run`` raises instead is every item's exception."""

    def __init__(
        self,
        run: Callable[[Sequence[T]], Sequence[R | Exception]],
        bound: int,
        name: str = "pricecalc-decide",
    ) -> None:
        self._run = run
        self._bound = bound
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=name)
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
        if not queue.running:
            # Started at the end of this turn of the loop, not now: the requests whose
            # tasks are ready in the same turn (data that came in together) join it.
            queue.running = True
            loop.call_soon(self._start, loop, queue)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            await asyncio.wait((future,))
            raise

    def _start(self, loop: asyncio.AbstractEventLoop, queue: _Queue[T, R]) -> None:
        group = queue.pending[: self._bound]
        del queue.pending[: self._bound]
        queue.running = True
        items = [item for item, _ in group]
        done = self._thread.submit(self._run, items)

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
        queue.running = False
        if queue.pending:  # what arrived while this group ran: the next group
            self._start(loop, queue)

    def close(self) -> None:
        """Wait for the group under way, then stop the thread."""
        self._thread.shutdown(wait=True)


__all__ = ["LoopGroups"]
