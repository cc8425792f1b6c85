"""audit.flock: a flock that waits in the kernel (no polling) with a timeout."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

import pytest
from flock_support import free_within, hold_elsewhere

from audit.flock import LockTimeout, lock_exclusive


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


def test_a_free_lock_is_taken_at_once(tmp_path: Path) -> None:
    fd = _open(tmp_path / "l")
    try:
        lock_exclusive(fd, 0)
        other = _open(tmp_path / "l")
        with pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(other)
    finally:
        os.close(fd)


def test_a_waiter_gets_the_lock_as_soon_as_it_is_released(tmp_path: Path) -> None:
    holder = hold_elsewhere(tmp_path / "l", 0.3)
    fd = _open(tmp_path / "l")
    try:
        start = time.monotonic()
        lock_exclusive(fd, 10)
        waited = time.monotonic() - start
        assert 0.1 < waited < 5  # it waited for the holder, not for its timeout
        holder.wait(5)
        # Held through the caller's own descriptor: another description cannot take it.
        other = _open(tmp_path / "l")
        with pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(other)
    finally:
        os.close(fd)
        holder.kill()


def test_a_timeout_gives_up_and_the_lock_is_let_go_when_it_comes(tmp_path: Path) -> None:
    holder = hold_elsewhere(tmp_path / "l", 0.6)
    fd = _open(tmp_path / "l")
    try:
        start = time.monotonic()
        with pytest.raises(LockTimeout):
            lock_exclusive(fd, 0.1)
        assert time.monotonic() - start < 0.5
        holder.wait(5)
        # The abandoned helper took the lock when the holder went, and let it go at once.
        assert free_within(tmp_path / "l", 5), "the abandoned wait kept the lock"
    finally:
        os.close(fd)
        holder.kill()


def test_no_timeout_and_zero(tmp_path: Path) -> None:
    holder = hold_elsewhere(tmp_path / "l", 0.2)
    fd = _open(tmp_path / "l")
    try:
        with pytest.raises(LockTimeout):
            lock_exclusive(fd, 0)  # zero: one try
        lock_exclusive(fd, -1)  # negative: for ever (here: until the holder exits)
    finally:
        os.close(fd)
        holder.kill()


def test_no_helper_thread_outlives_its_wait(tmp_path: Path) -> None:
    holder = hold_elsewhere(tmp_path / "l", 0.2)
    fd = _open(tmp_path / "l")
    try:
        lock_exclusive(fd, 10)
        deadline = time.monotonic() + 5
        while any(t.name == "audit-flock" for t in threading.enumerate()):
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        os.close(fd)
        holder.kill()


def _helper_idents() -> set[int | None]:
    return {t.ident for t in threading.enumerate() if t.name == "audit-flock"}


def test_a_kept_helper_serves_every_wait_then_ends_when_closed(tmp_path: Path) -> None:
    """Flock(keep=True), the store's writer lock: one helper thread waits for the lock
    each time it is held elsewhere (no thread started per wait); it holds the lock for
    its owner's description each time, and ends when the Flock is closed."""
    from audit.flock import Flock

    path = tmp_path / "l"
    fd = _open(path)
    lock = Flock(keep=True)
    seen: list[set[int | None]] = []
    try:
        for _ in range(3):
            holder = hold_elsewhere(path, 0.2)
            lock.acquire(fd, 10)
            assert holder.wait(10) == 0
            seen.append(_helper_idents())
            assert not free_within(path, 0)  # held through fd's description
            fcntl.flock(fd, fcntl.LOCK_UN)
        assert len(seen[0]) == 1
        assert seen == [seen[0]] * 3  # the same thread, parked between waits
        lock.close()
        deadline = time.monotonic() + 5
        while _helper_idents():
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        lock.close()
        os.close(fd)


def test_a_kept_helper_ends_after_lingering_idle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kept helper whose owner neither waits again nor closes ends after LINGER
    seconds idle; the next wait starts a new one."""
    import audit.flock
    from audit.flock import Flock

    monkeypatch.setattr(audit.flock, "LINGER", 0.05)
    path = tmp_path / "l"
    fd = _open(path)
    lock = Flock(keep=True)
    try:
        holder = hold_elsewhere(path, 0.2)
        lock.acquire(fd, 10)
        assert holder.wait(10) == 0
        deadline = time.monotonic() + 5
        while _helper_idents():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        fcntl.flock(fd, fcntl.LOCK_UN)
        holder = hold_elsewhere(path, 0.2)
        lock.acquire(fd, 10)
        assert holder.wait(10) == 0
        assert not free_within(path, 0)
    finally:
        lock.close()
        os.close(fd)


def test_the_stores_waits_for_its_mark_reuse_one_helper_until_it_closes(tmp_path: Path) -> None:
    """A sync after the writer lock waits for the high-water mark's lock while another
    process's sync holds it: through a helper kept between waits (one thread for all
    of them), which ends when the store closes."""
    import audit

    log = tmp_path / "a.jsonl"
    store = audit.TinyDBAuditStore(log)
    seen: list[set[int | None]] = []
    try:
        for n in range(2):
            holder = hold_elsewhere(Path(f"{log}.head"), 0.2)
            assert store.append(audit.Entry({"n": n}, key=f"k{n}")).seq == n + 1
            assert holder.wait(10) == 0
            seen.append(_helper_idents())
        assert len(seen[0]) == 1 and seen[1] == seen[0]
    finally:
        store.close()
    deadline = time.monotonic() + 5
    while _helper_idents():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_kept_helper_is_not_used_by_a_forked_child(tmp_path: Path) -> None:
    """A process forked after its Flock(keep=True) parked a helper has no such thread:
    the child's wait starts one of its own and gets the lock."""
    from audit.flock import Flock

    path = tmp_path / "l"
    fd = _open(path)
    lock = Flock(keep=True)
    try:
        holder = hold_elsewhere(path, 0.2)
        lock.acquire(fd, 10)  # parks a helper in this process
        assert holder.wait(10) == 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        holder = hold_elsewhere(path, 0.2)
        pid = os.fork()
        if pid == 0:  # the child: its own description of the file, waited for by the Flock
            code = 1
            try:
                own = _open(path)
                lock.acquire(own, 10)
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert holder.wait(10) == 0
    finally:
        lock.close()
        os.close(fd)
