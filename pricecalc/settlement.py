"""What a recorded decision moves between a merchant and the platform (SPEC §10).

The one reading of a record's money that the settlement statement
(:mod:`pricecalc.statement`) and the campaign report (:mod:`pricecalc.report`) share, so
the two documents can never disagree about a fen:

* ``deduct_from_payout`` — the platform takes it from the merchant's payout: price
  protection's ``refund_total`` and counterfeit compensation's ``payout_total`` of an
  approved decision whose ``settlement`` is ``deduct_from_payout``;
* ``merchant_pays`` — the same amounts where the merchant pays the buyer directly
  (``settlement`` ``merchant_pays``);
* ``subsidy_clawback`` — an approved forwarding clawback's ``clawback``.

A **void** (SPEC §7) moves the withdrawn decision's money back: its :class:`Movement` is a
reversal — the withdrawn decision's amounts negated, at the void's seq and time — so that
totals over a period that holds both net out to the fen.

Nothing here reads a store; callers hand in :class:`audit.protocol.Record` values.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs

from audit.protocol import Record
from pricecalc.corrections import VOID_KIND, voided_seq
from pricecalc.decision import recorded_request
from pricecalc.money import ZERO, fmt
from pricecalc.rows import amount, order_id_of

DEDUCT_FROM_PAYOUT = "deduct_from_payout"
MERCHANT_PAYS = "merchant_pays"
SUBSIDY_CLAWBACK = "subsidy_clawback"
#: SPEC §10's three money columns, in the statement's order.
SETTLEMENT_COLUMNS: tuple[str, ...] = (DEDUCT_FROM_PAYOUT, MERCHANT_PAYS, SUBSIDY_CLAWBACK)

#: kind → the result field whose amount is settled (by the result's ``settlement``).
SETTLED_AMOUNT: Mapping[str, str] = {
    "price_protection": "refund_total",
    "counterfeit_compensation": "payout_total",
}
CLAWBACK_KIND = "forwarding_clawback"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def money_moved(payload: Mapping[str, Any]) -> dict[str, Decimal] | None:
    """The SPEC §10 columns an approved decision fills (``None``: it moves no money —
    rejected, a split, a void, a plugin's kind, or an amount of zero)."""
    if payload.get("status") != "approved":
        return None
    kind = payload.get("kind")
    result = payload.get("result")
    if not isinstance(result, Mapping):
        return None
    column: str | None
    value: Decimal | None
    if kind == CLAWBACK_KIND:
        column, value = SUBSIDY_CLAWBACK, amount(result.get("clawback"))
    elif isinstance(kind, str) and kind in SETTLED_AMOUNT:
        settlement = result.get("settlement")
        column = settlement if settlement in (DEDUCT_FROM_PAYOUT, MERCHANT_PAYS) else None
        value = amount(result.get(SETTLED_AMOUNT[kind]))
    else:
        return None
    if column is None or value is None or value == ZERO:
        return None
    out = dict.fromkeys(SETTLEMENT_COLUMNS, ZERO)
    out[column] = value
    return out


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


def movement_of(record: Record) -> Movement | None:
    """The money an approved decision's record moved, or ``None``."""
    moved = money_moved(record.payload)
    if moved is None:
        return None
    payload = record.payload
    request = recorded_request(payload)
    result = payload.get("result") or {}
    return Movement(
        seq=record.seq,
        hash=record.hash,
        recorded_at=record.recorded_at,
        kind=str(payload.get("kind")),
        order_id=order_id_of(request, result),
        request_id=record.key if record.key is not None else _text(payload.get("request_id")),
        merchant_id=_text(request.get("merchant_id")),
        campaign=_text(request.get("campaign")),
        amounts=moved,
    )


def withdrawn_seq(record: Record) -> int | None:
    """The seq an approved void's record withdraws, or ``None`` (not an approved void)."""
    payload = record.payload
    if payload.get("kind") != VOID_KIND or payload.get("status") != "approved":
        return None
    return voided_seq(payload.get("result"))


def reversal_of(void: Record, withdrawn: Record) -> Movement | None:
    """The reversal row of an approved ``void`` that withdrew ``withdrawn``: the withdrawn
    decision's movement negated, at the void's seq, hash and time (``None`` when the
    withdrawn decision moved no money, or ``void`` does not withdraw it)."""
    if withdrawn_seq(void) != withdrawn.seq:
        return None
    moved = movement_of(withdrawn)
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


@attrs.define
class SettlementTotals:
    """The three columns summed exactly over movements (reversals net out)."""

    sums: dict[str, Decimal] = attrs.field(
        factory=lambda: dict.fromkeys(SETTLEMENT_COLUMNS, ZERO)
    )
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
    "Movement",
    "SettlementTotals",
    "money_moved",
    "movement_of",
    "reversal_of",
    "withdrawn_seq",
]
