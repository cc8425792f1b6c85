"""Attacks on group commit with callers preparing in their own threads (issue 22,
``GroupCommit.submit_from``, ``Calculator._prepare`` / ``_decide_group``).

A request is now parsed, keyed and evaluated against no history in its caller's thread,
possibly long before its group takes the lock. Whatever happens meanwhile — another
claim for the same line, a void, an interruption while preparing, a plugin deciding from
inside a group — no caller may wait for ever, no decision may be reported before its
record is durable, and a line is paid once.

Every thread here is joined with a timeout and every barrier has one, so a regression
fails instead of hanging the run.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from claims_support import compensation, void

import audit.logfile
from pricecalc import Calculator
from pricecalc.decision import Decision
from pricecalc.grouping import GroupCommit, Waiting

NOW = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)


class Interrupted(BaseException):
    """A KeyboardInterrupt stand-in (a BaseException, not an Exception)."""


def echo(groups: list[list[int]]) -> Callable[[Sequence[Waiting[int]]], None]:
    def run(group: Sequence[Waiting[int]]) -> None:
        groups.append([w.request for w in group])
        for waiting in group:
            waiting.value = waiting.request

    return run


def settled(commit: GroupCommit[Any]) -> tuple[int, list[Any], bool, int | None]:
    """What a group commit at rest must be: nobody arriving, nothing queued, no leader."""
    return commit._arriving, commit._queue, commit._busy, commit._leader


def joined(threads: Sequence[threading.Thread], seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return not any(thread.is_alive() for thread in threads)


# -- GroupCommit alone --------------------------------------------------------------------
def test_an_interruption_while_preparing_is_the_callers_and_leaves_no_one_arriving() -> None:
    """A BaseException (Ctrl-C) inside ``prepare`` reaches its caller; ``_arriving`` goes
    back to zero, so no later leader lingers for a caller that will never come."""
    groups: list[list[int]] = []
    commit: GroupCommit[int] = GroupCommit(echo(groups), linger=30.0)

    def interrupted() -> int:
        raise Interrupted

    with pytest.raises(Interrupted):
        commit.submit_from(interrupted)
    assert settled(commit) == (0, [], False, None)
    start = time.monotonic()
    assert commit.submit(5) == 5  # a linger of 30 s would show here
    assert time.monotonic() - start < 10
    assert groups == [[5]]


def test_a_leader_waiting_for_a_caller_whose_preparation_is_interrupted_goes_on() -> None:
    """The leader lingers for a caller preparing; that caller's preparation is
    interrupted: the leader is woken and goes with what it has, well within ``linger``."""
    groups: list[list[int]] = []
    commit: GroupCommit[int] = GroupCommit(echo(groups), linger=30.0)
    preparing, go_on = threading.Event(), threading.Event()
    raised: list[BaseException] = []

    def doomed() -> int:
        preparing.set()
        go_on.wait(30)
        raise Interrupted

    def other() -> None:
        try:
            commit.submit_from(doomed)
        except BaseException as exc:  # the test looks at it below
            raised.append(exc)

    thread = threading.Thread(target=other)
    thread.start()
    assert preparing.wait(10)
    threading.Timer(0.2, go_on.set).start()
    start = time.monotonic()
    assert commit.submit(1) == 1
    waited = time.monotonic() - start
    assert joined([thread], 10)
    assert [type(exc) for exc in raised] == [Interrupted]
    assert groups == [[1]]
    assert 0.1 < waited < 10  # woken by the interruption, not by the linger of 30 s
    assert settled(commit) == (0, [], False, None)


def test_a_decision_made_from_inside_a_group_through_submit_from() -> None:
    """Re-entrancy: the group's run submits (with a preparation) from the leader's own
    thread — it runs alone at once instead of waiting for the group it is in, and the
    counts come back to rest."""
    groups: list[list[int]] = []
    commit: GroupCommit[int] = GroupCommit(lambda group: None)

    def run(group: Sequence[Waiting[int]]) -> None:
        groups.append([w.request for w in group])
        for waiting in group:
            if waiting.request == 1:
                waiting.value = commit.submit_from(lambda: 40) + 1  # type: ignore[operator]
            else:
                waiting.value = waiting.request

    commit._run = run
    assert commit.submit(1) == 41
    assert groups == [[1], [40]]
    assert settled(commit) == (0, [], False, None)


def test_an_interruption_raised_by_a_group_is_every_callers_and_nobody_is_left_waiting() -> None:
    """The run of a group is interrupted: each caller of that group hears of it (none
    gets a value), the leader too, and the next caller leads at once."""
    groups: list[list[int]] = []
    release = threading.Event()

    def run(group: Sequence[Waiting[int]]) -> None:
        groups.append([w.request for w in group])
        if len(groups) == 1:
            release.wait(30)
            return
        if len(groups) == 2:
            raise Interrupted
        for waiting in group:
            waiting.value = waiting.request

    commit: GroupCommit[int] = GroupCommit(run)
    outcomes: dict[int, object] = {}

    def call(n: int) -> None:
        try:
            outcomes[n] = commit.submit(n)
        except BaseException as exc:  # the test looks at it below
            outcomes[n] = type(exc)

    first = threading.Thread(target=call, args=(0,))
    first.start()
    while not groups:
        time.sleep(0.01)
    rest = [threading.Thread(target=call, args=(n,)) for n in (1, 2, 3)]
    for thread in rest:
        thread.start()
    while len(commit._queue) < 3:
        time.sleep(0.01)
    release.set()
    assert joined([first, *rest], 30)
    assert outcomes == {0: None, 1: Interrupted, 2: Interrupted, 3: Interrupted}
    assert commit.submit(9) == 9
    assert groups[2:] == [[9]] and sorted(groups[1]) == [1, 2, 3]
    assert settled(commit) == (0, [], False, None)


def test_many_callers_preparing_slowly_or_failing_all_come_back_once() -> None:
    """Stress: 12 threads x 40 submissions; preparations sleep 0-2 ms, one in ten fails.
    Every caller comes back (no lost wake-up), each with its own value; every queued
    request is in exactly one group, none of a failed preparation; at rest nothing is
    arriving, queued or leading."""
    groups: list[list[int]] = []
    commit: GroupCommit[int] = GroupCommit(echo(groups), linger=0.002)
    results: dict[int, object] = {}
    lock = threading.Lock()

    def caller(t: int) -> None:
        rng = random.Random(t)
        for i in range(40):
            n = t * 1000 + i
            fails = rng.random() < 0.1
            pause = rng.random() * 0.002

            def prepare(n: int = n, fails: bool = fails, pause: float = pause) -> int:
                time.sleep(pause)
                if fails:
                    raise ValueError(f"bad {n}")
                return n

            try:
                value: object = commit.submit_from(prepare)
            except ValueError as exc:
                value = str(exc)
            with lock:
                results[n] = value

    threads = [threading.Thread(target=caller, args=(t,)) for t in range(12)]
    for thread in threads:
        thread.start()
    assert joined(threads, 120)
    assert len(results) == 12 * 40
    queued = sorted(n for group in groups for n in group)
    assert queued == sorted(n for n, v in results.items() if v == n)
    assert all(v == f"bad {n}" for n, v in results.items() if v != n)
    assert len(queued) == len(set(queued))
    assert settled(commit) == (0, [], False, None)


# -- the calculator ----------------------------------------------------------------------
@pytest.fixture
def calc(tmp_path: Path) -> Iterator[Calculator]:
    with Calculator(str(tmp_path / "a.jsonl"), operator="clerk") as calculator:
        yield calculator


def held_after_preparing(calc: Calculator, count: int) -> threading.Barrier:
    """Each ``decide`` prepares its request (against no history), then waits until
    ``count`` callers have prepared before it queues: every one of them was evaluated
    before any was recorded."""
    barrier = threading.Barrier(count, timeout=30)
    prepare = calc._prepare

    def prepared(request: Any, now: datetime | None) -> Any:
        ready = prepare(request, now)
        barrier.wait()
        return ready

    calc._prepare = prepared  # type: ignore[method-assign]
    return barrier


def decide_all(calc: Calculator, requests: list[dict[str, Any]]) -> list[Decision]:
    results: dict[int, Any] = {}

    def call(i: int) -> None:
        try:
            results[i] = calc.decide(requests[i], now=NOW)
        except Exception as exc:  # reported by the assertion below
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    assert joined(threads, 60)
    assert all(isinstance(results[i], Decision) for i in range(len(requests))), results
    return [results[i] for i in range(len(requests))]


def test_eight_claims_for_one_line_prepared_at_once_pay_once(calc: Calculator) -> None:
    """SPEC §5: eight claims for one order line, each evaluated (paying, against no
    history) before any was recorded: exactly one pays, the first recorded; the seven
    others are re-decided under the lock and told the line was compensated."""
    held_after_preparing(calc, 8)
    requests = [compensation("39.90", "L1", "O-1", f"c{i}") for i in range(8)]
    decisions = sorted(decide_all(calc, requests), key=lambda d: d.audit.seq if d.audit else 0)
    assert [d.audit.seq if d.audit else None for d in decisions] == list(range(1, 9))
    assert [d.result["payout_total"] for d in decisions] == ["539.90"] + ["0.00"] * 7
    assert [[r.code for r in d.reasons] for d in decisions[1:]] == [
        ["ALREADY_COMPENSATED"]
    ] * 7
    assert calc.store.verify().ok


def test_a_claim_prepared_before_another_was_recorded_is_decided_again(
    calc: Calculator,
) -> None:
    """History changed between a caller's preparation and its group: its prepared
    decision (pays) is not recorded; it is decided again with the store's history."""
    prepared, go_on = threading.Event(), threading.Event()
    prepare = calc._prepare
    away: list[Any] = []

    def slow(request: Any, now: datetime | None) -> Any:
        ready = prepare(request, now)
        if request["request_id"] == "late":
            away.append(ready[2].decision)
            prepared.set()
            go_on.wait(30)
        return ready

    calc._prepare = slow  # type: ignore[method-assign]
    outcome: list[Decision] = []
    thread = threading.Thread(
        target=lambda: outcome.append(calc.decide(compensation("39.90", "L1", "O-1", "late")))
    )
    thread.start()
    assert prepared.wait(30)
    first = calc.decide(compensation("39.90", "L1", "O-1", "first"), now=NOW)
    go_on.set()
    assert joined([thread], 30)
    assert first.result["payout_total"] == "539.90"
    assert [d.result["payout_total"] for d in away] == ["539.90"]  # against no history
    assert [d.result["payout_total"] for d in outcome] == ["0.00"]
    assert [r.code for r in outcome[0].reasons] == ["ALREADY_COMPENSATED"]
    assert calc.store.get("late") is not None


