"""`pricecalc audit verify-proof` says, after its OK line, what the proven record decided in
the merchant's terms (issue 24; SPEC §9, §10): the kind, the order, each money figure by its
SPEC §10 name with its Chinese and English label (as the installed rules declare them — a
plugin's kind shows its own), the settlement and the recorded time in Beijing time — read
from the verified record in the proof document alone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cli_support import CLEAN_ENV
from click.testing import CliRunner, Result

import audit
from audit.protocol import Record
from pricecalc import Calculator
from pricecalc.builtin import builtin_declarations
from pricecalc.cli import cli
from pricecalc.cli.proofs import decided_lines
from pricecalc.decision import Outcome
from pricecalc.registry import DEDUCT_FROM_PAYOUT, Declarations, MoneyFigure, ReasonCode, Rule

NAME = "finance.example/chaozhigou-test"
#: 2026-12-07 17:25 UTC is 2026-12-08 01:25 in Beijing (the issue's example).
FIRST = datetime(2026, 12, 7, 17, 25, tzinfo=UTC)


def run(*args: str) -> Result:
    """``pricecalc ARGS`` in the current folder (the fixture's)."""
    return CliRunner().invoke(cli, list(args), env=CLEAN_ENV)


@pytest.fixture
def proven(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A store of three decisions a minute apart — an approved 假一赔十 deducted from the
    payout, a rejected one, a void of the first — a signing key and a checkpoint."""
    monkeypatch.chdir(tmp_path)
    ticks = iter(FIRST + timedelta(minutes=i) for i in range(10))
    store = audit.open_store("audit.jsonl", clock=lambda: next(ticks))
    with Calculator(store, operator="clerk") as calc:
        calc.decide({"kind": "counterfeit_compensation", "request_id": "cf-1",
                     "merchant_id": "M-1001", "campaign": "双12-2026",
                     "input": {"order_id": "CF-30006", "confirmed": True,
                               "merchant_refused": True,
                               "lines": [{"line_id": "L1", "paid_amount": "129.00"}]}})
        calc.decide({"kind": "counterfeit_compensation", "request_id": "cf-2",
                     "merchant_id": "M-1001",
                     "input": {"order_id": "CF-30007", "confirmed": False,
                               "lines": [{"line_id": "L1", "paid_amount": "68.00"}]}})
        calc.decide({"kind": "void", "request_id": "void-1",
                     "input": {"seq": 1, "reason": "wrong order", "target": "cf-1"}})
    made = run("audit", "keygen", NAME, "--output", "signing.key")
    assert made.exit_code == 0, made.output
    Path("verifier.key").write_text(made.stdout, encoding="utf-8")
    signed = run("--audit", "audit.jsonl", "audit", "checkpoint", "--signing-key",
                 "signing.key", "-o", "cp.txt")  # fmt: skip
    assert signed.exit_code == 0, signed.output
    yield tmp_path


def verify(folder: Path, seq: int) -> list[str]:
    proof = folder / f"proof-{seq}.json"
    made = run("--audit", "audit.jsonl", "audit", "prove", str(seq), "--checkpoint", "cp.txt",
               "-o", str(proof))  # fmt: skip
    assert made.exit_code == 0, made.output
    checked = run("audit", "verify-proof", str(proof), "--verifier-key", "verifier.key")
    assert checked.exit_code == 0, checked.output
    lines = checked.stdout.splitlines()
    assert lines[0].startswith(f"OK: record {seq} (hash ")
    return lines[1:]


def test_a_payout_deducted_from_the_payout(proven: Path) -> None:
    """The merchant reads the payout (1,419.00), not only the refund (129.00), each by its
    SPEC §10 name; the settlement; the time in Beijing time, 8 hours after the UTC one."""
    assert verify(proven, 1) == [
        "record 1 decided / 记录 1 的决定:",
        "  kind 类型: 假一赔十 counterfeit_compensation",
        "  order 订单号: CF-30006",
        "  request_id 请求号: cf-1",
        "  merchant 商家: M-1001",
        "  campaign 活动: 双12-2026",
        "  status 状态: 已批准 approved",
        "  假一赔十退款 counterfeit refunds (counterfeit_refunds): 129.00",
        "  假一赔十赔偿 counterfeit compensation (counterfeit_compensation): 1290.00",
        "  假一赔十赔付合计 counterfeit payouts (counterfeit_payouts): 1419.00",
        "  settlement 结算方式: deduct_from_payout — 从货款扣除 deducted from the merchant's "
        "payout",
        "  recorded at 记录时间: 2026-12-08 01:25:00 +08:00 北京时间 Beijing time "
        "(recorded_at 2026-12-07T17:25:00.000000Z)",
    ]


def test_a_rejection_names_its_reason_explained(proven: Path) -> None:
    """A rejected decision moved no money: no figure, its code with the rule's one-line
    explanation in Chinese and English."""
    assert verify(proven, 2) == [
        "record 2 decided / 记录 2 的决定:",
        "  kind 类型: 假一赔十 counterfeit_compensation",
        "  order 订单号: CF-30007",
        "  request_id 请求号: cf-2",
        "  merchant 商家: M-1001",
        "  status 状态: 已驳回 rejected",
        "  reason 原因: NOT_CONFIRMED 平台未确认为假货 (the platform has not confirmed a "
        "counterfeit)",
        "  recorded at 记录时间: 2026-12-08 01:26:00 +08:00 北京时间 Beijing time "
        "(recorded_at 2026-12-07T17:26:00.000000Z)",
    ]


def test_a_void_names_the_record_it_withdraws(proven: Path) -> None:
    """A void says which seq it withdraws (the statement's reversal row is proven by it)."""
    lines = verify(proven, 3)
    assert lines[0] == "record 3 decided / 记录 3 的决定:"
    assert "  kind 类型: 作废 void" in lines
    assert "  withdraws 作废的记录号: 1" in lines
    assert not any("counterfeit" in line for line in lines)


def test_only_the_verified_record_is_read(proven: Path) -> None:
    """A document whose record was changed (a larger payout) is refused before anything
    is said about its money."""
    made = run("--audit", "audit.jsonl", "audit", "prove", "1", "--checkpoint", "cp.txt")
    doc: dict[str, Any] = json.loads(made.stdout)
    doc["record"]["payload"]["result"]["payout_total"] = "14190.00"
    (proven / "forged.json").write_text(json.dumps(doc), encoding="utf-8")
    checked = run("audit", "verify-proof", "forged.json", "--verifier-key", "verifier.key")
    assert checked.exit_code == 1
    assert "14190.00" not in checked.output and "decided" not in checked.output
    assert checked.output.startswith("Error: proof refused: record: ")


def test_a_plugins_kind_shows_its_own_figures() -> None:
    """A stranger's kind: its declared figures by their names and labels, its own label."""
    rule = Rule(
        kind="gift_card_topup", rule_set="stranger", version="1.0",
        parse=lambda fields, ctx: None, decide=lambda inp, ctx: Outcome(result={}),
        figures=(MoneyFigure("gift_card_topups", "礼品卡补款", "gift card top-ups", "topup",
                             feeds=DEDUCT_FROM_PAYOUT),),
        codes=(ReasonCode("CARD_EXPIRED", "礼品卡已过期", "the gift card has expired"),),
        label="礼品卡补款",
    )  # fmt: skip
    books = builtin_declarations()
    declarations = Declarations.of([rule])
    assert "gift_card_topup" not in books.figures
    record = Record(
        seq=7, id="x", recorded_at="2026-11-10T16:00:00.000000Z", key="g-1", tags=(),
        payload={"kind": "gift_card_topup", "status": "approved", "input": {"order_id": "G1"},
                 "result": {"topup": "12.30"}, "reasons": []},
        prev_hash="0" * 64, hash="h",
    )  # fmt: skip
    assert decided_lines(record, declarations) == [
        "record 7 decided / 记录 7 的决定:",
        "  kind 类型: 礼品卡补款 gift_card_topup",
        "  order 订单号: G1",
        "  request_id 请求号: g-1",
        "  status 状态: 已批准 approved",
        "  礼品卡补款 gift card top-ups (gift_card_topups): 12.30",
        "  recorded at 记录时间: 2026-11-11 00:00:00 +08:00 北京时间 Beijing time "
        "(recorded_at 2026-11-10T16:00:00.000000Z)",
    ]
    foreign = Record(seq=8, id="y", recorded_at="2026-11-10T16:00:00Z", key=None, tags=(),
                     payload={"note": "not a decision"}, prev_hash="h", hash="i")  # fmt: skip
    assert decided_lines(foreign, declarations) == []
