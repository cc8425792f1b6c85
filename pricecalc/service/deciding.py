"""Deciding for a token: the request's key held in flight (409 for a second one), the
rules a merchant-limited token is held to (SPEC §11: no other merchant's key, order or
record), the decision made in the service's decide thread with the requests that
arrived with it (:mod:`pricecalc.service.groups`: one group, one sync), and the problem
an invalid request or an idempotency conflict is answered with.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from audit.protocol import Record
from pricecalc import records
from pricecalc.decision import Decision
from pricecalc.envelope import Envelope
from pricecalc.errors import IdempotencyConflict, InvalidInput
from pricecalc.service.keys import normal_key
from pricecalc.service.problems import Problem
from pricecalc.service.responses import invalid
from pricecalc.service.tokens import Token

if TYPE_CHECKING:
    from pricecalc.service.runtime import Service

#: The batch row's error for such a key (SPEC §8's conflict row without seq or audit).
HIDDEN_ROW = "this request_id is already used for another request"
#: The conflict a merchant-limited token is told when the key is another's (SPEC §11).
HIDDEN_CONFLICT = Problem(
    "idempotency-conflict",
    "this idempotency key is already used for another request; send this request under a new key",
)


def decide_group(
    service: Service, group: Sequence[tuple[Token, Envelope]]
) -> list[Decision | Exception]:
    """In the decide thread (:class:`~pricecalc.service.groups.LoopGroups`): a group of
    requests, each its decision or its own exception. A merchant-limited token's checks
    come first; then each run of requests for one operator is decided by that operator's
    calculator as one group — one transaction, one sync (``Calculator.decide_each``)."""
    outcomes: list[Decision | Exception | None] = [None] * len(group)
    run: list[tuple[int, Envelope]] = []
    operator = None
    for index, (token, envelope) in enumerate(group):
        if token.merchant_id is not None:
            try:
                merchant_may_decide(service, token, envelope)
            except Exception as exc:  # a Problem, or the store failing: this request's own
                outcomes[index] = exc
                continue
        if token.operator != operator and run:
            _decide_run(service, operator, run, outcomes)
            run = []
        operator = token.operator
        run.append((index, envelope))
    if run:
        _decide_run(service, operator, run, outcomes)
    return cast(list[Decision | Exception], outcomes)


def _decide_run(
    service: Service,
    operator: str | None,
    run: list[tuple[int, Envelope]],
    outcomes: list[Decision | Exception | None],
) -> None:
    assert operator is not None
    service.metrics.decision_groups.observe(len(run))
    decided: list[Decision | Exception]
    try:
        decided = service.calculator(operator).decide_each([envelope for _, envelope in run])
    except Exception as exc:  # this run's requests hear of it; the group's other runs go on
        decided = [exc] * len(run)
    for (index, _), outcome in zip(run, decided, strict=True):
        outcomes[index] = outcome


async def decide(service: Service, token: Token, envelope: Envelope) -> tuple[Decision, bool]:
    """Decide in the next group while holding the key in flight; (decision, new)."""
    assert envelope.request_id is not None
    started = time.perf_counter()
    with service.in_flight.hold(envelope.request_id):
        try:
            decision = await service.groups.submit((token, envelope))
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
