"""The Starlette application: every SPEC §11 endpoint over one
:class:`~pricecalc.service.runtime.Service` (the calculators, tokens, limits, metrics and
log: :mod:`pricecalc.service.runtime`). Decisions are made in worker threads through
``Calculator.decide``, so concurrent requests share the store's group commit; each
response is sent only once its decision is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import anyio
import attrs
import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from audit.errors import AuditError
from audit.proofdoc import consistency_document, inclusion_document
from audit.protocol import Record
from pricecalc import records
from pricecalc.batch import LineResult, batch_row, run_batch
from pricecalc.decision import Decision
from pricecalc.envelope import Envelope
from pricecalc.errors import IdempotencyConflict, InvalidInput, PricecalcError, describe_value
from pricecalc.fields import Fields
from pricecalc.files.reading import FileLine, json_problem, read_jsonl
from pricecalc.files.rows import as_recorded
from pricecalc.history import voids_tag
from pricecalc.rules.void import VOID_KIND
from pricecalc.serialize import loads
from pricecalc.service.keys import agreed_key, header_key, normal_key
from pricecalc.service.openapi import openapi_document
from pricecalc.service.problems import MEDIA_TYPE, Problem
from pricecalc.service.runtime import (
    BATCH_GROUP,
    MAX_BATCH,
    MAX_BODY,
    VOIDS_APART,
    Service,
    Settings,
)
from pricecalc.service.tokens import Token

__all__ = ["MAX_BATCH", "MAX_BODY", "Service", "Settings", "create_app"]


def _json(data: Any, status: int = 200, media_type: str = "application/json") -> Response:
    return Response(orjson.dumps(data, default=_default), status, media_type=media_type)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError


def _problem_response(problem: Problem) -> Response:
    response = _json(problem.document(), problem.status, MEDIA_TYPE)
    response.headers.update(problem.headers)
    return response


def _shown(value: Any) -> Any:
    """A bad value as JSON can carry it (a number as given, anything else as text); one
    it cannot carry as given (a lone surrogate, an integer beyond 64 bits, …) as the
    text the message shows, so the answer is still a problem document."""
    if isinstance(value, Decimal):
        return str(value)
    try:
        orjson.dumps(value, default=_default)
    except TypeError:  # orjson.JSONEncodeError is one
        return describe_value(value)
    return value


def invalid(exc: InvalidInput) -> Problem:
    return Problem("invalid-input", str(exc), {"field": exc.field, "value": _shown(exc.value)})


def decision_body(decision: Decision) -> dict[str, Any]:
    """The SPEC §8 decision, with ``merchant_id``/``campaign`` when the request names them."""
    return as_recorded(decision.to_dict())  # to_dict names them (SPEC §8)


# -- requests ----------------------------------------------------------------------------
def authorize(service: Service, request: Request, right: str) -> Token:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    token = None
    if scheme.lower() == "bearer" and credentials.strip():
        token = service.tokens.find(credentials.strip())
    if token is None:
        raise Problem(
            "unauthorized",
            "send Authorization: Bearer <token> with a token from `pricecalc token add`",
            headers={"WWW-Authenticate": 'Bearer realm="pricecalc"'},
        )
    request.state.token = token.name
    if right not in token.rights:
        raise Problem("forbidden", f"the token {token.name!r} has no {right!r} right")
    return token


async def read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise Problem("payload-too-large", f"the body is over the limit of {limit:,} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Problem("payload-too-large", f"the body is over the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    try:
        return loads(body.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise Problem("bad-request", f"the body is not valid JSON: {json_problem(exc)}") from None


def _idempotency_header(request: Request) -> str | None:
    values = request.headers.getlist("idempotency-key")
    if len(values) > 1:
        raise Problem("idempotency-key-invalid", "send one Idempotency-Key header, not several")
    return values[0] if values else None


async def _decide(service: Service, token: Token, envelope: Envelope) -> tuple[Decision, bool]:
    """Decide in a worker thread while holding the key in flight; (decision, new)."""
    assert envelope.request_id is not None
    calc = service.calculator(token.operator)
    started = time.perf_counter()
    with service.in_flight.hold(envelope.request_id):
        if token.merchant_id is not None:
            await anyio.to_thread.run_sync(_merchant_may_decide, service, token, envelope)
        try:
            decision = await anyio.to_thread.run_sync(
                calc.decide, envelope, limiter=service.limiter
            )
        except InvalidInput as exc:
            raise invalid(exc) from None
        except IdempotencyConflict as exc:
            raise conflict(service, token, exc) from None
    service.metrics.decide_seconds.observe(time.perf_counter() - started)
    service.metrics.decision(decision.kind, decision.status, decision.replayed)
    return decision, not decision.replayed


def conflict(service: Service, token: Token, exc: IdempotencyConflict) -> Problem:
    """422 ``idempotency-conflict``: with the recorded seq, unless the token is limited to
    a merchant and the key is held by a record it may not see (then nothing about it)."""
    if token.merchant_id is not None:
        record = service.store.record(exc.seq)
        if service.visible(token, record) is None:
            return HIDDEN_CONFLICT
    return Problem("idempotency-conflict", str(exc), {"seq": exc.seq})


#: The batch row's error for such a key (SPEC §8's conflict row without seq or audit).
HIDDEN_ROW = "this request_id is already used for another request"
#: The conflict a merchant-limited token is told when the key is another's (SPEC §11).
HIDDEN_CONFLICT = Problem(
    "idempotency-conflict",
    "this idempotency key is already used for another request; "
    "send this request under a new key",
)


async def post_decision(request: Request) -> Response:
    service: Service = request.app.state.service
    token = authorize(service, request, "decide")
    header = _idempotency_header(request)
    body = parse_json(await read_body(request, service.settings.max_body))
    try:
        envelope = Envelope.parse(body)
    except InvalidInput as exc:
        raise invalid(exc) from None
    key = agreed_key(header, envelope.request_id)
    if envelope.kind == VOID_KIND:
        raise Problem("forbidden", VOIDS_APART)
    if token.merchant_id is not None and envelope.merchant_id != token.merchant_id:
        raise Problem(
            "forbidden",
            f"the token {token.name!r} decides only requests naming merchant_id "
            f"{token.merchant_id!r}",
        )
    envelope = attrs.evolve(envelope, request_id=key)
    decision, new = await _decide(service, token, envelope)
    return _json(decision_body(decision), 201 if new else 200)


async def post_void(request: Request) -> Response:
    service: Service = request.app.state.service
    token = authorize(service, request, "void")
    header = _idempotency_header(request)
    body = parse_json(await read_body(request, service.settings.max_body))
    if not isinstance(body, Mapping):
        raise Problem(
            "invalid-input",
            'request: must be an object {"seq", "reason", "target"}',
            {"field": "input", "value": _shown(body)},
        )
    request_body: dict[str, Any] = {"kind": VOID_KIND, "input": dict(body)}
    if token.merchant_id is not None:
        request_body["merchant_id"] = token.merchant_id
    try:
        envelope = Envelope.parse(request_body)
        # The seq as the void rule reads it (integer text "1" is record 1 too), so a
        # merchant-limited token never reaches another merchant's record by its spelling.
        seq = Fields(envelope.input).integer("seq", minimum=1) if token.merchant_id else 0
    except InvalidInput as exc:
        raise invalid(exc) from None
    if token.merchant_id is not None and service.visible(token, service.store.record(seq)) is None:
        raise Problem("not-found", f"there is no record {seq}")
    if header is not None:
        envelope = attrs.evolve(envelope, request_id=header_key(header))
    else:
        envelope = envelope.keyed()
    decision, new = await _decide(service, token, envelope)
    return _json(decision_body(decision), 201 if new else 200)


async def get_decision(request: Request) -> Response:
    service: Service = request.app.state.service
    token = authorize(service, request, "read")
    key = request.path_params["request_id"]
    record = await anyio.to_thread.run_sync(_find, service, key)
    record = service.visible(token, record)
    if record is None:
        raise Problem("not-found", "no decision is recorded under this key")
    voids = [v.seq for v in service.store.find(voids_tag(record.seq)) if records.read(v).is_void]
    decision = records.read(record).decision(voided_by=min(voids) if voids else None)
    return _json(decision_body(decision))


def _merchant_may_decide(service: Service, token: Token, envelope: Envelope) -> None:
    """Raise the problem a merchant-limited ``token`` gets for ``envelope``: a key another
    merchant's record holds (:meth:`Service.may_use`, the hidden 422) or an order with
    another merchant's records (:meth:`Service.foreign_order`, 403)."""
    if envelope.request_id is not None and not service.may_use(
        token, _find(service, envelope.request_id)
    ):
        raise HIDDEN_CONFLICT
    order_id = service.foreign_order(token, envelope.input)
    if order_id is not None:
        raise Problem("forbidden", _foreign_order(token, order_id))


