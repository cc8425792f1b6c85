"""The Starlette application: every SPEC §11 endpoint over one
:class:`~pricecalc.service.runtime.Service` (the calculators, tokens, limits, metrics and
log: :mod:`pricecalc.service.runtime`), each answer counted, logged and — when it is a
problem — sent as an RFC 9457 document. The endpoints live by job:
:mod:`~pricecalc.service.decisions` (decisions and voids, decided through
:mod:`~pricecalc.service.deciding`), :mod:`~pricecalc.service.batches` and
:mod:`~pricecalc.service.proofs`; the probes, metrics and OpenAPI document here.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from audit.errors import AuditError
from pricecalc.errors import PricecalcError
from pricecalc.service.batches import post_batch
from pricecalc.service.decisions import get_decision, post_decision, post_void
from pricecalc.service.openapi import openapi_document
from pricecalc.service.problems import Problem
from pricecalc.service.proofs import get_checkpoint, get_consistency, get_proof
from pricecalc.service.responses import json_response, problem_response
from pricecalc.service.runtime import MAX_BATCH, MAX_BODY, Service, Settings

__all__ = ["MAX_BATCH", "MAX_BODY", "Service", "Settings", "create_app"]


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    service: Service = request.app.state.service
    try:
        await anyio.to_thread.run_sync(service.check_ready)
    except (AuditError, OSError, PricecalcError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise Problem("store-unavailable", f"the audit store cannot write: {reason}") from None
    return json_response({"status": "ready"})


async def metrics(request: Request) -> Response:
    service: Service = request.app.state.service
    return Response(service.metrics.text(), media_type="text/plain; version=0.0.4")


async def openapi(request: Request) -> Response:
    service: Service = request.app.state.service
    document = request.app.state.openapi
    if document is None:
        document = request.app.state.openapi = openapi_document(service.registry)
    return json_response(document)


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
            response = problem_response(problem)
        except (AuditError, OSError) as exc:
            problem_name = "store-unavailable"
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            response = problem_response(
                Problem("store-unavailable", f"the audit store cannot be used: {reason}")
            )
        except Exception as exc:
            problem_name = "internal-error"
            print(
                f"pricecalc serve: {request.method} {route} failed: {type(exc).__name__}",
                file=sys.stderr,
            )
            response = problem_response(
                Problem("internal-error", "the server could not answer this request")
            )
        elapsed = time.perf_counter() - started
        service.metrics.answered(route, request.method, response.status_code, elapsed)
        if service.log is not None:
            entry: dict[str, Any] = {
                "method": request.method,
                "path": request.scope["path"],
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
    return problem_response(problem)


#: The hot path: every decision comes this way.
HOT_ROUTE = ("POST", "/v1/decisions")


class ServiceApp(Starlette):
    """Starlette, with the hot path — ``POST /v1/decisions`` — taken straight to its
    endpoint (the same :func:`answered` endpoint its route has: the same problems,
    metrics and log) without the trip through Starlette's two exception middlewares, its
    router and its endpoint wrapper, which cost about as much as the endpoint's own
    work. Any other method or path, and the lifespan, go through Starlette as before."""

    hot: Endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == HOT_ROUTE[1]
            and scope["method"] == HOT_ROUTE[0]
        ):
            scope["app"] = self
            response = await self.hot(Request(scope, receive, send))
            await response(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


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

    endpoints = {path: answered(path, endpoint) for path, endpoint, _ in ROUTES}
    app = ServiceApp(
        routes=[Route(path, endpoints[path], methods=methods) for path, _, methods in ROUTES],
        exception_handlers={HTTPException: _http_problem},
        lifespan=lifespan,
    )
    app.hot = endpoints[HOT_ROUTE[1]]
    app.state.service = service
    app.state.openapi = None
    return app
