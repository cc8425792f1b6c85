"""Corrections without edits, and paid once (SPEC §3–§5, §7; issue 14).

Every test runs on both audit backends (the embedded file store and PostgreSQL): the
once-only rules and voids read history through the calculator, under the store's writer
lock, so the answers — and the races — must be the same on both.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from postgres_support import pg_database, pg_server, pg_store, pg_store_url  # noqa: F401

import pricecalc
from pricecalc.calculator import Calculator
from pricecalc.decision import Decision

NOW = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
BACKENDS = ["tinydb", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """A store location per name: a file path, or a PostgreSQL schema of its own."""
    if request.param == "tinydb":
        yield lambda name: str(tmp_path / f"{name}.jsonl")
    else:
        yield request.getfixturevalue("pg_store_url")


def compensation(
    paid: str, *, line: str = "L1", order: str = "O-1", **extra: Any
) -> dict[str, Any]:
    return {
        "kind": "counterfeit_compensation",
        **extra,
        "input": {
            "order_id": order,
            "confirmed": True,
            "lines": [{"line_id": line, "paid_amount": paid}],
        },
    }


def clawback(subsidy: str, *, order: str = "O-1", **extra: Any) -> dict[str, Any]:
    return {
        "kind": "forwarding_clawback",
        **extra,
        "input": {
            "order_id": order,
            "category": "手机",
            "platform_subsidy": subsidy,
            "forwarded": True,
        },
    }


def void(
    seq: int,
    reason: str = "wrong amount",
    *,
    of: Calculator | None = None,
    target: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A void of ``seq``; its target (SPEC §7) read from the store of ``of`` when not given:
    the record's request_id, else the first 16 hex digits of its hash."""
    if target is None and of is not None:
        record = of.store.record(seq)
        found = None if record is None else record.key or f"sha256:{record.hash[:16]}"
        target = found or "sha256:00000000"
    body: dict[str, Any] = {"seq": seq, "reason": reason}
    if target is not None:
        body["target"] = target
    return {"kind": "void", **extra, "input": body}


def codes(decision: Decision) -> list[str]:
    return [r.code for r in decision.reasons]


def test_the_clerks_example(store_url: Callable[[str], str]) -> None:
    """Issue 14: compensate → rejected re-run naming the record → void with a reason →
    corrected compensation approved; never 539.90 + 549.90 for one line."""
    with Calculator(store_url("clerk"), operator="clerk-li") as calc:
        first = calc.decide(compensation("39.90"), now=NOW)
        again = calc.decide(compensation("49.90"), now=NOW)
        voided = calc.decide(void(1, "paid amount was 49.90, not 39.90", of=calc), now=NOW)
        fixed = calc.decide(compensation("49.90"), now=NOW)
        assert calc.store.verify().ok
    assert (first.status, first.result["payout_total"]) == ("approved", "539.90")
    assert again.status == "rejected" and again.result["payout_total"] == "0.00"
    assert [(r.code, r.message) for r in again.reasons] == [
        (
            "ALREADY_COMPENSATED",
            "line L1 of order O-1 was already compensated by record 1 (paid 539.90); "
            "to decide it again, void record 1 first",
        )
    ]
    assert voided.status == "approved"
    assert voided.result == {
        "seq": 1,
        "voided_kind": "counterfeit_compensation",
        "voided_request_id": None,
        "order_id": "O-1",
        "merchant_id": None,
        "campaign": None,
        "reason": "paid amount was 49.90, not 39.90",
        "target": f"sha256:{first.audit.hash[:16]}" if first.audit else None,
    }
    assert (fixed.status, fixed.result["payout_total"]) == ("approved", "549.90")


def test_a_void_is_rejected_for_every_reason_the_spec_names(
    store_url: Callable[[str], str],
) -> None:
    """SPEC §7: a void of a void, of a rejected decision, of a missing seq, or a second
    void of the same seq is rejected (and recorded)."""
    with Calculator(store_url("voids"), operator="clerk-li") as calc:
        calc.decide(compensation("39.90"), now=NOW)  # 1 approved
        calc.decide(compensation("49.90"), now=NOW)  # 2 rejected: already compensated
        calc.decide(void(1, of=calc), now=NOW)  # 3 approved void
        cases = {
            "twice": calc.decide(void(1, of=calc), now=NOW),
            "of a void": calc.decide(void(3, of=calc), now=NOW),
            "of a rejection": calc.decide(void(2, of=calc), now=NOW),
            "missing": calc.decide(void(99, of=calc), now=NOW),
        }
        count = calc.store.head().seq
    assert {name: [(r.code, r.message) for r in d.reasons] for name, d in cases.items()} == {
        "twice": [("ALREADY_VOIDED", "record 1 was already voided by record 3")],
        "of a void": [
            (
                "CANNOT_VOID_A_VOID",
                "record 3 is itself a void (of record 1); a void is not withdrawn",
            )
        ],
        "of a rejection": [
            (
                "NOT_APPROVED",
                "record 2 is a rejected counterfeit_compensation decision: it paid nothing, "
                "so there is nothing to withdraw",
            )
        ],
        "missing": [("NO_SUCH_RECORD", "there is no record 99 in the audit store")],
    }
    assert count == 7  # every void, approved or rejected, is a decision and is recorded


