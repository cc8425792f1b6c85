"""pricecalc.records owns the decision record both ways, and the books read the rules'
declarations instead of naming kinds (issue 20 points 1 and 2; SPEC §7, §10)."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

import audit
from pricecalc import Calculator, records
from pricecalc.books.selection import Filters
from pricecalc.books.settlement import movement_of
from pricecalc.builtin import builtin_declarations
from pricecalc.files.rows import record_row
from pricecalc.plugins import load_registry
from pricecalc.policy import Policy
from pricecalc.registry import DEDUCT_FROM_PAYOUT, SETTLEMENT, SUBSIDY_CLAWBACK, MoneyFigure

PACKAGE = Path(__file__).resolve().parent.parent / "pricecalc"
NOW = datetime(2026, 11, 13, 2, 0, tzinfo=UTC)

#: The books: modules that read decisions back and must ask the declarations.
BOOKS = (
    "records.py",
    "books/settlement.py",
    "books/selection.py",
    "files/rows.py",
    "books/statement.py",
    "books/report/aggregate.py",
    *(
        f"cli/{p.name}"
        for p in sorted((PACKAGE / "cli").glob("*.py"))
        if p.name != "rules.py"  # the rule commands: each rule's own way in
    ),
)


def _strings(path: Path) -> set[str]:
    """Every string constant of a module except docstrings."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    }


def test_no_book_names_a_built_in_kind_or_its_result_fields() -> None:
    """Issue 20 point 2: settlement, record filters, rows/stats/exports, the statement, the
    report's aggregation and the command line (but the rule commands) name no built-in
    kind and no result field of one: they read the kinds' declared figures."""
    declared = builtin_declarations()
    forbidden = set(declared.figures) | {f.field for _, f in declared.all_figures()}
    forbidden.add("standard")  # the counterfeit lines' winning standard
    assert {"forwarding_clawback", "refund_total", "payout_total", "clawback"} <= forbidden
    found = {
        module: sorted(_strings(PACKAGE / module) & forbidden)
        for module in BOOKS
        if _strings(PACKAGE / module) & forbidden
    }
    assert found == {}


def test_no_module_but_records_reads_a_record_payload() -> None:
    """Issue 20 point 1: ``record.payload`` is read in pricecalc/records.py only."""
    readers = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "records.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "payload"
                and not (isinstance(node.value, ast.Name) and node.value.id == "records")
            ):
                readers.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert readers == []


def test_every_installed_kind_declares_its_codes_and_built_ins_their_figures() -> None:
    """Issue 20 point 2, SPEC §6, §10: every code a kind lists is explained in Chinese and
    English (one line each); the built-in kinds carry SPEC §10's figure names."""
    registry = load_registry(Policy())
    declared = registry.declarations()
    for kind in registry.kinds():
        for code in declared.codes[kind]:
            assert code.zh and code.en and "\n" not in code.zh + code.en, (kind, code)
    names = {(kind, f.name, f.zh, f.field, f.feeds) for kind, f in registry.figures()}
    assert names >= {
        ("subsidy_split", "merchant_subsidy", "商家补贴", "merchant_subsidy_total", None),
        ("subsidy_split", "platform_subsidy", "平台补贴", "platform_subsidy_total", None),
        ("price_protection", "price_protection_refunds", "价保退款", "refund_total", SETTLEMENT),
        ("counterfeit_compensation", "counterfeit_refunds", "假一赔十退款", "refund_total", None),
        ("counterfeit_compensation", "counterfeit_compensation", "假一赔十赔偿",
         "compensation_total", None),
        ("counterfeit_compensation", "counterfeit_payouts", "假一赔十赔付合计", "payout_total",
         SETTLEMENT),
        ("forwarding_clawback", "subsidy_clawback", "转寄追回补贴", "clawback", SUBSIDY_CLAWBACK),
    }  # fmt: skip
    codes = {c.code for kind in registry.kinds() for c in declared.codes[kind]}
    assert {"BELOW_FLOOR", "ALREADY_REFUNDED", "NOT_CONFIRMED", "ALREADY_CLAWED_BACK",
            "ALREADY_VOIDED", "NEWCOMER", "SHIPPED_LATE", "BANNED",
            "NO_THRESHOLD_FOR_CATEGORY"} <= codes  # fmt: skip
    assert declared.explain("BELOW_FLOOR") is not None
    assert declared.explain("BELOW_FLOOR", "void") is None
    assert declared.explain("NO_SUCH_CODE") is None


