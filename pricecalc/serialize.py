"""JSON in and out without floats, and the one walk that turns values into plain JSON data.

Requests are read with ``parse_float=Decimal`` (SPEC §1: never through float).
:func:`canonical_request` makes the canonical copy of a request — the data a decision records
and its content key is computed over — and refuses, naming the field, whatever SPEC §1
calls invalid at any depth: a Python ``float`` (``TypeError``), text that is not valid
Unicode (a lone surrogate) or holds U+0000, an integer beyond 64 bits, nesting deeper
than :data:`MAX_DEPTH` levels. :func:`checked_result` checks and copies what a rule returns:
JSON data with money as strings. Both are one walk (:func:`_walk`), run first without
building paths; only a value that fails is walked again, to name the place.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NoReturn

import orjson

from pricecalc.errors import FloatRefused, InvalidInput, PluginError
from pricecalc.i18n import msg
from pricecalc.money import ExponentNumber

#: A request nested deeper than this many objects and lists is invalid input (SPEC §1).
MAX_DEPTH = 32
#: Integers beyond 64 bits have no place in a request (counts are at most a billion and
#: amounts a trillion); refusing them keeps every number printable and encodable.
MAX_INT = 2**63 - 1


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


def text_problem(text: str) -> str | None:
    """What makes ``text`` unfit for a finance record (SPEC §1), or None: U+0000, or a
    lone surrogate (not valid Unicode, so it cannot be written as UTF-8)."""
    if "\x00" in text:
        return msg("must not contain the character U+0000")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            return msg(
                "is not valid Unicode text (a lone surrogate U+{code:04X} at character {at})",
                code=ord(text[exc.start]),
                at=exc.start + 1,
            )
    return None


# -- the walk ------------------------------------------------------------------------------
class _Refused(Exception):
    """Raised by the walk without paths; the walk with paths then names the place."""


def _short(path: str) -> str:
    return path if len(path) <= 80 else f"{path[:60]}…{path[-16:]}"


def _big(value: int) -> str:
    if value.bit_length() < 14_000:  # str() refuses more than 4,300 digits
        return msg("an integer of {count} digits", count=len(str(abs(value))))
    return msg("an integer of thousands of digits")


class _Rules:
    """What one kind of walk accepts besides plain JSON data, and how it refuses."""

    #: Decimal becomes its text (requests) or is refused (results, where money is text).
    decimals = False
    #: Times become ISO 8601 and whole-number keys text (values a script may pass in).
    loose = False

    def refuse(self, path: str, value: Any, problem: str) -> Exception:
        raise NotImplementedError

    def child(self, path: str, key: str) -> str:
        return f"{path}.{key}"


class _RequestRules(_Rules):
    decimals = True
    loose = True

    def refuse(self, path: str, value: Any, problem: str) -> Exception:
        where = path or "request"
        if problem == "float":
            return FloatRefused(
                f"request.{path}: a float ({value!r}) is not accepted; "
                "pass a string such as '199.90'"
            )
        if problem == "type":
            return TypeError(f"{where}: {type(value).__name__} is not a JSON value")
        if problem == "key":
            return TypeError(f"{where}: a field name must be text, not {type(value).__name__}")
        if problem == "deep":
            return InvalidInput(
                _short(where),
                None,
                msg("is nested deeper than {depth} levels of objects and lists", depth=MAX_DEPTH),
                shown=msg("more levels"),
            )
        if problem == "int":
            return InvalidInput(
                where,
                value,
                msg("is too large a number (at most {limit})", limit=MAX_INT),
                shown=_big(value),
            )
        return InvalidInput(_short(where), value, problem)

    def child(self, path: str, key: str) -> str:
        return f"{path}.{key}" if path else key


class _ResultRules(_Rules):
    def __init__(self, plugin: str) -> None:
        self.plugin = plugin

    def refuse(self, path: str, value: Any, problem: str) -> Exception:
        where = _short(path)
        why = {
            "float": f"{where} is a float ({value!r}); amounts must be strings",
            "key": f"{where} has a non-text key {value!r}",
            "type": f"{where} holds a {type(value).__name__}, not JSON data",
            "deep": f"{where} is nested deeper than {MAX_DEPTH} levels",
            "int": f"{where} is an integer beyond 64 bits",
        }.get(problem, f"{where} {problem}")
        return PluginError(self.plugin, why)


def _fail(rules: _Rules, path: str | None, value: Any, problem: str) -> NoReturn:
    if path is None:
        raise _Refused
    raise rules.refuse(path, value, problem)


def _walk(value: Any, rules: _Rules, path: str | None, depth: int) -> Any:
    """The plain-JSON copy of ``value``. With ``path`` None this is the fast walk, which
    raises :class:`_Refused` at the first problem; otherwise the problem is named."""
    kind = type(value)
    if kind is str:
        if value.isascii() and "\x00" not in value:
            return value
        problem = text_problem(value)
        return value if problem is None else _fail(rules, path, value, problem)
    if kind is int:
        return value if -MAX_INT <= value <= MAX_INT else _fail(rules, path, value, "int")
    if kind is bool or value is None:
        return value
    if kind is dict:
        return _object(value, rules, path, depth)
    if kind is list:
        return _array(value, rules, path, depth)
    if kind is Decimal and rules.decimals:
        return str(value)
    return _uncommon(value, rules, path, depth)


def _object(value: Mapping[Any, Any], rules: _Rules, path: str | None, depth: int) -> Any:
    if depth >= MAX_DEPTH:
        _fail(rules, path, value, "deep")
    out: dict[str, Any] = {}
    for key, item in value.items():
        if type(key) is not str or not key.isascii() or "\x00" in key:
            key = _key(key, rules, path)
        out[key] = _walk(item, rules, None if path is None else rules.child(path, key), depth + 1)
    return out


def _array(value: list[Any] | tuple[Any, ...], rules: _Rules, path: str | None, depth: int) -> Any:
    if depth >= MAX_DEPTH:
        _fail(rules, path, value, "deep")
    if path is None:
        return [_walk(item, rules, None, depth + 1) for item in value]
    return [_walk(item, rules, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]


def _key(key: Any, rules: _Rules, path: str | None) -> str:
    if isinstance(key, str):
        problem = text_problem(key)
        if problem is None:
            return str.__str__(key)
        where = None if path is None else rules.child(path, repr(key))
        _fail(rules, where, key, msg("(a field name) {problem}", problem=problem))
    if rules.loose and isinstance(key, int) and not isinstance(key, bool):
        return str(int(key))
    _fail(rules, path, key, "key")


MISSING_PROBLEM = "is a missing value (pandas NA/NaT): leave the field out, or give a value"


def missing_marker(value: Any) -> bool:
    """True for pandas' and numpy's missing values (``pd.NA``, ``pd.NaT``, ``numpy``'s
    ``NaT``), recognised without importing either (a script's data frame, SPEC §8)."""
    kind = type(value)
    if kind.__name__ in ("NAType", "NaTType") and kind.__module__.startswith("pandas"):
        return True
    return (
        kind.__module__ == "numpy"
        and kind.__name__ in ("datetime64", "timedelta64")
        and (str(value) == "NaT")
    )


def _uncommon(value: Any, rules: _Rules, path: str | None, depth: int) -> Any:
    """Everything but the exact JSON types: converted where the rules allow, else refused."""
    if missing_marker(value):
        _fail(rules, path, value, MISSING_PROBLEM)
    if isinstance(value, float):
        _fail(rules, path, value, "float")
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):  # an int subclass (IntEnum …): as a plain int
        return _walk(int(value), rules, path, depth)
    if isinstance(value, str):
        return _walk(str.__str__(value), rules, path, depth)
    if isinstance(value, numbers.Integral):  # numpy.int64 and friends: the exact integer
        return _walk(int(value), rules, path, depth)
    if isinstance(value, Mapping):
        return _object(value, rules, path, depth)
    if isinstance(value, list | tuple):
        return _array(value, rules, path, depth)
    if rules.decimals and isinstance(value, Decimal):  # ExponentNumber and other subclasses
        return str(value)
    if rules.loose and isinstance(value, datetime | date):
        return value.isoformat()
    _fail(rules, path, value, "type")