def test_a_void_needs_an_operator_and_a_reason(tmp_path: Path) -> None:
    """SPEC §7: an operator is required (the OS-user default does not count); the reason
    must be text; invalid input records nothing."""
    with Calculator(tmp_path / "a.jsonl") as calc:
        calc.decide(compensation("39.90"), now=NOW)
        with pytest.raises(pricecalc.InvalidInput) as missing:
            calc.decide(void(1, of=calc), now=NOW)
        with pytest.raises(pricecalc.InvalidInput, match=r"input\.reason: must not be empty"):
            calc.decide(void(1, " ", of=calc), now=NOW)
        assert calc.store.head().seq == 1
    assert str(missing.value) == (
        "operator: is required for a void: a correction names who made it (pricecalc "
        "--operator NAME void …, or Calculator(operator=...)) (got no operator named)"
    )


def test_clawbacks_are_once_per_order_until_voided(store_url: Callable[[str], str]) -> None:
    """SPEC §5: ALREADY_CLAWED_BACK names the record; after a void the corrected clawback
    is approved."""
    with Calculator(store_url("claw"), operator="ops") as calc:
        first = calc.decide(clawback("200.00"), now=NOW)
        second = calc.decide(clawback("150.00"), now=NOW)
        other = calc.decide(clawback("150.00", order="O-2"), now=NOW)
        calc.decide(void(1, of=calc), now=NOW)
        fixed = calc.decide(clawback("150.00"), now=NOW)
    assert first.result["clawback"] == "200.00"
    assert [(r.code, r.message) for r in second.reasons] == [
        (
            "ALREADY_CLAWED_BACK",
            "order O-1 was already clawed back by record 1 (clawback 200.00); to decide it "
            "again, void record 1 first",
        )
    ]
    assert second.result["clawback"] == "0.00"
    assert other.status == "approved"
    assert (fixed.status, fixed.result["clawback"]) == ("approved", "150.00")


