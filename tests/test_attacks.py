"""The attacker's and bad luck's tries at issue 19 that the first round left open (SPEC §1
identifiers, SPEC §7 "What the store may trust"): each test pins the exact outcome — no
second payout, the exact error — of one reproduction."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest

import pricecalc
from audit import IncompleteRecordWarning, RolledBack, StoreUnusable, accept_rollback
from audit.index import SidecarIndex
from audit.mark import format_mark
from audit.protocol import Checkpoint
from pricecalc.calculator import Calculator

NOW = datetime(2026, 11, 12, 1, 0, tzinfo=UTC)


def compensation(order: str = "O-1", paid: str = "39.90") -> dict[str, Any]:
    return {
        "kind": "counterfeit_compensation",
        "merchant_id": "M1",
        "input": {
            "order_id": order,
            "confirmed": True,
            "lines": [{"line_id": "L1", "paid_amount": paid}],
        },
    }


# -- SPEC §1: invisible characters outside the format categories --------------------------
@pytest.mark.parametrize(
    "char",
    [
        "\u034f",  # COMBINING GRAPHEME JOINER (Mn, default ignorable)
        "\u115f",  # HANGUL CHOSEONG FILLER (Lo, default ignorable)
        "\u1160",  # HANGUL JUNGSEONG FILLER
        "\u3164",  # HANGUL FILLER (NFKC makes it U+1160)
        "\uffa0",  # HALFWIDTH HANGUL FILLER
        "\u17b4",  # KHMER VOWEL INHERENT AQ (Mn, default ignorable)
        "\u180b",  # MONGOLIAN FREE VARIATION SELECTOR ONE
        "\ufe00",  # VARIATION SELECTOR-1
        "\ufe0f",  # VARIATION SELECTOR-16
        "\U000e0100",  # VARIATION SELECTOR-17
        "\u2800",  # BRAILLE PATTERN BLANK (shows as a blank)
    ],
)
def test_an_invisible_character_of_any_category_is_refused(tmp_path: Path, char: str) -> None:
    """SPEC §1, issue 19: 'O-1' followed by a character that shows nothing (a default
    ignorable code point such as the combining grapheme joiner, a Hangul filler, a
    variation selector, or the blank braille pattern) is not a new order: it is refused
    naming the field and the code point, and order O-1 is not compensated twice."""
    with Calculator(tmp_path / "audit.jsonl", operator="clerk") as calc:
        assert calc.decide(compensation(), now=NOW).status == "approved"
        shown = f"U+{ord(unicodedata.normalize('NFKC', char)):04X}"  # U+3164 is U+1160
        with pytest.raises(
            pricecalc.InvalidInput,
            match=rf"^input\.order_id: must not contain an invisible or control character "
            rf"\({re.escape(shown)}\): look-alike ids would make one order two",
        ):
            calc.decide(compensation(order="O-1" + char, paid="49.90"), now=NOW)
        assert calc.store.head().seq == 1


# -- SPEC §7: the high-water mark and its second witness, the index ----------------------
def _paid_then_rolled_back(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A store whose record 2 (order O-2 paid) is lost by `cp old-copy audit.jsonl`;
    returns the log, an old copy of the mark (taken with the old log) and the lost hash
    file's path."""
    path = tmp_path / "audit.jsonl"
    with Calculator(path, operator="clerk") as calc:
        calc.decide(compensation("O-1"), now=NOW)
    shutil.copy(path, tmp_path / "old.jsonl")
    shutil.copy(f"{path}.head", tmp_path / "old.head")
    with Calculator(path, operator="clerk") as calc:
        second = calc.decide(compensation("O-2"), now=NOW)
        assert second.status == "approved" and second.audit is not None
        (tmp_path / "lost").write_text(second.audit.hash)
    shutil.copy(tmp_path / "old.jsonl", path)
    return path, tmp_path / "old.head", tmp_path / "lost"


@pytest.mark.parametrize("mark", ["old copy", "deleted", "garbled"])
def test_a_log_rolled_back_with_its_mark_is_caught_by_the_index(tmp_path: Path, mark: str) -> None:
    """SPEC §7, issue 19: the log restored from an old copy together with its `.head`
    (or with `.head` deleted, or its bytes garbled) — the index still knows record 2, so
    writing is refused naming it (and `verify` says so), and order O-2 is not paid a second
    time; reads work."""
    path, old_head, lost = _paid_then_rolled_back(tmp_path)
    head = Path(f"{path}.head")
    if mark == "old copy":
        shutil.copy(old_head, head)
    elif mark == "deleted":
        head.unlink()
    else:
        head.write_bytes(b"x" * 512)
    digest = lost.read_text()
    with Calculator(path, operator="clerk") as calc:
        report = calc.store.verify()  # the chain is intact, and behind what was written
        assert (report.ok, report.bad_seq) == (False, 2)
        assert f"record 2 (hash {digest}) was written to it" in str(report.problem)
        with pytest.raises(
            RolledBack, match=rf"record 2 \(hash {digest}\) was written to it, but the log now"
        ):
            calc.decide(compensation("O-2", "49.90"), now=NOW)
        assert calc.store.head().seq == 1