def test_two_voids_of_one_record_prepared_at_once_withdraw_it_once(calc: Calculator) -> None:
    """SPEC §7: two voids of one record, both evaluated (approved, against no history)
    before either was recorded: one is approved, the other is rejected ALREADY_VOIDED."""
    paid = calc.decide(compensation("39.90", "L1", "O-1", "paid"), now=NOW)
    assert paid.audit is not None
    held_after_preparing(calc, 2)
    decisions = decide_all(calc, [void(paid.audit.seq, "paid", f"v{i}") for i in range(2)])
    decisions.sort(key=lambda d: d.audit.seq if d.audit else 0)
    assert [d.status for d in decisions] == ["approved", "rejected"]
    assert [r.code for r in decisions[1].reasons] == ["ALREADY_VOIDED"]


def test_a_void_racing_claims_for_the_line_it_frees_pays_the_line_once(
    calc: Calculator,
) -> None:
    """A void of the paid claim and five new claims for the same line, all evaluated
    before any was recorded, recorded in whatever order they queue: claims recorded before
    the void are told the line was compensated; of those after it exactly the first pays."""
    paid = calc.decide(compensation("39.90", "L1", "O-1", "paid"), now=NOW)
    assert paid.audit is not None
    held_after_preparing(calc, 6)
    requests = [void(paid.audit.seq, "paid", "v"), *(
        compensation("39.90", "L1", "O-1", f"c{i}") for i in range(5)
    )]
    decisions = decide_all(calc, requests)
    withdrawal = decisions[0]
    assert withdrawal.status == "approved" and withdrawal.audit is not None
    claims = sorted(decisions[1:], key=lambda d: d.audit.seq if d.audit else 0)
    before = [d for d in claims if d.audit and d.audit.seq < withdrawal.audit.seq]
    after = [d for d in claims if d.audit and d.audit.seq > withdrawal.audit.seq]
    assert len(before) + len(after) == 5
    assert [d.result["payout_total"] for d in before] == ["0.00"] * len(before)
    paying = ["539.90"] + ["0.00"] * (len(after) - 1) if after else []
    assert [d.result["payout_total"] for d in after] == paying
    assert calc.store.verify().ok


