"""Group commit: concurrent ``Calculator.decide`` calls recorded together (issue 22, SPEC §7).

Threads of one calculator coalesce into groups (one transaction, one sync); processes
share one store, each holding its lock only to write. Whatever the interleaving, the store
must be what one thread deciding the same requests in the recorded order would have made:
one payout per order line, one decision per key, conflicts refused, a gap-free chain and a
verified tree — and no caller hears of a decision before it is durable.
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
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from claims_support import compensation, void
from hypothesis import HealthCheck, given, settings, strategies as st
from postgres_support import pg_database, pg_server, pg_store, pg_store_url  # noqa: F401

import audit
from pricecalc import Calculator, IdempotencyConflict
from pricecalc.decision import Decision
from pricecalc.grouping import GroupCommit, Waiting
from pricecalc.records import recorded_request

NOW = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
BACKENDS = ["tinydb", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """A store location per name: a file path, or a PostgreSQL schema of its own."""
    if request.param == "tinydb":
        yield lambda name: str(tmp_path / f"{name}.jsonl")
    else:
        yield request.getfixturevalue("pg_store_url")


KEYS = st.one_of(st.none(), st.sampled_from([f"k{i}" for i in range(6)]))
# "39.9" and "39.90" are one amount (a respelling); two orders, two lines each.
CLAIM = st.builds(
    compensation,
    st.sampled_from(["39.90", "39.9", "49.90", "49.9"]),
    st.sampled_from(["L1", "L2"]),
    st.sampled_from(["O-1", "O-2"]),
    KEYS,
)
VOID = st.builds(
    void,
    st.integers(min_value=1, max_value=8),
    st.sampled_from([f"k{i}" for i in range(6)]),
    KEYS,
)
REQUESTS = st.lists(st.one_of(CLAIM, CLAIM, VOID), min_size=4, max_size=24)


def outcome(calc: Calculator, request: Any) -> Decision | IdempotencyConflict:
    try:
        return calc.decide(request, now=NOW)
    except IdempotencyConflict as exc:
        return exc


def comparable(store: audit.AuditStore) -> list[tuple[Any, ...]]:
    """Every record as what a decision made it: seq, key, tags and the payload's meaning."""
    out = []
    seq = 1
    while (record := store.record(seq)) is not None:
        payload = dict(record.payload)
        payload.pop("decided_at", None)
        out.append((record.seq, record.key, record.tags, payload))
        seq += 1
    return out


def check_store(store: audit.AuditStore) -> None:
    """The once-only and chain invariants: verified chain and tree, one approved and not
    voided payout per order line, one record per key."""
    assert store.verify().ok
    records = comparable(store)
    voided = {
        payload["result"]["seq"]
        for _, _, _, payload in records
        if payload["kind"] == "void" and payload["status"] == "approved"
    }
    paid = Counter(
        (payload["result"]["order_id"], line["line_id"])
        for seq, _, _, payload in records
        if payload["kind"] == "counterfeit_compensation"
        and payload["status"] == "approved"
        and seq not in voided
        for line in payload["result"]["lines"]
    )
    assert all(count == 1 for count in paid.values()), paid
    keys = [key for _, key, _, _ in records if key is not None]
    assert len(keys) == len(set(keys))
    assert (
        Counter(
            payload["result"]["seq"]
            for _, _, _, payload in records
            if payload["kind"] == "void" and payload["status"] == "approved"
        ).most_common(1)[0][1]
        <= 1
        if voided
        else True
    )