def test_price_protection_leaves_voided_refunds_out(store_url: Callable[[str], str]) -> None:
    """SPEC §3, §7: a voided refund is no longer "already refunded"."""
    claim = {
        "kind": "price_protection",
        "input": {
            "order_id": "O-PP",
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
    with Calculator(store_url("pp"), operator="ops") as calc:
        paid = calc.decide(claim, now=NOW)
        twice = calc.decide(claim, now=NOW)
        calc.decide(void(1, of=calc), now=NOW)
        again = calc.decide(claim, now=NOW)
    assert [d.result["refund_total"] for d in (paid, twice, again)] == ["20.00", "0.00", "20.00"]
    assert codes(twice) == ["ALREADY_REFUNDED"]


def test_a_stale_keyed_decision_is_decided_again_under_its_successor_key(
    store_url: Callable[[str], str],
) -> None:
    """SPEC §7 (issue 19): a rejection that relied on a since-voided record is decided
    again, under <key>~void-<seq>, and asked again that decision is replayed; the voided
    request itself asked again (a client's retry) replays its recorded decision marked
    voided_by and records nothing."""
    with Calculator(store_url("keys"), operator="ops") as calc:
        first = calc.decide(compensation("39.90", request_id="cf-1"), now=NOW)
        rejected = calc.decide(compensation("49.90", request_id="cf-2"), now=NOW)
        calc.decide(void(1, request_id="v-1", of=calc), now=NOW)
        redone = calc.decide(compensation("49.90", request_id="cf-2"), now=NOW)
        replay = calc.decide(compensation("49.90", request_id="cf-2"), now=NOW)
        old = calc.decide(compensation("39.90", request_id="cf-1"), now=NOW)
        count = calc.store.head().seq
    assert codes(rejected) == ["ALREADY_COMPENSATED"]
    assert (redone.request_id, redone.status, redone.audit and redone.audit.seq) == (
        "cf-2~void-3",
        "approved",
        4,
    )
    assert replay.replayed and replay.audit == redone.audit
    # The voided request asked again is a retry: its decision, marked, nothing recorded.
    assert (old.request_id, old.replayed, old.voided_by) == ("cf-1", True, 3)
    assert old.audit == first.audit
    assert old.to_dict()["voided_by"] == 3
    assert count == 4
    assert first.audit is not None and first.audit.seq == 1


def test_merchant_and_campaign_are_recorded_and_carried_by_voids(tmp_path: Path) -> None:
    """SPEC §8: merchant_id and campaign are recorded (not part of any rule) and tagged;
    a void carries those of the record it withdraws."""
    with Calculator(tmp_path / "m.jsonl", operator="ops") as calc:
        calc.decide(compensation("39.90", merchant_id="shop-1", campaign="双11"), now=NOW)
        calc.decide(void(1, of=calc), now=NOW)
        records = list(calc.store.query())
    assert records[0].payload["merchant_id"] == "shop-1"
    assert records[0].payload["campaign"] == "双11"
    assert {"merchant:shop-1", "campaign:双11", "order:O-1"} <= set(records[0].tags)
    assert {"merchant:shop-1", "campaign:双11", "order:O-1", "voids:1"} <= set(records[1].tags)
    assert "merchant_id" not in records[1].payload


# -- races --------------------------------------------------------------------------------
def _race(url: str, request: dict[str, Any], barrier: Any, out: Any) -> None:
    with Calculator(url, operator="racer") as calc:
        barrier.wait()
        decision = calc.decide(request, now=NOW)
        out.put((decision.status, [r.code for r in decision.reasons]))


def _run_pair(url: str, requests: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(requests))
    out = ctx.Queue()
    procs = [ctx.Process(target=_race, args=(url, r, barrier, out)) for r in requests]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    return sorted(out.get(timeout=5) for _ in procs)


@pytest.mark.slow
def test_two_processes_racing_compensations_pay_once(store_url: Callable[[str], str]) -> None:
    """Issue 14: two processes compensate one line at once (different amounts, so
    different requests): one is approved, the other ALREADY_COMPENSATED — every round."""
    url = store_url("race-cf")
    for round_ in range(3):
        order = f"O-R{round_}"
        outcomes = _run_pair(url, [compensation("39.90", order=order),
                                   compensation("49.90", order=order)])  # fmt: skip
        assert outcomes == [("approved", []), ("rejected", ["ALREADY_COMPENSATED"])]


@pytest.mark.slow
def test_two_voids_racing_one_wins(store_url: Callable[[str], str]) -> None:
    """SPEC §7: two voids of one record at once: one is approved, the other ALREADY_VOIDED."""
    url = store_url("race-void")
    with Calculator(url, operator="ops") as calc:
        seqs = [calc.decide(clawback("9.00", order=f"O-V{n}"), now=NOW).audit.seq  # type: ignore[union-attr]
                for n in range(2)]  # fmt: skip
        pairs = [[void(seq, "one", of=calc), void(seq, "two", of=calc)] for seq in seqs]
    for pair in pairs:
        outcomes = _run_pair(url, pair)
        assert outcomes == [("approved", []), ("rejected", ["ALREADY_VOIDED"])]


# -- the invariant ---------------------------------------------------------------------------
STEPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("compensate"),
            st.sampled_from(["L1", "L2"]),
            st.sampled_from(["39.90", "49.90", "68.00"]),
        ),
        st.tuples(st.just("clawback"), st.just(""), st.sampled_from(["100.00", "150.00"])),
        st.tuples(st.just("void"), st.just(""), st.integers(min_value=1, max_value=12)),
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=STEPS)
def test_any_sequence_pays_each_line_at_most_once(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, str, Any]]
) -> None:
    """Issue 14: for any sequence of compensations, clawbacks and voids on one order, the
    approved, not voided payouts are at most one per line (and one clawback per order)."""
    path = tmp_path_factory.mktemp("seq") / "a.jsonl"
    with Calculator(path, operator="ops") as calc:
        for step, line, value in steps:
            if step == "compensate":
                calc.decide(compensation(value, line=line), now=NOW)
            elif step == "clawback":
                calc.decide(clawback(value), now=NOW)
            else:
                calc.decide(void(value, of=calc), now=NOW)
        records = list(calc.store.query())
    voided = {
        r.payload["result"]["seq"]
        for r in records
        if r.payload["kind"] == "void" and r.payload["status"] == "approved"
    }
    standing = [r for r in records if r.payload["status"] == "approved" and r.seq not in voided]
    paid_lines = [
        line["line_id"]
        for r in standing
        if r.payload["kind"] == "counterfeit_compensation"
        for line in r.payload["result"]["lines"]
    ]
    assert len(paid_lines) == len(set(paid_lines))
    assert sum(1 for r in standing if r.payload["kind"] == "forwarding_clawback") <= 1
