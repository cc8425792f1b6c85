"""Never paid twice, whatever the caller or an old store says — the rule side of issue 19.

SPEC §1 (identifiers), §3 (``already_refunded`` adds to the store's history, never erases
it), §7 (a void names its target; a voided key replays marked ``voided_by``; successors;
once-only violations in a log), §8 (``request_id`` text or integer), against a fresh store
and against a store written by pricecalc 0.2 (tests/fixtures/0.2).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest

import pricecalc
from audit import open_store
from audit.protocol import Entry
from pricecalc import records
from pricecalc.books.once_only import once_only_violations
from pricecalc.calculator import Calculator
from pricecalc.fields import MAX_IDENTIFIER, identifier

NOW = datetime(2026, 11, 12, 1, 0, tzinfo=UTC)
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "0.2"


def claim(order: str = "O-1", **changes: Any) -> dict[str, Any]:
    """The SPEC §3 example: A×2 at 100.00, coupon 10 over 100, a drop to 90: 20.00."""
    body: dict[str, Any] = {
        "order_id": order,
        "paid_at": "2026-11-11T10:00",
        "claimed_at": "2026-11-12T09:00",
        "order_status": "paid",
        "event": {"start": "2026-11-10T00:00", "end": "2026-11-12T23:59:59"},
        "lines": [{"line_id": "L1", "sku": "A", "quantity": 2, "unit_price": "100.00"}],
        "offers": [
            {"type": "coupon", "amount": "10.00", "threshold": "100.00"},
            {"type": "direct_drop", "sku": "A", "unit_price": "90.00", "at": "2026-11-11T20:00"},
        ],
        **changes,
    }
    return {"kind": "price_protection", "input": body}


def compensation(paid: str = "39.90", order: str = "O-1", **extra: Any) -> dict[str, Any]:
    return {
        "kind": "counterfeit_compensation",
        **extra,
        "input": {
            "order_id": order,
            "confirmed": True,
            "lines": [{"line_id": "L1", "paid_amount": paid}],
        },
    }


def void(seq: int, target: str | None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"seq": seq, "reason": "wrong amount"}
    if target is not None:
        body["target"] = target
    return {"kind": "void", **extra, "input": body}


def count(calc: Calculator) -> int:
    return calc.store.head().seq


@pytest.fixture
def calc(tmp_path: Path) -> Iterator[Calculator]:
    with Calculator(tmp_path / "audit.jsonl", operator="clerk-li") as calculator:
        yield calculator


# -- SPEC §3: already_refunded never erases history ------------------------------------------
def test_already_refunded_given_cannot_erase_the_store(calc: Calculator) -> None:
    """SPEC §3, issue 19: one 20.00 drop claimed four times, twice with
    "already_refunded": {} and twice with {"L1": "0"}, pays 20.00 once in all; each later
    result shows the given and the recorded amount."""
    claims = [
        claim(),
        claim(already_refunded={}),
        claim(already_refunded={"L1": "0"}),
        claim(already_refunded={"L1": "0.00"}),
    ]
    decisions = [calc.decide(c, now=NOW) for c in claims]
    assert [d.result["refund_total"] for d in decisions] == ["20.00", "0.00", "0.00", "0.00"]
    assert [[r.code for r in d.reasons] for d in decisions[1:]] == [["ALREADY_REFUNDED"]] * 3
    line = decisions[2].result["lines"][0]
    assert (
        line["already_refunded"],
        line["already_refunded_given"],
        line["already_refunded_recorded"],
    ) == ("20.00", "0.00", "20.00")
    paid = sum(Decimal(r.payload["result"]["refund_total"]) for r in calc.store.query())
    assert paid == Decimal("20.00")


# -- SPEC §7: a void names its target --------------------------------------------------------
def test_a_void_needs_a_target(calc: Calculator) -> None:
    """SPEC §7: a new void without target is invalid input naming input.target; nothing
    is recorded."""
    calc.decide(compensation(request_id="cc-1"), now=NOW)
    with pytest.raises(pricecalc.InvalidInput, match=r"^input\.target: is required: it names"):
        calc.decide(void(1, None), now=NOW)
    with pytest.raises(pricecalc.InvalidInput, match=r"^input\.target: must be sha256: followed"):
        calc.decide(void(1, "sha256:12ab"), now=NOW)
    assert count(calc) == 1


def test_a_void_by_request_id_or_hash_prefix_withdraws(calc: Calculator) -> None:
    """SPEC §7: target is the record's request_id as is, or sha256: + ≥ 8 hex digits."""
    first = calc.decide(compensation(request_id="cc-1"), now=NOW)
    other = calc.decide(compensation(order="O-2"), now=NOW)
    assert first.audit is not None and other.audit is not None
    by_key = calc.decide(void(1, "cc-1"), now=NOW)
    by_hash = calc.decide(void(2, f"sha256:{other.audit.hash[:8].upper()}"), now=NOW)
    assert (by_key.status, by_hash.status) == ("approved", "approved")
    assert by_hash.result["target"] == f"sha256:{other.audit.hash[:8]}"


