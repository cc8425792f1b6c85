"""What the store's records tell a rule: the decisions about an order, a record and the
void that withdrew it, read from an open store transaction (its committed records and
its own pending ones) — the store's side of :class:`pricecalc.history.History`. Every
record is read through :func:`pricecalc.records.read`; the rules read their own layouts.
"""

from __future__ import annotations

from audit.protocol import Record, Transaction
from pricecalc import records
from pricecalc.history import PastDecision, order_tag, voids_tag


def past_decision(record: Record, voided_by: int | None = None) -> PastDecision:
    """A recorded decision as a rule sees it (:class:`pricecalc.history.PastDecision`)."""
    return records.read(record).past(voided_by)


class StoreHistory:
    """Answers a rule's questions about past decisions from an open store transaction
    (committed records and the transaction's own pending ones). It reads only what every
    decision's record holds — kind, status, result, the void that withdrew it — and hands
    the results to the rules, which read their own layouts."""

    def __init__(self, tx: Transaction) -> None:
        self._tx = tx

    def decisions(self, order_id: str) -> tuple[PastDecision, ...]:
        found = [records.read(record) for record in self._tx.find(order_tag(order_id))]
        voided: dict[int, int] = {}
        for recorded in found:
            if recorded.withdraws is not None:
                voided.setdefault(recorded.withdraws, recorded.seq)
        return tuple(
            recorded.past(voided.get(recorded.seq))
            for recorded in found
            if not records.withdraws_records(recorded.kind)
        )

    def decision(self, seq: int) -> PastDecision | None:
        record = self._tx.record(seq)
        if record is None or not records.read(record).is_decision:
            return None
        return past_decision(record, voided_by(self._tx, seq))


def voided_by(tx: Transaction, seq: int) -> int | None:
    """The first approved void that withdrew record ``seq``, if any."""
    voids = [void.seq for void in tx.find(voids_tag(seq)) if records.read(void).is_void]
    return min(voids) if voids else None


def relied_voided(tx: Transaction, record: Record) -> int | None:
    """For a rejection, the first void that withdrew a record it relied on (SPEC §7: such
    a rejection is decided again); None for an approved decision or a rejection whose
    grounds still stand."""
    recorded = records.read(record)
    if recorded.status != "rejected":
        return None
    voids = [
        void
        for seq in recorded.relied_on
        for void in (voided_by(tx, seq),)
        if void is not None
    ]
    return min(voids) if voids else None
