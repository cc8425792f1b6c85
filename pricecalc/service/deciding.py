"""Deciding for a token: the request's key held in flight (409 for a second one), the
rules a merchant-limited token is held to (SPEC §11: no other merchant's key, order or
record), the decision made in one of the service's decide threads through
``Calculator.decide`` (so concurrent requests share the store's group commit), and the
problem an invalid request or an idempotency conflict is answered with.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

from audit.protocol import Record
from pricecalc import records
from pricecalc.decision import Decision
from pricecalc.envelope import Envelope
from pricecalc.errors import IdempotencyConflict, InvalidInput
from pricecalc.service.keys import normal_key
from pricecalc.service.problems import Problem
from pricecalc.service.responses import invalid
from pricecalc.service.runtime import Service
from pricecalc.service.tokens import Token

T = TypeVar("T")

#: The batch row's error for such a key (SPEC §8's conflict row without seq or audit).
HIDDEN_ROW = "this request_id is already used for another request"
#: The conflict a merchant-limited token is told when the key is another's (SPEC §11).
HIDDEN_CONFLICT = Problem(
    "idempotency-conflict",
    "this idempotency key is already used for another request; send this request under a new key",
)


async def in_thread(service: Service, work: Callable[..., T], *args: Any) -> T:
    """``work(*args)`` in one of the service's decide threads (:attr:`Service.deciders`,
    sized for group commit). A caller cancelled meanwhile still waits for it to end, as
    anyio's ``to_thread`` does: a decision under way is never left running unheld."""
    future = asyncio.get_running_loop().run_in_executor(service.deciders, work, *args)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait((future,))
        raise


def _decide_now(service: Service, token: Token, envelope: Envelope) -> Decision:
    """In a decide thread: a merchant-limited token's checks, then the decision."""
    if token.merchant_id is not None:
        merchant_may_decide(service, token, envelope)
    return service.calculator(token.operator).decide(envelope)


async def decide(service: Service, token: Token, envelope: Envelope) -> tuple[Decision, bool]:
    """Decide in a worker thread while holding the key in flight; (decision, new)."""
    assert envelope.request_id is not None
    started = time.perf_counter()
    with service.in_flight.hold(envelope.request_id):
        try:
            decision = await in_thread(service, _decide_now, service, token, envelope)
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


def merchant_may_decide(service: Service, token: Token, envelope: Envelope) -> None:
    """Raise the problem a merchant-limited ``token`` gets for ``envelope``: a key another
    merchant's record holds (:meth:`Service.may_use`, the hidden 422) or an order with
    another merchant's records (:meth:`Service.foreign_order`, 403)."""
    if envelope.request_id is not None and not service.may_use(
        token, find(service, envelope.request_id)
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


def merchant_line(service: Service, token: Token, request: Any) -> Problem | None:
    """What a merchant-limited ``token`` may not do with a batch line (as
    :func:`merchant_may_decide`), or None. The line is read as the batch reads it (the
    envelope's checks first): a line it refuses is left to the batch's invalid row, and its
    key never looked up."""
    try:
        envelope = Envelope.parse(request)
    except (InvalidInput, TypeError):
        return None
    try:
        merchant_may_decide(service, token, envelope)
    except Problem as problem:
        return problem
    return None


def find(service: Service, key: str) -> Record | None:
    """The decision recorded under ``key`` (as given, else in its SPEC §1 form), or None."""
    record = service.store.get(key)
    if record is None and normal_key(key) != key:
        record = service.store.get(normal_key(key))
    if record is None or not records.read(record).is_decision:
        return None
    return record
