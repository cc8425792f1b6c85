"""What the file store trusts and what it checks (SPEC §7 "What the store may trust";
issue 19): the index is an accelerator whose every answer is checked, a rolled-back log is
refused for writing, one writer at a time even when the lock file is swapped, verify's
own diagnosis first, and a log read in time linear in its lines' lengths."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from audit_support import entry, fill, read_lines, write_lines
from click.testing import CliRunner

import audit
import audit.logfile
from audit import Entry, RolledBack, StoreLocked
from pricecalc.cli import cli

Opener = Callable[..., audit.TinyDBAuditStore]
FIXTURE_02 = Path(__file__).resolve().parents[1] / "fixtures" / "0.2" / "store-0.2.jsonl"


def index_of(path: Path) -> str:
    return f"{path}.idx"


def tamper(path: Path, *statements: str) -> None:
    with sqlite3.connect(index_of(path)) as conn:
        for statement in statements:
            conn.execute(statement)


def test_deleted_key_rows_are_noticed(
    open_tinydb: Opener, store_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 19: clearing a key's rows must not make a recorded key look new; the index
    is rebuilt (with a warning) and the record is found."""
    store = open_tinydb()
    records = fill(store, 6)
    store.close()
    tamper(store_path, "DELETE FROM names WHERE name = 'k:k3'")
    again = open_tinydb()
    with caplog.at_level(logging.WARNING, logger="audit"):
        assert again.get("k3") == records[2]
    assert "chain is broken" in caplog.text and "rebuilding it from the log" in caplog.text
    with pytest.raises(audit.DuplicateKey, match=r"'k3' is already recorded as record 3"):
        again.append(entry(3))


def test_every_key_row_deleted_is_noticed(open_tinydb: Opener, store_path: Path) -> None:
    """Issue 19: all key rows gone (a sentinel-to-tag chain left): every key still found."""
    store = open_tinydb()
    records = fill(store, 6)
    store.close()
    tamper(store_path, "DELETE FROM names WHERE name LIKE 'k:%'")
    again = open_tinydb()
    assert [again.get(f"k{n}") for n in range(1, 7)] == records
    assert again.get("k7") is None


@pytest.mark.parametrize("prefix", ["t:order:", "t:order:O1", "t:"])
def test_deleted_tag_rows_are_noticed(open_tinydb: Opener, store_path: Path, prefix: str) -> None:
    """Issue 19: deleting `order:` tag rows (some or all) must not hide a record from
    find — a once-only rule would pay again."""
    store = open_tinydb()
    records = fill(store, 9)
    store.close()
    tamper(store_path, f"DELETE FROM names WHERE name LIKE '{prefix}%'")
    again = open_tinydb()
    assert again.find("order:O1") == [r for r in records if "order:O1" in r.tags]
    assert again.find("order:O9") == []


