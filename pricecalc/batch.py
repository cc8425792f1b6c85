"""Running a batch file through :meth:`pricecalc.Calculator.decide_many`, in chunks.

A file is read, decided and written ``chunk_size`` lines at a time (one group commit per
chunk), so memory stays flat whatever the file's size. One output row per input line, in
order; nothing is reported before it is durable.

**Stable ids.** A request without ``request_id`` gets
``batch-<first 16 hex digits of the file's SHA-256>-line-<n>`` — the same file run again
gives the same ids, so an interrupted batch re-run records nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from pricecalc.calculator import Calculator
from pricecalc.errors import InvalidInput, PricecalcError
from pricecalc.reading import FileLine
from pricecalc.rows import Summary, as_recorded, decision_row

DEFAULT_CHUNK_SIZE = 500


def stable_request_id(digest: str, number: int) -> str:
    """The id given to a request without ``request_id``: file content hash + line number."""
    return f"batch-{digest[:16]}-line-{number}"


def with_request_id(request: Any, digest: str, number: int) -> Any:
    """The request with a stable ``request_id`` when it has none (objects only)."""
    if isinstance(request, dict) and request.get("request_id") is None:
        return {**request, "request_id": stable_request_id(digest, number)}
    return request


class BatchStopped(PricecalcError):
    """A line could not be decided for a reason that is not its input (a plugin, the policy).

    Lines before it have been decided, recorded and written; running the same file again
    replays them and goes on from here.
    """

    def __init__(self, line: int, cause: Exception) -> None:
        self.line = line
        self.cause = cause
        super().__init__(f"line {line}: {cause}")


Emit = Callable[[FileLine, Mapping[str, Any] | None, str | None], None]


def _chunks(
    items: Iterable[tuple[FileLine, int]], size: int
) -> Iterator[list[tuple[FileLine, int]]]:
    chunk: list[tuple[FileLine, int]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def run_batch(
    calc: Calculator,
    lines: Iterable[tuple[FileLine, int]],
    digest: str,
    emit: Emit,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Callable[[int], None] = lambda position: None,
) -> Summary:
    """Decide ``lines`` in chunks (one group commit each), emitting one row per line in order.

    ``emit(line, decision_dict, error)`` gets the SPEC §8 decision (with ``audit``) or the
    error of an invalid line. Requests without ``request_id`` get a stable one
    (:func:`stable_request_id`). Decisions already in the store are replayed, not recorded
    again. Raises :class:`BatchStopped` when a line fails for a reason that is not its input.
    """
    summary = Summary()
    start_seq = calc.store.head().seq
    for chunk in _chunks(lines, max(1, chunk_size)):
        pending = [
            (line, with_request_id(line.request, digest, line.number))
            for line, _ in chunk
            if line.error is None
        ]
        decided: dict[int, Mapping[str, Any] | str] = {}
        try:
            items = calc.decide_many([req for _, req in pending], on_invalid="collect")
        except (PricecalcError, TypeError):
            # Something other than one line's input failed (a plugin, the policy): decide
            # the chunk line by line so that the lines before it are kept, and name it.
            for line, req in pending:
                try:
                    decided[line.number] = calc.decide(req).to_dict()
                except InvalidInput as exc:
                    decided[line.number] = str(exc)
                except (PricecalcError, TypeError) as exc:
                    _emit_chunk(chunk, decided, emit, summary, start_seq, stop=line.number)
                    raise BatchStopped(line.number, exc) from exc
        else:
            for (line, _), item in zip(pending, items, strict=True):
                if item.decision is not None:
                    decided[line.number] = item.decision.to_dict()
                else:
                    decided[line.number] = str(item.error)
        _emit_chunk(chunk, decided, emit, summary, start_seq)
        progress(chunk[-1][1])
    return summary


def _emit_chunk(
    chunk: Sequence[tuple[FileLine, int]],
    decided: Mapping[int, Mapping[str, Any] | str],
    emit: Emit,
    summary: Summary,
    start_seq: int,
    stop: int | None = None,
) -> None:
    for line, _ in chunk:
        if stop is not None and line.number >= stop:
            return
        outcome = decided.get(line.number, line.error)
        if isinstance(outcome, Mapping):
            audit = outcome.get("audit") or {}
            summary.add_decision(outcome, replayed=int(audit.get("seq", 0)) <= start_seq)
            emit(line, outcome, None)
        else:
            summary.add_invalid()
            emit(line, None, outcome)


def batch_row(
    line: FileLine, decision: Mapping[str, Any] | None, error: str | None
) -> dict[str, Any]:
    """The JSON Lines output of one line: the SPEC §8 decision, or the invalid-line shape."""
    if decision is not None:
        return as_recorded(decision)
    return {"line": line.number, "status": "invalid", "error": error}


def flat_batch_row(
    line: FileLine, decision: Mapping[str, Any] | None, error: str | None
) -> dict[str, Any]:
    """The CSV / Excel output of one line (:data:`pricecalc.rows.BATCH_COLUMNS`)."""
    request = line.request if isinstance(line.request, Mapping) else {}
    return decision_row(line.number, decision, error, request=request)