def check_outcomes(store: audit.AuditStore, outcomes: Sequence[Any]) -> None:
    """Each caller's own answer is in the store: a decision at its seq with its result, a
    conflict naming a record under that key."""
    for got in outcomes:
        if isinstance(got, IdempotencyConflict):
            record = store.record(got.seq)
            assert record is not None and record.key is not None
        else:
            assert got.audit is not None
            record = store.record(got.audit.seq)
            assert record is not None and record.hash == got.audit.hash
            assert record.payload["result"] == got.result
            assert record.payload["status"] == got.status


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(requests=REQUESTS, threads=st.integers(min_value=2, max_value=6))
def test_threads_record_what_one_thread_would_in_the_recorded_order(
    tmp_path_factory: pytest.TempPathFactory, requests: list[dict[str, Any]], threads: int
) -> None:
    """Issue 22 point 1: N threads of repeats, respellings, conflicting keys, claims for
    the same lines and voids, deciding at once through one calculator: the store equals
    what one thread deciding them one by one in the order they were decided makes."""
    where = tmp_path_factory.mktemp("threads")
    calc = Calculator(str(where / "group.jsonl"), operator="clerk")
    order: list[Any] = []
    decide_in = calc._decide_in

    def spy(tx: Any, envelope: Any, *args: Any) -> Any:
        order.append(envelope)  # the leader decides under the lock, in this order
        return decide_in(tx, envelope, *args)

    calc._decide_in = spy  # type: ignore[method-assign]
    outcomes: list[Any] = []
    start = threading.Barrier(threads)

    def run(part: list[dict[str, Any]]) -> None:
        start.wait()
        for request in part:
            outcomes.append(outcome(calc, request))

    pool = [threading.Thread(target=run, args=(requests[t::threads],)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert len(order) == len(requests) == len(outcomes)
    check_store(calc.store)
    check_outcomes(calc.store, outcomes)
    with Calculator(str(where / "one.jsonl"), operator="clerk") as one:
        for envelope in order:
            outcome(one, envelope)
        assert comparable(one.store) == comparable(calc.store)
    calc.close()


def _process_run(url: str, requests: list[dict[str, Any]], start: Any, out: Any) -> None:
    with Calculator(url, operator="clerk") as calc:
        start.wait()
        got = []
        for request in requests:
            result = outcome(calc, request)
            got.append(
                ("conflict", result.seq)
                if isinstance(result, IdempotencyConflict)
                else ("decision", result.audit.seq if result.audit else None, result.status)
            )
        out.put(got)


@settings(
    max_examples=2,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(requests=REQUESTS)
def test_processes_record_what_one_process_would_in_the_recorded_order(
    store_url: Callable[[str], str], requests: list[dict[str, Any]]
) -> None:
    """Issue 22 point 2: three processes deciding at once on one store (each evaluating
    outside the lock and re-checking under it): the store equals what one process
    deciding the recorded requests in seq order makes, and every answer is in it."""
    name = f"procs{os.urandom(3).hex()}"
    url = store_url(name)
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(3)
    out = context.Queue()
    pool = [
        context.Process(target=_process_run, args=(url, requests[p::3], start, out))
        for p in range(3)
    ]
    for process in pool:
        process.start()
    answers = [answer for _ in pool for answer in out.get(timeout=120)]
    for process in pool:
        process.join(60)
    with Calculator(url, operator="clerk") as calc:
        check_store(calc.store)
        records = comparable(calc.store)
        for answer in answers:
            assert calc.store.record(answer[1]) is not None
        with Calculator(store_url(name + "ref"), operator="clerk") as one:
            for _seq, key, _tags, payload in records:
                request = recorded_request(payload)
                if key is not None:
                    request["request_id"] = key.split("~void-")[0]
                one.decide(request, now=NOW)
            assert comparable(one.store) == records


# -- the mechanics -----------------------------------------------------------------------
def held_group(calc: Calculator, waiting: int) -> tuple[threading.Event, list[int]]:
    """Hold the calculator's first group until ``waiting`` more callers queue behind it;
    return the event releasing it and the sizes of every group decided."""
    release = threading.Event()
    sizes: list[int] = []
    run = calc._decide_group

    def held(group: Sequence[Waiting[Any]]) -> None:
        sizes.append(len(group))
        if len(sizes) == 1:
            release.wait(30)
        run(group)

    calc._group = GroupCommit(held)
    return release, sizes


def start_callers(
    calc: Calculator, requests: list[Any], *, in_order: bool = False
) -> tuple[list[threading.Thread], dict[int, Any]]:
    """Threads calling ``decide`` with each request (``in_order``: each queued before the
    next starts, so the group holds them in this order)."""
    results: dict[int, Any] = {}

    def call(i: int, request: Any) -> None:
        try:
            results[i] = calc.decide(request, now=NOW)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i, r)) for i, r in enumerate(requests)]
    queued = len(calc._group._queue)
    for n, thread in enumerate(threads, 1):
        thread.start()
        if in_order:
            wait_queued(calc, queued + n)
    return threads, results