#: Field names the fast pass has seen to be plain ASCII text (requests and results use the
#: same few dozen names); bounded, so hostile input cannot grow it without end.
_KNOWN_KEYS: set[str] = set()
_KNOWN_KEYS_MAX = 4096


def _fast_object(value: dict[Any, Any], decimals: bool, depth: int) -> dict[str, Any]:
    """The walk's fast pass over exact JSON types (plus Decimal when ``decimals``): the
    same copy :func:`_walk` makes, or :class:`_Refused` for anything else, anything wrong
    or anything uncommon — the full walk then converts it or names the problem. Scalars
    are handled inline: a request is mostly text and numbers."""
    if depth >= MAX_DEPTH:
        raise _Refused
    out: dict[str, Any] = {}
    known = _KNOWN_KEYS
    for key, item in value.items():
        if key not in known:
            if type(key) is not str or not key.isascii() or "\x00" in key:
                raise _Refused
            if len(known) < _KNOWN_KEYS_MAX:
                known.add(key)
        kind = type(item)
        if kind is str:
            if (not item.isascii() or "\x00" in item) and text_problem(item) is not None:
                raise _Refused
            out[key] = item
        elif kind is Decimal:
            if not decimals:
                raise _Refused
            out[key] = str(item)
        elif kind is int:
            if not -MAX_INT <= item <= MAX_INT:
                raise _Refused
            out[key] = item
        elif kind is dict:
            out[key] = _fast_object(item, decimals, depth + 1)
        elif kind is list:
            out[key] = _fast_array(item, decimals, depth + 1)
        elif kind is bool or item is None:
            out[key] = item
        else:
            raise _Refused
    return out


