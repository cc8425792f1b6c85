"""Attacks on groups decided by two threads at once (``Calculator.decide_each``
as ``pricecalc serve`` calls it from its decide threads) and on ``decide_prepared``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from claims_support import compensation

from pricecalc import Calculator
from pricecalc.decision import Decision

NOW = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)


@pytest.fixture
def calc(tmp_path: Path) -> Iterator[Calculator]:
    with Calculator(str(tmp_path / "a.jsonl"), operator="clerk") as calculator:
        yield calculator


def test_two_groups_decided_at_once_with_one_key_respelled_and_one_line_pay_once(
    calc: Calculator,
) -> None:
    """Two decide threads, each a group holding the same key (spelled ``c-1`` and
    full-width ``ｃ－１``... as §1 reads it) and another key's claim on the same order
    line, all prepared before either group takes the lock: one record per key, the line
    paid once; the respelled key is a replay of the first, never a second record."""
    groups = [
        [compensation("39.90", "L1", "O-1", "c-1"), compensation("39.90", "L1", "O-1", "d-1")],
        [compensation("39.90", "L1", "O-1", "ｃ-1"), compensation("39.90", "L1", "O-1", " d-2 ")],
    ]
    barrier = threading.Barrier(2, timeout=30)
    prepare = calc._prepare

    def held(request, now):  # type: ignore[no-untyped-def]
        prepared = prepare(request, now)
        if request["input"]["lines"][0]["line_id"] == "L1" and request["request_id"] in (
            "d-1", " d-2 "
        ):
            barrier.wait()
        return prepared

    calc._prepare = held  # type: ignore[method-assign]
    results: dict[int, list[Decision | Exception]] = {}

    def run(i: int) -> None:
        results[i] = calc.decide_each(groups[i], now=NOW)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    decisions = [d for i in range(2) for d in results[i]]
    assert all(isinstance(d, Decision) for d in decisions), decisions
    assert calc.store.verify().ok
    records = list(calc.store.query())
    assert sorted(r.key for r in records) == ["c-1", "d-1", "d-2"]
    paid = [r.payload["result"]["payout_total"] for r in records]
    assert sorted(paid) == ["0.00", "0.00", "539.90"]
    replayed = [d for d in decisions if d.replayed]
    assert len(replayed) == 1 and replayed[0].request_id == "c-1"
