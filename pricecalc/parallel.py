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

What the writer is handed is as little as it needs: for a decision, a :class:`Draft` — its
key, the questions its rule asked, its record's tags and its payload's canonical JSON bytes
(:class:`audit.records.CanonicalPayload`), small values and bytes that cost little to
unpickle — which the writer appends as it is when nothing is recorded under its keys and
the store answers the questions the same; the request itself is read again by the writer
only when it must decide it (a replay, a conflict, a history that changed, an invalid
line).

A calculator built with an in-process registry (``Calculator(registry=…)``) has plugins a
worker process cannot load: it runs with one process.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

import attrs

from audit.records import CanonicalPayload
from pricecalc import records
from pricecalc.decision import Decision
from pricecalc.engine import Engine
from pricecalc.envelope import Envelope
from pricecalc.errors import InvalidInput
from pricecalc.history import NO_HISTORY, AskedHistory
from pricecalc.plugins import core_version, load_registry
from pricecalc.policy import Policy

T = TypeVar("T")


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


#: The fewest lines for which ``batch``'s default starts workers (:func:`default_jobs`).
MIN_LINES_FOR_WORKERS = 10_000
#: The free cores (cores less the load average) ``batch``'s default wants for workers.
FREE_CORES_FOR_WORKERS = 1.5


def busy_cores() -> float:
    """The machine's one-minute load average (0 where the platform does not say)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not on Unix
        return 0.0


def default_jobs(lines: int | None = None) -> int:
    """``batch``'s default ``--jobs`` for a file of ``lines`` lines or more (None: many):
    two worker processes on two cores, the cores but one (the writer's) above — or 1 (no
    workers) on one core, for a file of fewer than :data:`MIN_LINES_FOR_WORKERS` lines, or
    when fewer than :data:`FREE_CORES_FOR_WORKERS` cores are free (the cores less the
    one-minute load average).

    Measured on the 2-core machine this project runs on (docs/performance.md, "Both
    cores"): with drafts (:class:`Draft`) the writer's own work per line is about half of
    one process's, so the writer and two workers sharing the two cores beat one process
    once the workers are up; starting them (a fork server importing pricecalc) costs
    about 0.3 s, which 10,000 lines repay. Handing lines over costs about a tenth more
    work in all (a quarter more CPU time on a loaded machine), and the writer needs a core
    of its own and the workers about one more: with less free, measured here with one
    core taken by others (runqueue waits of the writer 1.0-1.5 s of a 3.5 s batch of
    20,000 lines), workers only slow the batch: then one process."""
    cores = available_cores()
    if cores <= 1 or (lines is not None and lines < MIN_LINES_FOR_WORKERS):
        return 1
    if cores - busy_cores() < FREE_CORES_FOR_WORKERS:
        return 1
    return max(2, cores - 1)


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


class Draft(NamedTuple):
    """A decision made away from the store, drafted as the writer appends it: its key and
    the earlier keys looked up with it (:meth:`pricecalc.envelope.Envelope.keyed`), the
    history questions its rule asked with the answers no history gave, its record's tags
    (:func:`pricecalc.records.decision_tags`) and its payload's canonical JSON bytes
    (:func:`pricecalc.records.payload`, :class:`audit.records.CanonicalPayload`).

    :meth:`pricecalc.Calculator.decide_prepared` appends it as it is when no record holds
    one of its keys and the store answers every question the same (so the payload, made
    with no history, is the one the writer would have made); otherwise the writer decides
    the request itself, with the store's history."""

    key: str
    aliases: tuple[str, ...]
    asked: tuple[tuple[Any, Any], ...]
    tags: tuple[str, ...]
    canonical: bytes


def draft(
    decision: Decision,
    moment: datetime,
    operator: str,
    asked: tuple[tuple[Any, Any], ...],
    aliases: tuple[str, ...] = (),
) -> Draft | None:
    """The :class:`Draft` of ``decision``, decided at ``moment`` against no history with
    these ``asked`` questions, recorded for ``operator``; None when its payload needs the
    store's general encoding (the writer then decides and encodes it itself)."""
    if decision.request_id is None:
        return None
    relied = records.relied_on(asked, decision.kind)
    encoded = CanonicalPayload.encode(  # plain JSON data, as the calculator appends it
        records.payload(decision, moment, operator, relied, core_version()), plain=True
    )
    if encoded is None:
        return None
    return Draft(
        decision.request_id, aliases, asked, records.decision_tags(decision), encoded.canonical
    )


# -- the workers ----------------------------------------------------------------------------
_ENGINE: Engine | None = None
_OPERATOR: str | None = None


#: A file each worker process appends its pid to when it starts, if set (how a test, or
#: an operator in doubt, sees that ``batch --jobs N`` really ran N worker processes).
WORKER_LOG_ENV = "PRICECALC_WORKER_LOG"


#: How much lower a worker's scheduling priority is than the writer's (``nice``).
WORKER_NICENESS = 5


def _start_worker(policy: Policy, disabled: tuple[str, ...], operator: str | None) -> None:
    global _ENGINE, _OPERATOR
    if hasattr(os, "nice"):  # the writer, who records every line, goes first for a core
        os.nice(WORKER_NICENESS)
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


#: What a fork server imports once, before it forks the workers (:func:`_context`): the
#: main script, as spawn would in every worker (the ``pricecalc`` command: the command
#: line; ``python -m pricecalc``: nothing), and the batch's worker side.
PRELOAD = ("__main__", "pricecalc.batch")


def _context() -> multiprocessing.context.BaseContext:
    """How workers start: forked from a fork server where the platform has one — a fresh
    interpreter started once, which imports pricecalc (:data:`PRELOAD`) before it forks
    each worker — else spawned. Either way a worker inherits no open store, lock or
    thread of this process. Spawned, every worker imports pricecalc (and the ``pricecalc``
    script's command line) itself."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(PRELOAD))
    return context


class Workers:
    """A pool of ``jobs`` worker processes holding the calculator's rules. Work is handed
    out a chunk at a time; results come back as futures, collected in order by the writer.
    Started from a fork server, or spawned (:func:`_context`): a worker inherits no open
    store, lock or thread."""

    def __init__(
        self, policy: Policy, disabled: Iterable[str], operator: str | None, jobs: int
    ) -> None:
        self.jobs = jobs
        self._pool = ProcessPoolExecutor(
            max_workers=jobs,
            mp_context=_context(),
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
    "FREE_CORES_FOR_WORKERS",
    "MIN_LINES_FOR_WORKERS",
    "WORKER_LOG_ENV",
    "WORKER_NICENESS",
    "Draft",
    "Evaluated",
    "Workers",
    "available_cores",
    "busy_cores",
    "default_jobs",
    "draft",
    "evaluate_away",
    "worker_engine",
]
