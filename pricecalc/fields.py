"""Reading request input: every accessor names the field path in its errors.

Rules parse their input through a :class:`Fields` reader, so that an error always says
``input.lines[1].unit_price: has more than two decimals (got '1.001')``. Times follow
SPEC §1: ISO 8601, a time without an offset is Beijing time (+08:00).
"""

from __future__ import annotations

import numbers
import re
import unicodedata
from collections.abc import Collection, Iterator, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pricecalc.beijing import BEIJING as BEIJING, from_iso, in_beijing, parse_time as parse_time

# The declarations (pricecalc.declared), part of the contract: rules import them here.
from pricecalc.declared import (
    AMOUNT_PATTERN as AMOUNT_PATTERN,
    INTEGER_PATTERN as INTEGER_PATTERN,
    MAX_INTEGER as MAX_INTEGER,
    MONEY_OUT as MONEY_OUT,
    NUMBER_PATTERN as NUMBER_PATTERN,
    RATE_OUT as RATE_OUT,
    RATE_PATTERN as RATE_PATTERN,
    REQUEST_CHECKS as REQUEST_CHECKS,
    Declared as Declared,
    Shape as Shape,
    amount_field as amount_field,
    boolean_field as boolean_field,
    choice_field as choice_field,
    count_field as count_field,
    date_field as date_field,
    items_field as items_field,
    mapping_field as mapping_field,
    object_field as object_field,
    rate_field as rate_field,
    result_field as result_field,
    score_field as score_field,
    shape as shape,
    text_field as text_field,
    time_field as time_field,
)
from pricecalc.errors import InvalidInput, MissingField
from pricecalc.i18n import N_, msg
from pricecalc.money import (
    ASCII_DIGITS,
    has_other_digits,
    parse_amount,
    parse_rate,
    refuse_float,
    usual_amount,
)

_MISSING = object()
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")
#: A count as a spreadsheet cell may hold it: a zero fraction (``2.00``), SPEC §1.
_ZERO_FRACTION = re.compile(r"(?P<whole>[+-]?[0-9]+)\.0*")
TOO_LONG = N_("must be at most {limit} characters (it has {count:,})")
AT_MOST = N_("must be at most {limit:,}")

#: Identifiers (SPEC §1) hold at most this many characters.
MAX_IDENTIFIER = 128
#: A number Excel rewrote in scientific notation: ``6.91234567890124E+018``, ``1.2E+5``.
_EXCEL_SCIENTIFIC = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?[eE][+-]?[0-9]+")
#: The Unicode categories an identifier must not hold: control, format (zero-width
#: space, byte-order mark …), line and paragraph separators.
_INVISIBLE = frozenset({"Cc", "Cf", "Zl", "Zp"})
#: Characters that show nothing but are not in those categories: Unicode's default
#: ignorable code points of other categories (the combining grapheme joiner, the Hangul
#: fillers, the Khmer inherent vowels, the Mongolian and other variation selectors) and the
#: blank braille pattern. ``O-1`` followed by one of them looks like ``O-1``.
_INVISIBLE_CHARS = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u2800\u3164\uffa0"
    + "".join(map(chr, range(0xFE00, 0xFE10)))
    + "".join(map(chr, range(0xE0100, 0xE01F0)))
)
#: Dashes that are not Unicode "Pd" but read as one: minus signs, the hyphen bullet.
_DASH_LIKE = frozenset("\u2212\u2043\u02d7\u2796\u207b\u208b")


def _is_dash(c: str) -> bool:
    return c != "-" and (c in _DASH_LIKE or unicodedata.category(c) == "Pd")


def _shown(text: str) -> str:
    """An identifier as a message shows it: escaped, so an invisible character is seen
    (``'O-1\\u200b'``), and cut short when long."""
    cut = text if len(text) <= 60 else text[:57] + "..."
    return cut.encode("ascii", "backslashreplace").decode("ascii").join("''")


