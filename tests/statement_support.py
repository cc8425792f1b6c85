"""A small campaign store for the settlement statement's tests (SPEC §10), its records
stamped on chosen Beijing times by a clock the store is given (``clock=``).

:func:`campaign` records, in seq order (Beijing times; the period of the tests is
2026-11-11..2026-11-12):

==== ===================== ======================================================== =========
seq  recorded             decision                                                  in period
==== ===================== ======================================================== =========
1    11-10 23:59:59.999999 M1 price protection O-1, deduct_from_payout 20.00         no
2    11-11 00:00:00        M1 counterfeit O-2, merchant_pays 748.00                  yes
3    11-11 10:00           M2 counterfeit O-3, deduct_from_payout 748.00             (M2)
4    11-11 12:00           M1 subsidy split (moves no money)                         no row
5    11-11 13:00           M1 forwarding clawback O-5, 400.00                        yes
6    11-11 14:00           M1 price protection O-6, deduct_from_payout 20.00         yes
7    11-12 09:00           void of 6 → reversal −20.00                              yes
8    11-12 10:00           void of 4 (a split: no row)                              no row
9    11-12 23:59:59.999999 M1 counterfeit O-9, deduct_from_payout 539.90            yes
10   11-13 00:00:00        M1 forwarding clawback O-10, 200.00                       no
11   11-13 01:00           void of 1 (after the period)                             no
==== ===================== ======================================================== =========
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import audit
from pricecalc.calculator import Calculator
from pricecalc.fields import BEIJING

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=BEIJING)  # the rules' clock (claims are in time)

#: The rows of M1's statement for 2026-11-11..2026-11-12: (seq, kind, reverses, deduct,
#: merchant_pays, clawback).
EXPECTED_ROWS = [
    (2, "counterfeit_compensation", None, "0.00", "748.00", "0.00"),
    (5, "forwarding_clawback", None, "0.00", "0.00", "400.00"),
    (6, "price_protection", None, "20.00", "0.00", "0.00"),
    (7, "price_protection", 6, "-20.00", "0.00", "0.00"),
    (9, "counterfeit_compensation", None, "539.90", "0.00", "0.00"),
]
EXPECTED_TOTALS = {
    "deduct_from_payout": Decimal("539.90"),
    "merchant_pays": Decimal("748.00"),
    "subsidy_clawback": Decimal("400.00"),
}


def beijing(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=BEIJING)


class Clock:
    """The time the store stamps on the next record (set before each decision)."""

    def __init__(self) -> None:
        self.now = beijing("2026-11-01T00:00:00")

    def __call__(self) -> datetime:
        return self.now.astimezone(UTC)

    def at(self, text: str) -> None:
        self.now = beijing(text)


def protection(order: str, merchant: str, *, refused: bool = True) -> dict[str, Any]:
    """SPEC §3's first example: paid_net 190.00, a drop to 90.00 → refund 20.00."""
    return {
        "kind": "price_protection",
        "merchant_id": merchant,
        "input": {
            "order_id": order,
            "paid_at": "2026-11-11T10:00",
            "claimed_at": "2026-11-12T09:00",
            "order_status": "paid",
            "merchant_refused": refused,
            "event": {"start": "2026-11-10T00:00", "end": "2026-11-12T23:59:59"},
            "lines": [{"line_id": "L1", "sku": "A", "quantity": 2, "unit_price": "100.00"}],
            "offers": [
                {"type": "coupon", "amount": "10.00", "threshold": "100.00"},
                {"type": "direct_drop", "sku": "A", "unit_price": "90.00",
                 "at": "2026-11-11T20:00"},
            ],
        },
    }


def counterfeit(order: str, paid: str, merchant: str, *, refused: bool) -> dict[str, Any]:
    """假一赔十: paid 68.00 → 748.00; paid 39.90 → 539.90 (the 500 minimum)."""
    return {
        "kind": "counterfeit_compensation",
        "merchant_id": merchant,
        "input": {
            "order_id": order,
            "confirmed": True,
            "merchant_refused": refused,
            "lines": [{"line_id": "L1", "paid_amount": paid}],
        },
    }


def clawback(order: str, subsidy: str, merchant: str) -> dict[str, Any]:
    """A forwarded order's platform subsidy, twice (quantity 2)."""
    return {
        "kind": "forwarding_clawback",
        "merchant_id": merchant,
        "input": {
            "order_id": order,
            "category": "手机",
            "platform_subsidy": subsidy,
            "quantity": 2,
            "forwarded": True,
        },
    }


def split(merchant: str) -> dict[str, Any]:
    return {
        "kind": "subsidy_split",
        "merchant_id": merchant,
        "input": {
            "list_price": "199.00",
            "registration_price": "169.00",
            "subsidy_price": "149.00",
            "floor_price": "139.00",
            "cost_price": "120.00",
            "lowest_price_30d": "175.00",
            "quantity": 2,
        },
    }


def void(seq: int) -> dict[str, Any]:
    """A void of record ``seq``, which :func:`campaign` records under ``req-<seq>``."""
    return {
        "kind": "void",
        "input": {"seq": seq, "reason": "decided in error", "target": f"req-{seq}"},
    }


CAMPAIGN: list[tuple[str, dict[str, Any]]] = [
    ("2026-11-10T23:59:59.999999", protection("O-1", "M1")),
    ("2026-11-11T00:00:00", counterfeit("O-2", "68.00", "M1", refused=False)),
    ("2026-11-11T10:00:00", counterfeit("O-3", "68.00", "M2", refused=True)),
    ("2026-11-11T12:00:00", split("M1")),
    ("2026-11-11T13:00:00", clawback("O-5", "200.00", "M1")),
    ("2026-11-11T14:00:00", protection("O-6", "M1")),
    ("2026-11-12T09:00:00", void(6)),
    ("2026-11-12T10:00:00", void(4)),
    ("2026-11-12T23:59:59.999999", counterfeit("O-9", "39.90", "M1", refused=True)),
    ("2026-11-13T00:00:00", clawback("O-10", "100.00", "M1")),
    ("2026-11-13T01:00:00", void(1)),
]


def campaign(where: str | Path, upto: int | None = None) -> None:
    """Record :data:`CAMPAIGN` (its first ``upto`` decisions) in the store at ``where``,
    each approved, on its Beijing time, decision ``n`` under request_id ``req-<n>``."""
    clock = Clock()
    store = audit.open_store(where, clock=clock)
    with Calculator(store, operator="clerk-li") as calc:
        for n, (moment, request) in enumerate(CAMPAIGN[:upto], 1):
            clock.at(moment)
            decision = calc.decide({**request, "request_id": f"req-{n}"}, now=NOW)
            assert decision.status == "approved", (request, decision.reasons)