def wait_queued(calc: Calculator, count: int) -> None:
    for _ in range(3000):
        if len(calc._group._queue) >= count:
            return
        time.sleep(0.01)
    raise AssertionError("the callers never queued")


def test_a_group_pays_one_of_two_claims_for_one_line(store_url: Callable[[str], str]) -> None:
    """Issue 22 point 1 (SPEC §5): two claims for one order line in one group — the first
    pays, the second is told the line was compensated; a repeat of the first key in the
    same group is its replay; a conflicting request under it is refused."""
    with Calculator(store_url("pair"), operator="clerk") as calc:
        release, sizes = held_group(calc, 4)
        first, _ = start_callers(calc, [compensation("9.90", "L9", "O-9", "lead")])
        while not sizes:
            time.sleep(0.01)
        threads, results = start_callers(
            calc,
            [
                compensation("39.90", "L1", "O-1", "a"),
                compensation("49.90", "L1", "O-1", "b"),
                compensation("39.90", "L1", "O-1", "a"),
                compensation("10.00", "L1", "O-1", "a"),
            ],
            in_order=True,
        )
        wait_queued(calc, 4)
        release.set()
        for thread in [*first, *threads]:
            thread.join(30)
        assert sizes == [1, 4]
        a, b, again, conflict = (results[i] for i in range(4))
        paid = [d for d in (a, b) if d.result["payout_total"] != "0.00"]
        assert len(paid) == 1
        other = b if paid[0] is a else a
        assert [r.code for r in other.reasons] == ["ALREADY_COMPENSATED"]
        assert paid[0] is a and b.audit.seq == a.audit.seq + 1
        assert again.replayed and again.audit == a.audit
        assert isinstance(conflict, IdempotencyConflict) and conflict.seq == a.audit.seq
        assert calc.store.verify().ok


def test_a_failed_sync_fails_every_caller_of_the_group(tmp_path: Path) -> None:
    """Issue 22 point 1: the sync of a group fails — every caller of that group gets the
    error (none a decision), and nothing of the group is recorded."""
    import audit.logfile

    with Calculator(str(tmp_path / "a.jsonl"), operator="clerk") as calc:
        calc.decide(compensation("1.00", "L0", "O-0", "before"), now=NOW)
        release, sizes = held_group(calc, 3)
        first, _ = start_callers(calc, [compensation("9.90", "L9", "O-9", "lead")])
        while not sizes:
            time.sleep(0.01)
        requests = [compensation("39.90", f"L{i}", "O-1", f"g{i}") for i in range(3)]
        threads, results = start_callers(calc, requests)
        wait_queued(calc, 3)
        calls = []

        def broken(fd: int) -> None:
            calls.append(fd)
            raise OSError(errno.EIO, "Input/output error")

        real = audit.logfile.os_fsync
        audit.logfile.os_fsync = broken  # type: ignore[assignment]
        try:
            release.set()
            for thread in [*first, *threads]:
                thread.join(30)
        finally:
            audit.logfile.os_fsync = real  # type: ignore[assignment]
        assert calls
        assert all(isinstance(results[i], audit.StoreUnusable) for i in range(3))
        assert "They are NOT recorded" in str(results[0])
    with Calculator(str(tmp_path / "a.jsonl"), operator="clerk") as fresh:
        assert fresh.store.verify().ok
        assert fresh.store.get("before") is not None
        assert all(fresh.store.get(f"g{i}") is None for i in range(3))


