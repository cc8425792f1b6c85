"""Issue 22 point 2 on the file store: the sync runs after the writer lock is let go and
covers every group written before it, whichever process wrote it.

What must still hold (SPEC §7, issue 19): never two writers; no decision answered before
its record is durable; never paid twice — a key or a once-only tag in a group whose sync is
still in flight is found by every lookup; the high-water mark never names a record no
completed sync covered; a failed sync either cuts its group back (nobody chained on it) or
says the outcome is unknown, and a retry under the same key replays or records once;
SIGKILL mid-group loses no acknowledged decision and leaves no false "rolled back".
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from claims_support import compensation

import audit
import audit.logfile
import audit.mark
from audit.protocol import Entry
from audit.tinydb_log import AuditLogStorage
from pricecalc import Calculator, IdempotencyConflict

NOW = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)


def claim(order: str, line: str, paid: str, key: str | None) -> dict[str, Any]:
    return compensation(paid, line, order, key)


def storage_of(calc: Calculator) -> AuditLogStorage:
    storage = calc.store.storage  # type: ignore[attr-defined]
    assert isinstance(storage, AuditLogStorage)
    return storage


def mark_end(path: Path) -> int:
    """The end of the line the high-water mark names (0: no mark)."""
    data = Path(f"{path}.head").read_bytes() if Path(f"{path}.head").exists() else b""
    best = None
    for i in (0, 1):
        found = audit.mark.parse_mark(data[i * 256 : (i + 1) * 256])
        if found is not None and (best is None or found[0] > best[0]):
            best = found
    if best is None:
        return 0
    line = path.read_bytes()[best[3] :].split(b"\n", 1)[0]
    return best[3] + len(line) + 1


def payouts(store: audit.AuditStore) -> Counter[tuple[str, str]]:
    """Approved payouts per (order, line) in the store."""
    paid: Counter[tuple[str, str]] = Counter()
    seq = 1
    while (record := store.record(seq)) is not None:
        payload = record.payload
        if payload["kind"] == "counterfeit_compensation" and payload["status"] == "approved":
            for line in payload["result"]["lines"]:
                paid[(payload["result"]["order_id"], line["line_id"])] += 1
        seq += 1
    return paid


# -- lookups see the groups whose syncs are in flight ----------------------------------
@pytest.fixture
def deferred(monkeypatch: pytest.MonkeyPatch) -> Callable[[Calculator], list[Callable[[], None]]]:
    """Make a calculator's syncs wait: its groups are written under the lock, and their
    syncs are kept in a list to run later (as if still in flight in another process)."""

    def defer(calc: Calculator) -> list[Callable[[], None]]:
        storage = storage_of(calc)
        later: list[Callable[[], None]] = []
        real = storage._make_durable

        def keep(end: int, written: Any) -> None:
            later.append(lambda: real(end, written))

        monkeypatch.setattr(storage, "_make_durable", keep)
        return later

    return defer


def test_a_claim_whose_sync_is_in_flight_is_found_by_every_lookup(
    tmp_path: Path, deferred: Callable[[Calculator], list[Callable[[], None]]]
) -> None:
    """Issue 22, SPEC §7 once-only: process A's claim is written but its sync not yet made
    (the index stops at the durable point); B's claim for the same line is refused as
    already compensated, B's repeat of A's key replays A's record — and B answers only
    once the log is durable up to A's record (B syncs it: the mark names it)."""
    path = tmp_path / "audit.jsonl"
    a, b = Calculator(path, operator="clerk"), Calculator(path, operator="clerk")
    try:
        later = deferred(a)
        first = a.decide(claim("O-1", "L1", "39.90", "ka"), now=NOW)
        assert first.status == "approved" and len(later) == 1
        assert first.audit is not None
        end = path.stat().st_size
        assert mark_end(path) < end  # A's record is past the durable point
        storage = storage_of(b)
        assert storage.get("ka") == storage_of(a).get("ka")
        again = b.decide(claim("O-1", "L1", "39.90", "kb"), now=NOW)
        assert again.status == "rejected"
        assert [r.code for r in again.reasons] == ["ALREADY_COMPENSATED"]
        assert mark_end(path) == path.stat().st_size  # B synced A's record before answering
        replay = b.decide(claim("O-1", "L1", "39.90", "ka"), now=NOW)
        assert replay.audit is not None and replay.audit.seq == first.audit.seq
        later.pop()()  # A's own sync: already covered, nothing to do
        assert b.store.verify().ok
        assert payouts(b.store) == Counter({("O-1", "L1"): 1})
    finally:
        a.close()
        b.close()


