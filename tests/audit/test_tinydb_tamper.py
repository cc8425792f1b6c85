"""Damage to the log file is found by verify() and named (docs/audit.md, "Verifying").

These edit the TinyDB backend's JSON Lines file directly, as someone with write access to
it could.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from audit_support import entry, fill, loads, read_lines, write_lines

import audit
from audit.canonical import canonical_bytes
from audit.protocol import GENESIS_HASH, VerifyReport

Opener = Callable[..., audit.TinyDBAuditStore]
K = 5  # the record that gets damaged
N = 10  # records in the store


def verify_file(path: Path, **kw: object) -> VerifyReport:
    handle = audit.TinyDBAuditStore(path, **kw)  # type: ignore[arg-type]
    try:
        return handle.verify()
    finally:
        handle.close()


@pytest.fixture
def filled(open_tinydb: Opener, store_path: Path) -> Path:
    store = open_tinydb()
    fill(store, N)
    store.close()
    return store_path


def rehash(lines: list[bytes], start: int, key: bytes | None = None) -> list[bytes]:
    """Recompute hashes from line index ``start`` on, as an attacker without a key would."""
    out = lines[:start]
    prev = GENESIS_HASH if start == 0 else loads(lines[start - 1])["hash"]
    for line in lines[start:]:
        record = loads(line)
        record["prev_hash"] = prev
        del record["hash"]
        body = canonical_bytes(record)
        record["hash"] = prev = hashlib.sha256(body).hexdigest()
        out.append(canonical_bytes(record) + b"\n")
    return out


def test_every_single_byte_flip_in_a_record_is_caught(filled: Path) -> None:
    """Flipping any one byte of record k (its newline included) makes verify name record k."""
    lines = read_lines(filled)
    original = lines[K - 1]
    for i in range(len(original)):
        damaged = bytearray(original)
        damaged[i] ^= 0x01
        write_lines(filled, [*lines[: K - 1], bytes(damaged), *lines[K:]])
        report = verify_file(filled)
        assert (report.ok, report.bad_seq, report.count) == (False, K, K - 1), (i, report)
    write_lines(filled, lines)
    assert verify_file(filled).ok


def test_an_edited_value_is_a_hash_mismatch(filled: Path) -> None:
    lines = read_lines(filled)
    lines[K - 1] = lines[K - 1].replace(b'"n":5', b'"n":6')
    write_lines(filled, lines)
    report = verify_file(filled)
    assert (report.ok, report.bad_seq) == (False, K)
    assert report.problem == (
        f"record {K} hash mismatch: its content was edited "
        "(or it was hashed with a different hmac_key)"
    )


def test_a_reformatted_line_is_caught(filled: Path) -> None:
    """Same content, other bytes (whitespace): the line is not canonical any more."""
    lines = read_lines(filled)
    lines[K - 1] = lines[K - 1].replace(b'"n":5', b'"n": 5')
    write_lines(filled, lines)
    report = verify_file(filled)
    assert report.bad_seq == K
    assert report.problem == f"record {K} is not stored in canonical form: the line was edited"


def test_a_duplicated_member_is_caught(filled: Path) -> None:
    """A JSON member given twice (readers may disagree on which wins) is not canonical."""
    lines = read_lines(filled)
    lines[K - 1] = lines[K - 1].replace(b'"key":"k5"', b'"key":"k9","key":"k5"')
    write_lines(filled, lines)
    assert verify_file(filled).bad_seq == K


def test_a_deleted_record_is_named(filled: Path) -> None:
    lines = read_lines(filled)
    write_lines(filled, lines[: K - 1] + lines[K:])
    report = verify_file(filled)
    assert (report.ok, report.bad_seq, report.count) == (False, K, K - 1)
    assert report.problem == (
        f"seq gap: expected {K}, found {K + 1}: record {K} is missing (deleted)"
    )


def test_swapped_records_are_named(filled: Path) -> None:
    lines = read_lines(filled)
    lines[K - 1], lines[K] = lines[K], lines[K - 1]
    write_lines(filled, lines)
    report = verify_file(filled)
    assert (report.ok, report.bad_seq) == (False, K)
    assert report.problem is not None and "records were reordered" in report.problem


def test_a_duplicated_record_is_named(filled: Path) -> None:
    lines = read_lines(filled)
    write_lines(filled, [*lines[:K], lines[K - 1], *lines[K:]])
    report = verify_file(filled)
    assert (report.ok, report.bad_seq) == (False, K)
    assert report.problem == f"record {K} appears twice (duplicated)"


def test_an_inserted_record_is_named(filled: Path) -> None:
    """A forged record slipped in with the next seq (and a valid hash) is followed by the
    real record of that seq: a seq repeat, reported where the chain went wrong."""
    lines = read_lines(filled)
    fake = lines[K].replace(b'"n":6', b'"n":600')
    forged = rehash([*lines[:K], fake], K)[K]  # a well-formed record K+1 ...
    write_lines(filled, [*lines[:K], forged, *lines[K:]])  # ... followed by the real K+1
    report = verify_file(filled)
    assert (report.ok, report.bad_seq, report.count) == (False, K + 2, K + 1)
    assert report.problem == (
        f"seq repeat: expected {K + 2}, found {K + 1} again: "
        "a record was duplicated, inserted or moved"
    )


def test_a_rehashed_chain_passes_plain_verify_but_not_a_checkpoint(
    filled: Path, open_tinydb: Opener
) -> None:
    """Without a key anyone can recompute the chain after an edit; only a checkpoint kept
    elsewhere catches it, at the checkpoint's record."""
    store = open_tinydb()
    checkpoint = store.head()
    store.close()
    lines = read_lines(filled)
    lines[K - 1] = lines[K - 1].replace(b'"n":5', b'"n":500')
    write_lines(filled, rehash(lines, K - 1))
    # Anyone who rewrites the log rewrites the files beside it too: kept, the high-water
    # mark alone makes plain verify fail (it names a record the log no longer holds).
    Path(f"{filled}.head").unlink()
    Path(f"{filled}.idx").unlink()
    fresh = open_tinydb()
    assert fresh.verify().ok
    report = fresh.verify(checkpoint)
    assert (report.ok, report.bad_seq) == (False, N)
    assert report.problem is not None and "rewritten since the checkpoint" in report.problem


