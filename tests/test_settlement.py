"""pricecalc.books.settlement: the one reading of what a record moves (SPEC §10's three columns
and a void's reversal, §7), shared by the statement and the campaign report."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from statement_support import NOW, campaign, clawback, counterfeit

import audit
from audit.protocol import AuditStore
from pricecalc.books.settlement import (
    SETTLEMENT_COLUMNS,
    SettlementTotals,
    money_moved,
    movement_of,
    reversal_of,
    withdrawn_seq,
)
from pricecalc.calculator import Calculator
from pricecalc.files.columns import COLUMN_LABELS, SETTLEMENT_MONEY


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> AuditStore:
    path = tmp_path_factory.mktemp("settlement") / "audit.jsonl"
    campaign(path)
    return audit.open_store(path)


def test_the_three_columns_are_the_ones_every_writer_knows() -> None:
    """The statement's money columns are amounts to the writers (rows.AMOUNT_COLUMNS) and
    have Chinese headings."""
    assert SETTLEMENT_COLUMNS == SETTLEMENT_MONEY
    labels = [COLUMN_LABELS[c] for c in SETTLEMENT_COLUMNS]
    assert labels == ["从货款扣除", "商家直接赔付", "转寄追回补贴"]  # SPEC §10's names


@pytest.mark.parametrize(
    ("seq", "column", "value"),
    [
        (1, "deduct_from_payout", "20.00"),  # price protection, merchant refused
        (2, "merchant_pays", "748.00"),  # counterfeit, the merchant pays the buyer
        (3, "deduct_from_payout", "748.00"),  # counterfeit, merchant refused
        (5, "subsidy_clawback", "400.00"),  # forwarding clawback
        (9, "deduct_from_payout", "539.90"),  # counterfeit at the 500 minimum
    ],
)
def test_a_decision_fills_one_column(store: AuditStore, seq: int, column: str, value: str) -> None:
    """SPEC §10: refund_total / payout_total by settlement; clawback in subsidy_clawback;
    the other two columns zero."""
    record = store.record(seq)
    assert record is not None
    moved = movement_of(record)
    assert moved is not None and moved.seq == seq and moved.reverses is None
    assert moved.amounts == {
        **dict.fromkeys(SETTLEMENT_COLUMNS, Decimal("0.00")),
        column: Decimal(value),
    }
    assert moved.request_id == f"req-{seq}"


def test_a_split_a_void_and_a_rejection_move_nothing(store: AuditStore) -> None:
    """A subsidy split and a void are not settlement rows; neither is a rejection."""
    for seq in (4, 7, 8):
        record = store.record(seq)
        assert record is not None and movement_of(record) is None
    record = store.record(1)
    assert record is not None
    assert money_moved({**record.payload, "status": "rejected"}) is None


@pytest.mark.parametrize(("void", "withdrawn"), [(7, 6), (11, 1)])
def test_the_void_of_a_price_protection_is_its_reversal(
    store: AuditStore, void: int, withdrawn: int
) -> None:
    """SPEC §7: the withdrawn decision's amounts negated, at the void's seq, hash and time,
    naming the seq it reverses; its own row plus the reversal sum to zero."""
    void_record, withdrawn_record = store.record(void), store.record(withdrawn)
    assert void_record is not None and withdrawn_record is not None
    assert withdrawn_seq(void_record) == withdrawn
    reversal = reversal_of(void_record, withdrawn_record)
    original = movement_of(withdrawn_record)
    assert reversal is not None and original is not None
    assert (reversal.seq, reversal.hash, reversal.recorded_at, reversal.reverses) == (
        void, void_record.hash, void_record.recorded_at, withdrawn,
    )  # fmt: skip
    assert (reversal.kind, reversal.order_id, reversal.request_id) == (
        "price_protection", original.order_id, f"req-{withdrawn}",
    )  # fmt: skip
    assert reversal.cells()["deduct_from_payout"] == "-20.00"
    totals = SettlementTotals()
    totals.add(original)
    totals.add(reversal)
    assert totals.formatted() == dict.fromkeys(SETTLEMENT_COLUMNS, "0.00")
    assert totals.rows == 2


def test_the_void_of_a_split_gives_no_row(store: AuditStore) -> None:
    """A void of a decision that moved no money (a subsidy split) has no reversal row."""
    void, split = store.record(8), store.record(4)
    assert void is not None and split is not None
    assert withdrawn_seq(void) == 4
    assert reversal_of(void, split) is None


def test_a_reversal_needs_the_void_of_that_record(store: AuditStore) -> None:
    """reversal_of refuses a pair where the void withdraws another record, and a record
    that is no approved void withdraws nothing."""
    void, other = store.record(7), store.record(1)
    assert void is not None and other is not None
    assert reversal_of(void, other) is None
    assert withdrawn_seq(other) is None


def _void_of(path: Path, request: dict[str, object]) -> tuple[Decimal, Decimal, str]:
    """Decide ``request``, void it: (its amount, the reversal's, the column)."""
    with Calculator(path, operator="clerk-li") as calc:
        calc.decide({**request, "request_id": "x"}, now=NOW)
        calc.decide(
            {"kind": "void", "input": {"seq": 1, "reason": "wrong", "target": "x"}}, now=NOW
        )
        first, void = calc.store.record(1), calc.store.record(2)
    assert first is not None and void is not None
    moved, reversal = movement_of(first), reversal_of(void, first)
    assert moved is not None and reversal is not None
    column = next(c for c in SETTLEMENT_COLUMNS if moved.amounts[c])
    return moved.amounts[column], reversal.amounts[column], column


def test_the_void_of_a_counterfeit_compensation_and_of_a_clawback(tmp_path: Path) -> None:
    """Reversals of a counterfeit payout (merchant_pays) and of a forwarding clawback."""
    assert _void_of(tmp_path / "a.jsonl", counterfeit("O-1", "68.00", "M1", refused=False)) == (
        Decimal("748.00"), Decimal("-748.00"), "merchant_pays",
    )  # fmt: skip
    assert _void_of(tmp_path / "b.jsonl", clawback("O-2", "200.00", "M1")) == (
        Decimal("400.00"), Decimal("-400.00"), "subsidy_clawback",
    )  # fmt: skip