def test_a_void_against_the_wrong_record_is_rejected_and_recorded(tmp_path: Path) -> None:
    """SPEC §7, issue 19: a void run against the wrong store (seq 1 there is another
    merchant's payout) is rejected VOID_TARGET_MISMATCH, recorded, naming both — nothing
    is withdrawn and the payout still counts."""
    with Calculator(tmp_path / "wrong.jsonl", operator="clerk-li") as calc:
        calc.decide(compensation(request_id="shop-9-pay", merchant_id="M-9"), now=NOW)
        by_key = calc.decide(void(1, "cc-1"), now=NOW)
        by_hash = calc.decide(void(1, "sha256:00000000"), now=NOW)
        again = calc.decide(compensation("49.90", request_id="shop-9-retry"), now=NOW)
        assert count(calc) == 4
    assert [(r.code, r.message) for r in by_key.reasons] == [
        (
            "VOID_TARGET_MISMATCH",
            "record 1 is the counterfeit_compensation decision with request_id 'shop-9-pay', "
            "not the target 'cc-1': is this the right store and the right seq? Nothing was "
            "withdrawn",
        )
    ]
    assert by_hash.reasons[0].code == "VOID_TARGET_MISMATCH"
    assert "with hash sha256:" in by_hash.reasons[0].message
    assert "not the target 'sha256:00000000'" in by_hash.reasons[0].message
    assert [r.code for r in again.reasons] == ["ALREADY_COMPENSATED"]


# -- SPEC §7: keys after a void ----------------------------------------------------------------
def test_a_retry_after_a_void_replays_marked_voided_by(calc: Calculator) -> None:
    """SPEC §7, issue 19: the same request under a voided key replays the recorded
    decision marked voided_by and records nothing — a client's retry never undoes a
    void — and the line stays unpaid."""
    paid = calc.decide(compensation(request_id="pay-1"), now=NOW)
    calc.decide(void(1, "pay-1"), now=NOW)
    retries = [calc.decide(compensation(request_id="pay-1"), now=NOW) for _ in range(3)]
    assert count(calc) == 2
    assert {(d.request_id, d.replayed, d.voided_by) for d in retries} == {("pay-1", True, 2)}
    assert retries[0].audit == paid.audit
    assert retries[0].to_dict()["voided_by"] == 2
    assert "voided_by" not in paid.to_dict()


def test_a_corrected_request_under_a_voided_key_is_the_successor(calc: Calculator) -> None:
    """SPEC §7: a different request under a voided key is decided under <key>~void-<seq>;
    sent again it replays that successor; the original request still replays voided."""
    calc.decide(compensation("39.90", request_id="pay-1"), now=NOW)
    calc.decide(void(1, "pay-1"), now=NOW)
    fixed = calc.decide(compensation("49.90", request_id="pay-1"), now=NOW)
    again = calc.decide(compensation("49.90", request_id="pay-1"), now=NOW)
    old = calc.decide(compensation("39.90", request_id="pay-1"), now=NOW)
    assert (fixed.request_id, fixed.status, fixed.result["payout_total"]) == (
        "pay-1~void-2",
        "approved",
        "549.90",
    )
    assert (again.replayed, again.audit) == (True, fixed.audit)
    assert (old.replayed, old.voided_by, old.audit and old.audit.seq) == (True, 2, 1)
    assert count(calc) == 3
    with pytest.raises(  # the successor's key is live
        pricecalc.IdempotencyConflict,
        match=r"^request_id 'pay-1' is already recorded as record 3 for a different request \(",
    ):
        calc.decide(compensation("59.90", request_id="pay-1"), now=NOW)


