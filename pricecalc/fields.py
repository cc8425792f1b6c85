"""Reading request input: every accessor names the field path in its errors.

Rules parse their input through a :class:`Fields` reader, so that an error always says
``input.lines[1].unit_price: has more than two decimals (got '1.001')``. Times follow
SPEC §1: ISO 8601, a time without an offset is Beijing time (+08:00).
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Collection, Iterator, Mapping
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

from pricecalc.errors import InvalidInput, MissingField
from pricecalc.money import (
    ASCII_DIGITS,
    has_other_digits,
    parse_amount,
    parse_rate,
    refuse_float,
    usual_amount,
)

#: Whole numbers (quantities, counts) beyond this are refused as implausible input.
MAX_INTEGER = 1_000_000_000
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
_MISSING = object()
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")
#: A count as a spreadsheet cell may hold it: a zero fraction (``2.00``), SPEC §1.
_ZERO_FRACTION = re.compile(r"(?P<whole>[+-]?[0-9]+)\.0*")
#: The date-time forms a zh-CN spreadsheet saves (SPEC §1): year first, month and day
#: without leading zeros, ``/`` or ``-``, an optional hour:minute[:second].
_SHEET_TIME = re.compile(
    r"(?P<y>[0-9]{4})(?P<sep>[/-])(?P<m>[0-9]{1,2})(?P=sep)(?P<d>[0-9]{1,2})"
    r"(?:[ T](?P<H>[0-9]{1,2}):(?P<M>[0-9]{2})(?::(?P<S>[0-9]{2})(?:\.(?P<f>[0-9]{1,6}))?)?)?"
)
_TIME_PROBLEM = 'must be an ISO 8601 time such as "2026-11-11T10:00"'
#: The last moment of a Beijing day: a date-only *end* of a window means the whole day.
_END_OF_DAY = time(23, 59, 59, 999999)


class SheetText(str):
    """The text of a CSV or xlsx cell (:mod:`pricecalc.reading`): where a spreadsheet may
    have written a count with a zero fraction (``2.00``), it is the integer (SPEC §1)."""

    __slots__ = ()


def _date_only(moment: datetime, end: bool) -> datetime:
    """A date without a time: 00:00 Beijing time, or with ``end`` the whole Beijing day."""
    day = datetime.combine(moment.date(), _END_OF_DAY if end else time(0), BEIJING)
    return day


def parse_time(value: Any, field: str, *, end: bool = False) -> datetime:
    """Parse a time (SPEC §1): ISO 8601 or a zh-CN spreadsheet form (``2026/11/11 10:00``,
    ``2026-11-11 9:05``); without an offset it is Beijing time (+08:00). A date without a
    time is 00:00 Beijing time, or — with ``end``, the end of a window — the whole day,
    up to 23:59:59.999999."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        return _date_only(datetime.combine(value, time(0)), end)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        sheet = _SHEET_TIME.fullmatch(text)
        if sheet is not None:
            try:
                moment = datetime(
                    int(sheet["y"]), int(sheet["m"]), int(sheet["d"]),
                    int(sheet["H"] or 0), int(sheet["M"] or 0), int(sheet["S"] or 0),
                    int((sheet["f"] or "0").ljust(6, "0")),
                )
            except ValueError as exc:
                raise InvalidInput(field, value, _TIME_PROBLEM) from exc
            if sheet["H"] is None:
                return _date_only(moment, end)
        else:
            try:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError as exc:
                raise InvalidInput(field, value, _TIME_PROBLEM) from exc
            if ":" not in text:  # a date without a time (20261112)
                return _date_only(moment, end)
    else:
        raise InvalidInput(field, value, _TIME_PROBLEM)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=BEIJING)
    return moment