def _foreign_order(token: Token, order_id: str) -> str:
    return (
        f"order_id {order_id!r} has decisions recorded for another merchant: the token "
        f"{token.name!r} decides only orders of merchant_id {token.merchant_id!r}"
    )


def _merchant_line(service: Service, token: Token, request: Any) -> Problem | None:
    """What a merchant-limited ``token`` may not do with a batch line (as
    :func:`_merchant_may_decide`), or None. The line is read as the batch reads it (the
    envelope's checks first): a line it refuses is left to the batch's invalid row, and its
    key never looked up."""
    try:
        envelope = Envelope.parse(request)
    except (InvalidInput, TypeError):
        return None
    try:
        _merchant_may_decide(service, token, envelope)
    except Problem as problem:
        return problem
    return None



def _find(service: Service, key: str) -> Record | None:
    record = service.store.get(key)
    if record is None and normal_key(key) != key:
        record = service.store.get(normal_key(key))
    if record is None or not records.read(record).is_decision:
        return None
    return record


def _int_param(request: Request, name: str, *, required: bool = False) -> int | None:
    text = request.query_params.get(name)
    if text is None:
        if required:
            raise Problem("bad-request", f"the query parameter {name} is required")
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise Problem("bad-request", f"the query parameter {name} must be a whole number")
    return int(text)