def test_one_row_deleted_and_the_chain_mended_by_hand_is_still_noticed(
    open_tinydb: Opener, store_path: Path
) -> None:
    """Issue 19: without the store's key, a forger cannot mend the chain around a deleted
    row (each link carries a MAC over both ends): the record is still found."""
    store = open_tinydb(hmac_key=b"secret")
    records = fill(store, 6)
    store.close()
    with sqlite3.connect(index_of(store_path)) as conn:
        row = conn.execute("SELECT next_name, next_seq FROM names WHERE name = 'k:k3'").fetchone()
        conn.execute("DELETE FROM names WHERE name = 'k:k3'")
        conn.execute(
            "UPDATE names SET next_name = ?, next_seq = ? WHERE name = 'k:k2'", (row[0], row[1])
        )
    again = open_tinydb(hmac_key=b"secret")
    assert again.get("k3") == records[2]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE records SET offset = 0 WHERE seq = 3",
        "UPDATE records SET length = 7 WHERE seq = 3",
        "DELETE FROM records WHERE seq = 3",
        "UPDATE names SET seq = 4 WHERE name = 'k:k3'",
        "UPDATE names SET name = 'k:k9' WHERE name = 'k:k3'",
        "UPDATE names SET mac = x'00' WHERE name = 'k:k3'",
        "UPDATE names SET next_seq = 'x' WHERE name = 'k:k2'",
        "UPDATE state SET seq = 2",
        "UPDATE state SET digest = x'00'",
        "DELETE FROM state",
        "DROP TABLE names",
    ],
)
def test_an_edited_index_is_rebuilt(open_tinydb: Opener, store_path: Path, statement: str) -> None:
    """Issue 19: an edited row, a mangled type or a missing table: the answer is right, no
    traceback (the index is rebuilt from the log and the question asked once more)."""
    store = open_tinydb()
    records = fill(store, 6)
    store.close()
    tamper(store_path, statement)
    again = open_tinydb()
    assert again.get("k3") == records[2]
    assert again.record(3) == records[2]
    assert again.find("order:O0") == [records[2], records[5]]
    assert again.append(entry(7)).seq == 7
    assert again.verify().ok


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM names WHERE name = 'k:k3'",
        "DELETE FROM names WHERE name LIKE 'k:%'",
        "UPDATE names SET seq = 4 WHERE name = 'k:k3'",
        "UPDATE names SET name = 'k:k9' WHERE name = 'k:k3'",
        "UPDATE names SET mac = x'00' WHERE name = 'k:k3'",
        "UPDATE names SET next_seq = 'x' WHERE name = 'k:k2'",
        "UPDATE names SET next_name = NULL, next_seq = NULL WHERE name = 'k:k2'",
    ],
)
def test_a_groups_key_lookup_in_one_statement_is_proven_like_one_keys(
    open_tinydb: Opener, store_path: Path, statement: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 22: a group's keys are looked up in one statement (``lookup_many``); each
    answer is proven by the chain exactly as a lookup of one key is — same seqs, or the
    same IndexBroken — and a transaction's prefetch still finds every recorded key of a
    tampered index (rebuilt) and calls the others absent only then."""
    import audit.index
    from audit.index import IndexBroken, SidecarIndex

    monkeypatch.setattr(audit.index, "_NAMES_JOINED_FROM", 1)  # one name joined too
    store = open_tinydb()
    fill(store, 6)
    store.close()
    names = ["k:k1", "k:k2", "k:k3", "k:k6", "k:k7", "k:", "t:order:O0", "t:order:O9", "k:k3"]
    index = SidecarIndex(index_of(store_path))
    assert index.lookup_many(names) == {
        "k:k1": [1], "k:k2": [2], "k:k3": [3], "k:k6": [6], "k:k7": [], "k:": [],
        "t:order:O0": [3, 6], "t:order:O9": [],
    }  # fmt: skip
    index.close()
    tamper(store_path, statement)
    index = SidecarIndex(index_of(store_path))
    singles: dict[str, object] = {}
    for name in names:
        try:
            singles[name] = index.lookup(name)
        except IndexBroken as exc:
            singles[name] = str(exc)
        try:
            many: object = index.lookup_many([name])[name]
        except IndexBroken as exc:
            many = str(exc)
        assert many == singles[name], name
    broken = [answer for answer in singles.values() if isinstance(answer, str)]
    assert broken  # every statement breaks some name's proof
    with pytest.raises(IndexBroken) as caught:
        index.lookup_many(names)  # a group holding a broken name is refused whole
    assert str(caught.value) in broken
    index.close()
    again = open_tinydb()
    with again.transaction() as tx:
        tx.prefetch([f"k{n}" for n in range(1, 9)])
        assert [tx.get(f"k{n}") is not None for n in range(1, 9)] == [True] * 6 + [False] * 2
    assert again.verify().ok


def test_a_group_of_500_keys_is_looked_up_in_two_statements(open_tinydb: Opener) -> None:
    """Past 400 names the look-up goes on in a second statement, with the same answers."""
    store = open_tinydb()
    store.append_many([entry(n) for n in range(1, 451)])
    with store.transaction() as tx:
        tx.prefetch([f"k{n}" for n in range(1, 501)])
        assert [n for n in range(1, 501) if tx.get(f"k{n}") is None] == list(range(451, 501))
    from audit.index import SidecarIndex

    index = SidecarIndex(f"{store.path}.idx")
    found = index.lookup_many([f"k:k{n}" for n in range(1, 501)])
    assert found == {f"k:k{n}": ([n] if n <= 450 else []) for n in range(1, 501)}
    index.close()


def test_a_record_is_found_by_its_normalised_key_and_tag(open_tinydb: Opener) -> None:
    """SPEC §7: keys and tags are compared NFKC-normalised without surrounding whitespace,
    so a record written before normalisation is found by the normal spelling."""
    store = open_tinydb()
    old = store.append(Entry(payload={"n": 1}, key=" ｃｃ-1", tags=("order:Ｏ-1 ",)))
    assert store.get("cc-1") == old
    assert store.find("order:O-1") == [old]
    with pytest.raises(audit.DuplicateKey, match=r"'cc-1' is already recorded as record 1"):
        store.append(Entry(payload={"n": 2}, key="cc-1"))


def test_an_index_of_the_old_layout_is_rebuilt(open_tinydb: Opener, store_path: Path) -> None:
    """Issue 19: an index written before the checked layout (version 3) is rebuilt."""
    store = open_tinydb()
    records = fill(store, 3)
    store.close()
    Path(index_of(store_path)).unlink()
    with sqlite3.connect(index_of(store_path)) as conn:
        conn.execute("CREATE TABLE state (id INTEGER PRIMARY KEY, version INTEGER)")
        conn.execute("INSERT INTO state VALUES (1, 3)")
    again = open_tinydb()
    assert again.get("k2") == records[1]
    assert again.check_index() == []


def test_the_0_2_store_verifies_and_opens(tmp_path: Path) -> None:
    """Issue 19: the store written by 0.2 (tests/fixtures/0.2) verifies, its index is
    built in the checked layout, and its keys (raw content keys, successors) are found."""
    path = tmp_path / "store.jsonl"
    shutil.copy(FIXTURE_02, path)
    with audit.TinyDBAuditStore(path) as store:
        assert store.verify().ok
        first = next(iter(store.records()))
        assert first.key is not None and store.get(first.key) == first
        assert store.get("cc-1~void-8") is not None
        assert store.check_index() == []


def test_verify_deep_cross_checks_the_index(open_tinydb: Opener, store_path: Path) -> None:
    """Issue 19: `verify --deep` reports an index that disagrees with the log (and the
    store rebuilds it); plain verify stays on the chain."""
    store = open_tinydb()
    fill(store, 6)
    store.close()
    runner = CliRunner()
    deep = ["--audit", str(store_path), "audit", "verify", "--deep"]
    assert runner.invoke(cli, deep).exit_code == 0
    tamper(store_path, "DELETE FROM names WHERE name = 't:order:O1'")
    assert runner.invoke(cli, ["--audit", str(store_path), "audit", "verify"]).exit_code == 0
    result = runner.invoke(cli, deep)
    assert result.exit_code == 1
    assert "failed the deep checks: its index the tag 'order:O1' row of record 1 is" in (
        result.output
    )
    assert "(the index was rebuilt from the log)" in result.output
    assert runner.invoke(cli, deep).exit_code == 0


# -- a rolled-back log ------------------------------------------------------------------
def test_a_rolled_back_log_is_refused_until_accepted(
    open_tinydb: Opener, store_path: Path, tmp_path: Path
) -> None:
    """SPEC §7: a log restored from an old copy is refused for writing, naming the lost
    head, even with the index deleted; reads work; `audit accept-rollback` allows it."""
    store = open_tinydb()
    fill(store, 3)
    store.close()
    old_copy = tmp_path / "old.jsonl"
    shutil.copy(store_path, old_copy)
    store = open_tinydb()
    lost = store.append_many([entry(4), entry(5)])[-1]
    store.close()
    shutil.copy(old_copy, store_path)  # cp old-copy audit.jsonl
    Path(index_of(store_path)).unlink()
    again = open_tinydb()
    assert again.get("k3") is not None and again.get("k5") is None
    report = again.verify()  # the chain is intact, but behind what the store once wrote
    assert (report.ok, report.bad_seq) == (False, 5)
    assert report.problem is not None and report.problem.startswith(
        f"the audit log {store_path} was rolled back: record 5 (hash {lost.hash}) was written"
    )
    with pytest.raises(RolledBack, match=rf"record 5 \(hash {lost.hash}\) was written") as info:
        again.append(entry(6))
    assert (info.value.seq, info.value.hash) == (5, lost.hash)
    again.close()
    runner = CliRunner()
    result = runner.invoke(cli, ["--audit", str(store_path), "audit", "accept-rollback"])
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"accepted the rollback of the audit store {store_path}: its log ends at record 3 "
        f"(hash {_head_hash(store_path)}); record 5 (hash "
        f"{lost.hash}), which was written to it, is no longer there. Appends are allowed "
        "again; nothing else was recorded.\n"
    )
    assert len(read_lines(store_path)) == 3
    store = open_tinydb()
    assert store.append(entry(6)).seq == 4


def _head_hash(path: Path) -> str:
    value = json.loads(read_lines(path)[-1])
    assert isinstance(value, dict)
    return str(value["hash"])


def test_a_forked_log_of_the_same_length_is_refused(open_tinydb: Opener, store_path: Path) -> None:
    """SPEC §7: a log replaced by another with as many records (a fork) is not the one
    written: refused, naming the record it lost."""
    store = open_tinydb()
    fill(store, 3)
    store.close()
    lines = read_lines(store_path)
    mark = Path(f"{store_path}.head").read_bytes()
    for path in (store_path, Path(index_of(store_path)), Path(f"{store_path}.head")):
        path.unlink()
    other = open_tinydb()
    other.append_many([entry(7), entry(8), entry(9)])
    other.close()
    Path(f"{store_path}.head").write_bytes(mark)
    again = open_tinydb()
    with pytest.raises(RolledBack, match=r"record 3 \(hash [0-9a-f]{64}\) was written"):
        again.append(entry(10))
    assert json.loads(lines[-1])["hash"].encode("ascii") in mark


def test_accept_rollback_on_a_store_that_is_not_behind(
    open_tinydb: Opener, store_path: Path
) -> None:
    """`audit accept-rollback` on a log at its mark says so and records nothing; on a
    path with no store it creates none."""
    runner = CliRunner()
    missing = runner.invoke(cli, ["--audit", str(store_path), "audit", "accept-rollback"])
    assert missing.exit_code == 1
    assert f"there is no audit store at {store_path}" in missing.output
    assert not store_path.exists()
    open_tinydb().close()
    result = runner.invoke(cli, ["--audit", str(store_path), "audit", "accept-rollback"])
    assert result.exit_code == 0
    assert result.output == (
        f"the audit store {store_path} is not behind its high-water mark; it ends at no "
        "record (empty). Nothing to accept.\n"
    )


def test_a_torn_mark_slot_falls_back_to_the_slot_before(
    open_tinydb: Opener, store_path: Path
) -> None:
    """The mark's two slots: a write torn by a crash spoils one, the mark before it holds
    (it may lag the log, which is allowed; it never blocks a good log)."""
    store = open_tinydb()
    fill(store, 2)
    store.append(entry(3))
    store.close()
    mark = Path(f"{store_path}.head")
    data = bytearray(mark.read_bytes())
    assert len(data) == 512
    newest = 0 if b'"seq":3' in data[:256] else 256
    data[newest + 20] ^= 0x55
    mark.write_bytes(bytes(data))
    again = open_tinydb()
    assert again.append(entry(4)).seq == 4
    assert b'"seq":4' in Path(f"{store_path}.head").read_bytes()


# -- one writer at a time ---------------------------------------------------------------
@pytest.mark.parametrize("swap", ["delete", "replace"])
def test_a_swapped_lock_file_lets_no_second_writer_in(
    open_tinydb: Opener, store_path: Path, swap: str
) -> None:
    """Issue 19: deleting or replacing `.lock` while a writer holds it does not let a
    second writer in (the log itself is locked): never two records with one seq."""
    first = open_tinydb()
    second = open_tinydb(lock_timeout=0.3)
    lock = Path(f"{store_path}.lock")
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with first.transaction() as tx:
            tx.append(entry(1))
            holding.set()
            release.wait(10)

    writer = threading.Thread(target=hold)
    writer.start()
    try:
        assert holding.wait(10)
        lock.unlink()
        if swap == "replace":
            lock.write_bytes(b"")
        with pytest.raises(StoreLocked, match=r"could not lock the audit log .* within 0.3s"):
            second.append(entry(2))
    finally:
        release.set()
        writer.join()
    assert second.append(entry(2)).seq == 2
    seqs = [json.loads(line)["seq"] for line in read_lines(store_path)]
    assert seqs == [1, 2]
    assert second.verify().ok


# -- verify's diagnosis -----------------------------------------------------------------
def test_verify_reports_the_chains_own_diagnosis_first(
    open_tinydb: Opener, store_path: Path
) -> None:
    """Issue 19: two records with one seq (a fork) are reported as such, with the record
    number — not as a Merkle cache to rebuild."""
    store = open_tinydb()
    fill(store, 20)
    assert store.verify().ok  # the tree is kept
    store.close()
    lines = read_lines(store_path)
    write_lines(store_path, [*lines, lines[-1]])
    report = open_tinydb().verify()
    assert (report.ok, report.bad_seq) == (False, 20)
    assert report.problem == "record 20 appears twice (duplicated)"


# -- limits -----------------------------------------------------------------------------
def test_read_blocks_is_linear_in_line_length(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19: a line much longer than a read chunk is joined once, not re-copied at
    every chunk (a 200 MB line was quadratic): count the bytes the reader joins."""
    joined: list[int] = []
    real = audit.logfile._join

    def counting(parts: list[bytes]) -> bytes:
        joined.append(sum(map(len, parts)))
        return real(parts)

    monkeypatch.setattr(audit.logfile, "_join", counting)
    long = b"x" * (4 * 1024 * 1024)
    path = tmp_path / "log"
    path.write_bytes(b"a\n" + long + b"\nb\nc")
    blocks = list(audit.logfile.read_blocks(str(path), path.stat().st_size, chunk=4096))
    assert [line for block in blocks for line in block] == [b"a", long, b"b"]
    assert sum(joined) <= len(long) + 4096


@pytest.mark.parametrize("statement", ["DELETE FROM records WHERE seq = 1", "DELETE FROM records"])
def test_a_time_query_sees_records_whose_rows_were_deleted(
    open_tinydb: Opener, store_path: Path, statement: str
) -> None:
    """Issue 19: a period's span comes from an index with no record row missing."""
    store = open_tinydb()
    records = fill(store, 4)
    store.close()
    since = datetime.fromisoformat(records[0].recorded_at)
    tamper(store_path, statement)
    assert list(open_tinydb().query(since=since)) == records


def test_groups_indexed_from_memory_make_the_chain_a_rebuild_makes(open_tinydb: Opener) -> None:
    """Issue 22: groups whose names fall between, before and after existing ones, share
    tags and repeat a tag within the group, indexed from the commits held in memory,
    leave exactly the chain the log makes (check_index empty)."""
    store = open_tinydb()
    order = [5, 1, 9, 3, 7, 2, 8, 4, 6, 10, 0, 11]
    for start in range(0, len(order), 4):
        store.append_many(
            [
                Entry({"n": n}, key=f"k{n:02d}", tags=(f"order:O{n % 3}", f"t{n % 2}", "all"))
                for n in order[start : start + 4]
            ]
        )
        assert store.check_index() == []
    with store.transaction() as tx:
        tx.prefetch([f"k{n:02d}" for n in range(14)])
        assert [n for n in range(14) if tx.get(f"k{n:02d}") is None] == [12, 13]
    assert [r.payload["n"] for r in store.find("order:O1")] == [1, 7, 4, 10]
    assert len(store.find("all")) == 12
