"""The SPEC §9 endpoints: a record's inclusion proof, the consistency proof between two
tree sizes, and the signed checkpoint — each read in a worker thread, a merchant-limited
token proving only its merchant's records.
"""

from __future__ import annotations

from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from audit.proofdoc import consistency_document, inclusion_document
from pricecalc.service.problems import Problem
from pricecalc.service.reading import authorize
from pricecalc.service.responses import json_response
from pricecalc.service.runtime import Service


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

    return json_response(await anyio.to_thread.run_sync(prove))


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

    return json_response(await anyio.to_thread.run_sync(prove))


async def get_checkpoint(request: Request) -> Response:
    service: Service = request.app.state.service
    authorize(service, request, "read")
    if service.signing_key is None:
        raise Problem("not-found", "this server was started without --signing-key")
    note = await anyio.to_thread.run_sync(service.checkpoint)
    assert note is not None
    return PlainTextResponse(note, media_type="text/plain; charset=utf-8")
