"""The sidecar index keeps lookups cheap and is only a cache: the log file is the truth.

get/find go to the index, not through the file; a missing, corrupt, stale or foreign index
is rebuilt from the log; opening a store reads only the end of the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from audit_support import entry, fill

import audit
import audit.tinydb_handle
import audit.tinydb_index
import audit.tinydb_log
import audit.tinydb_lookup
from audit.logfile import LogFile

Opener = Callable[..., audit.TinyDBAuditStore]


def no_scans(*args: object) -> Iterator[tuple[int, bytes]]:
    raise AssertionError("the log file was scanned")


def forbid_scans(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every module of the log handle that streams the log fail if it does."""
    for module in (audit.tinydb_handle, audit.tinydb_lookup, audit.tinydb_log):
        monkeypatch.setattr(module, "iter_lines", no_scans)


def test_lookups_do_not_scan_the_log(open_tinydb: Opener, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_tinydb()
    records = fill(store, 300)
    store.get("k1")  # the index is up to date from here on
    forbid_scans(monkeypatch)
    assert store.get("k150") == records[149]
    assert store.get("missing") is None
    assert store.find("order:O2")[-1] == records[-2]
    assert store.append(entry(301)).seq == 301  # appending (with a key check) neither
    assert store.get("k301") is not None
    assert store.head().seq == 301


def test_opening_reads_only_the_tail(
    open_tinydb: Opener, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The head is found by reading the file backwards from its end: opening a big store
    and appending to it reads a few KiB, not the whole file."""
    store = open_tinydb()
    for start in range(0, 5000, 1000):
        store.append_many([audit.Entry({"n": n}) for n in range(start, start + 1000)])
    store.close()
    size = store_path.stat().st_size
    read: list[int] = []
    real_pread = LogFile.pread

    def counting_pread(self: LogFile, offset: int, length: int) -> bytes:
        read.append(length)
        return real_pread(self, offset, length)

    monkeypatch.setattr(LogFile, "pread", counting_pread)
    forbid_scans(monkeypatch)
    again = open_tinydb()
    again.append(audit.Entry({"n": "new"}))  # no key: no index needed
    assert again.head().seq == 5001
    assert sum(read) < 32 * 1024 < size


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: p.unlink(), id="missing"),
        pytest.param(lambda p: p.write_bytes(b"this is not a database" * 100), id="garbage"),
        pytest.param(lambda p: p.write_bytes(b""), id="empty"),
    ],
)
def test_a_lost_or_corrupt_index_is_rebuilt(
    open_tinydb: Opener, store_path: Path, damage: Callable[[Path], None]
) -> None:
    store = open_tinydb()
    records = fill(store, 20)
    store.close()
    index = Path(str(store_path) + ".idx")
    for suffix in ("-wal", "-shm"):
        Path(str(index) + suffix).unlink(missing_ok=True)
    damage(index)
    again = open_tinydb()
    assert again.get("k7") == records[6]
    assert again.find("order:O0") == [r for r in records if r.key and int(r.key[1:]) % 3 == 0]


def test_an_index_ahead_of_the_log_is_rebuilt(
    open_tinydb: Opener, store_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An index of another (longer) log at this path does not match: it is rebuilt."""
    big = tmp_path / "big.jsonl"
    other = open_tinydb(big)
    fill(other, 50)
    other.close()
    store = open_tinydb()
    records = fill(store, 5)
    store.close()
    Path(str(store_path) + ".idx").write_bytes(Path(str(big) + ".idx").read_bytes())
    again = open_tinydb()
    with caplog.at_level(logging.WARNING, logger="audit"):
        assert again.get("k5") == records[4]
        assert again.get("k40") is None
    assert "does not match the log (its head is not the log's)); rebuilding it" in caplog.text


def test_an_index_of_a_different_log_of_the_same_length_is_rebuilt(
    open_tinydb: Opener, store_path: Path, tmp_path: Path
) -> None:
    """The index checks its last record against the log, not just the length."""
    twin = tmp_path / "twin.jsonl"
    a = open_tinydb(twin)
    a.append_many([audit.Entry({"v": "a"}, key="x1")])
    a.close()
    b = open_tinydb()
    b.append_many([audit.Entry({"v": "b"}, key="y1")])
    b.close()
    assert twin.stat().st_size == store_path.stat().st_size
    Path(str(store_path) + ".idx").write_bytes(Path(str(twin) + ".idx").read_bytes())
    again = open_tinydb()
    assert again.get("x1") is None
    assert again.get("y1") is not None


def test_the_index_catches_up_on_other_writers(open_tinydb: Opener) -> None:
    a, b = open_tinydb(), open_tinydb()
    fill(a, 3)
    assert b.get("k3") is not None
    record = a.append(entry(4))
    assert b.get("k4") == record
    assert b.find("order:O1")[-1] == record


def test_an_unreadable_middle_line_does_not_stop_indexing(
    open_tinydb: Opener, store_path: Path
) -> None:
    """Damage in the middle is verify()'s to report; lookups of other records still work."""
    store = open_tinydb()
    fill(store, 6)
    store.close()
    lines = store_path.read_bytes().splitlines(keepends=True)
    lines[2] = b"garbage\n"
    store_path.write_bytes(b"".join(lines))
    Path(str(store_path) + ".idx").unlink()
    again = open_tinydb()
    assert again.get("k3") is None
    assert again.get("k6") is not None and again.get("k2") is not None
    assert again.verify().bad_seq == 3


# -- the index behind the durable point (issue 22) ----------------------------------------
def test_the_index_stays_behind_by_less_than_its_lag_and_closing_brings_it_up(
    open_tinydb: Opener, store_path: Path
) -> None:
    """docs/scaling.md: a lookup leaves the index behind the durable point by less than
    ``audit.tinydb_index.LAG`` bytes (one holder adds the rows later, in one SQLite
    transaction); the records past it are found among the lines kept, each checked, and a
    key that is nowhere is still a proven none. Closing brings the index to the end."""
    store = open_tinydb()
    records = fill(store, 5)
    assert store.get("k3") == records[2]
    assert store.get("missing") is None
    assert store.storage._index.state().end_offset == 0  # nothing indexed yet
    assert store_path.stat().st_size < audit.tinydb_index.LAG
    store.close()
    state = store.storage._index.state()
    assert (state.end_offset, state.seq) == (store_path.stat().st_size, 5)


def test_the_index_is_brought_up_once_it_lags_by_more(
    open_tinydb: Opener, store_path: Path
) -> None:
    """Past ``LAG`` bytes behind, the next lookup adds every durable record's rows."""
    store = open_tinydb()
    count = 0
    while store_path.stat().st_size <= audit.tinydb_index.LAG:
        count += 1
        store.append(entry(count))
    assert store.storage._index.state().seq == 0
    store.append(entry(count + 1))  # its key check brings the index up to the durable point
    assert store.storage._index.state().seq == count


def test_a_record_past_the_index_edited_in_place_is_caught(
    open_tinydb: Opener, store_path: Path
) -> None:
    """SPEC §7: a record found past the index — read from the log, not the index — is
    checked against its own hash like any other: one edited in place (same length) is
    refused, naming it."""
    store = open_tinydb()
    fill(store, 3)
    lines = store_path.read_bytes().splitlines(keepends=True)
    assert b'"n":2' in lines[1]
    lines[1] = lines[1].replace(b'"n":2', b'"n":7')
    store_path.write_bytes(b"".join(lines))
    other = open_tinydb()
    with pytest.raises(audit.TamperedError) as refused:
        other.get("k2")
    assert str(refused.value) == (
        "audit store tampered at record 2: record 2 hash mismatch: its content was edited "
        "(or it was hashed with a different hmac_key)"
    )


@pytest.mark.parametrize(
    ("written", "asked"),
    [
        pytest.param("\uff4b7", "k7", id="fullwidth, NFKC"),
        pytest.param(" k8\t", "k8", id="surrounding whitespace, escaped tab"),
        pytest.param('k"9', 'k"9', id="escaped quote"),
        pytest.param("caf\u00e9", "cafe\u0301", id="non-ASCII, composed by NFKC"),
        pytest.param("  k10  ", "k10", id="spaces"),
    ],
)
def test_a_key_past_the_index_is_found_by_its_normal_form(
    open_tinydb: Opener, written: str, asked: str
) -> None:
    """SPEC §7: keys are compared in their normal form. Past the index, a lookup decodes
    only the lines that may hold the name asked for (docs/scaling.md) — and every line
    that may, whatever escapes or normalisation lie between the two spellings."""
    store = open_tinydb()
    fill(store, 3)
    mine = store.append(audit.Entry({"n": "x"}, key=written, tags=(f" {written} ",)))
    fill_more = [store.append(entry(n)) for n in (11, 12)]
    other = open_tinydb()
    assert other.storage._index.state().seq == 0  # all of it past the index
    assert other.get(asked) == mine
    assert other.find(asked) == [mine]
    storage = other.storage
    with storage._locked():
        assert storage._keys_present_locked([asked, "k11", "nope"]) == {asked, "k11"}
    assert other.get("k12") == fill_more[1]
    assert other.get("nope") is None


def test_a_run_of_own_commits_is_indexed_from_memory(
    open_tinydb: Opener, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 22: while the index lags (LAG), the commits this handle wrote one after the
    other are held and indexed from memory — no line of them decoded again from the log —
    and the index they make is the one the log makes; a commit by another handle between
    them is read from the log, and the held ones after it are given up."""
    store = open_tinydb()
    store.get("k0")  # the index is checked and current from here on

    def no_decoding(offset: int, line: bytes) -> None:
        raise AssertionError(f"the line at offset {offset} was decoded to be indexed")

    def groups(first: int, count: int) -> None:
        for start in range(first, first + 4 * count, 4):
            with store.transaction() as tx:
                tx.append_many([entry(n) for n in range(start, start + 4)])

    with monkeypatch.context() as patch:
        patch.setattr(audit.tinydb_index, "_index_row", no_decoding)
        groups(1, 40)  # about 24 KiB: past LAG, so the index is brought up in between
        assert store.storage._keeper.indexed()[1] > 0  # type: ignore[attr-defined]
        assert store.get("k150") is not None and store.get("k161") is None
    other = open_tinydb()
    other.append(entry(1000))
    other.close()
    groups(161, 8)
    assert store.check_index() == []
    assert store.get("k1000") is not None and store.get("k190") is not None
    assert [r.seq for r in store.find("order:O0")][-2:] == [190, 193]
    assert store.verify().ok


def test_an_index_replaced_between_two_holds_of_the_lock_is_noticed(
    open_tinydb: Opener, store_path: Path
) -> None:
    """Issue 22: the index file is looked at once per hold of the lock (then pinned), so
    one deleted or replaced between two holds — by another process, or by hand — is
    noticed at the next: rebuilt from the log, every answer still right."""
    store = open_tinydb()
    records = fill(store, 6)
    assert store.get("k2") == records[1]
    index = Path(f"{store_path}.idx")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{index}{suffix}").unlink(missing_ok=True)
    assert store.get("k3") == records[2] and store.get("k9") is None
    assert index.exists()
    other = open_tinydb()
    other.storage._keeper.reset(witness=False)  # type: ignore[attr-defined]
    other.close()
    assert store.find("order:O0") == [records[2], records[5]]
    assert store.append(entry(7)).seq == 7
    assert store.check_index() == []


def test_held_commits_that_do_not_chain_onto_the_index_head_are_read_from_the_log(
    open_tinydb: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 22: held commits are added from memory only when their first record chains
    onto the index's head (its seq and hash); otherwise they are given up and the index
    reads those records from the log, each checked."""
    import attrs

    store = open_tinydb()
    store.get("k0")
    keeper = store.storage._keeper  # type: ignore[attr-defined]
    with store.transaction() as tx:
        tx.append_many([entry(n) for n in range(1, 5)])
    if not keeper._pending:  # the index took it already: hold one more, lagging
        with store.transaction() as tx:
            tx.append_many([entry(n) for n in range(5, 9)])
    assert keeper._pending
    keeper._pending[0] = attrs.evolve(keeper._pending[0], prev="f" * 64)
    decoded: list[int] = []
    real = audit.tinydb_index._index_row

    def counted(offset: int, line: bytes) -> object:
        decoded.append(offset)
        return real(offset, line)

    monkeypatch.setattr(audit.tinydb_index, "_index_row", counted)
    storage = store.storage  # type: ignore[attr-defined]
    with storage._locked():
        storage._sync_index(full=True)
    assert decoded and not keeper._pending
    assert store.check_index() == []
    assert [store.get(f"k{n}") is not None for n in (1, 4)] == [True, True]
