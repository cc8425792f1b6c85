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
