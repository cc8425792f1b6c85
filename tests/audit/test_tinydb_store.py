"""TinyDB-store behaviour outside the protocol: locking rules, files, the on-disk form."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from audit_support import entry, fill, loads, read_lines

import audit
from audit.canonical import canonical_bytes
from audit.records import record_to_dict

Opener = Callable[..., audit.TinyDBAuditStore]


def test_each_line_is_the_canonical_json_of_its_record(
    open_tinydb: Opener, store_path: Path
) -> None:
    """The file is JSON Lines: line n is exactly canonical_bytes(record n) + newline."""
    store = open_tinydb()
    records = fill(store, 3)
    assert read_lines(store_path) == [canonical_bytes(record_to_dict(r)) + b"\n" for r in records]
    assert list(loads(read_lines(store_path)[0])) == [
        "hash", "id", "key", "payload", "prev_hash", "recorded_at", "seq", "tags"
    ]


def test_the_files_of_a_store(open_tinydb: Opener, store_path: Path) -> None:
    store = open_tinydb()
    store.append(entry(1))
    store.get("k1")
    names = {p.name for p in store_path.parent.iterdir()}
    assert {"audit.jsonl", "audit.jsonl.lock", "audit.jsonl.idx"} <= names


def test_appending_through_the_store_inside_a_transaction_is_refused(open_tinydb: Opener) -> None:
    """Inside a transaction, appends go through it; a direct append would fork the chain."""
    store = open_tinydb()
    with store.transaction() as tx:
        tx.append(entry(1))
        with pytest.raises(audit.AuditError, match="append through it"):
            store.append(entry(2))
        with pytest.raises(audit.AuditError, match="already open"), store.transaction():
            pass
    assert store.head().seq == 1
    with pytest.raises(audit.AuditError, match="this transaction is over"):
        tx.append(entry(3))


def test_a_transaction_belongs_to_its_thread(open_tinydb: Opener) -> None:
    store = open_tinydb()
    errors: list[str] = []
    with store.transaction() as tx:
        def use() -> None:
            try:
                tx.get("k1")
            except audit.AuditError as exc:
                errors.append(str(exc))

        thread = threading.Thread(target=use)
        thread.start()
        thread.join()
    assert errors == ["a transaction belongs to the thread that opened it"]


def test_a_busy_lock_times_out(open_tinydb: Opener) -> None:
    """A writer that cannot take the lock within lock_timeout gets StoreLocked."""
    holder = open_tinydb()
    waiter = open_tinydb(lock_timeout=0.05)
    inside, leave = threading.Event(), threading.Event()

    def hold() -> None:
        with holder.transaction():
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    inside.wait(10)
    try:
        with pytest.raises(audit.StoreLocked, match="could not take the writer lock"):
            waiter.append(entry(1))
    finally:
        leave.set()
        thread.join()
    assert waiter.append(entry(1)).seq == 1


def test_creating_the_store_needs_its_directory(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError,
        match=r"^\[Errno 2\] No such file or directory: '.+/missing/audit\.jsonl'$",
    ):
        audit.TinyDBAuditStore(tmp_path / "missing" / "audit.jsonl")


def test_hmac_key_must_be_bytes(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="hmac_key must be non-empty bytes"):
        audit.TinyDBAuditStore(tmp_path / "a.jsonl", hmac_key="text")  # type: ignore[arg-type]


def test_query_needs_aware_datetimes(open_tinydb: Opener) -> None:
    from datetime import datetime

    store = open_tinydb()
    with pytest.raises(ValueError, match="aware datetime"):
        store.query(since=datetime(2025, 1, 1))


def test_a_handle_does_not_cross_a_fork(open_tinydb: Opener) -> None:
    """A forked child must open the store itself; the parent's handle refuses to work."""
    import os

    store = open_tinydb()
    store.append(entry(1))
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            store.append(entry(2))
        except audit.AuditError as exc:
            code = 0 if "opened in another process" in str(exc) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.head().seq == 1
