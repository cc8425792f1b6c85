"""Turning requests and decisions into JSON, and JSON into requests, without floats.

Requests are read with ``parse_float=Decimal`` (SPEC §1: never through float). Values
written out are JSON-able: ``Decimal`` as its string, times in ISO 8601. A Python ``float``
anywhere in a request is refused with ``TypeError`` naming its path.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pricecalc.money import ExponentNumber, FloatRefused


def _number(text: str) -> Decimal:
    """A JSON number with a fraction or exponent, exactly. Exponent forms are marked so
    that money parsing refuses them naming the field (SPEC §1: ``1e3`` is invalid)."""
    if "e" in text or "E" in text:
        return ExponentNumber(text)
    return Decimal(text)


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number (JSON allows no NaN or Infinity)")


def loads(text: str | bytes) -> Any:
    """Parse JSON with every non-integer number as an exact Decimal; NaN/Infinity refused."""
    return json.loads(text, parse_float=_number, parse_constant=_constant)


def jsonable(value: Any, path: str = "request") -> Any:
    """A deep copy of ``value`` made of JSON types, Decimals as strings; floats refused."""
    if isinstance(value, float):
        raise FloatRefused(
            f"{path}: a float ({value!r}) is not accepted; pass a string such as '199.90'"
        )
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v, f"{path}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"{path}: {type(value).__name__} is not a JSON value")


def dumps(value: Any) -> str:
    """Compact JSON of a JSON-able value, non-ASCII kept readable."""
    return json.dumps(jsonable(value), ensure_ascii=False, separators=(",", ":"))