async def get_proof(request: Request) -> Response:
    service: Service = request.app.state.service
    token = authorize(service, request, "read")
    seq_text = request.path_params["seq"]
    if not seq_text.isascii() or not seq_text.isdigit() or len(seq_text) > 18:
        raise Problem("not-found", "records are numbered 1, 2, 3 …")
    seq = int(seq_text)
    size = _int_param(request, "size")

    def prove() -> dict[str, Any]:
        now = service.store.tree_size()
        record = service.visible(token, service.store.record(seq)) if 1 <= seq <= now else None
        if record is None:
            raise Problem("not-found", f"there is no record {seq}")
        at = now if size is None else size
        if not seq <= at <= now:
            raise Problem(
                "bad-request",
                f"size must be from {seq} (the record's seq) to {now} (the tree now)",
            )
        return inclusion_document(
            service.store, seq, at, checkpoint=service.checkpoint(at), keyed=service.keyed
        )

    return _json(await anyio.to_thread.run_sync(prove))


async def get_consistency(request: Request) -> Response:
    service: Service = request.app.state.service
    authorize(service, request, "read")
    old = _int_param(request, "from", required=True)
    new = _int_param(request, "to")
    assert old is not None

    def prove() -> dict[str, Any]:
        now = service.store.tree_size()
        to = now if new is None else new
        if not 0 <= old <= to <= now:
            raise Problem(
                "bad-request", f"from and to must satisfy 0 ≤ from ≤ to ≤ {now} (the tree now)"
            )
        return consistency_document(service.store, old, to, checkpoint=service.checkpoint(to))

    return _json(await anyio.to_thread.run_sync(prove))


