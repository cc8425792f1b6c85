"""Once-only violations already in a log (SPEC §7, last sentence; issue 19).

The once-only rules of SPEC §3–§5 refuse a second payout *when deciding*; this module reads
a finished log — a stream of records, in seq order, holding the decisions as recorded —
and reports what should never be there, whoever wrote it (a damaged index, a forged row,
an older version):

- two approved, not voided payouts for one order line: a counterfeit compensation line
  (SPEC §4: once per line), a forwarding clawback order (SPEC §5: once per order), or
  price-protection refunds for a line adding up to more than the most any of them was
  entitled to (SPEC §3: a second claim for the same drop pays 0);
- one idempotency key recorded twice (compared as SPEC §1 reads identifiers, so ``cc-1``
  and ``cc-1 `` are one key);
- one seq withdrawn by two approved voids.

The knowledge of kinds lives here, in pricecalc: ``audit/`` knows nothing of prices.
``pricecalc audit verify --deep`` runs it after the chain's own check. The records are
read once, as a stream; what is kept is one entry per key, order line and void.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs

from audit.protocol import Record
from pricecalc.fields import stored_identifier
from pricecalc.money import fmt
from pricecalc.records import read


@attrs.frozen
class Violation:
    """One once-only violation: what it is (``code``), the records involved and a sentence."""

    code: str
    seqs: tuple[int, ...]
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


PAID_TWICE = "PAID_TWICE"
KEY_TWICE = "KEY_TWICE"
VOIDED_TWICE = "VOIDED_TWICE"


def _amount(value: Any) -> Decimal:
    try:
        return Decimal(value) if isinstance(value, str) else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def _lines(result: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    lines = result.get("lines")
    if isinstance(lines, list):
        yield from (line for line in lines if isinstance(line, Mapping))


def once_only_violations(logged: Iterable[Record]) -> list[Violation]:
    """Every once-only violation in ``records`` (module docstring), in the order of the
    records that reveal them: keys first, then voids, then payouts."""
    keys: dict[Any, int] = {}
    voids: dict[int, int] = {}  # withdrawn seq -> first approved void
    found: list[Violation] = []
    compensated: dict[tuple[Any, Any], list[int]] = {}
    clawed_back: dict[Any, list[int]] = {}
    refunds: dict[tuple[Any, Any], list[tuple[int, Decimal, Decimal]]] = {}
    for record in logged:
        recorded = read(record)
        if record.key is not None:
            key = stored_identifier(record.key)
            found += _twice(KEY_TWICE, keys, key, record.seq, f"the key {record.key!r} is recorded")
        if not recorded.approved:
            continue
        kind, result = recorded.kind, recorded.result
        if recorded.is_void:
            seq = recorded.withdraws
            if seq is not None:
                found += _twice(VOIDED_TWICE, voids, seq, record.seq, f"record {seq} is voided")
            continue
        order = stored_identifier(result.get("order_id"))
        if kind == "counterfeit_compensation":
            for line in _lines(result):
                compensated.setdefault((order, stored_identifier(line.get("line_id"))), []).append(
                    record.seq
                )
        elif kind == "forwarding_clawback":
            clawed_back.setdefault(order, []).append(record.seq)
        elif kind == "price_protection":
            for line in _lines(result):
                refund = _amount(line.get("refund"))
                if refund > 0:
                    refunds.setdefault((order, stored_identifier(line.get("line_id"))), []).append(
                        (record.seq, refund, _amount(line.get("entitled")))
                    )
    for (order, line_id), seqs in compensated.items():
        found += _paid_twice(
            seqs, voids, f"line {line_id} of order {order} is compensated", "SPEC §4: once per line"
        )
    for order, seqs in clawed_back.items():
        found += _paid_twice(
            seqs, voids, f"order {order} is clawed back", "SPEC §5: once per order"
        )
    for (order, line_id), paid in refunds.items():
        standing_refunds = [(seq, r, e) for seq, r, e in paid if seq not in voids]
        total = sum((r for _, r, _ in standing_refunds), Decimal(0))
        most = max((e for _, _, e in standing_refunds), default=Decimal(0))
        if len(standing_refunds) > 1 and total > most:
            found.append(
                Violation(
                    PAID_TWICE,
                    tuple(seq for seq, _, _ in standing_refunds),
                    f"line {line_id} of order {order} is refunded {fmt(total)} by records "
                    f"{_seqs([seq for seq, _, _ in standing_refunds])}, more than the "
                    f"{fmt(most)} any of them was entitled to (SPEC §3: a drop is paid once)",
                )
            )
    return found


def _twice(code: str, first: dict[Any, int], name: Any, seq: int, what: str) -> list[Violation]:
    """A violation when an earlier record held ``name`` (``what`` by that record and again by
    record ``seq``); otherwise none, and ``seq`` is the record that holds it first."""
    earlier = first.setdefault(name, seq)
    if earlier == seq:
        return []
    said = f"{what} by record {earlier} and again by record {seq}"
    return [Violation(code, (earlier, seq), said)]


def _paid_twice(seqs: list[int], voids: Mapping[int, int], what: str, rule: str) -> list[Violation]:
    """A violation when more than one of ``seqs`` stands (none of them voided): ``what`` by
    those records, against ``rule``."""
    standing = [seq for seq in seqs if seq not in voids]
    if len(standing) < 2:
        return []
    said = f"{what} by records {_seqs(standing)}, none voided ({rule})"
    return [Violation(PAID_TWICE, tuple(standing), said)]


def _seqs(seqs: list[int]) -> str:
    return ", ".join(str(seq) for seq in seqs)


__all__ = ["KEY_TWICE", "PAID_TWICE", "VOIDED_TWICE", "Violation", "once_only_violations"]
