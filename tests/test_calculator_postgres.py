"""The calculator on the PostgreSQL audit store (issues 3 and 7): the same guarantees as on
the embedded store — recorded before returned, replayed by request_id, and a second claim
for the same price drop paid once even when two processes on two connections race."""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "audit"))
# Fixtures shared with the audit suite (a real server, or a throwaway cluster).
from postgres_helpers import PgStore, pg_database, pg_server, pg_store  # noqa: F401

from pricecalc.calculator import Calculator

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 11, 12, 1, 0, tzinfo=UTC)


def claim(request_id: str) -> dict[str, Any]:
    """SPEC §3's first example: paid_net 190.00, a drop to 90.00 → refund 20.00."""
    return {
        "kind": "price_protection",
        "request_id": request_id,
        "input": {
            "order_id": "O-PG",
            "paid_at": "2026-11-11T10:00",
            "claimed_at": "2026-11-12T09:00",
            "order_status": "paid",
            "event": {"start": "2026-11-10T00:00", "end": "2026-11-12T23:59:59"},
            "lines": [{"line_id": "L1", "sku": "A", "quantity": 2, "unit_price": "100.00"}],
            "offers": [
                {"type": "coupon", "amount": "10.00", "threshold": "100.00"},
                {
                    "type": "direct_drop",
                    "sku": "A",
                    "unit_price": "90.00",
                    "at": "2026-11-11T20:00",
                },
            ],
        },
    }


def test_decisions_are_recorded_and_replayed_on_postgres(
    pg_store: Callable[..., PgStore],  # noqa: F811 (the fixture imported above)
) -> None:
    """decide() appends before returning; a replayed request_id appends nothing."""
    url = pg_store("calc").app_url
    with Calculator(url, operator="pg-clerk") as calc:
        first = calc.decide(claim("pg-1"), now=NOW)
        again = calc.decide(claim("pg-1"), now=NOW)
        second = calc.decide(claim("pg-2"), now=NOW)
        record = calc.store.get("pg-1")
        report = calc.store.verify()
    assert first.audit is not None and record is not None
    assert (record.seq, record.hash) == (first.audit.seq, first.audit.hash)
    assert record.payload["operator"] == "pg-clerk"
    assert again.to_dict() == {**first.to_dict(), "replayed": True}
    assert first.result["refund_total"] == "20.00"
    assert second.result["refund_total"] == "0.00"
    assert report.ok and report.count == 2


def _race(url: str, request_id: str, barrier: Any, out: Any) -> None:
    with Calculator(url) as calc:
        barrier.wait()
        out.put(calc.decide(claim(request_id), now=NOW).result["refund_total"])


@pytest.mark.slow
def test_two_processes_racing_a_claim_on_postgres_pay_once(
    pg_store: Callable[..., PgStore],  # noqa: F811 (the fixture imported above)
) -> None:
    """Two processes, two connections, the same drop claimed at once: paid exactly once."""
    url = pg_store("race").app_url
    ctx = multiprocessing.get_context("spawn")
    paid: list[str] = []
    for round_ in range(3):
        barrier = ctx.Barrier(2)
        out = ctx.Queue()
        procs = [
            ctx.Process(target=_race, args=(url, f"race-{round_}-{n}", barrier, out))
            for n in range(2)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        paid.extend(out.get(timeout=5) for _ in procs)
    assert sorted(paid) == ["0.00"] * 5 + ["20.00"]