def test_a_rejection_relying_on_a_voided_record_is_decided_again(calc: Calculator) -> None:
    """SPEC §7: a rejection that relied on a since-voided record is decided again when the
    same request is sent (under the successor key) — and pays at most once."""
    calc.decide(compensation("39.90", request_id="a"), now=NOW)
    refused = calc.decide(compensation("49.90", request_id="b"), now=NOW)
    calc.decide(void(1, "a"), now=NOW)
    redone = calc.decide(compensation("49.90", request_id="b"), now=NOW)
    third = calc.decide(compensation("59.90", request_id="c"), now=NOW)
    assert [r.code for r in refused.reasons] == ["ALREADY_COMPENSATED"]
    assert (redone.request_id, redone.status) == ("b~void-3", "approved")
    assert [r.code for r in third.reasons] == ["ALREADY_COMPENSATED"]
    assert once_only_violations(calc.store.query()) == []


# -- the store written by 0.2 ----------------------------------------------------------------
@pytest.fixture
def old_store(tmp_path: Path) -> Path:
    for name in ("store-0.2.jsonl", "decided-by-0.2.jsonl", "voids-by-0.2.jsonl"):
        shutil.copy(FIXTURE / name, tmp_path / name)
    return tmp_path / "store-0.2.jsonl"


def test_a_0_2_store_replays_everything_and_pays_nothing_twice(old_store: Path) -> None:
    """SPEC §7, issue 19: re-running decided-by-0.2.jsonl and voids-by-0.2.jsonl (voids
    without target) against the store 0.2 wrote records nothing; keys with successors
    replay the latest one (cc-1~void-8, cc-2~void-8, fw-1~void-9); the chain verifies and
    no order line is paid twice."""
    from pricecalc.envelope import Envelope

    def requests(name: str) -> list[Envelope]:
        lines = (old_store.parent / name).read_text(encoding="utf-8").splitlines()
        return [Envelope.parse(pricecalc.serialize.loads(line)).keyed() for line in lines]

    with Calculator(old_store, operator="clerk-li") as calc:
        decided = calc.decide_many(requests("decided-by-0.2.jsonl"))
        voids = calc.decide_many(requests("voids-by-0.2.jsonl"))
        assert count(calc) == 12
        assert calc.store.verify().ok
        assert once_only_violations(calc.store.query()) == []
    assert all(d.replayed for d in [*decided, *voids])
    successors = ["pp-1", "cc-1~void-8", "cc-2~void-8", "fw-1~void-9"]
    assert [d.request_id for d in decided][2:6] == successors
    assert [d.audit and d.audit.seq for d in voids] == [8, 9]


# -- SPEC §1: identifiers --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("order", "problem"),
    [
        ("O-1\u200b", r"must not contain an invisible or control character \(U\+200B\)"),
        ("O-1\ufeff", r"must not contain an invisible or control character \(U\+FEFF\)"),
        ("O\u20101", r"must not contain a dash other than ASCII '-' \(U\+2010 HYPHEN\)"),
        ("O\u22121", r"must not contain a dash other than ASCII '-' \(U\+2212 MINUS SIGN\)"),
        ("O\u20131", r"must not contain a dash other than ASCII '-' \(U\+2013 EN DASH\)"),
    ],
)
def test_look_alike_order_ids_are_refused(calc: Calculator, order: str, problem: str) -> None:
    """SPEC §1, issue 19: an invisible character or a look-alike dash in an identifier is
    invalid input naming the field, the value shown escaped; nothing recorded."""
    calc.decide(compensation(), now=NOW)
    with pytest.raises(pricecalc.InvalidInput, match=r"^input\.order_id: " + problem) as exc:
        calc.decide(compensation(order=order), now=NOW)
    escaped = order.encode("ascii", "backslashreplace").decode("ascii")
    assert str(exc.value).endswith(f"(got '{escaped}')")
    assert count(calc) == 1


def test_full_width_and_padded_ids_are_the_same_order(calc: Calculator) -> None:
    """SPEC §1: NFKC and surrounding whitespace — 'Ｏ-1' and ' O-1 ' are order O-1, so
    the line already compensated is not paid again."""
    calc.decide(compensation(), now=NOW)
    full = calc.decide(compensation("49.90", order="Ｏ-１"), now=NOW)
    padded = calc.decide(compensation("49.90", order=" O-1\t"), now=NOW)
    assert (full.result["order_id"], [r.code for r in full.reasons]) == (
        "O-1",
        ["ALREADY_COMPENSATED"],
    )
    assert [r.code for r in padded.reasons] == ["ALREADY_COMPENSATED"]


