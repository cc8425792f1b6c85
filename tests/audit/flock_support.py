"""Helpers of the flock tests (tests/audit/test_flock*.py): another process holding a
lock, and whether a lock is free."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path


def hold_elsewhere(path: Path, hold: float) -> subprocess.Popen[str]:
    """Another process holding ``path`` flocked for ``hold`` seconds (it prints 'held')."""
    code = textwrap.dedent(
        f"""
        import fcntl, os, time
        fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        print("held", flush=True)
        time.sleep({hold})
        """
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "held"
    return process


def free(path: Path) -> bool:
    """Whether ``path`` can be flocked at once through a description of its own."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def free_within(path: Path, seconds: float) -> bool:
    """Whether ``path`` becomes free within ``seconds`` (looked at every 10 ms)."""
    deadline = time.monotonic() + seconds
    while not free(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
