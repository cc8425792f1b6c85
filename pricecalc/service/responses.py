"""What the service answers with: JSON bodies (orjson, a Decimal as its text), RFC 9457
problem documents (:mod:`pricecalc.service.problems`) as responses, the ``invalid-input``
problem of an :class:`~pricecalc.errors.InvalidInput`, and the SPEC §8 decision body.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from starlette.responses import Response

from pricecalc.decision import Decision
from pricecalc.errors import InvalidInput, describe_value
from pricecalc.files.rows import as_recorded
from pricecalc.service.problems import MEDIA_TYPE, Problem


def json_response(data: Any, status: int = 200, media_type: str = "application/json") -> Response:
    return Response(orjson.dumps(data, default=default), status, media_type=media_type)


def default(value: Any) -> Any:
    """orjson's ``default``: a Decimal as its text (SPEC §1 money is text)."""
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError


def problem_response(problem: Problem) -> Response:
    response = json_response(problem.document(), problem.status, MEDIA_TYPE)
    response.headers.update(problem.headers)
    return response


def shown(value: Any) -> Any:
    """A bad value as JSON can carry it (a number as given, anything else as text); one
    it cannot carry as given (a lone surrogate, an integer beyond 64 bits, …) as the
    text the message shows, so the answer is still a problem document."""
    if isinstance(value, Decimal):
        return str(value)
    try:
        orjson.dumps(value, default=default)
    except TypeError:  # orjson.JSONEncodeError is one
        return describe_value(value)
    return value


def invalid(exc: InvalidInput) -> Problem:
    return Problem("invalid-input", str(exc), {"field": exc.field, "value": shown(exc.value)})


def decision_body(decision: Decision) -> dict[str, Any]:
    """The SPEC §8 decision, with ``merchant_id``/``campaign`` when the request names them."""
    return as_recorded(decision.to_dict())  # to_dict names them (SPEC §8)