@pytest.mark.parametrize("value", ["6.91234567890124E+018", "1.2E+5", "6.9e18"])
def test_excel_scientific_ids_are_refused_with_the_clerks_sentence(value: str) -> None:
    """SPEC §1, issue 21 point 2: an id Excel rewrote in scientific notation lost digits."""
    with pytest.raises(pricecalc.InvalidInput) as exc:
        identifier(value, "input.order_id")
    assert str(exc.value) == (
        f"input.order_id: Excel turned a long number into {value}: its digits are lost — "
        f"format the column as text (got '{value}')"
    )


def test_every_identifier_field_uses_the_one_reader(calc: Calculator) -> None:
    """SPEC §1: line_id, sku, merchant_id and request_id are identifiers too."""
    bad = "L\u200b1"
    cases: list[tuple[dict[str, Any], str]] = [
        (compensation() | {"input": {**compensation()["input"], "lines": [
            {"line_id": bad, "paid_amount": "1.00"}]}}, r"input\.lines\[0\]\.line_id"),
        (claim(lines=[{"line_id": "L1", "sku": bad, "quantity": 1, "unit_price": "9.00"}]),
         r"input\.lines\[0\]\.sku"),
        (compensation(merchant_id=bad), "merchant_id"),
        (compensation(request_id=bad), "request_id"),
    ]  # fmt: skip
    for request, field in cases:
        with pytest.raises(pricecalc.InvalidInput, match=f"^{field}: must not contain"):
            calc.decide(request, now=NOW)
    assert count(calc) == 0


def test_a_200_mb_id_is_refused_before_anything_is_built(calc: Calculator) -> None:
    """Issue 19: a 200 MB order_id is refused as too long (the check comes first), never
    recorded; an id of exactly 128 characters is accepted."""
    huge = "7" * 200_000_000
    with pytest.raises(pricecalc.InvalidInput) as exc:
        calc.decide(compensation(order=huge), now=NOW)
    assert str(exc.value).startswith(
        f"input.order_id: must be at most {MAX_IDENTIFIER} characters (it has 200,000,000)"
    )
    del huge
    assert calc.decide(compensation(order="O" * 128), now=NOW).status == "approved"
    with pytest.raises(pricecalc.InvalidInput, match="it has 129"):
        calc.decide(compensation(order="O" * 129), now=NOW)
    assert count(calc) == 1


# -- SPEC §8: request_id ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "shown"), [(Decimal("1.5"), "1.5"), (True, "true"), ([1], "[1]")]
)
def test_request_id_is_text_or_an_integer(calc: Calculator, given: Any, shown: str) -> None:
    """SPEC §8: request_id is text or a JSON integer (its decimal text); 1.5, true and a
    list are invalid input naming request_id."""
    with pytest.raises(pricecalc.InvalidInput) as exc:
        calc.decide({**compensation(), "request_id": given}, now=NOW)
    assert str(exc.value) == (
        f"request_id: must be text or a whole number (a JSON integer) (got {shown})"
    )
    decided = calc.decide({**compensation(), "request_id": 42}, now=NOW)
    assert decided.request_id == "42"
    assert calc.decide({**compensation(), "request_id": "42"}, now=NOW).replayed


# -- SPEC §7: once-only violations already in a log ------------------------------------------
@attrs.frozen
class Logged:
    seq: int
    key: str | None
    payload: dict[str, Any]


def _paid(number: int, key: str | None, kind: str, **result: Any) -> Logged:
    return Logged(number, key, {"kind": kind, "status": "approved", "result": result})


