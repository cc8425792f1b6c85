"""Reading a request: its bearer token (and the right it needs), its ``Idempotency-Key``
header, its body — whole up to a limit, or spooled (a ``/v1/batches`` body) — and its
JSON. Each refusal is a :class:`~pricecalc.service.problems.Problem` (401, 403, 400, 413).
"""

from __future__ import annotations

import hashlib
import tempfile
from typing import IO, Any, cast

from starlette.requests import Request

from pricecalc.files.reading import json_problem
from pricecalc.serialize import loads
from pricecalc.service.problems import Problem
from pricecalc.service.runtime import Service
from pricecalc.service.tokens import Token


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


def idempotency_header(request: Request) -> str | None:
    values = request.headers.getlist("idempotency-key")
    if len(values) > 1:
        raise Problem("idempotency-key-invalid", "send one Idempotency-Key header, not several")
    return values[0] if values else None


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


#: A /v1/batches body is kept in memory up to this size, on disk (a temporary file) beyond.
SPOOL_IN_MEMORY = 1024 * 1024


async def spool_body(request: Request, limit: int) -> tuple[IO[bytes], str]:
    """The body in a temporary file (in memory up to :data:`SPOOL_IN_MEMORY`), rewound,
    and its SHA-256: a batch of up to ``limit`` bytes is never held whole in memory, and
    its lines are then read one at a time. 413 once it is over ``limit`` (SPEC §11)."""
    too_large = Problem("payload-too-large", f"the body is over the limit of {limit:,} bytes")
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise too_large
    # closed by the batch once its lines are read, or here when the body is refused
    spool = tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY, prefix="pricecalc-batch-")  # noqa: SIM115
    digest = hashlib.sha256()
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            digest.update(chunk)
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return cast(IO[bytes], spool), digest.hexdigest()


def parse_json(body: bytes) -> Any:
    try:
        return loads(body.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise Problem("bad-request", f"the body is not valid JSON: {json_problem(exc)}") from None