async def get_checkpoint(request: Request) -> Response:
    service: Service = request.app.state.service
    authorize(service, request, "read")
    if service.signing_key is None:
        raise Problem("not-found", "this server was started without --signing-key")
    note = await anyio.to_thread.run_sync(service.checkpoint)
    assert note is not None
    return PlainTextResponse(note, media_type="text/plain; charset=utf-8")


async def post_batch(request: Request) -> Response:
    service: Service = request.app.state.service
    token = authorize(service, request, "decide")
    body = await read_body(request, service.settings.max_batch)
    digest = hashlib.sha256(body).hexdigest()
    calc = service.calculator(token.operator)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
    hidden: set[int] = set()  # lines under a key another merchant holds

    def emit(result: LineResult) -> None:
        row = batch_row(result)
        if token.merchant_id is not None and (
            result.line.number in hidden
            or (
                result.conflict is not None
                and service.visible(token, service.store.record(result.conflict.seq)) is None
            )
        ):
            row = {
                "line": result.line.number,
                "status": "conflict",
                "error": HIDDEN_ROW,
                "request_id": result.request_id,
                "kind": result.kind,
            }
        if result.decision is not None:
            status = str(result.decision.get("status"))
            kind = str(result.decision.get("kind"))
            service.metrics.decision(kind, status, bool(result.decision.get("replayed")))
        data = orjson.dumps(row, default=_default) + b"\n"
        loop.call_soon_threadsafe(queue.put_nowait, data)

    def lines() -> Iterator[tuple[FileLine, int]]:
        group: list[tuple[FileLine, int]] = []
        for item in read_jsonl(io.BytesIO(body)):
            line, position = item
            request = line.request
            if isinstance(request, Mapping) and (
                isinstance(request.get("kind"), str) and request["kind"].strip() == VOID_KIND
            ):
                item = (FileLine(line.number, request, VOIDS_APART), position)
            elif token.merchant_id is not None and line.error is None:
                problem = _merchant_line(service, token, request)
                if problem is HIDDEN_CONFLICT:
                    hidden.add(line.number)
                    item = (FileLine(line.number, request, HIDDEN_ROW), position)
                elif problem is not None:
                    item = (FileLine(line.number, request, problem.detail), position)
            group.append(item)
            if len(group) == BATCH_GROUP:
                service.metrics.batch_groups.observe(len(group))
                yield from group
                group = []
        if group:
            service.metrics.batch_groups.observe(len(group))
            yield from group

    def run() -> None:
        try:
            run_batch(
                calc, lines(), digest, emit, chunk_size=BATCH_GROUP, merchant=token.merchant_id
            )
        except BaseException as exc:  # told to the stream, which ends the response
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        else:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    async def rows() -> AsyncIterator[bytes]:
        worker = loop.run_in_executor(None, run)
        while True:
            item = await queue.get()
            if item is None:
                break
            if isinstance(item, BaseException):
                # The rows so far are durable; the rest were not decided. A last row says so.
                if isinstance(item, PricecalcError):
                    detail = str(item)
                else:
                    detail = "the server could not go on; the rows before this are recorded"
                    print(
                        f"pricecalc serve: POST /v1/batches stopped: {type(item).__name__}",
                        file=sys.stderr,
                    )
                yield orjson.dumps({"status": "stopped", "error": detail}) + b"\n"
                break
            yield item
        await worker

    return StreamingResponse(rows(), media_type="application/jsonl")


async def healthz(request: Request) -> Response:
    return _json({"status": "ok"})


