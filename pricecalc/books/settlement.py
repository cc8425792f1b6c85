"""What a recorded decision moves between a merchant and the platform (SPEC §10).

The one reading of a record's money that the settlement statement
(:mod:`pricecalc.books.statement`) and the campaign report (:mod:`pricecalc.books.report`) share, so
the two documents can never disagree about a fen:

* ``deduct_from_payout`` — the platform takes it from the merchant's payout: the money
  figures a kind declares as feeding the record's settlement
  (:data:`pricecalc.registry.SETTLEMENT`) of an approved decision whose ``settlement`` is
  ``deduct_from_payout``;
* ``merchant_pays`` — the same figures where the merchant pays the buyer directly
  (``settlement`` ``merchant_pays``);
* ``subsidy_clawback`` — the figures a kind declares as feeding
  :data:`pricecalc.registry.SUBSIDY_CLAWBACK`.

Which figures those are is each rule's declaration (:class:`pricecalc.registry.MoneyFigure`),
so a plugin's kind reaches a statement exactly as a built-in one; functions here take the
installed kinds' :class:`~pricecalc.registry.Declarations` (default: the core's own).

A **void** (SPEC §7) moves the withdrawn decision's money back: its :class:`Movement` is a
reversal — the withdrawn decision's amounts negated, at the void's seq and time — so that
totals over a period that holds both net out to the fen.

Nothing here reads a store; callers hand in :class:`audit.protocol.Record` values (or the
:class:`pricecalc.records.RecordedDecision` read from them).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs

from audit.protocol import Record
from pricecalc import records
from pricecalc.money import ZERO, fmt
from pricecalc.records import RecordedDecision
from pricecalc.registry import (
    DEDUCT_FROM_PAYOUT,
    MERCHANT_PAYS,
    SETTLEMENT,
    SUBSIDY_CLAWBACK,
    Declarations,
)

# The column names are the declarations' (pricecalc.registry), re-exported here.
#: SPEC §10's three money columns, in the statement's order.
SETTLEMENT_COLUMNS: tuple[str, ...] = (DEDUCT_FROM_PAYOUT, MERCHANT_PAYS, SUBSIDY_CLAWBACK)

Recorded = Record | RecordedDecision


def _read(
    record: Recorded | Mapping[str, Any], declarations: Declarations | None
) -> RecordedDecision:
    if isinstance(record, RecordedDecision):
        return record
    if isinstance(record, Record):
        return records.read(record, declarations)
    return records.from_payload(record, declarations=declarations)


def money_moved(
    record: Recorded | Mapping[str, Any], declarations: Declarations | None = None
) -> dict[str, Decimal] | None:
    """The SPEC §10 columns an approved decision fills (``None``: it moves no money —
    rejected, a kind whose figures feed no column (a split, a void), or zero). A record's
    payload may be given instead of the record."""
    recorded = _read(record, declarations)
    out = dict.fromkeys(SETTLEMENT_COLUMNS, ZERO)
    moved = False
    for figure, value in recorded.figures(declarations):
        if figure.feeds is None:
            continue
        if figure.feeds == SETTLEMENT:
            settlement = recorded.result.get("settlement")
            if settlement not in (DEDUCT_FROM_PAYOUT, MERCHANT_PAYS):
                continue
            column = str(settlement)
        else:
            column = figure.feeds
        out[column] += value
        moved = moved or value != ZERO
    return out if moved else None


@attrs.frozen
class Movement:
    """One statement row: what an approved decision moved, or a void's reversal of it.

    ``seq``/``hash``/``recorded_at`` are the row's own record (for a reversal, the void);
    ``kind``, ``order_id``, ``request_id``, ``merchant_id`` and ``campaign`` describe the
    decision that moved the money (for a reversal, the withdrawn one, whose seq is
    ``reverses``). ``amounts`` holds the three columns (negated in a reversal).
    """

    seq: int
    hash: str
    recorded_at: str
    kind: str
    order_id: str | None
    request_id: str | None
    merchant_id: str | None
    campaign: str | None
    amounts: Mapping[str, Decimal]
    reverses: int | None = None

    @property
    def is_reversal(self) -> bool:
        return self.reverses is not None

    def cells(self) -> dict[str, str]:
        """The three columns as two-decimal text."""
        return {name: fmt(self.amounts[name]) for name in SETTLEMENT_COLUMNS}


def movement_of(record: Recorded, declarations: Declarations | None = None) -> Movement | None:
    """The money an approved decision's record moved, or ``None``."""
    recorded = _read(record, declarations)
    moved = money_moved(recorded, declarations)
    if moved is None:
        return None
    return Movement(
        seq=recorded.seq,
        hash=recorded.hash,
        recorded_at=recorded.recorded_at,
        kind=recorded.kind,
        order_id=recorded.order_id,
        request_id=recorded.key,
        merchant_id=recorded.merchant_id,
        campaign=recorded.campaign,
        amounts=moved,
    )


def withdrawn_seq(record: Recorded, declarations: Declarations | None = None) -> int | None:
    """The seq an approved void's record withdraws, or ``None`` (not an approved void)."""
    return _read(record, declarations).withdraws


def reversal_of(
    void: Recorded, withdrawn: Recorded, declarations: Declarations | None = None
) -> Movement | None:
    """The reversal row of an approved ``void`` that withdrew ``withdrawn``: the withdrawn
    decision's movement negated, at the void's seq, hash and time (``None`` when the
    withdrawn decision moved no money, or ``void`` does not withdraw it)."""
    void = _read(void, declarations)
    withdrawn = _read(withdrawn, declarations)
    if void.withdraws != withdrawn.seq:
        return None
    moved = movement_of(withdrawn, declarations)
    if moved is None:
        return None
    return attrs.evolve(
        moved,
        seq=void.seq,
        hash=void.hash,
        recorded_at=void.recorded_at,
        amounts={name: -value for name, value in moved.amounts.items()},
        reverses=withdrawn.seq,
    )


@attrs.frozen
class DoubleVoid:
    """A second approved void of a seq already voided (SPEC §7): the rules reject one,
    but were one ever found in a store, the statement and the report reverse the seq
    once — at its first void — and name this anomaly instead of a second reversal."""

    seq: int  # the second void's own seq
    reverses: int  # the seq it voids again
    first: int  # the void that reversed it

    def sentence(self) -> str:
        return (
            f"record {self.seq} voids record {self.reverses} a second time (record "
            f"{self.first} already voided it): not reversed again"
        )


@attrs.define
class SettlementTotals:
    """The three columns summed exactly over movements (reversals net out)."""

    sums: dict[str, Decimal] = attrs.field(factory=lambda: dict.fromkeys(SETTLEMENT_COLUMNS, ZERO))
    rows: int = 0

    def add(self, movement: Movement) -> None:
        for name, value in movement.amounts.items():
            self.sums[name] += value
        self.rows += 1

    @property
    def deductions(self) -> Decimal:
        """What the platform takes back from the merchant: payout deductions and subsidy
        clawbacks (the report ranks merchants by it)."""
        return self.sums[DEDUCT_FROM_PAYOUT] + self.sums[SUBSIDY_CLAWBACK]

    def formatted(self) -> dict[str, str]:
        return {name: fmt(self.sums[name]) for name in SETTLEMENT_COLUMNS}


__all__ = [
    "DEDUCT_FROM_PAYOUT",
    "MERCHANT_PAYS",
    "SETTLEMENT_COLUMNS",
    "SUBSIDY_CLAWBACK",
    "DoubleVoid",
    "Movement",
    "SettlementTotals",
    "money_moved",
    "movement_of",
    "reversal_of",
    "withdrawn_seq",
]