def test_once_only_violations_are_found_in_a_log() -> None:
    """SPEC §7 (last sentence): two approved, not voided payouts for one order line, a key
    recorded twice (compared as §1 reads it), a seq voided twice — each named; a voided
    payout and an increment of a deeper drop are not violations."""
    line = [{"line_id": "L1", "total": "539.90"}]
    records = [
        _paid(1, "cc-1", "counterfeit_compensation", order_id="O-1", lines=line),
        _paid(2, "cc-1 ", "counterfeit_compensation", order_id="O-1", lines=line),
        _paid(3, None, "void", seq=1),
        _paid(4, None, "void", seq=1),
        _paid(5, None, "counterfeit_compensation", order_id="O-1", lines=line),
        _paid(6, None, "forwarding_clawback", order_id="O-8"),
        _paid(7, None, "forwarding_clawback", order_id=" O-8"),
        _paid(8, None, "price_protection", order_id="O-3",
              lines=[{"line_id": "L1", "refund": "20.00", "entitled": "20.00"}]),
        _paid(9, None, "price_protection", order_id="O-3",
              lines=[{"line_id": "L1", "refund": "22.00", "entitled": "42.00"}]),
        _paid(10, None, "price_protection", order_id="O-4",
              lines=[{"line_id": "L1", "refund": "20.00", "entitled": "20.00"}]),
        _paid(11, None, "price_protection", order_id="O-4",
              lines=[{"line_id": "L1", "refund": "20.00", "entitled": "20.00"}]),
    ]  # fmt: skip
    found = once_only_violations(records)
    assert [(v.code, v.seqs) for v in found] == [
        ("KEY_TWICE", (1, 2)),
        ("VOIDED_TWICE", (3, 4)),
        ("PAID_TWICE", (2, 5)),
        ("PAID_TWICE", (6, 7)),
        ("PAID_TWICE", (10, 11)),
    ]
    assert str(found[0]) == (
        "KEY_TWICE: the key 'cc-1 ' is recorded by record 1 and again by record 2"
    )
    assert str(found[4]) == (
        "PAID_TWICE: line L1 of order O-4 is refunded 40.00 by records 10, 11, more than the "
        "20.00 any of them was entitled to (SPEC §3: a drop is paid once)"
    )


def test_a_seq_voided_twice_and_an_order_clawed_back_twice_are_named() -> None:
    """SPEC §5 (once per order) and §7 (a void withdraws once): the violation names the
    records, the first holder and the second, or every standing clawback."""
    records = [
        _paid(1, None, "forwarding_clawback", order_id="O-8"),
        _paid(2, None, "void", seq=1),
        _paid(3, None, "void", seq=1),
        _paid(4, None, "forwarding_clawback", order_id="O-9"),
        _paid(5, None, "forwarding_clawback", order_id="O-9 "),
        _paid(6, None, "forwarding_clawback", order_id="O-9"),
    ]
    assert [str(v) for v in once_only_violations(records)] == [
        "VOIDED_TWICE: record 1 is voided by record 2 and again by record 3",
        "PAID_TWICE: order O-9 is clawed back by records 4, 5, 6, none voided "
        "(SPEC §5: once per order)",
    ]


def test_verify_deep_reports_a_line_paid_twice(tmp_path: Path) -> None:
    """Issue 19: `audit verify --deep` names once-only violations in a log whose chain is
    intact (a second payout appended past the rules); plain verify stays OK."""
    from click.testing import CliRunner

    from pricecalc.cli import cli

    path = tmp_path / "audit.jsonl"
    with Calculator(path, operator="clerk-li") as calc:
        calc.decide(compensation(request_id="cc-1"), now=NOW)
        payload = dict(calc.store.record(1).payload)  # type: ignore[union-attr]
    store = open_store(str(path))
    try:
        store.append(Entry(payload=payload, key="cc-1-forged", tags=("order:O-1",)))
    finally:
        store.close()
    runner = CliRunner()
    plain = runner.invoke(cli, ["--audit", str(path), "audit", "verify"])
    deep = runner.invoke(cli, ["--audit", str(path), "audit", "verify", "--deep"])
    assert plain.exit_code == 0, plain.output
    assert deep.exit_code == 1
    assert deep.output.endswith(
        f"Error: the audit store {path} holds 1 once-only violation(s) (SPEC §7): PAID_TWICE: "
        "line L1 of order O-1 is compensated by records 1, 2, none voided (SPEC §4: once "
        "per line)\n"
    )


def test_replayed_decision_dict_round_trips_voided_by() -> None:
    """SPEC §7: a decision rebuilt from its record (records.decision_of, formerly
    Decision.from_record) carries voided_by into to_dict."""
    payload = {
        "kind": "void",
        "input": {"seq": 1, "reason": "x"},
        "status": "approved",
        "result": {},
        "reasons": [],
        "rule_set": "r",
        "rule_version": "1",
    }
    decision = records.decision_of(payload, replayed=True, voided_by=7)
    assert json.loads(json.dumps(decision.to_dict()))["voided_by"] == 7