def test_a_cut_back_store_fails_its_checkpoint(filled: Path, open_tinydb: Opener) -> None:
    """Removing whole records from the end leaves a valid chain; the high-water mark
    notices, and where it was removed too, the checkpoint notices."""
    store = open_tinydb()
    checkpoint = store.head()
    store.close()
    write_lines(filled, read_lines(filled)[:7])
    kept = open_tinydb()  # the high-water mark beside the log already says so
    behind = kept.verify()
    assert (behind.ok, behind.bad_seq) == (False, N)
    kept.close()
    Path(f"{filled}.head").unlink()  # cut by someone who also removed the mark and index
    Path(f"{filled}.idx").unlink()
    fresh = open_tinydb()
    assert fresh.verify().ok
    report = fresh.verify(checkpoint)
    assert (report.ok, report.bad_seq) == (False, 8)
    assert report.problem == (
        f"the store ends at record 7 but the checkpoint names record {N}: "
        "records were cut off (truncated) since the checkpoint"
    )


def test_with_a_key_a_rehash_is_caught_without_a_checkpoint(
    store_path: Path, open_tinydb: Opener
) -> None:
    """With hmac_key, an edit re-hashed with plain SHA-256 (the key is not in the file) fails
    at the edited record."""
    store = open_tinydb(hmac_key=b"secret-key")
    fill(store, N)
    store.close()
    lines = read_lines(store_path)
    lines[K - 1] = lines[K - 1].replace(b'"n":5', b'"n":500')
    write_lines(store_path, rehash(lines, K - 1))
    report = verify_file(store_path, hmac_key=b"secret-key")
    assert (report.ok, report.bad_seq) == (False, K)
    assert report.problem is not None and "hash mismatch" in report.problem


