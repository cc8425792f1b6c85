"""pricecalc.books.statement: a merchant's settlement statement for a period (SPEC §10) — its
rows, reversal rows, totals and the checkpoint it was cut from, read from the store.

The store is tests/statement_support.py's campaign (its table lists every record)."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from postgres_support import PgStore, pg_database, pg_server, pg_store  # noqa: F401
from statement_support import EXPECTED_ROWS, EXPECTED_TOTALS, campaign

import audit
from audit.merkle import EMPTY_ROOT
from audit.note import SigningKey, sign_checkpoint
from audit.protocol import GENESIS_HASH, AuditStore
from pricecalc.books.selection import period_bound
from pricecalc.books.statement import (
    CheckpointProblem,
    Statement,
    build_statement,
    checkpoint_cut,
    head_cut,
    statement_row,
)

KEY = SigningKey.generate("finance.example/statement-test")
ZERO = dict.fromkeys(("deduct_from_payout", "merchant_pays", "subsidy_clawback"), "0.00")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditStore]:
    path = tmp_path_factory.mktemp("statement") / "audit.jsonl"
    campaign(path)
    opened = audit.open_store(path)
    yield opened
    opened.close()


def of(store: AuditStore, since: str, until: str, merchant: str = "M1", **kw: Any) -> Statement:
    """The statement as `--since SINCE --until UNTIL` reads the period."""
    return build_statement(
        store, merchant, period_bound(since, end=False), period_bound(until, end=True), **kw
    )


def brief(statement: Statement) -> list[tuple[Any, ...]]:
    names = ("seq", "kind", "reverses", "deduct_from_payout", "merchant_pays", "subsidy_clawback")
    return [tuple(row[n] for n in names) for row in map(statement_row, statement.rows)]


def recomputed(store: AuditStore, merchant: str, since: str, until: str) -> dict[str, Decimal]:
    """The three sums recomputed from the records themselves, without pricecalc's
    readers: approved decisions of the merchant recorded in the period, and the negated
    amounts of what the approved voids in the period withdrew."""
    low, high = period_bound(since, end=False), period_bound(until, end=True)
    assert low is not None and high is not None
    sums = dict.fromkeys(("deduct_from_payout", "merchant_pays", "subsidy_clawback"), Decimal(0))

    def add(payload: Any, sign: int) -> None:
        result, kind = payload["result"], payload["kind"]
        if kind == "forwarding_clawback":
            sums["subsidy_clawback"] += sign * Decimal(result["clawback"])
        elif kind == "price_protection":
            sums[result["settlement"]] += sign * Decimal(result["refund_total"])
        elif kind == "counterfeit_compensation":
            sums[result["settlement"]] += sign * Decimal(result["payout_total"])

    for record in store.query():
        moment = datetime.fromisoformat(record.recorded_at.replace("Z", "+00:00"))
        payload = record.payload
        if not (low <= moment < high) or payload["status"] != "approved":
            continue
        if payload["kind"] == "void":
            withdrawn = store.record(payload["result"]["seq"])
            assert withdrawn is not None
            if withdrawn.payload.get("merchant_id") == merchant:
                add(withdrawn.payload, -1)
        elif payload.get("merchant_id") == merchant:
            add(payload, 1)
    return sums


def test_rows_and_totals_of_a_period(store: AuditStore) -> None:
    """SPEC §10: one row per money-moving approved decision, a reversal row per void (at
    the void's seq, naming what it reverses), a voided split giving none; totals equal
    the sums recomputed from the records."""
    statement = of(store, "2026-11-11", "2026-11-12")
    assert brief(statement) == EXPECTED_ROWS
    assert statement.totals.sums == EXPECTED_TOTALS
    assert statement.totals.sums == recomputed(store, "M1", "2026-11-11", "2026-11-12")
    assert statement.totals.rows == 5
    first = statement_row(statement.rows[0])
    record = store.record(2)
    assert record is not None
    assert first == {
        "seq": 2,
        "recorded_at_beijing": "2026-11-11 00:00:00",
        "kind": "counterfeit_compensation",
        "order_id": "O-2",
        "request_id": "req-2",
        "campaign": None,
        "reverses": None,
        "deduct_from_payout": "0.00",
        "merchant_pays": "748.00",
        "subsidy_clawback": "0.00",
        "hash": record.hash,
    }
    reversal = statement_row(statement.rows[3])
    void = store.record(7)
    assert void is not None
    assert (reversal["seq"], reversal["hash"], reversal["reverses"], reversal["request_id"]) == (
        7, void.hash, 6, "req-6",
    )  # fmt: skip


def test_the_period_ends_are_beijing_midnights_and_the_end_day_is_inclusive(
    store: AuditStore,
) -> None:
    """A record at 23:59:59.999999 on the day before is out, one at 00:00:00 on the first
    day in; the last day's 23:59:59.999999 is in, the next day's 00:00:00 out."""
    assert [r.seq for r in of(store, "2026-11-11", "2026-11-11").rows] == [2, 5, 6]
    assert [r.seq for r in of(store, "2026-11-10", "2026-11-10").rows] == [1]
    assert [r.seq for r in of(store, "2026-11-12", "2026-11-12").rows] == [7, 9]
    assert [r.seq for r in of(store, "2026-11-13", "2026-11-13").rows] == [10, 11]
    times = of(store, "2026-11-11T13:00", "2026-11-11T14:00")
    assert [r.seq for r in times.rows] == [5, 6]  # an ISO time's end is inclusive too


def test_a_void_and_what_it_withdrew_net_to_zero(store: AuditStore) -> None:
    """Seq 1 (11-10) and its void (11-13) in one statement: the column nets to zero."""
    statement = of(store, "2026-11-10", "2026-11-13")
    deducted = [(r.seq, r.reverses, r.cells()["deduct_from_payout"]) for r in statement.rows
                if r.seq in (1, 11)]  # fmt: skip
    assert deducted == [(1, None, "20.00"), (11, 1, "-20.00")]
    assert statement.totals.sums == recomputed(store, "M1", "2026-11-10", "2026-11-13")
    assert statement.totals.formatted() == {
        "deduct_from_payout": "539.90", "merchant_pays": "748.00", "subsidy_clawback": "600.00",
    }  # fmt: skip


def test_another_merchants_rows_are_never_included(store: AuditStore) -> None:
    """M2's statement holds only M2's record; M1's never holds seq 3."""
    assert brief(of(store, "2026-11-01", "2026-11-30", "M2")) == [
        (3, "counterfeit_compensation", None, "748.00", "0.00", "0.00")
    ]
    assert 3 not in [r.seq for r in of(store, "2026-11-01", "2026-11-30").rows]
    assert of(store, "2026-11-01", "2026-11-30", "M9").rows == ()


def test_a_period_with_no_decisions_is_an_empty_statement(store: AuditStore) -> None:
    """No rows, zero totals, and still the checkpoint (the store's head)."""
    statement = of(store, "2026-10-01", "2026-10-31")
    assert statement.rows == ()
    assert (statement.totals.formatted(), statement.totals.rows) == (ZERO, 0)
    assert statement.cut == head_cut(store)
    assert statement.cut.size == 11


def test_the_statement_ends_with_the_stores_head(store: AuditStore) -> None:
    """Without a checkpoint: the head's seq and hash, the tree's size and root."""
    cut = of(store, "2026-11-11", "2026-11-12").cut
    head = store.head()
    assert cut.fields() == {
        "source": "store_head",
        "origin": None,
        "tree_size": 11,
        "root": base64.b64encode(store.root(11)).decode("ascii"),
        "head_seq": head.seq,
        "head_hash": head.hash,
        "note": None,
    }


def test_a_published_checkpoint_cuts_the_statement_at_its_size(store: AuditStore) -> None:
    """Only rows with seq <= the checkpoint's size: the void (7) recorded after the
    checkpoint of size 6 is left out, so seq 6 stands."""
    note = sign_checkpoint(KEY, 6, store.root(6))
    statement = of(store, "2026-11-11", "2026-11-12", cut=checkpoint_cut(store, note))
    assert [r.seq for r in statement.rows] == [2, 5, 6]
    assert statement.totals.formatted() == {
        "deduct_from_payout": "20.00", "merchant_pays": "748.00", "subsidy_clawback": "400.00",
    }  # fmt: skip
    record = store.record(6)
    assert record is not None
    assert statement.cut.fields() == {
        "source": "signed_checkpoint",
        "origin": KEY.name,
        "tree_size": 6,
        "root": base64.b64encode(store.root(6)).decode("ascii"),
        "head_seq": 6,
        "head_hash": record.hash,
        "note": note,
    }


def test_a_checkpoint_of_another_store_or_unsigned_is_refused(
    store: AuditStore, tmp_path: Path
) -> None:
    """The checkpoint's root at its size must be this store's; a note must be signed."""
    other = tmp_path / "other.jsonl"
    campaign(other, upto=3)
    with audit.open_store(other) as foreign:
        note = sign_checkpoint(KEY, 3, foreign.root(3))
    problems = {
        "foreign": note,
        "larger": sign_checkpoint(KEY, 12, store.root(11)),
        "unsigned": note.split("\n\n")[0] + "\n\n",
        "garbage": "hello\n",
    }
    messages = {}
    for name, text in problems.items():
        with pytest.raises(CheckpointProblem) as caught:
            checkpoint_cut(store, text, "cp.txt")
        messages[name] = str(caught.value)
    assert messages == {
        "foreign": "cp.txt is not of this store (its root at size 3 differs, or the store is "
        "smaller)",
        "larger": "cp.txt is not of this store (its root at size 12 differs, or the store is "
        "smaller)",
        "unsigned": "cp.txt is not signed (it has no signature line)",
        "garbage": "cp.txt is not a signed checkpoint (malformed note: no blank line before "
        "the signatures)",
    }


def test_the_empty_store(tmp_path: Path) -> None:
    """An empty store: no rows, zero totals, the empty tree (size 0, SHA-256 of nothing)
    and the genesis hash as head."""
    with audit.open_store(tmp_path / "empty.jsonl") as empty:
        statement = of(empty, "2026-11-01", "2026-11-30")
    assert (statement.rows, statement.totals.formatted()) == ((), ZERO)
    assert (statement.cut.size, statement.cut.root, statement.cut.head_hash) == (
        0, EMPTY_ROOT, GENESIS_HASH,
    )  # fmt: skip


def test_the_seqs_a_statement_names_include_what_its_reversals_reverse(
    store: AuditStore,
) -> None:
    """--prove proves each row's seq and the seq each reversal row reverses."""
    assert of(store, "2026-11-12", "2026-11-12").proven_seqs() == [6, 7, 9]


@pytest.mark.postgres
def test_the_statement_on_postgresql_is_the_file_stores(
    store: AuditStore,
    pg_store: Callable[..., PgStore],  # noqa: F811 (the fixture imported above)
) -> None:
    """The same campaign on the PostgreSQL backend gives the same rows and totals."""
    url = pg_store("statement").app_url
    campaign(url)
    with audit.open_store(url) as pg:
        on_pg = of(pg, "2026-11-11", "2026-11-12")
    on_file = of(store, "2026-11-11", "2026-11-12")
    strip = [{k: v for k, v in statement_row(r).items() if k != "hash"} for r in on_file.rows]
    assert [{k: v for k, v in statement_row(r).items() if k != "hash"} for r in on_pg.rows] == strip
    assert brief(on_pg) == EXPECTED_ROWS
    assert on_pg.totals.sums == on_file.totals.sums == EXPECTED_TOTALS