def test_a_read_that_rebuilds_the_index_keeps_its_witness(tmp_path: Path) -> None:
    """SPEC §7: a read-only look (which rebuilds the index from the rolled-back log) before
    the first write does not erase the evidence: the mark is raised to the index's head
    before the index is thrown away, and writing is refused naming record 2."""
    path, _, lost = _paid_then_rolled_back(tmp_path)
    Path(f"{path}.head").unlink()
    with Calculator(path, operator="clerk") as calc:
        assert calc.store.get("nothing") is None  # the rebuild happens here
    digest = lost.read_text()
    with (
        Calculator(path, operator="clerk") as calc,
        pytest.raises(RolledBack, match=rf"record 2 \(hash {digest}\)"),
    ):
        calc.decide(compensation("O-2", "49.90"), now=NOW)


def test_a_garbled_mark_alone_refuses_writing_until_accepted(tmp_path: Path) -> None:
    """SPEC §7: a `.head` whose both slots are unreadable cannot vouch for the log: with no
    other witness, writing is refused (never a warning and a payout) until an operator
    accepts; after `accept_rollback` the store writes again."""
    path = tmp_path / "audit.jsonl"
    with Calculator(path, operator="clerk") as calc:
        calc.decide(compensation("O-1"), now=NOW)
    Path(f"{path}.idx").unlink()
    Path(f"{path}.head").write_bytes(b"\xff" * 512)
    with (
        Calculator(path, operator="clerk") as calc,
        pytest.raises(
            RolledBack,
            match=rf"^the high-water mark {path}\.head is unreadable: the audit log {path} "
            r"may have been rolled back with it\. Appends are refused until an operator "
            r"accepts the rollback \(audit accept-rollback\)$",
        ),
    ):
        calc.decide(compensation("O-2"), now=NOW)
    assert accept_rollback(path).startswith(
        f"the audit store {path} is not behind its high-water mark; it ends at record 1"
    )
    with Calculator(path, operator="clerk") as calc:
        assert calc.decide(compensation("O-2"), now=NOW).status == "approved"


def test_accept_rollback_clears_the_witness(tmp_path: Path) -> None:
    """SPEC §7: once an operator accepts the rollback, the index's memory of the lost
    record does not refuse writing again; the lost payout can then be decided again."""
    path, _, lost = _paid_then_rolled_back(tmp_path)
    Path(f"{path}.head").unlink()
    said = accept_rollback(path)
    assert said.startswith(f"accepted the rollback of the audit store {path}: its log ends at")
    assert f"record 2 (hash {lost.read_text()}), which was written to it, is no longer" in said
    with Calculator(path, operator="clerk") as calc:
        assert calc.decide(compensation("O-2"), now=NOW).status == "approved"
        assert calc.store.head().seq == 2


def test_a_store_opened_through_a_symlink_keeps_one_mark(tmp_path: Path) -> None:
    """SPEC §7, issue 19: the same log opened as `real/audit.jsonl` by one script and
    through a symlink `link.jsonl` by another keeps one high-water mark, index and lock
    (beside the real log): a payout written through the link and lost by
    `cp old-copy real/audit.jsonl` is not paid again through the real path."""
    real = tmp_path / "real"
    real.mkdir()
    log = real / "audit.jsonl"
    link = tmp_path / "link.jsonl"
    with Calculator(log, operator="clerk") as calc:
        calc.decide(compensation("O-1"), now=NOW)
    link.symlink_to(log)
    shutil.copy(log, tmp_path / "old.jsonl")
    with Calculator(link, operator="clerk") as calc:
        second = calc.decide(compensation("O-2"), now=NOW)
        assert second.status == "approved" and second.audit is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.jsonl", "old.jsonl", "real"]
    shutil.copy(tmp_path / "old.jsonl", log)
    with (
        Calculator(log, operator="clerk") as calc,
        pytest.raises(RolledBack, match=rf"record 2 \(hash {second.audit.hash}\) was written"),
    ):
        calc.decide(compensation("O-2", "49.90"), now=NOW)


@pytest.mark.parametrize(("seq", "offset"), [(1, -5), (-1, 0)])
def test_a_mark_with_a_negative_number_is_unreadable_not_a_crash(
    tmp_path: Path, seq: int, offset: int
) -> None:
    """SPEC §7: a `.head` slot with a right checksum but a negative seq or offset (written
    by hand) is an unreadable mark — writing refused with the sentence for it, never a
    raw `OSError: [Errno 22] Invalid argument`."""
    path = tmp_path / "audit.jsonl"
    with Calculator(path, operator="clerk") as calc:
        first = calc.decide(compensation("O-1"), now=NOW)
        calc.decide(compensation("O-3"), now=NOW)
    assert first.audit is not None
    Path(f"{path}.idx").unlink()
    slot = format_mark(7, Checkpoint(seq, first.audit.hash), offset)
    Path(f"{path}.head").write_bytes(slot + slot)
    with (
        Calculator(path, operator="clerk") as calc,
        pytest.raises(RolledBack, match=rf"^the high-water mark {path}\.head is unreadable"),
    ):
        calc.decide(compensation("O-2"), now=NOW)