def parse_date(value: Any, field: str) -> date:
    """Parse an ISO 8601 calendar date (``2026-11-11``)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise InvalidInput(field, value, 'must be an ISO 8601 date such as "2026-11-11"')


class _Named:
    """The path of a field of a :class:`Fields`, spelt out when first needed."""

    __slots__ = ("_fields", "_name", "_text")

    def __init__(self, fields: Fields, name: str) -> None:
        self._fields, self._name = fields, name
        self._text: str | None = None

    def __str__(self) -> str:
        text = self._text
        if text is None:
            text = self._text = self._fields.at(self._name)
        return text


def iso(moment: datetime) -> str:
    """Format a time for output, keeping its offset (``2026-11-11T20:00:00+08:00``)."""
    return moment.isoformat()


class Fields:
    """A read-only view of one mapping in a request, remembering its path.

    The path (``input.lines[1]``) is only spelt out when a message needs it: an item of a
    list keeps its parent and index (``Fields.items``), so reading a valid request builds
    no path text at all.
    """

    __slots__ = ("_index", "_parent", "_path", "data")

    def __init__(
        self,
        data: Mapping[str, Any],
        path: str | None = "input",
        *,
        parent: Fields | _Named | str | None = None,
        index: int = 0,
    ) -> None:
        self.data = data
        self._path = path
        self._parent = parent
        self._index = index

    @property
    def path(self) -> str:
        path = self._path
        if path is None:
            parent = self._parent
            base = parent.path if isinstance(parent, Fields) else str(parent)
            path = self._path = f"{base}[{self._index}]"
        return path

    def __repr__(self) -> str:
        return f"Fields({self.data!r}, {self.path!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fields) and (self.data, self.path) == (other.data, other.path)

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def of(cls, data: Any, path: str = "input") -> Fields:
        if type(data) is not dict and not isinstance(data, Mapping):  # dict: skip the ABC check
            raise InvalidInput(path, data, "must be an object")
        return cls(data, path)

    def at(self, name: str) -> str:
        return f"{self.path}.{name}"

    def has(self, name: str) -> bool:
        return self.data.get(name) is not None

    def raw(self, name: str, default: Any = _MISSING) -> Any:
        value = self.data.get(name)
        if value is None:
            if default is _MISSING:
                raise MissingField(self.at(name))
            return default
        return value

    # -- scalars -----------------------------------------------------------------------
    def amount(self, name: str, *, positive: bool = False) -> Decimal:
        value = self.data.get(name)
        # The usual text needs no field name; anything else is checked, naming the field.
        usual = usual_amount(value, positive=positive)
        if usual is not None:
            return usual
        if value is None:
            raise MissingField(self.at(name))
        return parse_amount(value, self.at(name), positive=positive)

    def optional_amount(self, name: str, *, positive: bool = False) -> Decimal | None:
        if self.data.get(name) is None:
            return None
        return self.amount(name, positive=positive)

    def rate(self, name: str) -> Decimal:
        return parse_rate(self.raw(name), self.at(name))

    def string(self, name: str, default: Any = _MISSING) -> str:
        value = self.data.get(name)
        if type(value) is str:  # the usual case, without spelling out the path
            text = value.strip()
            if text:
                return text
        value = self.raw(name, default)
        if value is default and default is not _MISSING:
            return value  # type: ignore[no-any-return]
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise InvalidInput(self.at(name), value, "must be text")
        text = str(value).strip()
        if not text:
            raise InvalidInput(self.at(name), value, "must not be empty")
        return text

    def optional_string(self, name: str) -> str | None:
        if self.data.get(name) is None:
            return None
        return self.string(name)

    def integer(self, name: str, default: Any = _MISSING, *, minimum: int | None = None) -> int:
        """A count (SPEC §1): a JSON integer or integer text in ASCII digits. ``2.0``,
        ``1e2`` (JSON numbers with a fraction or an exponent) and ``"１０"`` are refused."""
        value = self.raw(name, default)
        if type(value) is not int:
            value = self._integer_text(name, value)
        if minimum is not None and value < minimum:
            raise InvalidInput(self.at(name), value, f"must be at least {minimum}")
        if abs(value) > MAX_INTEGER:
            raise InvalidInput(self.at(name), value, f"must be at most {MAX_INTEGER:,}")
        return value

    def _integer_text(self, name: str, value: Any) -> int:
        refuse_float(value, self.at(name))
        if isinstance(value, str):
            text = value.strip()
            if _INTEGER_TEXT.fullmatch(text):
                if len(text.lstrip("+-0")) > 12:  # far beyond MAX_INTEGER: no int() of it
                    raise InvalidInput(self.at(name), value, f"must be at most {MAX_INTEGER:,}")
                return int(text)
            zero = _ZERO_FRACTION.fullmatch(text) if isinstance(value, SheetText) else None
            if zero is not None:  # 2.00 in a spreadsheet cell is 2 (SPEC §1)
                return self._integer_text(name, zero["whole"])
            if has_other_digits(text):
                raise InvalidInput(self.at(name), value, f"{ASCII_DIGITS} (such as 2)")
        elif isinstance(value, Decimal):  # a JSON number written 2.0 or 1e2
            raise InvalidInput(
                self.at(name), value, "must be a whole number (a JSON integer such as 2)"
            )
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)  # numpy.int64 and friends: exactly the integer
        raise InvalidInput(self.at(name), value, "must be a whole number")

    def number(self, name: str) -> Decimal:
        """A plain non-money number (a score, a DSR): any decimal places, not negative."""
        value = self.raw(name)
        return parse_rate(value, self.at(name))

    def boolean(self, name: str, default: Any = _MISSING) -> bool:
        value = self.raw(name, default)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
            return value.strip().lower() == "true"
        raise InvalidInput(self.at(name), value, "must be true or false")

    def time(self, name: str, *, end: bool = False) -> datetime:
        """A time (:func:`parse_time`); ``end`` for the end of a window, where a date
        without a time means the whole Beijing day (SPEC §1)."""
        value = self.data.get(name)
        if type(value) is str and ":" in value:  # the usual case, without spelling the path
            try:
                moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except ValueError:
                pass
            else:
                return moment if moment.tzinfo is not None else moment.replace(tzinfo=BEIJING)
        return parse_time(self.raw(name), self.at(name), end=end)

    def optional_time(self, name: str, *, end: bool = False) -> datetime | None:
        if not self.has(name):
            return None
        return self.time(name, end=end)

    def date(self, name: str) -> date:
        return parse_date(self.raw(name), self.at(name))

    def choice(self, name: str, choices: tuple[str, ...], default: Any = _MISSING) -> str:
        value = self.string(name, default)
        if value not in choices:
            raise InvalidInput(self.at(name), value, f"must be one of {', '.join(choices)}")
        return value

    # -- structures --------------------------------------------------------------------
    def obj(self, name: str) -> Fields:
        return Fields.of(self.raw(name), self.at(name))

    def optional_obj(self, name: str) -> Fields | None:
        if not self.has(name):
            return None
        return self.obj(name)

    def items(
        self, name: str, *, required: bool = True, non_empty: bool = False
    ) -> Iterator[Fields]:
        """Iterate over a list of objects, each a reader with its index in the path."""
        value = self.raw(name) if required else self.data.get(name, ())
        if not isinstance(value, list | tuple):
            if value is None and not required:
                return iter(())
            raise InvalidInput(self.at(name), value, "must be a list")
        if not value:
            if non_empty:
                raise InvalidInput(self.at(name), value, "must not be empty")
            return iter(())
        return self._items(name, value)

    def _items(self, name: str, value: list[Any] | tuple[Any, ...]) -> Iterator[Fields]:
        parent = _Named(self, name)
        for index, item in enumerate(value):
            if type(item) is not dict and not isinstance(item, Mapping):
                raise InvalidInput(f"{parent}[{index}]", item, "must be an object")
            yield Fields(item, None, parent=parent, index=index)

    def mapping(self, name: str) -> Fields | None:
        """An optional object whose keys are data (``already_refunded: {line_id: amount}``)."""
        if not self.has(name):
            return None
        return self.obj(name)


def check_keys(fields: Fields, allowed: Collection[str]) -> None:
    """Refuse keys the object does not know, naming the first one (sorted)."""
    unknown = fields.data.keys() - allowed
    if unknown:
        name = min(unknown)
        raise InvalidInput(
            fields.at(name),
            fields.data[name],
            f"is not a field of this object (expected one of {', '.join(sorted(allowed))})",
        )
