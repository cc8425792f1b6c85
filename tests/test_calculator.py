"""The calculator: every decision recorded before it is returned (SPEC §7, issue 3 wiring)."""

from __future__ import annotations

import errno
import getpass
import json
import multiprocessing
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest

import pricecalc
from pricecalc.calculator import Calculator
from pricecalc.decision import AuditRef, Decision, Reason

NOW = datetime(2026, 11, 12, 1, 0, tzinfo=UTC)

SPLIT = {
    "kind": "subsidy_split",
    "request_id": "split-1",
    "input": {
        "list_price": "199.00",
        "registration_price": "169.00",
        "subsidy_price": "149.00",
        "floor_price": "139.00",
        "cost_price": "120.00",
        "lowest_price_30d": "175.00",
        "other_platform_prices": [{"platform": "百亿补贴", "price": "172.00"}],
        "quantity": 2,
    },
}


def claim(request_id: str | None = None, **changes: Any) -> dict[str, Any]:
    """The SPEC §3 example claim: A×2 at 100.00, coupon 10 over 100, drop to 90 at 20:00."""
    body: dict[str, Any] = {
        "order_id": "O-1",
        "paid_at": "2026-11-11T10:00",
        "claimed_at": "2026-11-12T09:00",
        "order_status": "paid",
        "event": {"start": "2026-11-10T00:00", "end": "2026-11-12T23:59:59"},
        "lines": [{"line_id": "L1", "sku": "A", "quantity": 2, "unit_price": "100.00"}],
        "offers": [
            {"type": "coupon", "amount": "10.00", "threshold": "100.00"},
            {"type": "direct_drop", "sku": "A", "unit_price": "90.00", "at": "2026-11-11T20:00"},
        ],
    }
    body.update(changes)
    request: dict[str, Any] = {"kind": "price_protection", "input": body}
    if request_id is not None:
        request["request_id"] = request_id
    return request


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.jsonl"


def test_decision_is_recorded_with_everything_spec_7_names(store_path: Path) -> None:
    """The record holds request, result, status, reasons, rules, policy, plugins, operator."""
    with Calculator(store_path, operator="clerk-1") as calc:
        d = calc.decide(SPLIT, now=NOW)
        record = calc.store.get("split-1")
    assert d.audit is not None and record is not None
    assert (d.audit.seq, d.audit.hash) == (record.seq, record.hash) == (1, record.hash)
    payload = record.payload
    assert payload["kind"] == "subsidy_split"
    assert record.key == "split-1" and "request_id" not in payload  # held once: the key
    assert payload["status"] == "approved"
    assert payload["input"]["list_price"] == "199.00"
    assert payload["result"]["platform_subsidy_total"] == "40.00"
    assert payload["reasons"] == []
    assert payload["rule_set"] == "chaozhigou-standard"
    assert payload["rule_version"] == d.rule_version
    assert payload["operator"] == "clerk-1"
    assert payload["decided_at"] == NOW.isoformat()
    assert "builtin" in payload["plugins"]
    assert d.to_dict()["audit"] == {"seq": 1, "hash": record.hash}


def test_replaying_a_request_id_returns_the_recorded_decision(store_path: Path) -> None:
    """SPEC §7: the same request_id with the same request returns the recorded decision,
    marked replayed, and records nothing."""
    with Calculator(store_path) as calc:
        first = calc.decide(SPLIT, now=NOW)
        again = calc.decide(SPLIT, now=NOW)
        assert calc.store.head().seq == 1
    assert again.replayed and not first.replayed
    assert again.to_dict() == {**first.to_dict(), "replayed": True}


def test_a_request_id_with_another_request_is_a_conflict(store_path: Path) -> None:
    """SPEC §7: the same request_id with a different request is an idempotency conflict
    naming the request_id and the recorded seq; nothing is recorded, and the old decision
    is never passed off as the answer."""
    changed = {**SPLIT, "input": {**SPLIT["input"], "subsidy_price": "100.00"}}
    with Calculator(store_path) as calc:
        first = calc.decide(SPLIT, now=NOW)
        with pytest.raises(pricecalc.IdempotencyConflict) as caught:
            calc.decide(changed, now=NOW)
        assert calc.store.head().seq == 1
    assert first.audit is not None
    assert (caught.value.request_id, caught.value.seq) == ("split-1", 1)
    assert caught.value.hash == first.audit.hash
    assert str(caught.value) == (
        "request_id 'split-1' is already recorded as record 1 for a different request "
        "(input.subsidy_price '149.00' recorded, '100.00' asked); nothing was recorded — a new "
        "request needs a new request_id"
    )


