"""Read-only commands on a full disk (SPEC §7 "Read-only commands work on a full disk";
issue 19): verify, show, export, statement, report and prove read a store on a disk with
no byte left — SQLite needs no new -wal/-shm for them, the log is streamed instead.

A real full disk: a small tmpfs mounted (as root, as CI runs) and filled to the last byte.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from needs_support import missing

from pricecalc.calculator import Calculator

NOW = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A mounted tmpfs of 1 MiB, unmounted afterwards (filled by the test)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        missing("the full-disk test needs root and mount(8) to mount a tmpfs")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def fill_up(disk: Path) -> None:
    """Write until the disk refuses another byte."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
        with pytest.raises(OSError, match="No space left"):
            os.write(fd, b"\0")
    finally:
        os.close(fd)


def run(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRICECALC")}
    return subprocess.run(
        [sys.executable, "-m", "pricecalc", "--audit", str(store), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_read_commands_work_on_a_full_disk(full_disk: Path, tmp_path: Path) -> None:
    """Issue 19: with the disk 100% full every read command still answers."""
    store = full_disk / "audit.jsonl"
    with Calculator(str(store), operator="clerk") as calc:
        for n in (1, 2, 3):
            request = {
                "kind": "counterfeit_compensation",
                "request_id": f"cc-{n}",
                "merchant_id": "M1",
                "input": {
                    "order_id": f"O-{n}",
                    "confirmed": True,
                    "lines": [{"line_id": "L1", "paid_amount": "539.90"}],
                },
            }
            assert calc.decide(request, now=NOW).status == "approved"
    assert not Path(f"{store}.idx-wal").exists()
    fill_up(full_disk)
    period = ("--merchant", "M1", "--since", "2020-01-01", "--until", "2099-12-31")
    commands = {
        "verify": ("audit", "verify"),
        "show": ("audit", "show", "--order-id", "O-2"),
        "export": ("audit", "export", "-o", str(tmp_path / "export.jsonl")),
        "statement": ("statement", *period, "-o", str(tmp_path / "statement.csv")),
        "report": ("report", "--merchant", "M1", "-o", str(tmp_path / "report.html")),
        "prove": ("audit", "prove", "2"),
    }
    for name, args in commands.items():
        done = run(store, *args)
        assert done.returncode == 0, (name, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, name
    assert run(store, "audit", "verify").stdout.startswith("OK: 3 records, chain intact")
    assert len((tmp_path / "export.jsonl").read_text().splitlines()) == 3
    assert json.loads(run(store, "audit", "prove", "2").stdout)["record"]["seq"] == 2
