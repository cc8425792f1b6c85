"""Canonical JSON: the one byte encoding that record hashes are computed over.

The rule (docs/audit.md repeats it for people verifying a store without this package):

* objects have ``str`` keys, written in sorted (code point) order;
* separators are ``","`` and ``":"`` with no whitespace;
* text is UTF-8 with non-ASCII characters written as themselves (``ensure_ascii=False``);
  ``"`` and ``\\`` and the control characters U+0000–U+001F are escaped as Python's
  :func:`json.dumps` escapes them;
* the values are ``null``, ``true``, ``false``, integers, strings, arrays and objects.
  There are no floats: a ``float`` is refused with :class:`TypeError`, because an
  accounting record must not depend on binary rounding. A :class:`~decimal.Decimal` is
  written as the string ``str(d)``; tuples are written as arrays.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

__all__ = ["canonical_bytes", "canonical_text", "dumps_plain", "to_json_value"]

JSONValue = None | bool | int | str | list["JSONValue"] | dict[str, "JSONValue"]


def to_json_value(value: Any) -> JSONValue:
    """Return ``value`` as plain JSON data (``dict``, ``list``, ``str``, ``int``, ...).

    ``Decimal`` becomes its string, tuples become lists, any ``Mapping`` a ``dict``.
    Raises :class:`TypeError` for floats, non-``str`` object keys and anything else that
    has no canonical JSON form.
    """
    kind = type(value)  # the common exact types first: this runs over every payload
    if kind is str or kind is int or kind is bool or value is None:
        plain: JSONValue = value
        return plain
    if kind is dict:
        out: dict[str, JSONValue] = {}
        for k, v in value.items():
            if type(k) is not str and not isinstance(k, str):
                raise TypeError(f"JSON object keys must be str, not {type(k).__name__} ({k!r})")
            out[k] = to_json_value(v)
        return out
    if kind is list:
        return [to_json_value(v) for v in value]
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float):
        raise TypeError(
            f"floats have no canonical JSON form here (got {value!r}); "
            "pass a Decimal or a string"
        )
    if isinstance(value, Mapping):
        mapped: dict[str, JSONValue] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"JSON object keys must be str, not {type(k).__name__} ({k!r})")
            mapped[k] = to_json_value(v)
        return mapped
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    raise TypeError(f"{type(value).__name__} has no canonical JSON form ({value!r})")


def canonical_text(value: Any) -> str:
    """The canonical JSON text of ``value`` (see the module docstring for the rule)."""
    return _dumps(to_json_value(value))


def dumps_plain(value: Any) -> bytes:
    """:func:`canonical_bytes` for data that is already plain JSON (what :func:`json.loads`
    returns without floats, or what :func:`to_json_value` returned): skips the conversion.
    """
    return _dumps(value).encode("utf-8")


_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def _dumps(value: Any) -> str:
    return _ENCODER.encode(value)


def canonical_bytes(value: Any) -> bytes:
    """The canonical JSON encoding of ``value``: :func:`canonical_text` as UTF-8.

    >>> canonical_bytes({"b": [1, "ü"], "a": None})
    b'{"a":null,"b":[1,"\\xc3\\xbc"]}'
    """
    return canonical_text(value).encode("utf-8")
