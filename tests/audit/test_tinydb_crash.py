"""Crashes: a torn last line is cut off with a warning; acknowledged records always survive.

A record is acknowledged only after its whole line is written and fsynced, so a crash can
leave at most an incomplete last line, which was never acknowledged.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from audit_support import entry, fill, read_lines, write_lines

import audit

Opener = Callable[..., audit.TinyDBAuditStore]
ROOT = Path(__file__).resolve().parents[2]


def open_recording_warnings(
    opener: Opener, **kw: object
) -> tuple[audit.TinyDBAuditStore, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store = opener(**kw)
    return store, [w for w in caught if issubclass(w.category, audit.IncompleteRecordWarning)]


def test_cut_at_every_byte_of_the_last_record(open_tinydb: Opener, store_path: Path) -> None:
    """Cutting the file anywhere inside its last record: the records before survive, the
    store opens (cutting the torn line with a warning), verifies, and appends go on."""
    store = open_tinydb()
    fill(store, 4)
    store.close()
    mark = Path(f"{store_path}.head").read_bytes()
    index = Path(f"{store_path}.idx").read_bytes()
    store = open_tinydb()
    store.append(entry(5))
    store.close()
    # The crash came before the high-water mark and the index moved on (both are written
    # after the log's fsync: an index that knew record 5 would witness a rollback).
    Path(f"{store_path}.head").write_bytes(mark)
    Path(f"{store_path}.idx").write_bytes(index)
    lines = read_lines(store_path)
    before, last = lines[:-1], lines[-1]
    for cut in range(len(last)):
        write_lines(store_path, [*before, last[:cut]])
        store, torn = open_recording_warnings(open_tinydb)
        assert len(torn) == (1 if cut else 0), cut
        if cut:
            assert f"cut off an incomplete last record ({cut} bytes" in str(torn[0].message)
        assert store_path.read_bytes() == b"".join(before)
        assert store.head().seq == 4
        assert store.get("k4") is not None and store.get("k5") is None
        assert store.verify().ok
        store.close()
    store = open_tinydb()
    assert store.append(entry(5)).seq == 5
    assert store.verify().ok


def test_a_torn_batch_keeps_its_whole_records(open_tinydb: Opener, store_path: Path) -> None:
    """A crash in the middle of a group commit leaves whole records of the batch (never
    acknowledged, but valid and chained) and cuts the torn one."""
    store = open_tinydb()
    fill(store, 2)
    mark = Path(f"{store_path}.head").read_bytes()
    index = Path(f"{store_path}.idx").read_bytes()
    store.append_many([entry(n) for n in range(3, 6)])
    store.close()
    lines = read_lines(store_path)
    write_lines(store_path, [*lines[:3], lines[3][:40]])
    # The crash came before the high-water mark and the index moved on (both are written
    # only after the log's fsync), so they are as they were before the batch.
    Path(f"{store_path}.head").write_bytes(mark)
    Path(f"{store_path}.idx").write_bytes(index)
    store, torn = open_recording_warnings(open_tinydb)
    assert len(torn) == 1
    assert store.head().seq == 3 and store.verify().ok


def test_an_open_handle_cuts_a_torn_tail_when_it_next_takes_the_lock(
    open_tinydb: Opener, store_path: Path
) -> None:
    """Another writer crashed mid-append while this handle was open: the next lock
    acquisition cuts the torn line (with a warning) and appends go on from the last whole
    record."""
    store = open_tinydb()
    fill(store, 3)
    with store_path.open("ab") as fh:
        fh.write(b'{"hash":"0123')
    with pytest.warns(audit.IncompleteRecordWarning, match="it was never acknowledged"):
        record = store.append(entry(4))
    assert record.seq == 4
    assert store.verify().ok


CHILD = textwrap.dedent(
    """
    import random, sys, time
    import audit, audit.logfile
    path, round_, slow = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "slow"
    if slow:
        # A slow disk: every write moves at most 1 KiB, so a kill lands mid-record often.
        real = audit.logfile.os_write
        def os_write(fd, data):
            time.sleep(0.0002)
            return real(fd, data[:1024])
        audit.logfile.os_write = os_write
    rng = random.Random(round_)
    store = audit.TinyDBAuditStore(path)
    print("ready", flush=True)
    i = 0
    while True:
        size = rng.choice([10, 300, 3000, 12000])
        if rng.random() < 0.2:
            keys = [f"r{round_}-{i + j}" for j in range(3)]
            store.append_many([audit.Entry({"pad": "x" * size}, key=k) for k in keys])
        else:
            keys = [f"r{round_}-{i}"]
            store.append(audit.Entry({"pad": "x" * size}, key=keys[0]))
        i += len(keys)
        for k in keys:
            print(k, flush=True)
    """
)


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_no_acknowledged_record(
    open_tinydb: Opener, store_path: Path
) -> None:
    """A writer is SIGKILLed 30 times at random moments (half of the runs on a simulated
    slow disk so that kills land mid-write). Every append it reported done is present, the
    store opens (a torn tail cut with a warning), and the chain verifies."""
    rng = random.Random(20250618)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    acknowledged: set[str] = set()
    torn_seen = 0
    for round_ in range(30):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(store_path), str(round_),
             "slow" if round_ % 2 else "fast"],
            stdout=subprocess.PIPE,
            env=env,
        )
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.005, 0.06))
        child.send_signal(signal.SIGKILL)
        output = child.stdout.read()
        child.wait()
        child.stdout.close()
        assert child.returncode == -signal.SIGKILL
        acknowledged.update(
            line.decode() for line in output.split(b"\n")[:-1] if line.startswith(b"r")
        )
        was_torn = not store_path.read_bytes().endswith(b"\n") and store_path.stat().st_size
        store, torn = open_recording_warnings(open_tinydb)
        assert len(torn) == (1 if was_torn else 0)
        torn_seen += len(torn)
        missing = [key for key in acknowledged if store.get(key) is None]
        assert missing == [], f"round {round_}: acknowledged but lost: {missing[:5]}"
        report = store.verify()
        assert report.ok, report
        assert report.count >= len(acknowledged)
        store.close()
    assert len(acknowledged) > 30
    assert torn_seen > 0  # the slow-disk runs make torn tails all but certain
