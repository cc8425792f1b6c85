"""Beijing time (SPEC §1), written once: how a time is read and how it is shown.

A time without an offset is Beijing time (UTC+8); a date without a time is a whole Beijing
day; a store records UTC (``2026-11-11T02:00:00.123456Z``) and people read it as Beijing
wall-clock time (``2026-11-11 10:00:00``). Every reader and writer of a time — request
fields, record filters, statements, the report, CSV/xlsx cells — goes through here.
:mod:`pricecalc.fields` re-exports :data:`BEIJING` and :func:`parse_time` for rules and
plugins, as before.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

from pricecalc.errors import InvalidInput
from pricecalc.i18n import N_

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
#: Beijing wall-clock time to the second, as people and spreadsheets read it.
BEIJING_FORMAT = "%Y-%m-%d %H:%M:%S"
#: The last moment of a Beijing day: a date-only *end* of a window means the whole day.
_END_OF_DAY = time(23, 59, 59, 999999)
#: The date-time forms a zh-CN spreadsheet saves (SPEC §1): year first, month and day
#: without leading zeros, ``/`` or ``-``, an optional hour:minute[:second].
_SHEET_TIME = re.compile(
    r"(?P<y>[0-9]{4})(?P<sep>[/-])(?P<m>[0-9]{1,2})(?P=sep)(?P<d>[0-9]{1,2})"
    r"(?:[ T](?P<H>[0-9]{1,2}):(?P<M>[0-9]{2})(?::(?P<S>[0-9]{2})(?:\.(?P<f>[0-9]{1,6}))?)?)?"
)
_TIME_PROBLEM = N_('must be an ISO 8601 time such as "2026-11-11T10:00"')


def from_iso(text: str) -> datetime:
    """ISO 8601 text as a ``datetime``, ``Z`` read as UTC; naive when the text has no
    offset. ``ValueError`` when it is not ISO 8601."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def in_beijing(moment: datetime) -> datetime:
    """An aware time as is; a naive one read as Beijing time."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=BEIJING)


def day_start(day: date, *, end: bool = False) -> datetime:
    """A Beijing day: its 00:00, or with ``end`` its last moment (23:59:59.999999)."""
    return datetime.combine(day, _END_OF_DAY if end else time(0), BEIJING)


def parse_time(value: Any, field: str, *, end: bool = False) -> datetime:
    """Parse a time (SPEC §1): ISO 8601 or a zh-CN spreadsheet form (``2026/11/11 10:00``,
    ``2026-11-11 9:05``); without an offset it is Beijing time (+08:00). A date without a
    time is 00:00 Beijing time, or — with ``end``, the end of a window — the whole day,
    up to 23:59:59.999999."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        return day_start(value, end=end)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        sheet = _SHEET_TIME.fullmatch(text)
        if sheet is not None:
            try:
                moment = datetime(
                    int(sheet["y"]), int(sheet["m"]), int(sheet["d"]),
                    int(sheet["H"] or 0), int(sheet["M"] or 0), int(sheet["S"] or 0),
                    int((sheet["f"] or "0").ljust(6, "0")),
                )  # fmt: skip
            except ValueError as exc:
                raise InvalidInput(field, value, _TIME_PROBLEM) from exc
            if sheet["H"] is None:
                return day_start(moment.date(), end=end)
        else:
            try:
                moment = from_iso(text)
            except ValueError as exc:
                raise InvalidInput(field, value, _TIME_PROBLEM) from exc
            if ":" not in text:  # a date without a time (20261112)
                return day_start(moment.date(), end=end)
    else:
        raise InvalidInput(field, value, _TIME_PROBLEM)
    return in_beijing(moment)


def beijing_day(recorded_at: str) -> date:
    """The Beijing calendar date of a ``recorded_at`` UTC time (the campaign's day)."""
    return in_beijing(from_iso(recorded_at)).astimezone(BEIJING).date()


def wall_clock(moment: datetime) -> str:
    """An aware time as Beijing wall-clock text to the second: ``2026-11-11 10:00:00``."""
    return moment.astimezone(BEIJING).strftime(BEIJING_FORMAT)


def beijing_text(recorded_at: Any) -> str | None:
    """``2026-11-11T02:00:00.123456Z`` → ``2026-11-11 10:00:00``: a recorded (UTC) time as
    Beijing wall-clock time to the second, for people; ``None`` when it is no time."""
    try:
        moment = from_iso(str(recorded_at))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return wall_clock(moment)


def read_wall_clock(text: str) -> datetime:
    """``2026-11-11 10:00:00`` back as a naive Beijing time (what the clerk's clock said);
    ``ValueError`` when the text is not in that form."""
    return datetime.strptime(text, BEIJING_FORMAT)


def naive_beijing(moment: datetime) -> datetime:
    """A time as a spreadsheet holds it: an aware one in Beijing time without its offset; a
    naive one as it is."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(BEIJING).replace(tzinfo=None)


def beijing_iso(moment: datetime) -> str:
    """An instant as ISO text at Beijing's offset: ``2026-11-11T10:00:00+08:00``."""
    return moment.astimezone(BEIJING).isoformat()


def utc_text(moment: datetime) -> str:
    """An instant as UTC ISO text: ``2026-11-11T02:00:00Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