async def readyz(request: Request) -> Response:
    service: Service = request.app.state.service
    try:
        await anyio.to_thread.run_sync(service.check_ready)
    except (AuditError, OSError, PricecalcError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise Problem("store-unavailable", f"the audit store cannot write: {reason}") from None
    return _json({"status": "ready"})


async def metrics(request: Request) -> Response:
    service: Service = request.app.state.service
    return Response(service.metrics.text(), media_type="text/plain; version=0.0.4")


async def openapi(request: Request) -> Response:
    service: Service = request.app.state.service
    document = request.app.state.openapi
    if document is None:
        document = request.app.state.openapi = openapi_document(service.registry)
    return _json(document)


Endpoint = Callable[[Request], Awaitable[Response]]


def answered(route: str, endpoint: Endpoint) -> Endpoint:
    """``endpoint`` with its problems answered as RFC 9457 documents, any other failure
    as a 500/503 problem without a trace, and each answer counted and logged."""

    async def wrapped(request: Request) -> Response:
        service: Service = request.app.state.service
        started = time.perf_counter()
        problem_name = None
        try:
            response = await endpoint(request)
        except Problem as problem:
            problem_name = problem.name
            response = _problem_response(problem)
        except (AuditError, OSError) as exc:
            problem_name = "store-unavailable"
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            response = _problem_response(
                Problem("store-unavailable", f"the audit store cannot be used: {reason}")
            )
        except Exception as exc:
            problem_name = "internal-error"
            print(
                f"pricecalc serve: {request.method} {route} failed: {type(exc).__name__}",
                file=sys.stderr,
            )
            response = _problem_response(
                Problem("internal-error", "the server could not answer this request")
            )
        elapsed = time.perf_counter() - started
        service.metrics.requests.labels(route, request.method, str(response.status_code)).inc()
        service.metrics.latency.labels(route).observe(elapsed)
        if service.log is not None:
            entry: dict[str, Any] = {
                "method": request.method,
                "path": request.url.path,
                "status": response.status_code,
                "ms": round(elapsed * 1000, 3),
                "client": request.client.host if request.client else None,
            }
            token = getattr(request.state, "token", None)
            if token is not None:
                entry["token"] = token
            if problem_name is not None:
                entry["problem"] = problem_name
            service.log.write(**entry)
        return response

    return wrapped


ROUTES = (
    ("/v1/decisions", post_decision, ["POST"]),
    ("/v1/decisions/{request_id:path}", get_decision, ["GET"]),
    ("/v1/batches", post_batch, ["POST"]),
    ("/v1/voids", post_void, ["POST"]),
    ("/v1/records/{seq}/proof", get_proof, ["GET"]),
    ("/v1/consistency", get_consistency, ["GET"]),
    ("/v1/checkpoint", get_checkpoint, ["GET"]),
    ("/healthz", healthz, ["GET"]),
    ("/readyz", readyz, ["GET"]),
    ("/metrics", metrics, ["GET"]),
    ("/openapi.json", openapi, ["GET"]),
)


async def _http_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        problem = Problem(
            "method-not-allowed",
            f"{request.method} is not allowed here",
            headers=dict(exc.headers or {}),  # Allow: what is (RFC 9110 §15.5.6)
        )
    else:
        problem = Problem("not-found", f"there is nothing at {request.url.path}")
    return _problem_response(problem)


def create_app(service: Service, *, close: bool = True) -> Starlette:
    """The application over ``service``, closed when the application shuts down unless
    ``close`` is false (a test client that starts and stops it for every call)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # SIGHUP re-reads the tokens file (only the main thread's loop can take it)
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, service.reload_tokens)
        try:
            yield
        finally:
            if close:
                service.close()

    app = Starlette(
        routes=[
            Route(path, answered(path, endpoint), methods=methods)
            for path, endpoint, methods in ROUTES
        ],
        exception_handlers={HTTPException: _http_problem},
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.openapi = None
    return app
