"""``POST /v1/batches``: a JSON Lines body spooled (never held whole), decided by the
batch runner in groups of :data:`~pricecalc.service.runtime.BATCH_GROUP` lines with one
commit each, its rows streamed back in order, each once its group is durable. A void line
is refused (voids go through ``POST /v1/voids``); a merchant-limited token's lines are
held to its merchant (SPEC §11), a key another merchant holds answered without its seq.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator, Mapping

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from pricecalc.batch import LineResult, Origin, batch_row, run_batch
from pricecalc.errors import PricecalcError
from pricecalc.files.reading import FileLine, read_jsonl
from pricecalc.rules.void import VOID_KIND
from pricecalc.service.deciding import HIDDEN_ROW, merchant_line
from pricecalc.service.problems import HIDDEN_CONFLICT
from pricecalc.service.reading import authorize, spool_body
from pricecalc.service.responses import default
from pricecalc.service.runtime import BATCH_GROUP, VOIDS_APART, Service


async def post_batch(request: Request) -> Response:
    service: Service = request.app.state.service
    token = authorize(service, request, "decide")
    body, digest = await spool_body(request, service.settings.max_batch)
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
        data = orjson.dumps(row, default=default) + b"\n"
        loop.call_soon_threadsafe(queue.put_nowait, data)

    def lines() -> Iterator[tuple[FileLine, int]]:
        group: list[tuple[FileLine, int]] = []
        for item in read_jsonl(body):
            line, position = item
            request = line.request
            if isinstance(request, Mapping) and (
                isinstance(request.get("kind"), str) and request["kind"].strip() == VOID_KIND
            ):
                item = (FileLine(line.number, request, VOIDS_APART), position)
            elif token.merchant_id is not None and line.error is None:
                problem = merchant_line(service, token, request)
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
                calc, lines(), Origin(digest, token.merchant_id), emit, chunk_size=BATCH_GROUP
            )
        except BaseException as exc:  # told to the stream, which ends the response
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        else:
            loop.call_soon_threadsafe(queue.put_nowait, None)
        finally:
            body.close()

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
