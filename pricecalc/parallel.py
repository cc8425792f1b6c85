"""Both cores: rules evaluated in worker processes while one writer records, in order.

The one rule path runs in the workers unchanged (:class:`pricecalc.Engine`, built in each
worker from the same entry-point plugins and policy as the calculator's). What a worker
cannot know is the audit store, so it decides against *no history* and remembers every
question its rule asked (:class:`pricecalc.history.AskedHistory`). The writer — the one
process holding the store's writer lock — takes the results in order and, before
recording a decision whose rule read history, asks the same questions of the store
(committed records and the chunk's own pending ones); if any answer differs (a second
claim for an order already paid, a void of a record already voided, two requests for one
order in flight) it decides that request again itself, with the real history. So the
guarantees are those of one process: one output row per line in order, nothing reported
before it is durable, idempotent replays, paid once.

A calculator built with an in-process registry (``Calculator(registry=…)``) has plugins a
worker process cannot load: it runs with one process.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

import attrs

from pricecalc.decision import Decision
from pricecalc.engine import Engine
from pricecalc.envelope import Envelope
from pricecalc.errors import InvalidInput
from pricecalc.history import NO_HISTORY, AskedHistory
from pricecalc.plugins import load_registry
from pricecalc.policy import Policy

T = TypeVar("T")


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_jobs() -> int:
    """``batch``'s default ``--jobs``: 1 on a machine of two cores or fewer, else one
    worker per core but one (the writer's). Measured on the 2-core machine this project
    runs on (docs/performance.md, ``python -m bench --only concurrency``), two workers
    gained nothing over one process when the machine was busy and lost up to 2.7x: the
    writer, which still seals, hashes and writes every record, and the hand-over of each
    decision between processes take the second core's gain. With three or more cores the
    writer has one of its own."""
    cores = available_cores()
    return 1 if cores <= 2 else cores - 1


@attrs.frozen
class Evaluated:
    """A decision made away from the store, waiting for the writer: the decision, or the
    invalid input found, or neither when something else failed (the writer then decides
    the request itself and reports it); the clock it was decided at; and the history
    questions its rule asked, with the answers it got from no history."""

    moment: datetime
    decision: Decision | None = None
    invalid: InvalidInput | None = None
    asked: tuple[tuple[Any, Any], ...] = ()


def evaluate_away(
    engine: Engine, envelope: Envelope, moment: datetime, operator: str | None
) -> Evaluated:
    """Decide ``envelope`` as the writer would, but against no history (module docstring)."""
    asked = AskedHistory(NO_HISTORY)
    try:
        decision = engine.evaluate(envelope, now=moment, history=asked, operator=operator)
    except InvalidInput as exc:
        return Evaluated(moment, invalid=exc, asked=tuple(asked.asked))
    except Exception:  # a plugin, the policy: the writer decides it and names the cause
        return Evaluated(moment)
    return Evaluated(moment, decision=decision, asked=tuple(asked.asked))


# -- the workers ----------------------------------------------------------------------------
_ENGINE: Engine | None = None
_OPERATOR: str | None = None


#: A file each worker process appends its pid to when it starts, if set (how a test, or
#: an operator in doubt, sees that ``batch --jobs N`` really ran N worker processes).
WORKER_LOG_ENV = "PRICECALC_WORKER_LOG"


def _start_worker(policy: Policy, disabled: tuple[str, ...], operator: str | None) -> None:
    global _ENGINE, _OPERATOR
    _ENGINE = Engine(load_registry(policy, disabled), policy)
    _OPERATOR = operator
    log = os.environ.get(WORKER_LOG_ENV)
    if log:
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"{os.getpid()}\n")


def worker_engine() -> tuple[Engine, str | None]:
    """The engine and named operator of this worker process (set when it started)."""
    if _ENGINE is None:  # pragma: no cover - only ever called inside a started worker
        raise RuntimeError("not a pricecalc worker process")
    return _ENGINE, _OPERATOR


def _evaluate_all(envelopes: list[Envelope], moment: datetime) -> list[Evaluated]:
    engine, operator = worker_engine()
    return [evaluate_away(engine, envelope, moment, operator) for envelope in envelopes]


class Workers:
    """A pool of ``jobs`` worker processes holding the calculator's rules. Work is handed
    out a chunk at a time; results come back as futures, collected in order by the writer.
    Started with ``spawn``: a worker inherits no open store, lock or thread."""

    def __init__(
        self, policy: Policy, disabled: Iterable[str], operator: str | None, jobs: int
    ) -> None:
        self.jobs = jobs
        self._pool = ProcessPoolExecutor(
            max_workers=jobs,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(policy, tuple(sorted(disabled)), operator),
        )

    def submit(self, function: Callable[..., T], *args: Any) -> Future[T]:
        return self._pool.submit(function, *args)

    def evaluate(self, envelopes: list[Envelope], moment: datetime) -> Future[list[Evaluated]]:
        return self.submit(_evaluate_all, envelopes, moment)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


__all__ = [
    "WORKER_LOG_ENV",
    "Evaluated",
    "Workers",
    "available_cores",
    "default_jobs",
    "evaluate_away",
    "worker_engine",
]