def test_store_lookups_read_the_groups_past_the_index(
    tmp_path: Path, deferred: Callable[[Calculator], list[Callable[[], None]]]
) -> None:
    """get, keys_present (prefetch), find (tags) and record_at each find records past the
    durable point — which the index does not hold yet — read and checked from the log."""
    path = tmp_path / "audit.jsonl"
    a, b = Calculator(path, operator="clerk"), Calculator(path, operator="clerk")
    try:
        a.decide(claim("O-0", "L1", "9.90", "k0"), now=NOW)
        later = deferred(a)
        decided = a.decide(claim("O-1", "L1", "39.90", "k1"), now=NOW)
        assert decided.audit is not None
        seq = decided.audit.seq
        reader = storage_of(b)
        with reader._locked():
            reader._sync_index(full=True)  # to the durable point, not short of it
            assert reader._keeper.indexed()[1] == seq - 1  # the index stops before it
            assert reader._keys_present_locked({"k1", "k0", "nope"}) == {"k0", "k1"}
            assert reader._get_locked("k1") is not None
            record = reader._record_locked(seq)
            assert record is not None and record.key == "k1"
            tags = [tag for tag in record.tags if "O-1" in tag]
            assert tags and [r.seq for r in reader._find_locked(tags[0])] == [seq]
        assert mark_end(path) < path.stat().st_size
        assert reader.get("k1") == record  # answered only once durable: B synced it
        assert mark_end(path) == path.stat().st_size
        for run in later:
            run()
    finally:
        a.close()
        b.close()


