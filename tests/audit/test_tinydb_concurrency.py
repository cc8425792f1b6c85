"""Many processes and threads append to one store at once: every record lands exactly once,
seq is unique and gap-free, and the chain never forks (the file lock + catch-up design)."""

from __future__ import annotations

import multiprocessing
import random
import threading
from collections import Counter, defaultdict
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import pytest

import audit

PROCESSES = 8
PER_PROCESS = 500
THREADS = 4
PER_THREAD = 100
BATCH = 10


def _append_worker(path: str, worker: int, ready: Any, go: EventType) -> None:
    store = audit.TinyDBAuditStore(path)
    ready.put(worker)
    go.wait()
    try:
        if worker % 2:  # odd workers commit groups of BATCH
            for start in range(0, PER_PROCESS, BATCH):
                store.append_many(
                    [
                        audit.Entry({"w": f"p{worker}", "i": i}, key=f"p{worker}-{i}")
                        for i in range(start, start + BATCH)
                    ]
                )
        else:
            for i in range(PER_PROCESS):
                store.append(audit.Entry({"w": f"p{worker}", "i": i}, key=f"p{worker}-{i}"))
    finally:
        store.close()


def _idempotent_worker(path: str, worker: int, results: Any, go: EventType) -> None:
    """Decide each key once across all processes: read, then append only if absent."""
    store = audit.TinyDBAuditStore(path)
    keys = [f"order-{n}" for n in range(100)]
    random.Random(worker).shuffle(keys)
    go.wait()
    appended = 0
    try:
        for key in keys:
            with store.transaction() as tx:
                if tx.get(key) is None:
                    tx.append(audit.Entry({"by": worker}, key=key, tags=("race",)))
                    appended += 1
    finally:
        store.close()
    results.put(appended)


@pytest.mark.slow
def test_processes_and_threads_append_at_once(tmp_path: Path) -> None:
    """8 processes x 500 appends (half of them in groups of 10) and 4 threads x 100 on one
    more handle: 4,400 records, seq 1..4400 without gaps or repeats, every key once, each
    writer's records in its own order, each group contiguous, and the chain verifies."""
    path = str(tmp_path / "audit.jsonl")
    audit.TinyDBAuditStore(path).close()
    ctx = multiprocessing.get_context("spawn")
    ready, go = ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(target=_append_worker, args=(path, w, ready, go)) for w in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.get(timeout=60)

    local = audit.TinyDBAuditStore(path)
    errors: list[BaseException] = []

    def thread_work(t: int) -> None:
        go.wait()
        try:
            for i in range(PER_THREAD):
                local.append(audit.Entry({"w": f"t{t}", "i": i}, key=f"t{t}-{i}"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=thread_work, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    go.set()
    for thread in threads:
        thread.join()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    assert errors == []

    total = PROCESSES * PER_PROCESS + THREADS * PER_THREAD
    records = list(local.query())
    assert [r.seq for r in records] == list(range(1, total + 1))
    keys = Counter(r.key for r in records)
    assert len(keys) == total and set(keys.values()) == {1}
    by_writer: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for record in records:
        by_writer[record.payload["w"]].append((record.payload["i"], record.seq))
    assert len(by_writer) == PROCESSES + THREADS
    for writer, items in by_writer.items():
        assert [i for i, _ in items] == sorted(i for i, _ in items), writer
    for w in range(1, PROCESSES, 2):
        items = by_writer[f"p{w}"]
        for start in range(0, PER_PROCESS, BATCH):
            seqs = [seq for _, seq in items[start : start + BATCH]]
            assert seqs == list(range(seqs[0], seqs[0] + BATCH)), (w, start)
    report = local.verify()
    assert (report.ok, report.count) == (True, total)
    assert local.head() == report.head
    local.close()


@pytest.mark.slow
def test_transactions_decide_each_key_once_across_processes(tmp_path: Path) -> None:
    """4 processes race to record the same 100 keys, each reading before it appends inside a
    transaction: exactly 100 records, every key once, no DuplicateKey raised."""
    path = str(tmp_path / "audit.jsonl")
    audit.TinyDBAuditStore(path).close()
    ctx = multiprocessing.get_context("spawn")
    results, go = ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(target=_idempotent_worker, args=(path, w, results, go)) for w in range(4)
    ]
    for proc in procs:
        proc.start()
    go.set()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    assert sum(results.get(timeout=5) for _ in procs) == 100
    with audit.TinyDBAuditStore(path) as store:
        records = store.find("race")
        assert [r.seq for r in records] == list(range(1, 101))
        assert sorted(r.key or "" for r in records) == sorted(f"order-{n}" for n in range(100))
        assert store.verify().ok
