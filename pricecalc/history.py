"""What a rule may ask about past decisions, and the answers without a store.

Some rules read history (SPEC §3–§5, §7): price protection the refunds already paid for an
order, counterfeit compensation and forwarding clawbacks whether the line or order was
already paid, a void the record it withdraws. They ask a :class:`History` for the recorded
decisions of an order, or for one decision by ``seq``, and read the results themselves —
each rule owns the layout of its own results (``protection.refunds_paid`` reads
``lines[].refund``), the store learns nothing about prices. A decision withdrawn by an
approved ``void`` carries ``voided_by``; the once-only rules leave it out.

The calculator answers from the audit store inside its writer lock
(:class:`pricecalc.store_history.StoreHistory`); pure evaluation answers that nothing happened
(:data:`NO_HISTORY`). :class:`AskedHistory` remembers the questions a rule asked and the
answers it got, so that a decision made away from the store (a worker process) can be
checked against the store before it is recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import attrs


# -- where history is found: the lookup tags every decision's record carries ---------------
def kind_tag(kind: str) -> str:
    return f"kind:{kind}"


def order_tag(order_id: str) -> str:
    """Every decision about an order (and every void of one) is tagged with it."""
    return f"order:{order_id}"


def merchant_tag(merchant_id: str) -> str:
    return f"merchant:{merchant_id}"


def campaign_tag(campaign: str) -> str:
    return f"campaign:{campaign}"


def voids_tag(seq: int) -> str:
    """An approved void of record ``seq`` is tagged with it."""
    return f"voids:{seq}"


@attrs.frozen
class PastDecision:
    """A recorded decision as a rule sees it: where it is, what it decided, whether a void
    withdrew it (the void's ``seq``), and for whom (``merchant_id``/``campaign``)."""

    seq: int
    kind: str
    status: str
    result: Mapping[str, Any]
    voided_by: int | None = None
    request_id: str | None = None
    merchant_id: str | None = None
    campaign: str | None = None
    #: The record's hash (a void's ``target`` may name it, SPEC §7).
    hash: str | None = None

    @property
    def counts(self) -> bool:
        """Approved and not withdrawn: what the once-only rules of SPEC §3–§5 count."""
        return self.status == "approved" and self.voided_by is None


class History(Protocol):
    """The questions a rule may ask about the past (answered in seq order)."""

    def decisions(self, order_id: str) -> tuple[PastDecision, ...]:
        """Every recorded decision about ``order_id`` (any kind, approved or rejected),
        voids excluded; a withdrawn one carries ``voided_by``."""
        ...

    def decision(self, seq: int) -> PastDecision | None:
        """Record ``seq`` as a decision, or None when there is no such record."""
        ...


class NoHistory:
    """History for pure evaluation: nothing was decided before."""

    def decisions(self, order_id: str) -> tuple[PastDecision, ...]:
        return ()

    def decision(self, seq: int) -> PastDecision | None:
        return None


NO_HISTORY: History = NoHistory()

Question = tuple[str, Any]  # ("decisions", order_id) or ("decision", seq)


class AskedHistory:
    """A history that answers from another one and remembers every question and answer
    (in order), so the same questions can be asked again later and the answers compared."""

    def __init__(self, inner: History) -> None:
        self._inner = inner
        self.asked: list[tuple[Question, Any]] = []

    def decisions(self, order_id: str) -> tuple[PastDecision, ...]:
        answer = self._inner.decisions(order_id)
        self.asked.append((("decisions", order_id), answer))
        return answer

    def decision(self, seq: int) -> PastDecision | None:
        answer = self._inner.decision(seq)
        self.asked.append((("decision", seq), answer))
        return answer


def same_answers(asked: list[tuple[Question, Any]], history: History) -> bool:
    """Would ``history`` answer every recorded question as it was answered then?"""
    for (question, argument), answer in asked:
        if question == "decisions":
            if history.decisions(argument) != answer:
                return False
        elif history.decision(argument) != answer:
            return False
    return True


__all__ = [
    "NO_HISTORY",
    "AskedHistory",
    "History",
    "NoHistory",
    "PastDecision",
    "campaign_tag",
    "kind_tag",
    "merchant_tag",
    "order_tag",
    "same_answers",
    "voids_tag",
]