# -- the mark names only synced records -------------------------------------------------
def test_the_mark_never_names_a_record_no_completed_sync_covered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SPEC §7, issue 19: four handles on one log in four threads, appending keyed groups
    and looking up each other's keys; os.fsync is instrumented: after every operation the
    mark names a record ending at or before the largest size any completed fsync of the
    log covered, and the index never reaches past it either."""
    path = tmp_path / "audit.jsonl"
    audit.TinyDBAuditStore(path).close()
    log_ino = os.stat(path).st_ino
    covered = [0]
    guard = threading.Lock()
    real = os.fsync
    syncs = [0]

    def fsync(fd: int) -> None:
        stat = os.fstat(fd)
        real(fd)
        if stat.st_ino == log_ino:
            with guard:
                covered[0] = max(covered[0], stat.st_size)
                syncs[0] += 1

    monkeypatch.setattr(audit.logfile, "os_fsync", fsync)
    problems: list[str] = []
    start = threading.Barrier(4)

    def check(store: audit.TinyDBAuditStore, what: str) -> None:
        end = mark_end(path)  # first: the mark moves only after the sync is counted
        with guard:
            limit = covered[0]
        if end > limit:
            problems.append(f"{what}: the mark ends at {end}, syncs covered {limit}")
        storage = store.storage
        with storage._locked():
            indexed = storage._index.state().end_offset
        with guard:
            limit = covered[0]
        if indexed > limit:
            problems.append(f"{what}: the index ends at {indexed}, syncs covered {limit}")

    def run(worker: int) -> None:
        store = audit.TinyDBAuditStore(path)
        try:
            start.wait()
            for n in range(25):
                if n % 3 == 0:
                    store.append_many(
                        [Entry({"n": n, "i": i}, key=f"w{worker}-{n}-{i}") for i in range(3)]
                    )
                else:
                    store.append(Entry({"n": n}, key=f"w{worker}-{n}"))
                check(store, f"worker {worker} append {n}")
                store.get(f"w{(worker + 1) % 4}-{n}")
                check(store, f"worker {worker} get {n}")
        finally:
            store.close()

    pool = [threading.Thread(target=run, args=(w,)) for w in range(4)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert problems == []
    with audit.TinyDBAuditStore(path) as store:
        assert store.verify().ok
        assert store.head().seq == 4 * (9 * 3 + 16)
        assert mark_end(path) == path.stat().st_size
    assert syncs[0] > 0


def test_a_torn_line_after_a_group_still_being_synced_is_cut_and_never_marked(
    tmp_path: Path, deferred: Callable[[Calculator], list[Callable[[], None]]]
) -> None:
    """A's group is written, its sync in flight; a writer killed mid-write leaves half a
    line after it. The next writer cuts the torn line under the lock (it was never
    acknowledged), chains onto A's record and syncs both; A's sync then has nothing to
    do; the mark names a whole record, the store verifies and is not taken for rolled
    back."""
    path = tmp_path / "audit.jsonl"
    a, b = Calculator(path, operator="clerk"), Calculator(path, operator="clerk")
    try:
        later = deferred(a)
        first = a.decide(claim("O-1", "L1", "39.90", "ka"), now=NOW)
        assert first.audit is not None
        whole = path.stat().st_size
        with path.open("ab") as log:
            log.write(b'{"hash":"' + b"0" * 40)  # a write cut short by SIGKILL
        with pytest.warns(audit.IncompleteRecordWarning, match="never acknowledged"):
            second = b.decide(claim("O-2", "L1", "19.90", "kb"), now=NOW)
        assert second.audit is not None and second.audit.seq == first.audit.seq + 1
        assert whole < mark_end(path) == path.stat().st_size
        later.pop()()
        assert path.read_bytes().endswith(b"\n")
    finally:
        a.close()
        b.close()
    with Calculator(path, operator="clerk") as c:
        assert c.store.verify().ok
        assert c.decide(claim("O-3", "L1", "1.00", "kc"), now=NOW).status == "approved"


# -- a failed sync ----------------------------------------------------------------------
def failing_for(fd: int) -> Callable[[int], None]:
    real = os.fsync

    def fsync(target: int) -> None:
        if target == fd:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(target)

    return fsync


def test_a_failed_sync_after_others_chained_on_says_the_outcome_is_unknown(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    deferred: Callable[[Calculator], list[Callable[[], None]]],
) -> None:
    """A's group is written; B chains a group onto it before A syncs; A's sync fails (EIO):
    A's records cannot be cut off (B's chain rests on them), so A's caller is told the
    outcome is unknown, A's handle refuses appends, the store opens, verifies and is not
    "rolled back", and the retry under A's key through a new handle replays A's record."""
    path = tmp_path / "audit.jsonl"
    a, b = Calculator(path, operator="clerk"), Calculator(path, operator="clerk")
    try:
        a.decide(claim("O-0", "L1", "9.90", "k0"), now=NOW)
        a_storage = storage_of(a)
        b_later = deferred(b)
        real = a_storage._make_durable

        def b_first(end: int, written: Any) -> None:
            b.decide(claim("O-2", "L1", "19.90", "kb"), now=NOW)  # its sync in flight
            monkeypatch.setattr(audit.logfile, "os_fsync", failing_for(a_storage._file.fd))
            real(end, written)

        monkeypatch.setattr(a_storage, "_make_durable", b_first)
        with pytest.raises(
            audit.StoreUnusable,
            match=r"could not record 1 record\(s\): \[Errno 5\] fsync failed: Input/output "
            r"error; others appended or synced after them, so they stay in the log, written "
            r"but not known durable\. Whether they are recorded is unknown: a retry under "
            r"the same key replays them if they are\. This handle refuses further appends",
        ):
            a.decide(claim("O-1", "L1", "39.90", "ka"), now=NOW)
        monkeypatch.setattr(a_storage, "_make_durable", real)
        monkeypatch.setattr(audit.logfile, "os_fsync", os.fsync)
        with pytest.raises(audit.StoreUnusable, match="refuses further appends"):
            a.store.append(Entry({"x": 1}, key="kx"))
        for run in b_later:
            run()
        with Calculator(path, operator="clerk") as c:
            assert c.store.verify().ok
            retry = c.decide(claim("O-1", "L1", "39.90", "ka"), now=NOW)
            record = c.store.get("ka")
            assert record is not None and retry.audit is not None
            assert retry.audit.seq == record.seq == 2
            fresh = c.decide(claim("O-3", "L1", "1.00", "kc"), now=NOW)
            assert fresh.status == "approved"
            assert payouts(c.store) == Counter(
                {("O-0", "L1"): 1, ("O-1", "L1"): 1, ("O-2", "L1"): 1, ("O-3", "L1"): 1}
            )
    finally:
        a.close()
        b.close()


def test_a_failed_sync_with_nothing_after_it_cuts_the_group_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alone on the log, a group whose sync failed is cut back under the writer lock
    (nobody chained on it, no mark names it): NOT recorded; a retry records it once."""
    path = tmp_path / "audit.jsonl"
    with Calculator(path, operator="clerk") as calc:
        calc.decide(claim("O-0", "L1", "9.90", "k0"), now=NOW)
        size = path.stat().st_size
        monkeypatch.setattr(audit.logfile, "os_fsync", failing_for(storage_of(calc)._file.fd))
        with pytest.raises(
            audit.StoreUnusable,
            match=rf"fsync failed: Input/output error; the file was cut back to {size} bytes "
            r"\(that cut is not yet synced\)\. They are NOT recorded\.",
        ):
            calc.decide(claim("O-1", "L1", "39.90", "ka"), now=NOW)
        monkeypatch.undo()
    assert path.stat().st_size == size
    with Calculator(path, operator="clerk") as again:
        retry = again.decide(claim("O-1", "L1", "39.90", "ka"), now=NOW)
        assert retry.audit is not None and retry.audit.seq == 2
        assert again.store.verify().ok


