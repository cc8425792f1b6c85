"""uvicorn's HTTP/1.1 protocols with SPEC §11's error format for what never reaches the
application: a request uvicorn cannot parse (a malformed request line, header or chunk)
is answered 400 with an RFC 9457 problem document (``bad-request``), not uvicorn's own
plain text, and the connection is closed as uvicorn closes it.

:data:`HTTP` names the protocol ``pricecalc serve`` runs: httptools' parser (C, what
uvicorn's ``auto`` picks when it is installed, a dependency of pricecalc) or, without it,
h11's. Both are named by import string so ``--workers`` processes load the same class.
"""

from __future__ import annotations

import importlib.util

import orjson
from uvicorn.protocols.http.h11_impl import H11Protocol

from pricecalc.service.problems import MEDIA_TYPE, Problem

#: The detail of the 400 for a request that is not HTTP/1.1.
MALFORMED = "the request is not valid HTTP/1.1 (uvicorn could not parse it)"


def malformed_body() -> bytes:
    """The problem document answering a request that is not HTTP/1.1."""
    return orjson.dumps(Problem("bad-request", MALFORMED).document())


class ProblemH11Protocol(H11Protocol):
    """h11's protocol, answering a malformed request with a problem document."""

    def send_400_response(self, msg: str) -> None:
        import h11

        body = malformed_body()
        headers = [
            (b"content-type", MEDIA_TYPE.encode("ascii")),
            (b"content-length", str(len(body)).encode("ascii")),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event) or b"")
        self.transport.close()


if importlib.util.find_spec("httptools") is not None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class ProblemHttpToolsProtocol(HttpToolsProtocol):
        """httptools' protocol, answering a malformed request with a problem document."""

        def send_400_response(self, msg: str) -> None:
            body = malformed_body()
            head = [b"HTTP/1.1 400 Bad Request\r\n"]
            for name, value in self.server_state.default_headers:
                head.extend([name, b": ", value, b"\r\n"])
            head.extend(
                [
                    b"content-type: " + MEDIA_TYPE.encode("ascii") + b"\r\n",
                    b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                    b"connection: close\r\n\r\n",
                ]
            )
            self.transport.write(b"".join(head) + body)
            self.transport.close()

    HTTP = "pricecalc.service.protocols:ProblemHttpToolsProtocol"
else:  # pragma: no cover - httptools is a dependency; h11 is uvicorn's own fallback
    HTTP = "pricecalc.service.protocols:ProblemH11Protocol"

__all__ = ["HTTP", "MALFORMED", "ProblemH11Protocol", "malformed_body"]
