"""A seq voided twice (SPEC §7): the rules reject a second void, but were one ever found
in a store — written here through the audit store API, around the rule — the statement
and the campaign report reverse the seq once, at its first void, and name the anomaly:
the statement in its totals (``anomalies``), its CSV/Excel end lines and a warning on
stderr; the report on its page. Never paid back twice."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

import audit
from audit.protocol import Entry
from pricecalc import Calculator
from pricecalc.books.report import Cut, ReportHeader, collect, render_report
from pricecalc.books.selection import Filters, period_bound
from pricecalc.books.settlement import DoubleVoid
from pricecalc.books.statement import build_statement
from pricecalc.cli import cli

START = datetime(2026, 11, 10, 2, 0, tzinfo=UTC)  # 10:00 Beijing, one record a day
SENTENCE = (
    "record 4 voids record 1 a second time (record 2 already voided it): not reversed again"
)


@pytest.fixture
def twice(tmp_path: Path) -> Iterator[Path]:
    """seq 1: a 假一赔十 payout of M1 (748.00, deducted); seq 2: its void; seq 3: a
    clawback of M1 (400.00); seq 4: a second void of seq 1, appended directly."""
    path = tmp_path / "audit.jsonl"
    days = iter(START + timedelta(days=i) for i in range(10))
    store = audit.open_store(str(path), clock=lambda: next(days))
    with Calculator(store, operator="li") as calc:
        calc.decide({
            "kind": "counterfeit_compensation", "merchant_id": "M1", "request_id": "cf-1",
            "input": {"order_id": "O-77", "confirmed": True, "merchant_refused": True,
                      "lines": [{"line_id": "L1", "paid_amount": "68.00"}]},
        })  # fmt: skip
        calc.decide({"kind": "void", "input": {"seq": 1, "reason": "wrong", "target": "cf-1"}})
        calc.decide({
            "kind": "forwarding_clawback", "merchant_id": "M1", "request_id": "fw-1",
            "input": {"order_id": "O-88", "category": "手机", "platform_subsidy": "200.00",
                      "quantity": 2, "forwarded": True},
        })  # fmt: skip
        first_void = calc.store.record(2)
        assert first_void is not None and first_void.payload["status"] == "approved"
        again = dict(first_void.payload, input={**first_void.payload["input"], "reason": "again"})
        written = calc.store.append(Entry(again, key="void-again", tags=first_void.tags))
        assert written.seq == 4
    yield path


def test_the_statement_reverses_the_seq_once_and_names_the_anomaly(twice: Path) -> None:
    store = audit.open_store(str(twice))
    statement = build_statement(store, "M1")
    assert [(m.seq, m.reverses, m.cells()["deduct_from_payout"]) for m in statement.rows] == [
        (1, None, "748.00"), (2, 1, "-748.00"), (3, None, "0.00"),
    ]  # fmt: skip
    assert statement.anomalies == (DoubleVoid(seq=4, reverses=1, first=2),)
    assert statement.totals.formatted() == {
        "deduct_from_payout": "0.00", "merchant_pays": "0.00", "subsidy_clawback": "400.00",
    }  # fmt: skip
    assert statement.totals_fields()["anomalies"] == [SENTENCE]


def test_a_second_void_in_a_period_without_the_first_gives_no_row(twice: Path) -> None:
    """The first void lies before the period: the second is still no reversal (found by
    the seq's voids tag in the whole store), and is named."""
    store = audit.open_store(str(twice))
    late = build_statement(  # the fourth record's Beijing day
        store, "M1", period_bound("2026-11-13", end=False), period_bound("2026-11-13", end=True)
    )
    assert late.rows == ()
    assert late.anomalies == (DoubleVoid(seq=4, reverses=1, first=2),)
    assert late.totals.formatted()["deduct_from_payout"] == "0.00"


def test_a_statement_without_the_anomaly_says_nothing_of_it(twice: Path) -> None:
    """Cut before the second void: no anomaly, and the totals line has no such field."""
    store = audit.open_store(str(twice))
    from pricecalc.books.statement import Cut as StatementCut

    cut = StatementCut(3, store.root(3), store.record(3).hash)  # type: ignore[union-attr]
    statement = build_statement(store, "M1", cut=cut)
    assert statement.anomalies == ()
    assert "anomalies" not in statement.totals_fields()


def test_the_command_line_warns_and_writes_the_anomaly(
    twice: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pricecalc statement`: a warning on stderr; the JSON Lines totals line carries
    ``anomalies``; a CSV's totals file (beside it, SPEC §10: no totals in data columns)
    has an ``anomaly`` line."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    done = runner.invoke(cli, ["--audit", str(twice), "statement", "--merchant", "M1",
                               "--since", "2026-11-01", "--until", "2026-11-30",
                               "-o", "s.jsonl"])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert done.stderr == f"warning: {SENTENCE}\n"
    lines = [json.loads(x) for x in Path("s.jsonl").read_text(encoding="utf-8").splitlines()]
    (totals,) = [x for x in lines if x["type"] == "totals"]
    assert totals["anomalies"] == [SENTENCE]
    assert totals["deduct_from_payout"] == "0.00" and totals["rows"] == 3
    as_csv = runner.invoke(cli, ["--audit", str(twice), "statement", "--merchant", "M1",
                                 "--since", "2026-11-01", "--until", "2026-11-30",
                                 "-o", "s.csv"])  # fmt: skip
    assert as_csv.exit_code == 0, as_csv.output
    assert SENTENCE not in Path("s.csv").read_bytes().decode("utf-8")
    text = Path("s.totals.csv").read_bytes().decode("utf-8")
    assert f"anomaly,{SENTENCE}\r\n" in text


def test_the_report_reverses_once_and_shows_the_anomaly(twice: Path) -> None:
    """The report agrees with the statement to the fen, and says so on the page."""
    store = audit.open_store(str(twice))
    figures = collect(store, Cut(Filters(), store.tree_size()))
    assert figures.reversals == 1
    assert figures.anomalies == [DoubleVoid(seq=4, reverses=1, first=2)]
    assert figures.settlement.sums["deduct_from_payout"] == Decimal("0.00")
    assert figures.merchants["M1"].sums == build_statement(store, "M1").totals.sums
    page = render_report(figures, ReportHeader(str(twice), 4, store.root().hex(), 4, "h"))
    assert f'data-anomaly="4">异常：同一记录被作废两次，只冲销一次。Anomaly: {SENTENCE}</p>' in page