# -- processes ---------------------------------------------------------------------------
def _decide_all(
    path: str, requests: list[dict[str, Any]], fail_sync: bool, start: Any, out: Any
) -> None:
    if fail_sync:
        def fsync(fd: int) -> None:
            raise OSError(errno.EIO, os.strerror(errno.EIO))

        audit.logfile.os_fsync = fsync
    got: list[tuple[Any, ...]] = []
    with Calculator(path, operator="clerk") as calc:
        start.wait()
        for request in requests:
            try:
                decision = calc.decide(request, now=NOW)
            except IdempotencyConflict as exc:
                got.append(("conflict", request.get("request_id"), exc.seq))
            except audit.AuditError as exc:
                got.append(("error", request.get("request_id"), str(exc)))
            else:
                assert decision.audit is not None
                got.append(
                    ("decision", request.get("request_id"), decision.audit.seq,
                     decision.audit.hash, decision.status)
                )  # fmt: skip
    out.put(got)


def _run_processes(path: Path, parts: list[list[dict[str, Any]]], failing: int | None) -> list[Any]:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(len(parts))
    out = context.Queue()
    pool = [
        context.Process(
            target=_decide_all, args=(str(path), part, p == failing, start, out)
        )
        for p, part in enumerate(parts)
    ]
    for process in pool:
        process.start()
    answers = [answer for _ in pool for answer in out.get(timeout=180)]
    for process in pool:
        process.join(60)
    return answers


def test_processes_claiming_the_same_lines_pay_each_once(tmp_path: Path) -> None:
    """Issue 22 point 2, SPEC §7: six single-threaded processes, syncs after the lock,
    claiming the same order lines (some under the same keys, some respelled): one payout per
    line, one record per key, every answer is in the store as answered, the chain and the
    tree verify, and the mark ends at the log's end."""
    path = tmp_path / "audit.jsonl"
    Calculator(path).close()
    requests = [
        claim(f"O-{n % 5}", f"L{n % 2}", "39.9" if n % 3 else "39.90", key)
        for n in range(30)
        for key in [f"k{n % 7}" if n % 4 else None]
    ]
    parts = [requests[p:] + requests[:p] for p in range(6)]
    answers = _run_processes(path, parts, None)
    with Calculator(path, operator="clerk") as calc:
        assert calc.store.verify().ok
        assert all(count == 1 for count in payouts(calc.store).values())
        lines = {(f"O-{o}", f"L{line}") for o in range(5) for line in (0, 1)}
        assert len(payouts(calc.store)) >= 5 and set(payouts(calc.store)) <= lines
        for answer in answers:
            assert answer[0] != "error", answer
            if answer[0] == "decision":
                record = calc.store.record(answer[2])
                assert record is not None and record.hash == answer[3]
        by_key: dict[str, set[int]] = {}
        for answer in answers:
            if answer[0] == "decision" and answer[1] is not None:
                by_key.setdefault(answer[1], set()).add(answer[2])
        assert all(len(seqs) == 1 for seqs in by_key.values()), by_key
    assert mark_end(path) == path.stat().st_size


