"""Helpers shared by the audit store tests (imported by name: pytest's ``pythonpath``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from audit.protocol import AuditStore, Entry, Record

T0 = datetime(2025, 6, 18, 8, 0, 0, tzinfo=UTC)


class StoreFactory(Protocol):
    """The ``store_factory`` fixture: open (or reopen) a store of the backend under test."""

    def __call__(
        self,
        name: str = ...,
        *,
        hmac_key: bytes | None = ...,
        clock: Callable[[], datetime] | None = ...,
    ) -> AuditStore: ...


class FakeClock:
    """A clock that advances by ``step`` on every reading (records get distinct times)."""

    def __init__(self, start: datetime = T0, step: timedelta = timedelta(seconds=1)) -> None:
        self.now = start
        self.step = step

    def __call__(self) -> datetime:
        moment = self.now
        self.now = moment + self.step
        return moment


def entry(n: int, **extra: Any) -> Entry:
    """A small entry with key ``k<n>`` and tag ``order:O<n % 3>``."""
    return Entry(
        payload={"kind": "demo", "n": n, "request": {"input": {"order_id": f"O{n % 3}"}}, **extra},
        key=f"k{n}",
        tags=(f"order:O{n % 3}",),
    )


def fill(store: AuditStore, count: int) -> list[Record]:
    return store.append_many([entry(n) for n in range(1, count + 1)])


def read_lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


def loads(line: bytes) -> dict[str, Any]:
    value = json.loads(line)
    assert isinstance(value, dict)
    return value
