"""Shared fixtures of the audit store tests.

``store_factory`` is parametrised by backend name. Only ``"tinydb"`` exists today; a server
backend (PostgreSQL) becomes one more entry in ``BACKENDS`` and every contract test in
``test_contract.py`` runs against it unchanged. Tests that damage files, cut them or kill
writers are TinyDB-specific and use ``store_path`` / ``open_tinydb`` directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from audit_support import FakeClock, StoreFactory
from postgres_support import pg_database, pg_server, pg_store, pg_store_url  # noqa: F401

import audit
from audit.protocol import AuditStore

BACKENDS = ["tinydb", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_factory(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[StoreFactory]:
    """Open (or reopen) a store by name; every handle is closed after the test.

    Two calls with the same name open two handles on the same store. ``clock`` gives the
    time stamped on records.
    """
    opened: list[AuditStore] = []

    def make(
        name: str = "store",
        *,
        hmac_key: bytes | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> AuditStore:
        if backend == "tinydb":
            store: AuditStore = audit.TinyDBAuditStore(
                tmp_path / f"{name}.jsonl", hmac_key=hmac_key, clock=clock
            )
        elif backend == "postgres":  # a schema of its own per name (postgres_support.py)
            url = request.getfixturevalue("pg_store_url")(name)
            store = audit.open_store(url, hmac_key=hmac_key, clock=clock)
        else:  # pragma: no cover - one more backend goes here
            raise AssertionError(f"unknown backend {backend}")
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(store_factory: StoreFactory) -> AuditStore:
    return store_factory(clock=FakeClock())


# -- TinyDB-specific helpers ---------------------------------------------------------------


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.jsonl"


@pytest.fixture
def open_tinydb(store_path: Path) -> Iterator[Callable[..., audit.TinyDBAuditStore]]:
    """Open a TinyDB store on ``store_path`` (keyword arguments pass through)."""
    opened: list[audit.TinyDBAuditStore] = []

    def make(path: Path | None = None, **kw: Any) -> audit.TinyDBAuditStore:
        kw.setdefault("clock", FakeClock())
        handle = audit.TinyDBAuditStore(path or store_path, **kw)
        opened.append(handle)
        return handle

    yield make
    for handle in opened:
        handle.close()
