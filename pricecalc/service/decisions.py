"""The decision endpoints: ``POST /v1/decisions`` (one SPEC §8 request under its
idempotency key), ``POST /v1/voids`` (a §7 void, needing the ``void`` right) and
``GET /v1/decisions/{request_id}`` (the recorded decision) — each held to a
merchant-limited token's merchant (SPEC §11).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import attrs
from starlette.requests import Request
from starlette.responses import Response

from pricecalc import records
from pricecalc.envelope import Envelope
from pricecalc.errors import InvalidInput
from pricecalc.fields import Fields
from pricecalc.history import voids_tag
from pricecalc.rules.void import VOID_KIND
from pricecalc.service.deciding import decide
from pricecalc.service.keys import agreed_key, header_key
from pricecalc.service.problems import Problem
from pricecalc.service.reading import authorize, idempotency_header, parse_json, read_body
from pricecalc.service.responses import decision_body, invalid, json_response, shown
from pricecalc.service.runtime import VOIDS_APART, Service


async def post_decision(request: Request) -> Response:
    service: Service = request.app.state.service
    token = authorize(service, request, "decide")
    header = idempotency_header(request)
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
    decision, new = await decide(service, token, envelope)
    return json_response(decision_body(decision), 201 if new else 200)


async def post_void(request: Request) -> Response:
    service: Service = request.app.state.service
    token = authorize(service, request, "void")
    header = idempotency_header(request)
    body = parse_json(await read_body(request, service.settings.max_body))
    if not isinstance(body, Mapping):
        raise Problem(
            "invalid-input",
            'request: must be an object {"seq", "reason", "target"}',
            {"field": "input", "value": shown(body)},
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
    decision, new = await decide(service, token, envelope)
    return json_response(decision_body(decision), 201 if new else 200)


async def get_decision(request: Request) -> Response:
    service: Service = request.app.state.service
    token = authorize(service, request, "read")
    key = request.path_params["request_id"]
    record = await anyio.to_thread.run_sync(service.find, key)
    record = service.visible(token, record)
    if record is None:
        raise Problem("not-found", "no decision is recorded under this key")
    voids = [v.seq for v in service.store.find(voids_tag(record.seq)) if records.read(v).is_void]
    decision = records.read(record).decision(voided_by=min(voids) if voids else None)
    return json_response(decision_body(decision))