def test_no_decision_is_returned_before_its_record_is_synced(
    calc: Calculator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Durable before reported: when any ``decide`` returns, the log has been fsynced at
    least up to the end of that decision's record (16 threads, 5 decisions each)."""
    synced: list[int] = [0]
    real = audit.logfile.os_fsync

    def fsync(fd: int) -> None:
        import os

        size = os.fstat(fd).st_size
        real(fd)
        synced.append(max(synced[-1], size))

    monkeypatch.setattr(audit.logfile, "os_fsync", fsync)
    seen: list[tuple[int, int]] = []
    lock = threading.Lock()

    def caller(t: int) -> None:
        for i in range(5):
            decision = calc.decide(compensation("9.90", f"L{t}-{i}", f"O-{t}", f"k{t}-{i}"))
            assert decision.audit is not None
            with lock:
                seen.append((decision.audit.seq, synced[-1]))

    threads = [threading.Thread(target=caller, args=(t,)) for t in range(16)]
    for thread in threads:
        thread.start()
    assert joined(threads, 120)
    ends: dict[int, int] = {}
    offset = 0
    for line in (tmp_path / "a.jsonl").read_bytes().splitlines(keepends=True):
        offset += len(line)
        ends[json.loads(line)["seq"]] = offset
    assert sorted(seq for seq, _ in seen) == list(range(1, 81))
    late = [(seq, ends[seq], at) for seq, at in seen if ends[seq] > at]
    assert late == []


def test_a_reused_decision_records_the_moment_it_was_made_at(tmp_path: Path) -> None:
    """The clock: a decision made while preparing (at the calculator's clock then) and
    recorded unchanged later is recorded with the moment its rule saw; one decided again
    under the lock (history changed meanwhile) with the clock at that time."""
    ticks = iter(NOW + timedelta(minutes=n) for n in range(1000))
    lock = threading.Lock()

    def clock() -> datetime:
        with lock:
            return next(ticks)

    with Calculator(str(tmp_path / "a.jsonl"), operator="clerk", clock=clock) as calc:
        prepared, go_on = threading.Event(), threading.Event()
        prepare = calc._prepare
        moments: list[datetime] = []

        def slow(request: Any, now: datetime | None) -> Any:
            ready = prepare(request, now)
            if request["request_id"] in ("late", "other"):
                moments.append(ready[2].moment)
                prepared.set()
                go_on.wait(30)
            return ready

        calc._prepare = slow  # type: ignore[method-assign]
        outcome: list[Decision] = []
        thread = threading.Thread(
            target=lambda: outcome.append(calc.decide(compensation("39.90", "L1", "O-1", "late")))
        )
        thread.start()
        assert prepared.wait(30)
        calc.decide(compensation("39.90", "L1", "O-1", "first"))
        go_on.set()
        assert joined([thread], 30)
        prepared.clear()
        go_on.clear()
        thread = threading.Thread(
            target=lambda: outcome.append(calc.decide(compensation("9.90", "L2", "O-2", "other")))
        )
        thread.start()
        assert prepared.wait(30)
        calc.decide(compensation("9.90", "L3", "O-3", "unrelated"))
        go_on.set()
        assert joined([thread], 30)
        late, other = (calc.store.get(key) for key in ("late", "other"))
        assert late is not None and other is not None
        decided = [datetime.fromisoformat(r.payload["decided_at"]) for r in (late, other)]
        assert decided[0] > moments[0]  # re-decided under the lock, at the clock then
        assert decided[1] == moments[1]  # recorded as prepared, at the moment it was made
        assert [d.result["payout_total"] for d in outcome] == ["0.00", "509.90"]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))


