"""Attacks on the file store's writer locks (audit.flock, AuditLogStorage._lock_writers /
_lock_log): never two writers, no lock left behind by a timeout, an interruption or a
fork, and the StoreLocked messages a clerk reads.

Every wait here is bounded (timeouts on locks, joins and child processes), so a
regression fails instead of hanging the run.
"""

from __future__ import annotations

import fcntl
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from flock_support import free, free_within, hold_elsewhere

import audit
import audit.flock
from audit.errors import StoreLocked
from audit.flock import Flock, LockTimeout


class Interrupted(BaseException):
    """What the test's signal handler raises (a KeyboardInterrupt stand-in that pytest's
    own SIGINT handling leaves alone)."""


@pytest.fixture
def interrupt_main() -> Iterator[threading.Timer]:
    """``timer.start()`` interrupts the main thread (where the test runs) 0.2 s later,
    with a real signal, as Ctrl-C does."""
    previous = signal.signal(signal.SIGUSR1, _raise_interrupted)
    main = threading.main_thread().ident
    assert main == threading.get_ident()
    assert main is not None
    timer = threading.Timer(0.2, signal.pthread_kill, args=(main, signal.SIGUSR1))
    try:
        yield timer
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR1, previous)


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted


def _helpers() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "audit-flock")