def test_a_last_record_that_lost_only_its_newline_is_kept(tmp_path: Path) -> None:
    """SPEC §7, issue 19: a log whose last line lost only its newline (a script that
    rewrote it with '\\n'.join) still holds that record whole, and the high-water mark
    proves it was acknowledged: opening the store (even to verify) restores the newline
    instead of cutting an acknowledged payout off the log; the order is not paid again."""
    path = tmp_path / "audit.jsonl"
    with Calculator(path, operator="clerk") as calc:
        calc.decide(compensation("O-1"), now=NOW)
        calc.decide(compensation("O-2"), now=NOW)
    data = path.read_bytes()
    path.write_bytes(data[:-1])
    with (
        pytest.warns(IncompleteRecordWarning, match=r"record \(2\) had lost its newline; restored"),
        Calculator(path, operator="clerk") as calc,
    ):
        assert calc.store.verify().count == 2
        again = calc.decide(compensation("O-2", "49.90"), now=NOW)
        assert [r.code for r in again.reasons] == ["ALREADY_COMPENSATED"]
    assert path.read_bytes().startswith(data)


def test_a_log_with_a_second_hard_link_is_not_written(tmp_path: Path) -> None:
    """SPEC §7, issue 19: a log with another name (`ln audit.jsonl other.jsonl`) would
    keep a mark and an index beside each name, so a payout written through one name and
    lost by a rollback would be paid again through the other: appends are refused while
    the log has more than one name (reads go on); with the link removed, writing resumes."""
    log = tmp_path / "audit.jsonl"
    other = tmp_path / "other.jsonl"
    with Calculator(log, operator="clerk") as calc:
        calc.decide(compensation("O-1"), now=NOW)
    os.link(log, other)
    for name in (log, other):
        with (
            Calculator(name, operator="clerk") as calc,
            pytest.raises(
                StoreUnusable,
                match=rf"^the audit log {name} has 2 names \(hard links\): its high-water "
                r"mark, index and lock sit beside one name, so a writer through another "
                r"would not see them\. Appends are refused until the other links are "
                r"removed \(keep a copy with cp instead\)$",
            ),
        ):
            calc.decide(compensation("O-2"), now=NOW)
        with Calculator(name, operator="clerk") as calc:
            assert calc.store.verify().count == 1
    other.unlink()
    with Calculator(log, operator="clerk") as calc:
        assert calc.decide(compensation("O-2"), now=NOW).status == "approved"


@pytest.mark.parametrize("field", ["end_offset", "last_offset", "seq", "tree_size"])
def test_an_index_state_with_a_negative_number_is_rebuilt(tmp_path: Path, field: str) -> None:
    """SPEC §7 ("any inconsistency means rebuild, never a traceback"): an unkeyed index's
    state row rewritten with a negative offset, seq or size and its SHA-256 recomputed is
    an index that cannot be trusted — rebuilt from the log, the order not paid again —
    never a raw `OSError: [Errno 22] Invalid argument`."""
    path = tmp_path / "audit.jsonl"
    with Calculator(path, operator="clerk") as calc:
        calc.decide(compensation("O-1"), now=NOW)
        calc.decide(compensation("O-2"), now=NOW)
    index = SidecarIndex(f"{path}.idx")
    state = attrs.evolve(index.state(), **{field: -5})
    index.conn.execute(f"UPDATE state SET {field} = -5, mac = ?", (index.macs.state(state),))
    index.close()
    with Calculator(path, operator="clerk") as calc:
        again = calc.decide(compensation("O-2", "49.90"), now=NOW)
        assert [r.code for r in again.reasons] == ["ALREADY_COMPENSATED"]
        assert calc.store.head().seq == 3


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE records SET offset = -5 WHERE seq = 2",
        "UPDATE records SET length = 4000000000000 WHERE seq = 2",
        "UPDATE records SET offset = 4000000000000 WHERE seq = 2",
    ],
)
def test_a_record_row_pointing_outside_the_log_is_rebuilt(tmp_path: Path, statement: str) -> None:
    """SPEC §7, issue 19: a record row (no MAC of its own) with a negative offset or a
    length or offset past the log (an edit, or a flipped bit) makes the index rebuilt —
    never a raw `OSError`, never a 4 TB read (`MemoryError`) failing the decision."""
    path = tmp_path / "audit.jsonl"
    with Calculator(path, operator="clerk") as calc:
        calc.decide(compensation("O-1"), now=NOW)
        calc.decide(compensation("O-2"), now=NOW)
    with sqlite3.connect(f"{path}.idx") as conn:
        conn.execute(statement)
    with Calculator(path, operator="clerk") as calc:
        again = calc.decide(compensation("O-2", "49.90"), now=NOW)
        assert [r.code for r in again.reasons] == ["ALREADY_COMPENSATED"]
        assert calc.store.head().seq == 3