def test_a_process_whose_syncs_fail_is_told_and_a_retry_records_once(tmp_path: Path) -> None:
    """One process of four has a disk whose fsync always fails (EIO): each of its calls
    either fails with an error (never an answer) or was covered by another process's sync;
    its handle refuses appends after the first failure; retrying its keys through a new
    handle replays or records each exactly once, and nothing is paid twice."""
    path = tmp_path / "audit.jsonl"
    Calculator(path).close()
    parts = [
        [claim(f"O-{p}-{n}", "L1", "9.90", f"p{p}-{n}") for n in range(15)] for p in range(4)
    ]
    answers = _run_processes(path, parts, 0)
    failed = [a for a in answers if a[0] == "error"]
    assert failed, "the failing process was never told"
    assert any("fsync failed" in a[2] for a in failed)
    mine = [a[0] for a in answers if a[1].startswith("p0-")]
    assert len(mine) == 15
    assert set(mine[mine.index("error") :]) == {"error"}  # refused once a sync failed
    assert all(a[1].startswith("p0-") for a in failed)
    with Calculator(path, operator="clerk") as calc:
        assert calc.store.verify().ok
        for answer in answers:
            if answer[0] == "decision":
                record = calc.store.record(answer[2])
                assert record is not None and record.hash == answer[3]
        for request in parts[0]:
            decision = calc.decide(request, now=NOW)
            assert decision.status == "approved"
        paid = payouts(calc.store)
        assert len(paid) == 60 and all(count == 1 for count in paid.values())
        keys = Counter(
            record.key for seq in range(1, calc.store.head().seq + 1)
            if (record := calc.store.record(seq)) is not None
        )
        assert all(count == 1 for key, count in keys.items() if key is not None)


KILLED = """
import sys
from datetime import datetime, UTC
from pricecalc import Calculator
calc = Calculator(sys.argv[1], operator="clerk")
ack = open(sys.argv[2], "a", buffering=1)
now = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
for n in range(100000):
    key = f"{sys.argv[3]}-{n}"
    calc.decide({"kind": "counterfeit_compensation", "request_id": key, "input": {
        "order_id": f"O-{key}", "confirmed": True,
        "lines": [{"line_id": "L1", "paid_amount": "9.90"}]}}, now=now)
    ack.write(key + "\\n")
"""


def test_sigkill_of_single_threaded_processes_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """Issue 22: four single-threaded processes deciding on one log, syncs after the lock,
    each killed with SIGKILL at its own moment (one may die between its write and its sync,
    or mid-write): every acknowledged decision is in the log, the store verifies, is not
    taken for rolled back, and takes new decisions."""
    path = tmp_path / "audit.jsonl"
    Calculator(path).close()
    acks = [tmp_path / f"ack{p}" for p in range(4)]
    procs = [
        subprocess.Popen([sys.executable, "-c", KILLED, str(path), str(ack), f"p{p}"])
        for p, ack in enumerate(acks)
    ]
    for _ in range(600):
        if all(ack.exists() and ack.stat().st_size > 400 for ack in acks):
            break
        time.sleep(0.05)
    for proc in procs:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        time.sleep(0.01)
    acknowledged = [key for ack in acks for key in ack.read_text().split()]
    assert len(acknowledged) > 40
    with Calculator(path, operator="clerk") as calc:
        assert calc.store.verify().ok
        assert [key for key in acknowledged if calc.store.get(key) is None] == []
        after = calc.decide(claim("O-after", "L1", "1.00", "after"), now=NOW)
        assert after.status == "approved"
        assert calc.store.verify().ok
