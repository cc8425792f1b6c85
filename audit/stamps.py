"""A record's time and id: ``recorded_at`` text (UTC, microseconds, ``Z``) and its
microseconds since the epoch (the index's time column), and the record ids (random
UUID4 hex). Part of the record format (:mod:`audit.records`), kept apart because a
stamp is made once per record on the hot path and read back by every backend.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

__all__ = ["RecordIds", "Stamper", "epoch_micros", "format_timestamp", "parse_timestamp"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def format_timestamp(moment: datetime) -> str:
    """``recorded_at`` text: UTC, microseconds, ``Z`` (``2024-05-01T08:00:00.000000Z``)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"the clock must give aware datetimes, got {moment!r}")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Stamper:
    """:func:`format_timestamp` for a stream of clock readings, and each reading's
    microseconds since the epoch (the index's time column) with it.

    The date and seconds (``strftime``, the slow part) are formatted once per second of
    clock time; each reading then only adds its microseconds. Same text as
    :func:`format_timestamp` for every aware datetime (tests/audit compare them).
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        # (the whole seconds since the epoch of the last second stamped, its text)
        self._last: tuple[int, str] | None = None

    def stamp(self, moment: datetime) -> tuple[str, int]:
        """``(recorded_at text, microseconds since 1970-01-01 UTC)`` of ``moment``."""
        if moment.tzinfo is not UTC:
            if moment.tzinfo is None or moment.utcoffset() is None:
                raise ValueError(f"the clock must give aware datetimes, got {moment!r}")
            moment = moment.astimezone(UTC)
        # The epoch microseconds first (two C operations), the second compared as an
        # integer: no ``datetime.replace`` per reading, only when the second changes.
        micros = (moment - _EPOCH) // _MICROSECOND
        second, fraction = divmod(micros, 1_000_000)
        last = self._last
        if last is None or last[0] != second:
            last = (second, moment.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%S"))
            self._last = last  # one assignment: a reader never sees a mixed pair
        return f"{last[1]}.{fraction:06d}Z", micros


# The variant nibble of a UUID (RFC 9562: binary 10xx) from any random hex digit.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


class RecordIds:
    """Record ids: random UUID4s in hex (``uuid.uuid4().hex``'s form: 32 lowercase hex
    digits, version nibble 4, variant 8–b), drawn from :func:`os.urandom` 128 at a time
    instead of one system call (and one ``uuid.UUID`` object) per record.

    One per store handle (a handle never crosses a ``fork``, so two processes never
    share a pool); callers serialise their use (the store's locks).
    """

    __slots__ = ("_ready",)

    def __init__(self) -> None:
        self._ready: list[str] = []

    def next(self) -> str:
        try:
            return self._ready.pop()
        except IndexError:
            raw = os.urandom(2048).hex()
            self._ready = [
                raw[i : i + 12] + "4" + raw[i + 13 : i + 16] + _VARIANT[raw[i + 16]]
                + raw[i + 17 : i + 32]
                for i in range(0, len(raw), 32)
            ]  # fmt: skip
            return self._ready.pop()


def parse_timestamp(text: str) -> datetime:
    """Parse a ``recorded_at`` text (``Z`` or an explicit offset) into an aware datetime."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"recorded_at {text!r} has no UTC offset")
    return moment


def epoch_micros(moment: datetime) -> int:
    """Microseconds since 1970-01-01 UTC of an aware datetime (an index-friendly integer)."""
    if moment.tzinfo is None:
        raise ValueError(f"expected an aware datetime, got {moment!r}")
    return (moment - _EPOCH) // _MICROSECOND