def _fast_array(value: list[Any], decimals: bool, depth: int) -> list[Any]:
    if depth >= MAX_DEPTH:
        raise _Refused
    out: list[Any] = []
    for item in value:
        kind = type(item)
        if kind is dict:
            out.append(_fast_object(item, decimals, depth + 1))
        elif kind is str:
            if (not item.isascii() or "\x00" in item) and text_problem(item) is not None:
                raise _Refused
            out.append(item)
        else:
            out.append(_fast_object({"": item}, decimals, depth)[""])
    return out


def _walked(value: Any, rules: _Rules, path: str) -> Any:
    try:
        if type(value) is dict:
            return _fast_object(value, rules.decimals, 0)
        return _walk(value, rules, None, 0)
    except _Refused:
        return _walk(value, rules, path, 0)


_REQUEST = _RequestRules()


def canonical_request(value: Any, path: str = "") -> Any:
    """The canonical copy of (a part of) a request: plain JSON data, every ``Decimal`` as
    its text, tuples as lists, times in ISO 8601.

    Raises ``TypeError`` for a float (or another value JSON has no form for) and
    :class:`~pricecalc.errors.InvalidInput` for text with U+0000 or a lone surrogate, an
    integer beyond 64 bits or nesting deeper than :data:`MAX_DEPTH`, naming the field
    (``path`` is where ``value`` sits in the request: ``""`` for the whole of it).
    """
    return _walked(value, _REQUEST, path)


def checked_result(plugin: str, value: Any) -> Any:
    """A rule's result, checked and copied: JSON data with money as strings (no float, no
    Decimal, text keys, valid text). A problem is a :class:`~pricecalc.errors.PluginError`
    naming ``plugin`` and the path (``result.lines[0].refund is a float …``)."""
    return _walked(value, _ResultRules(plugin), "result")


def jsonable(value: Any, path: str = "") -> Any:
    """:func:`canonical_request` for any value pricecalc writes out (policy values, output)."""
    return canonical_request(value, path)


def copy_json(value: Any) -> Any:
    """A copy of plain JSON data (what decisions hold): containers copied, the rest shared
    (text, numbers, booleans and None are immutable). Other mappings become dicts."""
    if type(value) is dict:
        out = value.copy()
        for key, item in out.items():
            if type(item) is dict or type(item) is list:
                out[key] = copy_json(item)
        return out
    if type(value) is list:
        return [copy_json(i) if type(i) is dict or type(i) is list else i for i in value]
    if isinstance(value, Mapping):
        return {key: copy_json(item) for key, item in value.items()}
    return value


def _same(value: Any) -> Any:
    return value


def map_json(
    value: Any,
    leaf: Callable[[Any], Any] = _same,
    *,
    key: Callable[[Any], Any] = _same,
    sort_keys: bool = False,
) -> Any:
    """The one walk over JSON-like data that is already checked: a copy with every mapping
    a dict (its keys through ``key``, in sorted order with ``sort_keys``), every list or
    tuple a list, and every other value through ``leaf``. (:func:`canonical_request` is the
    walk that checks: depth, types, text, naming the field.)"""
    if isinstance(value, Mapping):
        names = sorted(value) if sort_keys else value
        return {key(k): map_json(value[k], leaf, key=key, sort_keys=sort_keys) for k in names}
    if isinstance(value, list | tuple):
        return [map_json(item, leaf, key=key, sort_keys=sort_keys) for item in value]
    return leaf(value)


def sorted_json(value: Any) -> Any:
    """A copy of plain JSON data with every object's keys in sorted order — the order the
    audit store's canonical JSON gives a replayed decision (made in C by orjson)."""
    try:
        return orjson.loads(orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
    except TypeError:  # not plain JSON data: the same, the slow way
        return map_json(value, sort_keys=True)


def dumps(value: Any) -> str:
    """Compact JSON of a JSON-able value, non-ASCII kept readable: what
    ``json.dumps(jsonable(value), ensure_ascii=False, separators=(",", ":"))`` writes.

    Plain JSON data (what decisions and rows are) is written by orjson, byte for byte the
    same text (audit.canonical proves the encoding identical); anything else — a Decimal,
    a time, a tuple, a non-text key — goes through :func:`jsonable` first.
    """
    try:
        return orjson.dumps(value).decode("utf-8")
    except TypeError:  # not plain JSON data (orjson.JSONEncodeError is a TypeError)
        return json.dumps(jsonable(value), ensure_ascii=False, separators=(",", ":"))


__all__ = [
    "MAX_DEPTH",
    "MAX_INT",
    "canonical_request",
    "checked_result",
    "copy_json",
    "dumps",
    "jsonable",
    "loads",
    "map_json",
    "sorted_json",
    "text_problem",
]
