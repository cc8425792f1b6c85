"""Never paid twice, whatever the file store's index says (SPEC §7 "What the store may
trust"; issue 19): index rows deleted, edited, or one byte of the index file flipped — the
once-only rules still see every record, replays still replay, statements still total
right, and nothing raises a traceback."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

import audit
from pricecalc.calculator import Calculator
from pricecalc.cli import cli

NOW = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
ORDERS = 6


def compensation(order: str, request_id: str, paid: str = "539.90") -> dict[str, Any]:
    return {
        "kind": "counterfeit_compensation",
        "request_id": request_id,
        "merchant_id": "M1",
        "input": {
            "order_id": order,
            "confirmed": True,
            "lines": [{"line_id": "L1", "paid_amount": paid}],
        },
    }


def make_store(path: Path) -> None:
    with Calculator(str(path), operator="clerk") as calc:
        for n in range(1, ORDERS + 1):
            assert calc.decide(compensation(f"O-{n}", f"cc-{n}"), now=NOW).status == "approved"


def assert_paid_once(path: Path) -> None:
    """Every order line is refused a second payout, every key replays, nothing is new."""
    with Calculator(str(path), operator="clerk") as calc:
        for n in range(1, ORDERS + 1):
            again = calc.decide(compensation(f"O-{n}", f"again-{n}", "549.90"), now=NOW)
            assert again.status == "rejected", n
            assert [r.code for r in again.reasons] == ["ALREADY_COMPENSATED"]
            replay = calc.decide(compensation(f"O-{n}", f"cc-{n}"), now=NOW)
            assert replay.replayed and replay.audit is not None and replay.audit.seq == n
        assert calc.store.head().seq == 2 * ORDERS  # only the rejections were recorded
        assert calc.store.verify().ok


def tamper(path: Path, statement: str) -> None:
    with sqlite3.connect(f"{path}.idx") as conn:
        conn.execute(statement)


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM names WHERE name LIKE 't:order:%'",
        "DELETE FROM names WHERE name LIKE 'k:%'",
        "DELETE FROM names WHERE name = 't:order:O-3'",
        "DELETE FROM names WHERE name LIKE 't:merchant:%'",
        "UPDATE names SET name = 't:order:O-9' WHERE name = 't:order:O-3'",
        "DELETE FROM records WHERE seq > 2",
        "UPDATE state SET seq = 1, last_offset = 0",
    ],
)
def test_index_rows_deleted_or_edited_pay_nothing_twice(tmp_path: Path, statement: str) -> None:
    """Issue 19: `order:` tag rows, key rows or `merchant:` rows deleted (or edited): no
    order line is compensated twice and no key records a second payout."""
    path = tmp_path / "audit.jsonl"
    make_store(path)
    tamper(path, statement)
    assert_paid_once(path)


def test_a_statement_totals_right_with_merchant_rows_deleted(tmp_path: Path) -> None:
    """Issue 19: a missing `merchant:` row made a statement total 1,496.00 where 2,244.00
    was owed; the statement is the same with the rows deleted."""
    path = tmp_path / "audit.jsonl"
    make_store(path)
    args = ["--audit", str(path), "statement", "--merchant", "M1", "-o", "-"]
    args += ["--since", "2020-01-01", "--until", "2099-12-31"]
    runner = CliRunner()
    before = runner.invoke(cli, args)
    assert before.exit_code == 0, before.output
    assert before.output.count("O-") == ORDERS
    tamper(path, "DELETE FROM names WHERE name LIKE 't:merchant:%' AND seq % 2 = 0")
    after = runner.invoke(cli, args)
    assert (after.exit_code, after.output) == (0, before.output)


ROOT: list[Any] = []


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "audit.jsonl"
    make_store(path)
    with audit.TinyDBAuditStore(path) as store:
        ROOT[:] = [store.root(), store.inclusion_proof(2)]
    return path


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(page=st.integers(0, 63), offset=st.integers(0, 4095), flip=st.integers(1, 255))
def test_one_byte_flipped_in_the_index_pays_nothing_twice(
    template: Path, page: int, offset: int, flip: int
) -> None:
    """Issue 19: one byte changed anywhere in the index file (a page, an offset; a power
    loss or a disk) never pays a line twice and never raises a traceback — one trial paid
    9 lines twice before."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "audit.jsonl"
        shutil.copy(template, path)
        shutil.copy(f"{template}.idx", f"{path}.idx")
        data = bytearray(Path(f"{path}.idx").read_bytes())
        at = (page * 4096 + offset) % len(data)
        data[at] ^= flip
        Path(f"{path}.idx").write_bytes(bytes(data))
        with audit.TinyDBAuditStore(path) as store:
            try:  # the tree's cache may be what was hit: a clear error, then it is rebuilt
                proof = store.inclusion_proof(2)
            except audit.AuditError as exc:
                assert "rebuilt from the log" in str(exc)
                proof = store.inclusion_proof(2)
            assert (store.root(), proof) == (ROOT[0], ROOT[1])
        assert_paid_once(path)


@pytest.mark.parametrize("write_version", [3, 255])
def test_an_index_header_calling_itself_read_only_is_rebuilt(
    tmp_path: Path, write_version: int
) -> None:
    """Issue 19 (found by the byte-flip test): byte 18 of an SQLite file is its "write
    version"; above 2 SQLite treats the file as read-only. A writable index whose header
    says so is damaged, not unavailable: it is rebuilt and nothing is paid twice (before,
    every decision stopped with "attempt to write a readonly database")."""
    path = tmp_path / "audit.jsonl"
    make_store(path)
    data = bytearray(Path(f"{path}.idx").read_bytes())
    data[18] = write_version
    Path(f"{path}.idx").write_bytes(bytes(data))
    assert_paid_once(path)


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE records RENAME COLUMN seq TO sek",  # "no such column: seq"
        "ALTER TABLE names RENAME TO nomen",  # "no such table: names"
    ],
)
def test_an_index_whose_schema_lost_a_column_is_rebuilt(tmp_path: Path, statement: str) -> None:
    """Issue 19 (found by the byte-flip test in CI): one byte in the index's schema page
    can make SQLite answer "no such column" — an OperationalError that is damage, not an
    unavailable disk: the index is rebuilt and nothing is paid twice (before, every
    decision stopped with "the index … is unavailable")."""
    path = tmp_path / "audit.jsonl"
    make_store(path)
    tamper(path, statement)
    assert_paid_once(path)
