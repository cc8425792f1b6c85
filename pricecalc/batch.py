"""Running a batch file through :meth:`pricecalc.Calculator.decide_many`, in chunks.

A file is read, decided and written ``chunk_size`` lines at a time (one group commit per
chunk), so memory stays flat whatever the file's size. One output row per input line, in
order; nothing is reported before it is durable.

**Keys** (SPEC §7). A request without ``request_id`` is keyed by its content
(:func:`pricecalc.envelope.content_key`), never by its place in the file: re-running the
same file, or an edited one, records only the lines that are new or changed, and two
identical lines are one decision (the second a replay). Files decided by pricecalc 0.1
keyed such lines ``batch-<16 hex digits of the file's SHA-256>-line-<n>``
(:func:`legacy_request_id`); that key is looked up too, so a file decided before the
upgrade records nothing new when it is run again.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import IO, Any

import attrs
import orjson

from pricecalc.calculator import BatchItem, Calculator
from pricecalc.decision import AuditRef
from pricecalc.envelope import Envelope
from pricecalc.errors import IdempotencyConflict, InvalidInput, PricecalcError
from pricecalc.files.columns import BUILTIN_LAYOUT, MoneyColumn, RowLayout
from pricecalc.files.reading import Ahead, FileLine, _parse_json_line
from pricecalc.files.rows import Summary, as_recorded, decision_row, money_amounts
from pricecalc.files.writing import jsonl_text
from pricecalc.messages import describe, shown
from pricecalc.parallel import (
    MIN_LINES_FOR_WORKERS,
    Draft,
    default_jobs,
    draft,
    evaluate_away,
    worker_engine,
)
from pricecalc.sameness import keyed_by_meaning
from pricecalc.serialize import text_problem

DEFAULT_CHUNK_SIZE = 500


@attrs.frozen
class Origin:
    """Where a batch's lines come from, carried as one value: the file's SHA-256 (the
    0.1 keys of :func:`legacy_request_id`) and the merchant and campaign that label the
    lines naming none (``--merchant``, ``--campaign``, a token's merchant)."""

    digest: str
    merchant: str | None = None
    campaign: str | None = None


def legacy_request_id(digest: str, number: int) -> str:
    """The key pricecalc 0.1 gave a batch line without ``request_id``: the file's content
    hash and the line number (still looked up, never given any more)."""
    return f"batch-{digest[:16]}-line-{number}"


class BatchStopped(PricecalcError):
    """A line could not be decided for a reason that is not its input (a plugin, the policy).

    Lines before it have been decided, recorded and written; running the same file again
    replays them and goes on from here.
    """

    def __init__(self, line: int, cause: Exception) -> None:
        self.line = line
        self.cause = cause
        super().__init__(f"line {line}: {cause}")


@attrs.frozen
class LineResult:
    """What became of one input line: its decision (the SPEC §8 shape, with ``audit`` and
    ``replayed``), or why none — invalid input (``error``) or an idempotency conflict
    (``conflict``). ``request_id`` and ``kind`` are the line's own, as far as it could be
    read (SPEC §8)."""

    line: FileLine
    decision: Mapping[str, Any] | None = None
    error: str | None = None
    conflict: IdempotencyConflict | None = None
    request_id: str | None = None
    kind: str | None = None

    @property
    def status(self) -> str:
        if self.decision is not None:
            return str(self.decision["status"])
        return "conflict" if self.conflict is not None else "invalid"


Emit = Callable[[LineResult], None]


def _readable(request: Any, name: str) -> str | None:
    """A line's ``request_id`` or ``kind`` when it is usable text (for an invalid row)."""
    if not isinstance(request, Mapping):
        return None
    value = request.get(name)
    if isinstance(value, int) and not isinstance(value, bool) and name == "request_id":
        value = str(value)
    if isinstance(value, str) and value.strip() and text_problem(value) is None:
        return value if len(value) <= 256 else None
    return None


def _envelope(line: FileLine, origin: Origin) -> Envelope | LineResult:
    """The line's request, parsed, labelled with the file's merchant/campaign and keyed."""
    if line.error is not None:
        return LineResult(
            line,
            error=shown(line.error),
            request_id=_readable(line.request, "request_id"),
            kind=_readable(line.request, "kind"),
        )
    try:
        envelope = Envelope.parse(line.request).with_labels(origin.merchant, origin.campaign)
    except (InvalidInput, TypeError) as exc:
        return LineResult(
            line,
            error=describe(exc),
            request_id=_readable(line.request, "request_id"),
            kind=_readable(line.request, "kind"),
        )
    return envelope.keyed(aliases=(legacy_request_id(origin.digest, line.number),))


def _result(line: FileLine, envelope: Envelope, item: BatchItem) -> LineResult:
    if item.decision is not None:
        return LineResult(
            line,
            decision=item.decision.to_dict(),
            request_id=item.decision.request_id,
            kind=item.decision.kind,
        )
    if item.conflict is not None:
        return LineResult(
            line, conflict=item.conflict, request_id=envelope.request_id, kind=envelope.kind
        )
    given = _readable(line.request, "request_id")
    error = describe(item.error) if item.error is not None else str(item.error)
    return LineResult(line, error=error, request_id=given, kind=envelope.kind)


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


#: What a worker hands the writer for a line it decided (:func:`_draft_away`): the
#: decision's :class:`~pricecalc.parallel.Draft`, its JSON Lines row without ``audit``
#: (:func:`batch_row` written by :func:`~pricecalc.files.writing.jsonl_text`) and its kind,
#: status and money (:meth:`Summary.add_new`). None: a line the writer reads and decides
#: itself (an invalid line, a rule's error, a payload needing the general encoding).
Drafted = tuple[Draft, str, tuple[str, str, tuple[Decimal | None, ...]]]


#: A line on its way to a worker: a JSON line's number and bytes, or a sheet's row read.
Wire = tuple[int, bytes] | FileLine


def _wire(line: FileLine) -> Wire:
    return line if line.raw is None else (line.number, line.raw)


def _draft_away(
    chunk: Sequence[Wire],
    origin: Origin,
    moment: datetime,
    recorder: str,
    money: tuple[MoneyColumn, ...],
) -> list[Drafted | None]:
    """In a worker process (:mod:`pricecalc.parallel`): each line read, labelled, keyed by
    meaning, decided against no history and drafted for the writer — everything a line
    needs that does not need the store, so that the writer only checks, seals and appends.
    ``recorder`` is the operator the writer records; ``money`` its summary's columns."""
    engine, operator = worker_engine()
    drafted: list[Drafted | None] = []
    for sent in chunk:
        line = sent if isinstance(sent, FileLine) else _parse_json_line(*sent)
        envelope = _envelope(line, origin)
        made = decision = None
        if isinstance(envelope, Envelope):  # keyed by meaning here too, off the writer (SPEC §7)
            envelope = keyed_by_meaning(
                envelope, registry=engine.registry, policy=engine.merged_policy, now=moment,
                operator=operator,
            )  # fmt: skip
            away = evaluate_away(engine, envelope, moment, operator)
            decision = away.decision
            if decision is not None:
                made = draft(decision, moment, recorder, away.asked, envelope.aliases)
        if made is None or decision is None:
            drafted.append(None)
            continue
        row = jsonl_text(batch_row(LineResult(line, decision=decision.to_dict())))
        amounts = money_amounts(money, decision.kind, decision.result) if decision.approved else ()
        drafted.append((made, row, (decision.kind, decision.status, amounts)))
    return drafted


def _row_with_audit(row: str, audit: AuditRef) -> str:
    """A drafted line's row (:data:`Drafted`) with its place in the chain: what
    ``jsonl_text(batch_row(result))`` writes for the recorded decision (``audit`` is the
    last member of a new decision's SPEC §8 shape, :meth:`pricecalc.Decision.to_dict`)."""
    return f'{row[:-1]},"audit":{{"seq":{audit.seq},"hash":"{audit.hash}"}}}}'


def run_batch(
    calc: Calculator,
    lines: Iterable[tuple[FileLine, int]],
    origin: Origin | str,
    emit: Emit,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Callable[[int], None] = lambda position: None,
    jobs: int | None = 1,
    layout: RowLayout | None = None,
    emit_row: Callable[[str], None] | None = None,
) -> Summary:
    """Decide ``lines`` in chunks (one group commit each), emitting one result per line in
    order, each only once it is durable. ``origin`` is where they come from (a bare
    digest: no merchant or campaign to label them with). ``jobs=None`` is the default
    for as many lines as there are (:func:`pricecalc.parallel.default_jobs`: read ahead up
    to :data:`~pricecalc.parallel.MIN_LINES_FOR_WORKERS`). With ``jobs`` > 1 and more
    than one chunk, the lines are read, decided and drafted in that many worker
    processes, ahead of this one, which checks each draft against the store and records
    them in order (:mod:`pricecalc.parallel`); a single chunk is decided here (no workers
    started). ``emit_row``, when given, takes a drafted line's JSON Lines row as text
    (what ``jsonl_text(batch_row(result))`` would be) instead of ``emit`` taking its result.
    The summary totals the money columns of ``layout`` (default: the calculator's kinds').
    Raises :class:`BatchStopped` when a line fails for a reason that is not its input
    (the lines before it are recorded and emitted)."""
    summary = Summary(layout or RowLayout.of(calc.registry.declarations()))
    origin = origin if isinstance(origin, Origin) else Origin(origin)
    size = max(1, chunk_size)
    ahead_of = lines if isinstance(lines, Ahead) else Ahead(lines)
    more = ahead_of.ahead(size + 1)
    if more == 0:
        return summary
    if jobs is None:
        jobs = default_jobs(ahead_of.ahead(MIN_LINES_FOR_WORKERS))
    workers = calc.workers(jobs) if more > size else None
    ahead: deque[tuple[list[tuple[FileLine, int]], Any]] = deque()
    money = summary.layout.money

    def dispatch(chunk: list[tuple[FileLine, int]]) -> None:
        if workers is None:
            ahead.append((chunk, None))
            return
        moment = calc.now()
        future = workers.submit(
            _draft_away, [_wire(line) for line, _ in chunk], origin, moment, calc.operator, money
        )
        ahead.append((chunk, (future, moment)))

    window = 2 * jobs if workers is not None else 1
    for chunk in _chunks(ahead_of, size):
        dispatch(chunk)
        while len(ahead) >= window:
            _record_chunk(calc, ahead.popleft(), origin, emit, summary, progress, emit_row)
    while ahead:
        _record_chunk(calc, ahead.popleft(), origin, emit, summary, progress, emit_row)
    return summary


def _record_chunk(
    calc: Calculator,
    task: tuple[list[tuple[FileLine, int]], Any],
    origin: Origin,
    emit: Emit,
    summary: Summary,
    progress: Callable[[int], None],
    emit_row: Callable[[str], None] | None = None,
) -> None:
    chunk, away = task
    now = None
    drafts: list[Drafted | None]
    if away is None:
        drafts = [None] * len(chunk)
    else:
        future, now = away
        drafts = future.result()
    # Each line: its draft, or what this process reads of it (its request or why none).
    lines: list[tuple[FileLine, Envelope | LineResult | Draft]] = []
    for (line, _), drafted in zip(chunk, drafts, strict=True):
        if drafted is not None:
            lines.append((line, drafted[0]))
        else:
            line = line.parsed()
            lines.append((line, _envelope(line, origin)))
    pending = [(n, slot) for n, (_, slot) in enumerate(lines) if not isinstance(slot, LineResult)]

    def redo(at: int) -> Envelope:  # a draft the store refused: read its line here
        n = pending[at][0]
        line = lines[n][0].parsed()
        envelope = _envelope(line, origin)
        assert isinstance(envelope, Envelope)  # a worker read it so
        lines[n] = (line, envelope)
        return envelope

    decided: dict[int, BatchItem] = {}
    try:
        items = calc.decide_prepared([slot for _, slot in pending], now=now, redo=redo)
    except (PricecalcError, TypeError):
        # Something other than one line's input failed (a plugin, the policy): decide
        # the chunk line by line so that the lines before it are kept, and name it.
        for at, (n, slot) in enumerate(pending):
            try:
                [item] = calc.decide_prepared([slot], now=now, redo=partial(_at, redo, at))
            except (PricecalcError, TypeError) as exc:
                number = lines[n][0].number
                _emit_chunk(lines, drafts, decided, emit, emit_row, summary, stop=number)
                raise BatchStopped(number, exc) from exc
            decided[n] = item
    else:
        for (n, _), item in zip(pending, items, strict=True):
            decided[n] = item
    _emit_chunk(lines, drafts, decided, emit, emit_row, summary)
    progress(chunk[-1][1])


def _at(redo: Callable[[int], Envelope], at: int, _: int) -> Envelope:
    return redo(at)


def _emit_chunk(
    lines: list[tuple[FileLine, Envelope | LineResult | Draft]],
    drafts: Sequence[Drafted | None],
    decided: Mapping[int, BatchItem],
    emit: Emit,
    emit_row: Callable[[str], None] | None,
    summary: Summary,
    stop: int | None = None,
) -> None:
    for n, (line, slot) in enumerate(lines):
        if stop is not None and line.number >= stop:
            return
        if isinstance(slot, LineResult):
            result = slot
        else:
            item = decided[n]
            drafted = drafts[n]
            if item.drafted is not None and drafted is not None:
                _, row, (kind, status, amounts) = drafted
                summary.add_new(kind, status, amounts)
                text = _row_with_audit(row, item.drafted)
                if emit_row is not None:
                    emit_row(text)
                else:
                    decision = orjson.loads(text)
                    emit(LineResult(line.parsed(), decision, request_id=decision["request_id"],
                                    kind=kind))  # fmt: skip
                continue
            assert isinstance(slot, Envelope)
            result = _result(line.parsed(), slot, item)
        summary.add(result.status, result.decision)
        emit(result)


def batch_row(result: LineResult) -> dict[str, Any]:
    """The JSON Lines output of one line (SPEC §8): the decision, or the invalid or
    conflict shape."""
    if result.decision is not None:
        return as_recorded(result.decision)
    row: dict[str, Any] = {"line": result.line.number, "status": result.status}
    if result.conflict is not None:
        row["error"] = describe(result.conflict)
        row["request_id"] = result.request_id
        row["kind"] = result.kind
        row["audit"] = {"seq": result.conflict.seq, "hash": result.conflict.hash}
        return row
    row["error"] = result.error
    if result.request_id is not None:
        row["request_id"] = result.request_id
    if result.kind is not None:
        row["kind"] = result.kind
    return row


def flat_batch_row(result: LineResult, layout: RowLayout = BUILTIN_LAYOUT) -> dict[str, Any]:
    """The CSV / Excel output of one line (``layout.batch_columns()``)."""
    request = result.line.request if isinstance(result.line.request, Mapping) else {}
    return decision_row(
        result.line.number,
        result.decision,
        result.error if result.conflict is None else describe(result.conflict),
        request=request,
        status=result.status,
        request_id=result.request_id,
        kind=result.kind,
        audit=None
        if result.conflict is None
        else {"seq": result.conflict.seq, "hash": result.conflict.hash},
        layout=layout,
    )


#: The most lines one streamed group takes (what is buffered beyond waits for the next).
STREAM_GROUP_MAX = 500


def stream_batch(
    calc: Calculator,
    fp: IO[bytes],
    emit: Emit,
    flush: Callable[[], None],
    *,
    merchant: str | None = None,
    campaign: str | None = None,
) -> Summary:
    """Decide JSON Lines from ``fp`` as they come (``pricecalc batch --stream``): a group
    is the lines already read when the previous group is done — never a wait for more —
    and each group's rows are emitted and flushed once it is durable. So a co-process
    writing one line reads its answer before writing the next."""
    origin = Origin("stream", merchant, campaign)
    arrived: queue.Queue[tuple[int, bytes] | None] = queue.Queue()

    def read() -> None:
        try:
            for number, raw in enumerate(fp, start=1):
                if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                arrived.put((number, raw))
        finally:
            arrived.put(None)

    threading.Thread(target=read, name="pricecalc-stream-reader", daemon=True).start()
    summary = Summary(RowLayout.of(calc.registry.declarations()))
    done = False
    position = 0
    while not done:
        first = arrived.get()
        if first is None:
            break
        group = [first]
        while len(group) < STREAM_GROUP_MAX:
            try:
                more = arrived.get_nowait()
            except queue.Empty:
                break
            if more is None:
                done = True
                break
            group.append(more)
        chunk = []
        for number, raw in group:
            position += len(raw)
            chunk.append((_parse_json_line(number, raw), position))
        _record_chunk(calc, (chunk, None), origin, emit, summary, lambda _: flush())
    return summary
