"""shipping_check — ship within 48 hours of payment, jewelry exempt (SPEC §6; seed 002
第五条 1(2)).

Reached through the ``shipping_check`` entry point of chaozhigou-pricecalc-admission.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

import pricecalc
from pricecalc.decision import Decision
from pricecalc.plugins import load_registry

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
REGISTRY = load_registry()
PAID = "2026-11-11T10:00"


def check(
    shipped_at: Any, category: Any = "food", paid_at: Any = PAID, policy: Any = None
) -> Decision:
    request = {
        "kind": "shipping_check",
        "input": {"paid_at": paid_at, "shipped_at": shipped_at, "category": category},
    }
    return pricecalc.evaluate(request, now=NOW, registry=REGISTRY, policy=policy)


def test_late_shipment_example() -> None:
    """SPEC §6: paid 11-11 10:00, shipped 11-13 11:30 → 49.50 hours, SHIPPED_LATE."""
    d = check("2026-11-13T11:30")
    assert d.status == "rejected"
    assert d.result == {
        "paid_at": "2026-11-11T10:00:00+08:00",
        "shipped_at": "2026-11-13T11:30:00+08:00",
        "category": "food",
        "exempt": False,
        "max_hours": "48",
        "deadline": "2026-11-13T10:00:00+08:00",
        "hours_taken": "49.50",
        "late": True,
    }
    assert [(r.code, r.message) for r in d.reasons] == [
        (
            "SHIPPED_LATE",
            "shipped at 2026-11-13T11:30:00+08:00, 49.50 hours after payment, after the "
            "deadline 2026-11-13T10:00:00+08:00 (48 hours after payment)",
        )
    ]
    assert (d.rule_set, d.rule_version) == ("chaozhigou-pricecalc-admission", "0.1.0")
    assert d.plugins == {"shipping_check": "0.1.0"}
    assert d.policy == {
        "shipping_check": {"max_hours": 48, "exempt_categories": ["jewelry", "珠宝"]}
    }


@pytest.mark.parametrize(
    ("shipped_at", "hours", "late"),
    [
        ("2026-11-11T10:00", "0.00", False),
        ("2026-11-12T09:35", "23.58", False),
        ("2026-11-12T09:59:59", "24.00", False),  # 23.9997 h rounds half up
        ("2026-11-13T09:59:59", "48.00", False),
        ("2026-11-13T10:00", "48.00", False),  # exactly at the deadline: on time
        ("2026-11-13T10:00:00.000001", "48.00", True),  # a microsecond later: late
        ("2026-11-13T10:00:01", "48.00", True),
        ("2026-11-13T10:00:18", "48.01", True),  # 48.005 h rounds half up
        ("2026-11-13T10:18", "48.30", True),
        ("2026-11-14T10:00", "72.00", True),
    ],
)
def test_deadline_is_closed(shipped_at: str, hours: str, late: bool) -> None:
    """SPEC §1/§6: the window is closed — shipped exactly at paid_at + 48 h is on time."""
    d = check(shipped_at)
    assert (d.result["hours_taken"], d.result["late"]) == (hours, late)
    assert [r.code for r in d.reasons] == (["SHIPPED_LATE"] if late else [])


def test_offsets_are_compared_as_instants() -> None:
    """SPEC §1: times with different offsets are the same instants; output is Beijing time."""
    d = check("2026-11-13T02:00:00Z", paid_at="2026-11-11T02:00:00+00:00")
    assert d.result["paid_at"] == "2026-11-11T10:00:00+08:00"
    assert d.result["deadline"] == "2026-11-13T10:00:00+08:00"
    assert (d.result["hours_taken"], d.result["late"]) == ("48.00", False)
    assert check("2026-11-13T03:00:00Z", paid_at="2026-11-11T10:00").result["late"] is True


@pytest.mark.parametrize("category", ["jewelry", "珠宝", "Jewelry ", " 珠宝"])
def test_jewelry_is_exempt(category: str) -> None:
    """SPEC §6: jewelry (jewelry / 珠宝) has no shipping deadline."""
    d = check("2026-11-20T10:00", category=category)
    assert d.status == "approved"
    assert d.result["exempt"] is True
    assert d.result["deadline"] is None
    assert d.result["hours_taken"] == "216.00"
    assert d.result["late"] is False


def test_without_category_the_deadline_applies() -> None:
    """``category`` is optional; without it the order is not exempt."""
    d = check("2026-11-14T10:00", category=None)
    assert d.result["category"] is None
    assert [r.code for r in d.reasons] == ["SHIPPED_LATE"]


def test_max_hours_is_configurable_and_recorded() -> None:
    """SPEC §6 (configurable): policy shipping_check.max_hours moves the deadline."""
    policy = pricecalc.Policy.from_mapping({"shipping_check": {"max_hours": 72}})
    d = check("2026-11-13T11:30", policy=policy)
    assert d.status == "approved"
    assert d.result["deadline"] == "2026-11-14T10:00:00+08:00"
    assert d.policy["shipping_check"]["max_hours"] == 72
    strict = pricecalc.Policy.from_mapping({"shipping_check": {"max_hours": "24.5"}})
    d = check("2026-11-12T10:31", policy=strict)
    assert d.result["deadline"] == "2026-11-12T10:30:00+08:00"
    assert d.reasons[0].message.endswith("(24.5 hours after payment)")


def test_exempt_categories_are_configurable() -> None:
    """SPEC §6 (configurable): the exempt list is a policy value."""
    policy = pricecalc.Policy.from_mapping(
        {"shipping_check": {"exempt_categories": ["furniture", "家具"]}}
    )
    assert check("2026-11-20T10:00", category="家具", policy=policy).approved
    assert not check("2026-11-20T10:00", category="jewelry", policy=policy).approved


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "policy: shipping_check.max_hours must be greater than 0, got 0"),
        ("two days", "policy: shipping_check.max_hours must be a number, got 'two days'"),
    ],
)
def test_bad_max_hours_is_refused(value: Any, message: str) -> None:
    """A policy value of the wrong shape is a PolicyError naming the key."""
    policy = pricecalc.Policy.from_mapping({"shipping_check": {"max_hours": value}})
    with pytest.raises(pricecalc.PolicyError) as excinfo:
        check("2026-11-12T10:00", policy=policy)
    assert str(excinfo.value) == message


@pytest.mark.parametrize(
    ("shipped_at", "paid_at", "message"),
    [
        (
            "2026-11-11T09:59",
            PAID,
            "input.shipped_at: must not be before paid_at (2026-11-11T10:00:00+08:00) "
            "(got '2026-11-11T09:59')",
        ),
        (
            "yesterday",
            PAID,
            'input.shipped_at: must be an ISO 8601 time such as "2026-11-11T10:00" '
            "(got 'yesterday')",
        ),
        (None, PAID, "input.shipped_at: is required but missing"),
        ("2026-11-12T10:00", None, "input.paid_at: is required but missing"),
    ],
)
def test_invalid_times(shipped_at: Any, paid_at: Any, message: str) -> None:
    """Invalid input names the field; shipping before payment is invalid."""
    with pytest.raises(pricecalc.InvalidInput) as excinfo:
        check(shipped_at, paid_at=paid_at)
    assert str(excinfo.value) == message
