"""Choosing recorded decisions: the filters of ``audit show/export/stats``, statements and
the campaign report, and which records a void withdrew.

Periods are read as finance reads them (SPEC §10): a date is a Beijing day and a period's
end date includes that whole day; an ISO time without an offset is Beijing time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date, datetime, timedelta
from typing import Any

import attrs

from audit.protocol import AuditStore, Record
from pricecalc import records
from pricecalc.beijing import day_start, from_iso, parse_time
from pricecalc.builtin import builtin_declarations
from pricecalc.errors import InvalidInput
from pricecalc.history import campaign_tag, kind_tag, merchant_tag, order_tag
from pricecalc.i18n import N_
from pricecalc.registry import Declarations


def period_bound(value: str | None, *, end: bool, field: str = "time") -> datetime | None:
    """A period's bound: a date (a whole Beijing day: its start, or with ``end`` the start
    of the next day) or an ISO time (Beijing time by default; with ``end``, inclusive).
    The result is an aware instant; an end bound is exclusive."""
    if value is None:
        return None
    text = value.strip()
    day: date | None
    try:
        day = date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        day = None
    if day is not None:
        start = day_start(day)
        return start + timedelta(days=1) if end else start
    try:
        moment = parse_time(text, field)
    except InvalidInput:
        raise InvalidInput(
            field, value, N_("is not a date (2026-11-11) or an ISO time (2026-11-11T10:00)")
        ) from None
    return moment + timedelta(microseconds=1) if end else moment


def recorded_moment(record: Record) -> datetime:
    return from_iso(record.recorded_at)


@attrs.frozen
class Filters:
    """Which records: by order, kind, status, operator, merchant, campaign and the time
    they were recorded (``until`` exclusive). Nothing given: every record."""

    order_id: str | None = None
    kind: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None  # exclusive
    operator: str | None = None
    merchant_id: str | None = None
    campaign: str | None = None

    def where(self) -> dict[str, Any]:
        wanted = {"kind": self.kind, "status": self.status, "operator": self.operator}
        return {k: v for k, v in wanted.items() if v is not None}

    def records(self, store: AuditStore) -> Iterator[Record]:
        """The matching records in chain order (streamed, except an order's few records)."""
        if self.order_id is not None:
            found: Any = sorted(store.find(order_tag(self.order_id)), key=lambda r: r.seq)
        else:
            found = store.query(self.where() or None, since=self.since, until=self.until)
        for record in found:
            if self.matches(record):
                yield record

    def matches(self, record: Record) -> bool:
        if self.order_id is not None and (
            order_tag(self.order_id) not in record.tags
            and records.read(record).order_id != self.order_id
        ):
            return False
        for field, wanted in self.where().items():
            if records.field_of(record, field) != wanted:
                return False
        for name, tag in (
            (self.merchant_id, merchant_tag),
            (self.campaign, campaign_tag),
        ):
            if name is not None and tag(name) not in record.tags:
                return False
        if self.since is not None or self.until is not None:
            moment = recorded_moment(record)
            if self.since is not None and moment < self.since:
                return False
            if self.until is not None and moment >= self.until:
                return False
        return True


def voids_of(
    store: AuditStore, *, upto: int | None = None, declarations: Declarations | None = None
) -> Mapping[int, int]:
    """Which records were withdrawn, and by which approved void: ``{voided seq: void seq}``
    (voids are few: they are looked up by their kind tag — every kind that declares what
    it withdraws). ``upto``: only voids recorded at or before that seq."""
    books = declarations if declarations is not None else builtin_declarations()
    out: dict[int, int] = {}
    for kind in books.withdrawals:
        for record in store.find(kind_tag(kind)):
            if upto is not None and record.seq > upto:
                continue
            target = records.read(record, books).withdraws
            if target is not None:
                out.setdefault(target, record.seq)
    return out


__all__ = ["Filters", "period_bound", "recorded_moment", "voids_of"]