def test_damage_in_the_middle_does_not_stop_the_store(filled: Path, open_tinydb: Opener) -> None:
    """Opening never raises on damage before the tail; appends go on; verify reports it."""
    lines = read_lines(filled)
    lines[K - 1] = lines[K - 1].replace(b'"n":5', b'"n":6')
    write_lines(filled, lines)
    store = open_tinydb()
    assert store.append(entry(N + 1)).seq == N + 1
    assert store.verify().bad_seq == K
    with pytest.raises(audit.TamperedError, match=f"record {K} hash mismatch"):
        store.get("k5")  # a lookup never hands out an edited record


def test_a_damaged_tail_refuses_appends(filled: Path, open_tinydb: Opener) -> None:
    """Nothing is appended on top of a last record whose own hash does not check out."""
    lines = read_lines(filled)
    lines[-1] = lines[-1].replace(b'"n":10', b'"n":11')
    write_lines(filled, lines)
    store = open_tinydb()  # opening does not raise
    with pytest.raises(audit.TamperedError, match=f"record {N}: record {N} hash mismatch"):
        store.append(entry(99))
    with pytest.raises(audit.TamperedError, match=f"record {N}: record {N} hash mismatch"):
        store.head()
    assert filled.read_bytes() == b"".join(lines)


def test_a_tail_that_does_not_chain_refuses_appends(filled: Path, open_tinydb: Opener) -> None:
    """The last record must also link to the one before it (here: the one before was cut)."""
    lines = read_lines(filled)
    write_lines(filled, lines[:-2] + lines[-1:])
    store = open_tinydb()
    with pytest.raises(audit.TamperedError, match="does not chain to the line before it"):
        store.append(entry(99))


def test_an_unreadable_last_line_refuses_appends(filled: Path, open_tinydb: Opener) -> None:
    """A complete (newline-terminated) last line that is not a record is damage, not a torn
    write: it is left alone and appends are refused."""
    lines = read_lines(filled)
    write_lines(filled, [*lines, b"not a record\n"])
    store = open_tinydb()
    with pytest.raises(audit.TamperedError, match=r"the last line of the log .* is not a record"):
        store.append(entry(99))
    assert filled.read_bytes().endswith(b"not a record\n")
    assert verify_file(filled).bad_seq == N + 1


def test_a_keyed_store_opened_without_its_key_refuses_appends(
    store_path: Path, open_tinydb: Opener
) -> None:
    store = open_tinydb(hmac_key=b"secret-key")
    fill(store, 2)
    store.close()
    keyless = open_tinydb()
    with pytest.raises(audit.TamperedError, match="different hmac_key"):
        keyless.append(entry(3))


def test_records_removed_under_an_open_handle(filled: Path, open_tinydb: Opener) -> None:
    """A handle that sees the file shrink refuses to append (acknowledged records vanished)."""
    store = open_tinydb()
    assert store.head().seq == N
    write_lines(filled, read_lines(filled)[:6])
    with pytest.raises(audit.TamperedError, match="the log shrank"):
        store.append(entry(99))
    assert len(read_lines(filled)) == 6


def test_another_writers_bad_record_is_not_built_upon(filled: Path, open_tinydb: Opener) -> None:
    """Records other writers appended are checked while catching up; a forged one stops
    appends on top of it."""
    store = open_tinydb()
    store.head()
    lines = read_lines(filled)
    forged = loads(lines[-1])
    forged["seq"] = N + 1
    forged["prev_hash"] = forged["hash"]  # chains, but its own hash is stale
    with filled.open("ab") as fh:
        fh.write(json.dumps(forged).encode() + b"\n")
    with pytest.raises(audit.TamperedError, match=f"record {N + 1}"):
        store.append(entry(99))
