"""Requests the group-commit and sync tests decide many of: a counterfeit-compensation
claim for one order line, and a void naming the record it withdraws (SPEC §7)."""

from __future__ import annotations

from typing import Any


def compensation(paid: str, line: str, order: str, key: str | None) -> dict[str, Any]:
    """A confirmed 假一赔十 claim for ``line`` of ``order``, paid ``paid``, under ``key``
    (None: content-keyed)."""
    request: dict[str, Any] = {
        "kind": "counterfeit_compensation",
        "input": {
            "order_id": order,
            "confirmed": True,
            "lines": [{"line_id": line, "paid_amount": paid}],
        },
    }
    if key is not None:
        request["request_id"] = key
    return request


def void(seq: int, target: str, key: str | None) -> dict[str, Any]:
    """A void of ``seq`` naming ``target`` (SPEC §7): it matches when record ``seq`` holds
    that key, else the void is rejected VOID_TARGET_MISMATCH."""
    request: dict[str, Any] = {
        "kind": "void",
        "input": {"seq": seq, "reason": "wrong amount", "target": target},
    }
    if key is not None:
        request["request_id"] = key
    return request