def _no_helpers_within(seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _helpers():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# -- interrupted while waiting ------------------------------------------------------------
@pytest.mark.parametrize("held", [".lock", ""], ids=["lock-file", "log"])
def test_an_interrupted_wait_leaves_no_lock_behind(
    tmp_path: Path, interrupt_main: threading.Timer, held: str
) -> None:
    """A writer interrupted (Ctrl-C) while it waits for ``<log>.lock`` or for the log's
    own lock must not get that lock later, when the holder lets go, and keep it: the
    abandoned wait lets go at once, so the next writer — another handle, or this one —
    gets in."""
    log = tmp_path / "a.jsonl"
    store = audit.TinyDBAuditStore(log, lock_timeout=10)
    holder = hold_elsewhere(Path(f"{log}{held}"), 0.6)
    try:
        interrupt_main.start()
        with pytest.raises(Interrupted):
            store.append(audit.Entry({"n": 1}, key="k1"))
        assert holder.wait(10) == 0
        assert free_within(Path(f"{log}{held}"), 5)
        with audit.TinyDBAuditStore(log, lock_timeout=2) as other:
            assert other.append(audit.Entry({"n": 2}, key="k2")).seq == 1
        store.storage.lock_timeout = 2
        assert store.append(audit.Entry({"n": 3}, key="k3")).seq == 2
        assert store.verify().ok
    finally:
        holder.kill()
        holder.wait(10)
        store.close()
    assert _no_helpers_within(5)


def test_a_flock_interrupted_while_waiting_lets_go_when_the_lock_comes(
    tmp_path: Path, interrupt_main: threading.Timer
) -> None:
    """audit.flock alone: an interrupted wait is abandoned like a timed-out one."""
    holder = hold_elsewhere(tmp_path / "l", 0.5)
    fd = os.open(tmp_path / "l", os.O_RDWR)
    try:
        interrupt_main.start()
        with pytest.raises(Interrupted):
            audit.flock.lock_exclusive(fd, 10)
        assert holder.wait(10) == 0
        assert free_within(tmp_path / "l", 5)  # though fd, its description, is still open
    finally:
        os.close(fd)
        holder.kill()
        holder.wait(10)


# -- an abandoned wait and the next acquire on one description ----------------------------
def _slow_helpers(delay: float) -> SimpleNamespace:
    """``fcntl`` as audit.flock sees it, but a helper that got the lock by blocking takes
    ``delay`` seconds before it looks whether it was abandoned (the scheduler could do
    this; the test makes it certain)."""

    def flock(fd: int, operation: int) -> None:
        fcntl.flock(fd, operation)
        if operation == fcntl.LOCK_EX and threading.current_thread().name == "audit-flock":
            time.sleep(delay)

    return SimpleNamespace(
        flock=flock, LOCK_EX=fcntl.LOCK_EX, LOCK_NB=fcntl.LOCK_NB, LOCK_UN=fcntl.LOCK_UN
    )


def test_an_abandoned_wait_on_the_log_never_unlocks_the_next_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writers at once through the log's own lock. Writer A holds both locks; its
    ``.lock`` is deleted (the case the log's lock is there for); B takes a new ``.lock``,
    times out on the log's lock and tries again. A's commit wakes both of B's waits on
    B's one open description of the log: both are granted it, and the abandoned one's
    release would unlock B's transaction — C then got in beside B and the chain forked
    (seq 2 twice). The next acquire must wait for the abandoned helper first."""
    monkeypatch.setattr(audit.flock, "fcntl", _slow_helpers(0.2))
    log = tmp_path / "a.jsonl"
    a = audit.TinyDBAuditStore(log, lock_timeout=10)
    b = audit.TinyDBAuditStore(log, lock_timeout=0.3)
    a_in, a_go, b_in, b_go = (threading.Event() for _ in range(4))
    outcome: list[str] = []

    def writer_a() -> None:
        with a.transaction() as tx:
            tx.append(audit.Entry({"by": "A"}, key="a"))
            a_in.set()
            a_go.wait(10)

    def writer_b() -> None:
        try:
            with b.transaction() as tx:
                b_in.set()
                b_go.wait(10)
                tx.append(audit.Entry({"by": "B"}, key="b"))
            outcome.append("B committed")
        except Exception as exc:  # reported by the assertion below
            outcome.append(f"B {type(exc).__name__}: {exc}")

    first = threading.Thread(target=writer_a)
    first.start()
    second = threading.Thread(target=writer_b)
    try:
        assert a_in.wait(10)
        os.unlink(f"{log}.lock")
        with pytest.raises(StoreLocked) as refused:
            b.append(audit.Entry({"by": "B0"}, key="b0"))
        assert str(refused.value) == (
            f"could not lock the audit log {log} within 0.3s: another writer holds it"
        )
        b.storage.lock_timeout = 10
        second.start()
        time.sleep(0.3)  # B's second wait is blocked beside its abandoned one
        a_go.set()
        first.join(10)
        assert b_in.wait(10)
        time.sleep(0.5)  # both helpers have long done what they do
        assert not free(log)  # B is inside: the log is locked
        os.unlink(f"{log}.lock")
        with pytest.raises(StoreLocked) as locked_out:
            audit.TinyDBAuditStore(log, lock_timeout=0.3)
        assert str(locked_out.value) == (
            f"could not lock the audit log {log} within 0.3s: another writer holds it"
        )
    finally:
        a_go.set()
        b_go.set()
        first.join(10)
        if second.is_alive() or b_in.is_set():
            second.join(10)
    assert outcome == ["B committed"]
    with audit.TinyDBAuditStore(log) as check:
        report = check.verify()
        assert (report.ok, report.count) == (True, 2)
        assert [getattr(check.record(seq), "key", None) for seq in (1, 2)] == ["a", "b"]
    a.close()
    b.close()


def test_timeouts_against_a_stuck_holder_leave_one_helper(tmp_path: Path) -> None:
    """A process that never lets go of ``<log>.lock`` (hung, or anyone who can open the
    file): every timed-out attempt of one handle used to leave a helper thread and a
    descriptor blocked until the holder went — as many as the caller retried. Now one."""
    log = tmp_path / "a.jsonl"
    store = audit.TinyDBAuditStore(log, lock_timeout=0.05)
    holder = hold_elsewhere(Path(f"{log}.lock"), 60)
    try:
        for _ in range(6):
            with pytest.raises(StoreLocked) as refused:
                store.append(audit.Entry({"n": 1}, key="k1"))
            assert str(refused.value) == (
                f"could not take the writer lock {log}.lock within 0.05s: another process "
                "holds it"
            )
        assert _helpers() == 1
    finally:
        holder.kill()
        holder.wait(10)
    store.storage.lock_timeout = 5
    assert store.append(audit.Entry({"n": 1}, key="k1")).seq == 1
    store.close()
    assert _no_helpers_within(5)


def test_a_flock_timed_out_on_one_description_waits_for_its_helper(tmp_path: Path) -> None:
    """audit.flock.Flock: after a timeout, the next acquire on the same description does
    not start a second helper; when the holder goes it gets the lock, and holds it."""
    path = tmp_path / "l"
    holder = hold_elsewhere(path, 0.8)
    fd = os.open(path, os.O_RDWR)
    lock = Flock()
    try:
        with pytest.raises(LockTimeout):
            lock.acquire(fd, 0.05)
        with pytest.raises(LockTimeout):
            lock.acquire(fd, 0.05)
        assert _helpers() == 1
        lock.acquire(fd, 10)
        assert holder.wait(10) == 0
        time.sleep(0.1)
        assert not free(path)  # held through fd's description, not let go
    finally:
        os.close(fd)
        holder.kill()
        holder.wait(10)
    assert _no_helpers_within(5)


# -- fork ---------------------------------------------------------------------------------
def test_a_process_forked_during_a_transaction_keeps_no_lock(tmp_path: Path) -> None:
    """A process forked while a writer holds the locks (another thread of an application
    forking) has copies of both descriptors. Releasing ``<log>.lock`` by closing it alone
    left it locked for as long as the child lived; it is unlocked first, as the log is."""
    log = tmp_path / "a.jsonl"
    store = audit.TinyDBAuditStore(log)
    with store.transaction() as tx:
        tx.append(audit.Entry({"n": 1}, key="k1"))
        child = os.fork()
        if child == 0:  # pragma: no cover - the child only sleeps
            time.sleep(20)
            os._exit(0)
    try:
        assert free(Path(f"{log}.lock"))
        assert free(log)
        with audit.TinyDBAuditStore(log, lock_timeout=0.5) as other:
            assert other.append(audit.Entry({"n": 2}, key="k2")).seq == 2
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        store.close()


# -- names of the lock file ---------------------------------------------------------------
def test_a_handle_through_a_symlink_and_one_through_the_real_path_share_the_lock(
    tmp_path: Path,
) -> None:
    """Opened through a symlink and through the real path, the two handles take one
    ``.lock`` (beside the real log) and one log lock: never two writers."""
    real = tmp_path / "real.jsonl"
    link = tmp_path / "link.jsonl"
    audit.TinyDBAuditStore(real).close()
    link.symlink_to(real)
    via_link = audit.TinyDBAuditStore(link)
    inside, go = threading.Event(), threading.Event()

    def hold() -> None:
        with via_link.transaction() as tx:
            tx.append(audit.Entry({"by": "link"}, key="l"))
            inside.set()
            go.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert inside.wait(10)
        assert not (tmp_path / "link.jsonl.lock").exists()
        with pytest.raises(StoreLocked) as refused:
            audit.TinyDBAuditStore(real, lock_timeout=0.2)
        assert str(refused.value) == (
            f"could not take the writer lock {real}.lock within 0.2s: another process holds it"
        )
        os.unlink(f"{real}.lock")  # the lock file replaced: the log's lock still holds
        with pytest.raises(StoreLocked) as refused:
            audit.TinyDBAuditStore(real, lock_timeout=0.2)
        assert str(refused.value) == (
            f"could not lock the audit log {real} within 0.2s: another writer holds it"
        )
    finally:
        go.set()
        thread.join(10)
    with audit.TinyDBAuditStore(real) as check:
        assert [check.verify().ok, check.verify().count] == [True, 1]
    via_link.close()


def test_a_lock_file_made_a_symlink_or_a_directory_is_refused(tmp_path: Path) -> None:
    """``<log>.lock`` made a symlink (to a file an attacker wants created or truncated)
    or a directory: the writer refuses with the OS's reason and follows nothing."""
    log = tmp_path / "a.jsonl"
    store = audit.TinyDBAuditStore(log)
    target = tmp_path / "elsewhere"
    Path(f"{log}.lock").unlink()
    Path(f"{log}.lock").symlink_to(target)
    with pytest.raises(StoreLocked) as refused:
        store.append(audit.Entry({"n": 1}, key="k1"))
    assert str(refused.value) == (
        f"the writer lock {log}.lock: [Errno 40] Too many levels of symbolic links: "
        f"'{log}.lock'"
    )
    assert not target.exists()
    Path(f"{log}.lock").unlink()
    Path(f"{log}.lock").mkdir()
    with pytest.raises(StoreLocked) as refused:
        store.append(audit.Entry({"n": 1}, key="k1"))
    assert str(refused.value) == (
        f"the writer lock {log}.lock: [Errno 21] Is a directory: '{log}.lock'"
    )
    Path(f"{log}.lock").rmdir()
    assert store.append(audit.Entry({"n": 1}, key="k1")).seq == 1
    assert store.verify().count == 1
    store.close()


# -- the store's checks, once per transaction ---------------------------------------------
@pytest.mark.parametrize("appends", [1, 2])
def test_a_rollback_witnessed_inside_a_transaction_is_refused_at_its_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, appends: int
) -> None:
    """SPEC §7: a log restored from an old copy together with its mark, its index kept
    (it knew record 10; the log ends at 7). The index is unavailable for a moment when the
    transaction starts (sqlite busy), so the check before the first append passes; the
    appends bring the index up, its witness raises the mark to record 10 — inside the
    transaction. Checked once per transaction, the appends went on and the commit wrote
    the mark back down to the new head: the rollback was accepted silently, and every
    later writer with it. The commit must refuse, naming the lost record."""
    from audit.errors import RolledBack
    from audit.tinydb_index import IndexUnavailable

    log = tmp_path / "a.jsonl"
    with audit.TinyDBAuditStore(log) as store:
        for i in range(7):
            store.append(audit.Entry({"i": i}, key=f"k{i}"))
        old_log, old_mark = log.read_bytes(), Path(f"{log}.head").read_bytes()
        for i in range(7, 10):
            store.append(audit.Entry({"i": i}, key=f"k{i}"))
        lost = store.record(10)
        assert lost is not None
    log.write_bytes(old_log)  # in place: the same inode, as a restore by cp does
    Path(f"{log}.head").write_bytes(old_mark)

    handle = audit.TinyDBAuditStore(log)
    keeper = handle.storage._keeper
    sync = keeper.sync
    calls: list[int] = []

    def busy_once(end: int) -> None:
        calls.append(end)
        if len(calls) == 1:
            raise IndexUnavailable(f"the index {log}.idx is unavailable: database is locked")
        sync(end)

    monkeypatch.setattr(keeper, "sync", busy_once)
    expected = (
        f"the audit log {log} was rolled back: record 10 (hash {lost.hash}) was written to "
        "it, but the log now ends at record 7 and does not hold it (restored from an older "
        "copy, cut back, or replaced). Records up to 10 may be lost; appends are refused "
        "until an operator accepts the rollback (audit accept-rollback)"
    )
    try:
        with pytest.raises(RolledBack) as refused, handle.transaction() as tx:
            for i in range(appends):
                tx.append(audit.Entry({"after": i}))
        assert str(refused.value) == expected
    finally:
        handle.close()
    assert log.read_bytes() == old_log  # nothing written
    with audit.TinyDBAuditStore(log) as later:
        with pytest.raises(RolledBack) as refused:
            later.append(audit.Entry({"later": 1}, key="later"))
        assert str(refused.value) == expected


def test_a_helper_that_cannot_start_leaves_no_descriptor_and_no_wedged_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No thread to be had (``can't start new thread``, say under a flood of them): the
    acquire fails with that error, the duplicate descriptor is closed, and the next
    acquire — threads available again — is not held up by a wait that never began."""
    path = tmp_path / "l"
    holder = hold_elsewhere(path, 0.5)
    fd = os.open(path, os.O_RDWR)
    lock = Flock()

    class NoThread(threading.Thread):
        def start(self) -> None:
            raise RuntimeError("can't start new thread")

    before = sorted(os.listdir("/proc/self/fd"))
    try:
        with monkeypatch.context() as patch:
            patch.setattr(
                audit.flock,
                "threading",
                SimpleNamespace(Thread=NoThread, Lock=threading.Lock, Event=threading.Event),
            )
            with pytest.raises(RuntimeError, match=r"^can't start new thread$"):
                lock.acquire(fd, 5)
        assert sorted(os.listdir("/proc/self/fd")) == before
        start = time.monotonic()
        lock.acquire(fd, 10)  # waits for the holder only, not for the wait that never began
        assert time.monotonic() - start < 5
        assert holder.wait(10) == 0
        assert not free(path)
    finally:
        os.close(fd)
        holder.kill()
        holder.wait(10)
