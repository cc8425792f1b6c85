"""Deciding for a token: the request's key held in flight (409 for a second one), the
decision made in the service's decide thread with the requests that arrived with it
(:meth:`pricecalc.service.runtime.Service.decide_group`: the rules a merchant-limited token
is held to first — SPEC §11: no other merchant's key, order or record — then one group,
one sync), and the problem an invalid request or an idempotency conflict is answered with.
"""

from __future__ import annotations

import time
from typing import Any

from pricecalc.decision import Decision
from pricecalc.envelope import Envelope
from pricecalc.errors import IdempotencyConflict, InvalidInput
from pricecalc.service.problems import HIDDEN_CONFLICT, Problem
from pricecalc.service.responses import invalid
from pricecalc.service.runtime import Service
from pricecalc.service.tokens import Token

#: The batch row's error for such a key (SPEC §8's conflict row without seq or audit).
HIDDEN_ROW = "this request_id is already used for another request"


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


def merchant_line(service: Service, token: Token, request: Any) -> Problem | None:
    """What a merchant-limited ``token`` may not do with a batch line (as
    :meth:`Service.check_merchant`), or None. The line is read as the batch reads it (the
    envelope's checks first): a line it refuses is left to the batch's invalid row, and its
    key never looked up."""
    try:
        envelope = Envelope.parse(request)
    except (InvalidInput, TypeError):
        return None
    try:
        service.check_merchant(token, envelope)
    except Problem as problem:
        return problem
    return None