def test_a_lone_caller_goes_at_once() -> None:
    """Issue 22 point 1: no timer — a caller alone leads a group of one at once."""
    groups: list[list[int]] = []

    def run(group: Sequence[Waiting[int]]) -> None:
        groups.append([w.request for w in group])
        for waiting in group:
            waiting.value = waiting.request * 2

    commit = GroupCommit(run)
    assert [commit.submit(n) for n in range(3)] == [0, 2, 4]
    assert groups == [[0], [1], [2]]


def test_an_error_raised_by_a_group_is_every_callers() -> None:
    """GroupCommit: whatever the group's run raises is the error of each of its callers."""

    def run(group: Sequence[Waiting[int]]) -> None:
        raise RuntimeError("the disk is gone")

    commit = GroupCommit(run)
    with pytest.raises(RuntimeError, match="the disk is gone"):
        commit.submit(1)
    with pytest.raises(RuntimeError, match="the disk is gone"):
        commit.submit(2)  # and the next caller still finds the calculator free


# -- SIGKILL mid-group -------------------------------------------------------------------
KILLED = """
import sys, threading
from datetime import datetime, UTC
from pricecalc import Calculator
calc = Calculator(sys.argv[1], operator="clerk")
ack = open(sys.argv[2], "a", buffering=1)
now = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
def run(t):
    for n in range(100000):
        key = f"t{t}-{n}"
        calc.decide({"kind": "counterfeit_compensation", "request_id": key, "input": {
            "order_id": f"O-{t}-{n}", "confirmed": True,
            "lines": [{"line_id": "L1", "paid_amount": "9.90"}]}}, now=now)
        ack.write(key + "\\n")
for t in range(4):
    threading.Thread(target=run, args=(t,), daemon=True).start()
threading.Event().wait()
"""


def test_sigkill_mid_group_loses_no_acknowledged_decision(
    store_url: Callable[[str], str], tmp_path: Path
) -> None:
    """Issue 22: a process of four deciding threads (two of them, on one store) killed
    with SIGKILL mid-group: every decision acknowledged to a caller is in the store, and
    the store verifies and takes new decisions."""
    url = store_url("killed")
    Calculator(url).close()  # the store exists before the writers race to create it
    acks = [tmp_path / f"ack{p}" for p in range(2)]
    procs = [subprocess.Popen([sys.executable, "-c", KILLED, url, str(ack)]) for ack in acks]
    for _ in range(600):
        if all(ack.exists() and ack.stat().st_size > 2000 for ack in acks):
            break
        time.sleep(0.05)
    for proc in procs:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    acknowledged = [key for ack in acks for key in ack.read_text().split()]
    assert len(acknowledged) > 100
    with Calculator(url, operator="clerk") as calc:
        assert calc.store.verify().ok
        missing = [key for key in acknowledged if calc.store.get(key) is None]
        assert missing == []
        check_store(calc.store)
        after = calc.decide(compensation("1.00", "L1", "O-after", "after"), now=NOW)
        assert after.status == "approved"
        assert calc.store.verify().ok


def test_a_call_from_inside_a_running_group_does_not_wait_for_it() -> None:
    """GroupCommit: a leader's own thread submitting again while its group runs (a plugin
    deciding inside a decision) is run at once, alone, instead of waiting for ever."""
    seen: list[list[int]] = []
    commit: GroupCommit[int] = GroupCommit(lambda group: None)

    def run(group: Sequence[Waiting[int]]) -> None:
        seen.append([w.request for w in group])
        for waiting in group:
            waiting.value = waiting.request if waiting.request else commit.submit(7)

    commit._run = run
    assert commit.submit(0) == 7
    assert seen == [[0], [7]]


# -- callers preparing while a group forms ------------------------------------------------
def echoing(linger: float) -> tuple[GroupCommit[int], list[list[int]]]:
    """A group commit whose run answers each request with itself, and its groups."""
    groups: list[list[int]] = []

    def run(group: Sequence[Waiting[int]]) -> None:
        groups.append([w.request for w in group])
        for waiting in group:
            waiting.value = waiting.request

    return GroupCommit(run, linger=linger), groups