def test_a_figure_feeds_a_known_column_or_none() -> None:
    """A figure's settlement column is one of SPEC §10's (or the record's settlement)."""
    with pytest.raises(ValueError, match="'feeds' must be in"):
        MoneyFigure("x", "x", "x", "x", feeds="payout")
    assert MoneyFigure("x", "x", "x", "x", feeds=DEDUCT_FROM_PAYOUT).label("zh") == "x"


def _order(path: Path, order_id: str) -> None:
    with Calculator(path, operator="clerk-li") as calc:
        calc.decide(
            {
                "kind": "forwarding_clawback",
                "request_id": "fc-1",
                "merchant_id": "M1",
                "input": {
                    "order_id": order_id,
                    "category": "手机",
                    "platform_subsidy": "200.00",
                    "quantity": 2,
                    "forwarded": True,
                },
            },
            now=NOW,
        )
        calc.decide(
            {"kind": "void", "input": {"seq": 1, "reason": "wrong order", "target": "fc-1"}},
            now=NOW,
        )


def test_one_order_id_for_tag_and_display(tmp_path: Path) -> None:
    """Issue 20: `" O1 "` is tagged `order:O1` and shown `O1` — by the record, its
    statement row, its export row and the order filter alike."""
    path = tmp_path / "audit.jsonl"
    _order(path, " O1 ")
    store = audit.open_store(str(path))
    try:
        first = store.record(1)
        assert first is not None
        recorded = records.read(first)
        assert "order:O1" in first.tags
        assert recorded.order_id == "O1"
        assert record_row(first)["order_id"] == "O1"
        moved = movement_of(first)
        assert moved is not None and moved.order_id == "O1"
        assert [r.seq for r in Filters(order_id="O1").records(store)] == [1, 2]
    finally:
        store.close()


def test_a_recorded_decision_reads_back_what_was_decided(tmp_path: Path) -> None:
    """SPEC §7: the frozen RecordedDecision holds what the record says — kind, status,
    request, result, operator — and a void says which seq it withdraws; replaying it
    gives the decision recorded."""
    path = tmp_path / "audit.jsonl"
    _order(path, "O-9")
    store = audit.open_store(str(path))
    try:
        first, void = store.record(1), store.record(2)
        assert first is not None and void is not None
        recorded, withdrawing = records.read(first), records.read(void)
        assert (recorded.kind, recorded.status, recorded.key, recorded.merchant_id) == (
            "forwarding_clawback", "approved", "fc-1", "M1",
        )  # fmt: skip
        assert recorded.operator == "clerk-li" and recorded.withdraws is None
        assert recorded.request["input"]["order_id"] == "O-9"
        assert [(f.name, v) for f, v in recorded.figures()] == [
            ("subsidy_clawback", Decimal("400.00"))
        ]
        assert (withdrawing.kind, withdrawing.withdraws, withdrawing.is_void) == ("void", 1, True)
        assert withdrawing.merchant_id == "M1"  # the void's result names whom it was for
        replayed = records.replay(first)
        assert replayed.replayed and replayed.result["clawback"] == "400.00"
        assert replayed.audit is not None and replayed.audit.seq == 1
        with pytest.raises(AttributeError, match=r"can.t set attribute"):
            recorded.kind = "other"  # type: ignore[misc]
    finally:
        store.close()


def test_records_of_0_1_read_the_same() -> None:
    """SPEC §7: a 0.1 record (request under ``request``, ``request_id`` in the payload)
    reads as today's."""
    old = records.from_payload(
        {
            "request": {"kind": "void", "request_id": "r-1", "input": {"seq": 3, "reason": "x"},
                        "merchant_id": "M2"},
            "kind": "void",
            "request_id": "r-1",
            "status": "approved",
            "result": {"seq": 3},
        },
        seq=7,
    )  # fmt: skip
    assert (old.key, old.merchant_id, old.withdraws, old.input) == (
        "r-1", "M2", 3, {"seq": 3, "reason": "x"},
    )  # fmt: skip
