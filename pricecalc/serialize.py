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


class _NotPlain(Exception):
    """Raised by :func:`_plain` on anything but the common types; the checked walk follows."""


def _plain(value: Any) -> Any:
    """:func:`jsonable` for the common case — exact dict, list, str, int, bool, None and
    Decimal — without building a path per value. Anything else raises :class:`_NotPlain`.
    """
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is dict:
        return {k if type(k) is str else str(k): _plain(v) for k, v in value.items()}
    if kind is list:
        return [_plain(v) for v in value]
    if kind is Decimal:
        return str(value)
    raise _NotPlain


def jsonable(value: Any, path: str = "request") -> Any:
    """A deep copy of ``value`` made of JSON types, Decimals as strings; floats refused."""
    try:
        return _plain(value)
    except _NotPlain:  # a float (refused below, naming its path), a tuple, a time, ...
        return _checked(value, path)


def _checked(value: Any, path: str) -> Any:
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
        return {str(k): _checked(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_checked(v, f"{path}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"{path}: {type(value).__name__} is not a JSON value")


def dumps(value: Any) -> str:
    """Compact JSON of a JSON-able value, non-ASCII kept readable."""
    return json.dumps(jsonable(value), ensure_ascii=False, separators=(",", ":"))
