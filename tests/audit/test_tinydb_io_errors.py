"""A failed write or sync: the decision is reported as not recorded, nothing partial stays
in the file, the handle refuses further appends, and a fresh handle opens and verifies.

Failures are injected through ``audit.logfile.os_write`` / ``os_fsync`` / ``os_ftruncate``,
the only functions the store writes and syncs through.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from audit_support import entry, fill

import audit
import audit.logfile

Opener = Callable[..., audit.TinyDBAuditStore]

FAILURES = [
    pytest.param("os_write", errno.ENOSPC, id="write-ENOSPC"),
    pytest.param("os_write", errno.EIO, id="write-EIO"),
    pytest.param("os_fsync", errno.ENOSPC, id="fsync-ENOSPC"),
    pytest.param("os_fsync", errno.EIO, id="fsync-EIO"),
]


def failing(code: int) -> Callable[..., object]:
    def fail(*args: object) -> object:
        raise OSError(code, os.strerror(code))

    return fail


def half_then_fail(code: int) -> Callable[[int, bytes | memoryview], int]:
    """Write half the buffer (a short write), then fail on the next call."""
    calls = [0]

    def write(fd: int, data: bytes | memoryview) -> int:
        calls[0] += 1
        if calls[0] == 1:
            return os.write(fd, data[: max(1, len(data) // 2)])
        raise OSError(code, os.strerror(code))

    return write


def check_not_recorded(store_path: Path, size_before: int, keys: list[str]) -> None:
    """Nothing partial remains and a fresh handle opens, verifies and has none of ``keys``."""
    assert store_path.stat().st_size == size_before
    assert store_path.read_bytes().endswith(b"\n")
    fresh = audit.TinyDBAuditStore(store_path)
    try:
        assert fresh.verify().ok
        assert all(fresh.get(key) is None for key in keys)
        fresh.append(audit.Entry({"probe": True}))  # and the store itself is fine
        assert fresh.verify().ok
    finally:
        fresh.close()


@pytest.mark.parametrize(("hook", "code"), FAILURES)
def test_a_failed_append(
    open_tinydb: Opener,
    store_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    hook: str,
    code: int,
) -> None:
    store = open_tinydb()
    fill(store, 3)
    size = store_path.stat().st_size
    monkeypatch.setattr(audit.logfile, hook, failing(code))
    with pytest.raises(audit.StoreUnusable, match="They are NOT recorded") as info:
        store.append(entry(4))
    assert os.strerror(code) in str(info.value)
    assert f"{hook.removeprefix('os_')} failed" in str(info.value)
    monkeypatch.undo()
    # the handle stays refused, even with the disk healthy again
    with pytest.raises(audit.StoreUnusable, match="refuses further appends"):
        store.append(entry(5))
    with (
        pytest.raises(audit.StoreUnusable, match="refuses further appends"),
        store.transaction() as tx,
    ):
        tx.append(entry(6))
    check_not_recorded(store_path, size, ["k4", "k5", "k6"])


@pytest.mark.parametrize(("hook", "code"), FAILURES)
def test_a_failed_group_commit(
    open_tinydb: Opener,
    store_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    hook: str,
    code: int,
) -> None:
    """append_many and a transaction's commit fail as a whole."""
    store = open_tinydb()
    fill(store, 2)
    size = store_path.stat().st_size
    monkeypatch.setattr(audit.logfile, hook, failing(code))
    with pytest.raises(
        audit.StoreUnusable, match=r"not record 6 record\(s\): .+ They are NOT recorded"
    ):
        store.append_many([entry(n) for n in range(3, 9)])
    monkeypatch.undo()
    check_not_recorded(store_path, size, [f"k{n}" for n in range(3, 9)])

    other = open_tinydb()
    size = store_path.stat().st_size
    monkeypatch.setattr(audit.logfile, hook, failing(code))
    pending = []
    with (
        pytest.raises(
            audit.StoreUnusable, match=r"not record 2 record\(s\): .+ They are NOT recorded"
        ),
        other.transaction() as tx,
    ):
        pending = [tx.append(entry(n)) for n in (10, 11)]
    monkeypatch.undo()
    assert [r.seq for r in pending] == [4, 5]
    check_not_recorded(store_path, size, ["k10", "k11"])


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO])
def test_a_short_write_then_failure_is_cut_back(
    open_tinydb: Opener, store_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    """Half a record reached the file before the disk filled up: it is cut off again."""
    store = open_tinydb()
    fill(store, 3)
    size = store_path.stat().st_size
    monkeypatch.setattr(audit.logfile, "os_write", half_then_fail(code))
    with pytest.raises(audit.StoreUnusable, match="the file was cut back"):
        store.append(entry(4))
    monkeypatch.undo()
    check_not_recorded(store_path, size, ["k4"])


def test_patching_os_itself_is_seen(
    open_tinydb: Opener, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hooks call os at call time, so patching ``os.fsync`` injects the failure too."""
    store = open_tinydb()
    fill(store, 1)
    size = store_path.stat().st_size
    monkeypatch.setattr(os, "fsync", failing(errno.EIO))
    with pytest.raises(
        audit.StoreUnusable,
        match=r"could not record 1 record\(s\): \[Errno 5\] fsync failed: Input/output error; ",
    ):
        store.append(entry(2))
    monkeypatch.undo()
    check_not_recorded(store_path, size, ["k2"])


def test_when_even_the_cut_back_fails(
    open_tinydb: Opener, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the partial record cannot be cut off either, the error says so, and the next open
    cuts the torn line (it was never acknowledged)."""
    store = open_tinydb()
    fill(store, 3)
    size = store_path.stat().st_size
    monkeypatch.setattr(audit.logfile, "os_write", half_then_fail(errno.EIO))
    monkeypatch.setattr(audit.logfile, "os_ftruncate", failing(errno.EIO))
    with pytest.raises(audit.StoreUnusable, match="could not cut the file back"):
        store.append(entry(4))
    monkeypatch.undo()
    assert store_path.stat().st_size > size
    with pytest.warns(audit.IncompleteRecordWarning, match="never acknowledged"):
        audit.TinyDBAuditStore(store_path).close()
    check_not_recorded(store_path, size, ["k4"])


def test_reads_still_work_on_an_unusable_handle(
    open_tinydb: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_tinydb()
    first = store.append(entry(1))
    monkeypatch.setattr(audit.logfile, "os_fsync", failing(errno.EIO))
    with pytest.raises(
        audit.StoreUnusable,
        match=r"could not record 1 record\(s\): \[Errno 5\] fsync failed: Input/output error; ",
    ):
        store.append(entry(2))
    monkeypatch.undo()
    assert store.get("k1") == first
    assert store.verify().ok and store.head().seq == 1