def test_invalid_input_records_nothing(store_path: Path) -> None:
    """Invalid input is not a decision: a clear error, nothing recorded (SPEC §7)."""
    bad = {**SPLIT, "request_id": "bad", "input": {**SPLIT["input"], "list_price": "199.001"}}
    with Calculator(store_path) as calc:
        with pytest.raises(pricecalc.InvalidInput, match=r"input\.list_price.*'199\.001'"):
            calc.decide(bad, now=NOW)
        assert calc.store.head().seq == 0
        assert calc.store.get("bad") is None


def test_rejected_decisions_are_recorded_too(store_path: Path) -> None:
    """Approved or rejected, every decision is appended (SPEC §7)."""
    rejected = {**SPLIT, "request_id": "r", "input": {**SPLIT["input"], "subsidy_price": "130.00"}}
    with Calculator(store_path) as calc:
        d = calc.decide(rejected, now=NOW)
        assert d.status == "rejected"
        assert [r.code for r in d.reasons] == ["BELOW_FLOOR"]
        assert calc.store.head().seq == 1


def test_second_claim_for_the_same_drop_pays_nothing(store_path: Path) -> None:
    """Price protection reads prior approved refunds from the store (SPEC §3: paid once)."""
    with Calculator(store_path) as calc:
        first = calc.decide(claim("c1"), now=NOW)
        second = calc.decide(claim("c2"), now=NOW)
    assert first.result["refund_total"] == "20.00"
    assert second.status == "rejected"
    assert second.result["refund_total"] == "0.00"
    assert [r.code for r in second.reasons] == ["ALREADY_REFUNDED"]
    assert second.result["lines"][0]["already_refunded"] == "20.00"


def test_a_deeper_later_drop_pays_only_the_increment(store_path: Path) -> None:
    """A later, deeper drop pays only the increment over what was refunded (SPEC §3)."""
    deeper = claim("c2")
    deeper["input"]["offers"] = [
        *deeper["input"]["offers"],
        {
            "type": "flash_sale",
            "sku": "A",
            "unit_price": "79.00",
            "start": "2026-11-11T12:00",
            "end": "2026-11-11T14:00",
        },
    ]
    with Calculator(store_path) as calc:
        calc.decide(claim("c1"), now=NOW)
        d = calc.decide(deeper, now=NOW)
    assert d.result["refund_total"] == "22.00"


def test_decide_many_raise_mode_records_nothing_on_invalid(store_path: Path) -> None:
    """With on_invalid='raise' an invalid request aborts the batch before anything is written."""
    bad = {"kind": "subsidy_split", "input": {"list_price": "-1"}}
    with Calculator(store_path) as calc:
        with pytest.raises(pricecalc.InvalidInput, match=r"^requests\[1\]\.input\."):
            calc.decide_many([SPLIT, bad], now=NOW)
        assert calc.store.head().seq == 0


def test_decide_many_collect_mode_runs_the_other_lines(store_path: Path) -> None:
    """In a batch, an invalid line is reported and the other lines still run (SPEC §8)."""
    bad = {"kind": "subsidy_split", "input": {"list_price": "-1"}}
    with Calculator(store_path) as calc:
        items = calc.decide_many([SPLIT, bad, claim("c1")], now=NOW, on_invalid="collect")
        assert calc.store.head().seq == 2
    assert [i.index for i in items] == [0, 1, 2]
    assert items[0].decision is not None and items[0].decision.audit is not None
    assert items[0].decision.audit.seq == 1
    assert items[1].decision is None and items[1].error is not None
    assert items[1].error.field.startswith("input.")
    assert items[2].decision is not None and items[2].decision.result["refund_total"] == "20.00"


def test_two_claims_in_one_batch_pay_once(store_path: Path) -> None:
    """History inside a batch sees the batch's own pending decisions."""
    with Calculator(store_path) as calc:
        ds = calc.decide_many([claim("c1"), claim("c2")], now=NOW)
    assert [d.result["refund_total"] for d in ds] == ["20.00", "0.00"]