def preparing_slowly(commit: GroupCommit[int]) -> tuple[threading.Thread, threading.Event]:
    """A caller of ``commit`` preparing request 2 until the returned event is set (it has
    started preparing when this returns)."""
    preparing = threading.Event()
    go_on = threading.Event()

    def slow() -> int:
        preparing.set()
        go_on.wait(10)
        return 2

    other = threading.Thread(target=commit.submit_from, args=(slow,))
    other.start()
    assert preparing.wait(10)
    return other, go_on


def test_a_leader_waits_for_a_caller_still_preparing() -> None:
    """GroupCommit.submit_from: a caller that is preparing its request (parsing and
    evaluating it in its own thread) when the leader takes its group joins that group,
    instead of leading the next one alone."""
    commit, groups = echoing(linger=5.0)
    other, go_on = preparing_slowly(commit)
    threading.Timer(0.2, go_on.set).start()
    start = time.monotonic()
    assert commit.submit(1) == 1
    waited = time.monotonic() - start
    other.join(10)
    assert groups == [[1, 2]]  # one group: the leader waited for the arriving caller
    assert 0.1 < waited < 4.0  # for it, not for the whole linger


def test_the_wait_for_arriving_callers_is_bounded() -> None:
    """A caller that takes long to prepare holds the leader up for at most ``linger``:
    the group goes without it, and it leads its own group later."""
    commit, groups = echoing(linger=0.05)
    other, go_on = preparing_slowly(commit)
    start = time.monotonic()
    assert commit.submit(1) == 1
    assert time.monotonic() - start < 2.0
    go_on.set()
    other.join(10)
    assert groups == [[1], [2]]


class CountingCondition(threading.Condition):
    """A condition that counts its notifications (how often a leader is woken)."""

    notified = 0

    def notify(self, n: int = 1) -> None:
        self.notified += 1
        super().notify(n)


def test_a_gathering_leader_is_woken_once_when_no_one_is_left_to_wait_for() -> None:
    """GroupCommit: callers joining while the leader waits for those still preparing do
    not wake it one by one (each wake-up would hand it the interpreter for nothing); it is
    woken once, by the last of them, and takes them all in arrival order."""
    commit, groups = echoing(linger=30.0)
    gathered = CountingCondition(commit._lock)
    commit._gathered = gathered
    releases = []
    callers = []
    for request in (2, 3):
        preparing, go_on = threading.Event(), threading.Event()

        def slow(request: int = request, preparing: threading.Event = preparing,
                 go_on: threading.Event = go_on) -> int:  # fmt: skip
            preparing.set()
            go_on.wait(10)
            return request

        caller = threading.Thread(target=commit.submit_from, args=(slow,))
        caller.start()
        assert preparing.wait(10)
        releases.append(go_on)
        callers.append(caller)
    leader = threading.Thread(target=commit.submit, args=(1,))
    leader.start()
    deadline = time.monotonic() + 10
    while not commit._gathering and time.monotonic() < deadline:
        time.sleep(0.001)
    assert commit._gathering  # the leader waits for the two callers preparing
    releases[0].set()
    while len(commit._queue) < 2 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert [w.request for w in commit._queue] == [1, 2]
    assert gathered.notified == 0  # one caller is still preparing: no wake-up yet
    releases[1].set()
    for thread in (leader, *callers):
        thread.join(10)
    assert gathered.notified == 1
    assert groups == [[1, 2, 3]]


def test_a_caller_whose_preparation_fails_queues_nothing() -> None:
    """An exception while preparing is the caller's own: nothing joins a group, and the
    leader waiting for it goes on at once."""
    commit, groups = echoing(linger=0.0005)

    def bad() -> int:
        raise ValueError("requests[0].input: not a mapping")

    with pytest.raises(ValueError, match=r"requests\[0\]\.input: not a mapping"):
        commit.submit_from(bad)
    assert commit.submit(3) == 3
    assert groups == [[3]]
    assert commit._arriving == 0
