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

try:
    import orjson

    _ORJSON = True
except ImportError:  # pragma: no cover - a dependency; the reference encoder stands in
    _ORJSON = False

__all__ = [
    "canonical_bytes",
    "canonical_text",
    "dumps_plain",
    "reference_bytes",
    "to_json_value",
]

JSONValue = None | bool | int | str | list["JSONValue"] | dict[str, "JSONValue"]


def to_json_value(value: Any) -> JSONValue:
    """Return ``value`` as plain JSON data (``dict``, ``list``, ``str``, ``int``, ...).

    ``Decimal`` becomes its string, tuples become lists, any ``Mapping`` a ``dict``.
    Raises :class:`TypeError` for floats, non-``str`` object keys and anything else that
    has no canonical JSON form.
    """
    kind = type(value)  # the common exact types first: this runs over every payload
    if kind is str or kind is int or kind is bool or value is None:
        scalar: JSONValue = value
        return scalar
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
    return _dumps(to_json_value(value)).decode("utf-8")


def dumps_plain(value: Any) -> bytes:
    """:func:`canonical_bytes` for data that is already plain JSON (what :func:`json.loads`
    returns without floats, or what :func:`to_json_value` returned): skips the conversion.
    """
    return _dumps(value)


_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def reference_bytes(value: Any) -> bytes:
    """The rule itself: :func:`json.dumps` (sorted keys, no spaces, UTF-8 as is) encoded as
    UTF-8. :func:`canonical_bytes` gives the same bytes, faster (tests/audit compare them).
    Raises :class:`ValueError` for text that is not valid Unicode (a lone surrogate)."""
    text = _ENCODER.encode(value)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start : exc.end]
        raise ValueError(
            f"text must be valid Unicode: it holds the lone surrogate "
            f"{', '.join(f'U+{ord(ch):04X}' for ch in bad)}, which UTF-8 cannot encode"
        ) from None


if _ORJSON:
    _SORT = orjson.OPT_SORT_KEYS

    def _dumps(value: Any) -> bytes:
        # orjson writes exactly the rule's bytes for plain JSON data (sorted keys — by code
        # point, as UTF-8 byte order is —, compact, UTF-8, the same escapes; tests/audit
        # property-test it against reference_bytes). What it cannot encode (integers
        # beyond 64 bits, nesting deeper than it recurses, lone surrogates) goes to the
        # reference encoder, which encodes it or says what is wrong.
        try:
            return orjson.dumps(value, option=_SORT)
        except TypeError:
            return reference_bytes(value)

else:  # pragma: no cover - orjson is a dependency; this keeps the package usable without

    def _dumps(value: Any) -> bytes:
        return reference_bytes(value)


def canonical_bytes(value: Any) -> bytes:
    """The canonical JSON encoding of ``value``: :func:`canonical_text` as UTF-8.

    >>> canonical_bytes({"b": [1, "ü"], "a": None})
    b'{"a":null,"b":[1,"\\xc3\\xbc"]}'
    """
    return _dumps(to_json_value(value))
