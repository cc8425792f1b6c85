"""The calculator on the PostgreSQL audit store (issues 3 and 7): the same guarantees as on
the embedded store — recorded before returned, replayed by request_id, and a second claim
for the same price drop paid once even when two processes on two connections race."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

# Fixtures shared with the audit suite (a real server, or a throwaway cluster).
from postgres_support import (  # noqa: F401
    PgStore,
    count_rows,
    forge,
    pg_database,
    pg_server,
    pg_store,
)

import audit
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


# -- issue 19: the attacker holds only the pricecalc_app login and no HMAC key ------------

KEY = b"held by the application servers only"


def _forged_void(seq: int) -> dict[str, Any]:
    """A void of record ``seq`` as the rules read one: approved, its result naming it."""
    return {"kind": "void", "status": "approved", "result": {"seq": seq, "order_id": "O-PG"}}


@pytest.mark.parametrize("hmac_key", [None, KEY], ids=["unkeyed", "keyed"])
def test_a_forged_void_does_not_let_a_paid_line_be_paid_again(
    hmac_key: bytes | None,
    pg_store: Callable[..., PgStore],  # noqa: F811 (the fixture imported above)
) -> None:
    """Issue 19, SPEC §7: the attacker INSERTs a "void" of the paid claim (as the app
    role may; in the keyed store with the plain SHA-256 recomputed, all it can make
    without the key). The next claim for the same drop reads the order's history, finds
    the forged row, and is refused with TamperedError naming it — not paid again, and
    nothing recorded."""
    pg = pg_store("void")
    with Calculator(pg.app_url, hmac_key=hmac_key) as calc:
        paid = calc.decide(claim("pg-1"), now=NOW)
        assert paid.result["refund_total"] == "20.00" and paid.audit is not None
        forged = forge(
            pg, _forged_void(paid.audit.seq), key="void-1",
            tags=("kind:void", "order:O-PG", f"voids:{paid.audit.seq}"),
            recompute=hmac_key is not None,
        )  # fmt: skip
        with pytest.raises(audit.TamperedError, match=rf"tampered at record {forged}: ") as caught:
            calc.decide(claim("pg-2"), now=NOW)
    assert caught.value.seq == forged == 2
    assert count_rows(pg) == 2


@pytest.mark.parametrize("hmac_key", [None, KEY], ids=["unkeyed", "keyed"])
def test_a_forged_record_under_a_clients_key_is_not_replayed(
    hmac_key: bytes | None,
    pg_store: Callable[..., PgStore],  # noqa: F811 (the fixture imported above)
) -> None:
    """Issue 19, SPEC §7: a forged record with payout_total 99999.00 planted under the key
    a client is about to use is never handed to the client as its replayed decision:
    the lookup raises TamperedError naming it, and nothing is recorded."""
    pg = pg_store("replay")
    with Calculator(pg.app_url, hmac_key=hmac_key) as calc:
        calc.decide(claim("pg-0"), now=NOW)
        planted = {
            "kind": "price_protection", "status": "approved",
            "request": claim("cc-1"), "result": {"payout_total": "99999.00"},
        }  # fmt: skip
        forged = forge(pg, planted, key="cc-1", tags=("order:O-PG",),
                       recompute=hmac_key is not None)  # fmt: skip
        with pytest.raises(audit.TamperedError, match=r"tampered at record 2: record 2 hash"):
            calc.decide(claim("cc-1"), now=NOW)
    assert forged == 2 and count_rows(pg) == 2