def identifier(value: Any, field: str | _Named) -> str:
    """An identifier (``order_id``, ``line_id``, ``sku``, ``product_id``, ``request_id``,
    ``merchant_id``; SPEC §1): text — or a JSON integer, read as its decimal text — with
    surrounding whitespace removed and NFKC applied (full-width ``Ｏ-１`` is ``O-1``).

    Refused, naming the field and showing the value escaped: an empty one; one longer than
    :data:`MAX_IDENTIFIER` characters (checked first, so a huge value is refused before
    anything else is done with it); one holding an invisible or control character (Unicode
    categories Cc, Cf, Zl, Zp, and the other characters that show nothing:
    :data:`_INVISIBLE_CHARS`) or a dash other than ASCII ``-``; one that looks like a
    number Excel rewrote in scientific notation (its digits are lost). Look-alikes must
    never make one order line two.
    """
    if isinstance(value, str):
        text = str(value)  # a spreadsheet cell's text (SheetText) is text like any other
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    else:
        raise InvalidInput(str(field), value, "must be text")
    if len(text) > 4 * MAX_IDENTIFIER:  # before any copy of a huge value
        raise InvalidInput(
            str(field),
            value,
            msg(TOO_LONG, limit=MAX_IDENTIFIER, count=len(text)),
            shown=_shown(text),
        )
    text = text.strip()
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text).strip()
    if not text:
        raise InvalidInput(str(field), value, "must not be empty")
    if len(text) > MAX_IDENTIFIER:
        raise InvalidInput(
            str(field),
            value,
            msg(TOO_LONG, limit=MAX_IDENTIFIER, count=len(text)),
            shown=_shown(text),
        )
    if text.isascii():
        bad = next((c for c in text if c < " " or c == "\x7f"), None)
    else:
        bad = next(
            (
                c
                for c in text
                if unicodedata.category(c) in _INVISIBLE
                or c in _INVISIBLE_CHARS
                or _is_dash(c)
            ),
            None,
        )
    if bad is not None:
        what = (
            msg(
                "a dash other than ASCII '-' (U+{code:04X} {name})",
                code=ord(bad), name=unicodedata.name(bad, ""),
            )
            if _is_dash(bad)
            else msg("an invisible or control character (U+{code:04X})", code=ord(bad))
        )  # fmt: skip
        raise InvalidInput(
            str(field),
            value,
            msg("must not contain {what}: look-alike ids would make one order two", what=what),
            shown=_shown(value),
        )
    if ("E" in text or "e" in text) and _EXCEL_SCIENTIFIC.fullmatch(text):
        raise InvalidInput(
            str(field),
            value,
            msg(
                "Excel turned a long number into {text}: its digits are lost — "
                "format the column as text",
                text=text,
            ),
        )
    return text


class SheetText(str):
    """The text of a CSV or xlsx cell (:mod:`pricecalc.files.sheets`): where a spreadsheet may
    have written a count with a zero fraction (``2.00``), it is the integer (SPEC §1)."""

    __slots__ = ()


def parse_date(value: Any, field: str) -> date:
    """Parse an ISO 8601 calendar date (``2026-11-11``)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise InvalidInput(field, value, N_('must be an ISO 8601 date such as "2026-11-11"'))


def stored_identifier(value: Any) -> Any:
    """An identifier read back from a record, compared as SPEC §1 reads a new one
    (surrounding whitespace removed, NFKC): records written before normalisation still
    match. Never refuses — anything but text is returned unchanged."""
    if type(value) is not str:
        return value
    text = value.strip()
    return text if text.isascii() else unicodedata.normalize("NFKC", text).strip()


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
            raise InvalidInput(path, data, N_("must be an object"))
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

    def identifier(self, name: str) -> str:
        """An identifier field (SPEC §1, :func:`identifier`)."""
        value = self.data.get(name)
        if value is None:
            raise MissingField(self.at(name))
        if type(value) is str and value.isascii() and 0 < len(value) <= MAX_IDENTIFIER:
            # the usual case: plain ASCII, checked without spelling out the path
            text = value.strip()
            if (
                text
                and text.isprintable()
                and not (("E" in text or "e" in text) and _EXCEL_SCIENTIFIC.fullmatch(text))
            ):
                return text
        return identifier(value, _Named(self, name))

    def optional_identifier(self, name: str) -> str | None:
        if self.data.get(name) is None:
            return None
        return self.identifier(name)

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
            said = msg("must be at least {minimum}", minimum=minimum)
            raise InvalidInput(self.at(name), value, said)
        if abs(value) > MAX_INTEGER:
            raise InvalidInput(self.at(name), value, msg(AT_MOST, limit=MAX_INTEGER))
        return value

    def _integer_text(self, name: str, value: Any) -> int:
        refuse_float(value, self.at(name))
        if isinstance(value, str):
            text = value.strip()
            if _INTEGER_TEXT.fullmatch(text):
                if len(text.lstrip("+-0")) > 12:  # far beyond MAX_INTEGER: no int() of it
                    raise InvalidInput(self.at(name), value, msg(AT_MOST, limit=MAX_INTEGER))
                return int(text)
            zero = _ZERO_FRACTION.fullmatch(text) if isinstance(value, SheetText) else None
            if zero is not None:  # 2.00 in a spreadsheet cell is 2 (SPEC §1)
                return self._integer_text(name, zero["whole"])
            if has_other_digits(text):
                said = msg("{digits} (such as 2)", digits=msg(ASCII_DIGITS))
                raise InvalidInput(self.at(name), value, said)
        elif isinstance(value, Decimal):  # a JSON number written 2.0 or 1e2
            raise InvalidInput(
                self.at(name), value, N_("must be a whole number (a JSON integer such as 2)")
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
                moment = from_iso(value.strip())
            except ValueError:
                pass
            else:
                return in_beijing(moment)
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
            said = msg("must be one of {choices}", choices=", ".join(choices))
            raise InvalidInput(self.at(name), value, said)
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
                raise InvalidInput(f"{parent}[{index}]", item, N_("must be an object"))
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
            msg(
                "is not a field of this object (expected one of {fields})",
                fields=", ".join(sorted(allowed)),
            ),
        )