# -- the reviewed holes: a lone caller never lingers, nobody is left waiting -------------
def test_a_lone_caller_after_another_threads_lone_call_goes_at_once() -> None:
    """Hole A: a group of one remembers no caller to wait for, so a lone caller from
    another thread (a service's pool thread) never lingers for it."""
    groups: list[list[int]] = []
    commit: GroupCommit[int] = GroupCommit(echo(groups), linger=30.0)
    other = threading.Thread(target=commit.submit, args=(1,))
    other.start()
    assert joined([other], 10)
    start = time.monotonic()
    assert commit.submit(2) == 2  # a linger of 30 s would show here
    assert time.monotonic() - start < 10
    assert groups == [[1], [2]]
    assert settled(commit) == (0, [], False, None)


def test_an_interruption_right_after_preparing_leaves_no_one_arriving(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Hole B: an interruption between ``prepare`` returning and the request joining the
    queue (here: while its Waiting is made) still takes the caller off the arriving."""
    import pricecalc.grouping as grouping

    groups: list[list[int]] = []
    commit: GroupCommit[int] = GroupCommit(echo(groups), linger=30.0)
    made = grouping.Waiting

    def interrupted(request: int) -> Waiting[int]:
        if request == 1:
            raise Interrupted
        return made(request)

    monkeypatch.setattr(grouping, "Waiting", interrupted)
    with pytest.raises(Interrupted):
        commit.submit(1)
    assert settled(commit) == (0, [], False, None)
    start = time.monotonic()
    assert commit.submit(2) == 2
    assert time.monotonic() - start < 10
    assert groups == [[2]]


def test_an_appointed_leader_interrupted_while_it_waits_passes_the_lead_on() -> None:
    """Hole C: a caller appointed to lead the next group but interrupted before it wakes
    leaves the queue and hands the lead to the next caller; the others are decided and
    the calculator is free again (never a leader that went away)."""
    groups: list[list[int]] = []
    first_running = threading.Event()
    release_first = threading.Event()

    def run(group: Sequence[Waiting[int]]) -> None:
        if not groups:
            first_running.set()
            release_first.wait(30)
        groups.append([w.request for w in group])
        for waiting in group:
            waiting.value = waiting.request

    commit: GroupCommit[int] = GroupCommit(run, linger=0.0)
    results: dict[int, object] = {}

    def call(n: int) -> None:
        try:
            results[n] = commit.submit(n)
        except Interrupted:
            results[n] = "interrupted"

    leader = threading.Thread(target=call, args=(1,))
    leader.start()
    assert first_running.wait(10)
    # Caller 2 queues behind the running group; its wait is interrupted once it has been
    # appointed (the lead is handed to it when group [1] ends).
    appointed = threading.Event()
    second: list[Waiting[int]] = []

    def queue_second() -> None:
        mine: Waiting[int] = Waiting(2)
        second.append(mine)
        with commit._lock:
            commit._queue.append(mine)
        try:
            commit._wait(mine)
        except Interrupted:
            results[2] = "interrupted"
            return
        results[2] = "woken"

    class Wake:
        """A wake lock whose acquire raises once its holder is appointed (Ctrl-C then)."""

        def __init__(self) -> None:
            self._lock = threading.Lock()
            self._lock.acquire()

        def acquire(self) -> bool:
            self._lock.acquire()
            if second and second[0].lead:
                appointed.set()
                raise Interrupted
            return True

        def release(self) -> None:
            self._lock.release()

    waiter = threading.Thread(target=queue_second)
    # Give caller 2 the interrupting wake lock before it queues.
    real_init = Waiting.__init__

    def init(self: Waiting[int], request: int) -> None:
        real_init(self, request)
        if request == 2:
            self.wake = Wake()  # type: ignore[assignment]

    Waiting.__init__ = init  # type: ignore[method-assign]
    try:
        waiter.start()
        for _ in range(1000):
            with commit._lock:
                if second and second[0] in commit._queue:
                    break
            time.sleep(0.005)
        third = threading.Thread(target=call, args=(3,))
        third.start()
        for _ in range(1000):
            with commit._lock:
                if len(commit._queue) == 2:
                    break
            time.sleep(0.005)
        release_first.set()
        assert joined([leader, waiter, third], 30)
    finally:
        Waiting.__init__ = real_init  # type: ignore[method-assign]
    assert appointed.is_set()
    assert results == {1: 1, 2: "interrupted", 3: 3}
    assert groups == [[1], [3]]  # caller 2 left the queue; caller 3 led the next group
    assert settled(commit) == (0, [], False, None)