def test_operator_defaults_to_the_os_user(store_path: Path) -> None:
    """The operator defaults to the OS user (issue 3)."""
    with Calculator(store_path) as calc:
        calc.decide(SPLIT, now=NOW)
        record = calc.store.get("split-1")
    assert record is not None and record.payload["operator"] == getpass.getuser()


def test_threads_share_one_calculator(store_path: Path) -> None:
    """A calculator is safe to share between threads: every decision lands once."""
    with Calculator(store_path) as calc:

        def work(t: int) -> None:
            for i in range(25):
                calc.decide({**SPLIT, "request_id": f"t{t}-{i}"}, now=NOW)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        report = calc.store.verify()
    assert report.ok and report.count == 150
    assert report.head.seq == 150


def _race(path: str, request_id: str, barrier: Any, out: Any) -> None:
    with Calculator(path) as calc:
        barrier.wait()
        d = calc.decide(claim(request_id), now=NOW)
        out.put(d.result["refund_total"])


@pytest.mark.slow
def test_two_processes_racing_a_claim_pay_once(store_path: Path) -> None:
    """Two processes claim the same drop at once: exactly one is paid (issue 3)."""
    ctx = multiprocessing.get_context("spawn")
    for round_ in range(3):
        barrier = ctx.Barrier(2)
        out = ctx.Queue()
        procs = [
            ctx.Process(target=_race, args=(str(store_path), f"r{round_}-{n}", barrier, out))
            for n in range(2)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        refunds = sorted(out.get(timeout=5) for _ in procs)
        expected = ["0.00", "20.00"] if round_ == 0 else ["0.00", "0.00"]
        assert refunds == expected


def test_a_failed_sync_reports_the_decision_as_not_recorded(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decision is never returned when its record could not be made durable."""
    import audit

    calc = Calculator(store_path)
    calc.decide({**SPLIT, "request_id": "ok"}, now=NOW)

    def broken_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises((audit.AuditError, OSError)):
        calc.decide({**SPLIT, "request_id": "lost"}, now=NOW)
    monkeypatch.undo()
    calc.close()
    with Calculator(store_path) as fresh:
        assert fresh.store.get("lost") is None
        assert fresh.store.verify().ok


def test_keyed_chain_from_the_environment(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With PRICECALC_AUDIT_KEY set, the chain is HMAC-keyed: verifying without it fails."""
    import audit

    monkeypatch.setenv("PRICECALC_AUDIT_KEY", "s3cret")
    with Calculator(store_path) as calc:
        calc.decide(SPLIT, now=NOW)
        assert calc.store.verify().ok
    monkeypatch.delenv("PRICECALC_AUDIT_KEY")
    store = audit.open_store(str(store_path))
    try:
        assert not store.verify().ok
    finally:
        store.close()


def test_recorded_lines_are_json(store_path: Path) -> None:
    """The store file is JSON Lines a finance script can read without pricecalc."""
    with Calculator(store_path) as calc:
        calc.decide(SPLIT, now=NOW)
    lines = store_path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["payload"]["kind"] == "subsidy_split"


def test_order_id_with_spaces_still_finds_earlier_refunds(store_path: Path) -> None:
    """History is keyed by the normalised order id: " O-1 " and "O-1" are one order."""
    spaced = claim("c2")
    spaced["input"]["order_id"] = " O-1 "
    with Calculator(store_path) as calc:
        calc.decide(claim("c1"), now=NOW)
        d = calc.decide(spaced, now=NOW)
    assert d.result["refund_total"] == "0.00"
    assert [r.code for r in d.reasons] == ["ALREADY_REFUNDED"]


def test_with_audit_keeps_every_field_of_the_decision() -> None:
    """``Decision.with_audit`` is ``attrs.evolve(decision, audit=ref)``: a field added to
    ``Decision`` must be carried over too (SPEC §8: the returned decision is the recorded one)."""
    values = {
        field.name: f"<{field.name}>" for field in attrs.fields(Decision) if field.name != "audit"
    }
    values["reasons"] = (Reason("CODE", "message"),)
    decision = Decision(**values)
    ref = AuditRef(7, "ab" * 32)
    assert decision.with_audit(ref) == attrs.evolve(decision, audit=ref)
