"""The audit store contract (audit/protocol.py, SPEC §7), written against the protocol only.

Every test here runs once per backend in ``conftest.BACKENDS``; nothing here may reach into
a backend's files or internals.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import threading
from datetime import timedelta
from decimal import Decimal
from types import MappingProxyType

import pytest
from audit_support import T0, FakeClock, StoreFactory, entry, fill

import audit
from audit.canonical import canonical_bytes
from audit.export import CSV_COLUMNS, unescape_csv_cell
from audit.protocol import GENESIS_HASH, AuditStore, Checkpoint, Entry, Record
from audit.records import record_hash, record_to_dict


def test_a_store_implements_the_protocol(store: AuditStore) -> None:
    """Every backend is an ``AuditStore`` (the protocol is runtime-checkable)."""
    assert isinstance(store, AuditStore)


def test_an_empty_store(store: AuditStore) -> None:
    """An empty store has head (0, GENESIS), verifies, and finds nothing."""
    assert store.head() == Checkpoint(0, GENESIS_HASH)
    assert store.verify() == audit.VerifyReport(ok=True, count=0, head=Checkpoint(0, GENESIS_HASH))
    assert store.get("k1") is None
    assert store.find("order:O1") == []
    assert list(store.query()) == []
    assert store.append_many([]) == []


def test_append_chains_records(store: AuditStore) -> None:
    """Records get seq 1, 2, 3...; record 1 chains to GENESIS, each next one to the last."""
    first = store.append(entry(1))
    second = store.append(entry(2))
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert store.head() == Checkpoint(2, second.hash)
    assert len(first.id) >= 32 and first.id != second.id
    assert first.recorded_at == "2025-06-18T08:00:00.000000Z"


def test_the_hash_covers_every_other_field(store: AuditStore) -> None:
    """``hash`` = SHA-256 hex of the canonical JSON of the record without ``hash`` (§7)."""
    record = store.append(entry(1))
    body = {k: v for k, v in record_to_dict(record).items() if k != "hash"}
    assert record.hash == record_hash(canonical_bytes(body), None)


def test_a_keyed_store_hashes_with_hmac(store_factory: StoreFactory) -> None:
    """With an hmac_key, ``hash`` is HMAC-SHA256 with that key over the same bytes."""
    store = store_factory(hmac_key=b"k" * 32, clock=FakeClock())
    record = store.append(entry(1))
    body = {k: v for k, v in record_to_dict(record).items() if k != "hash"}
    assert record.hash == record_hash(canonical_bytes(body), b"k" * 32)
    assert record.hash != record_hash(canonical_bytes(body), None)
    assert store.verify().ok


def test_verify_with_the_wrong_key_fails(store_factory: StoreFactory) -> None:
    """A keyed chain does not verify without its key (nor with another)."""
    keyed = store_factory("keyed", hmac_key=b"right", clock=FakeClock())
    fill(keyed, 3)
    other = store_factory("keyed", hmac_key=b"wrong")
    report = other.verify()
    assert (report.ok, report.bad_seq) == (False, 1)
    assert report.problem is not None and "hash mismatch" in report.problem


def test_payloads_are_stored_as_canonical_json(store: AuditStore) -> None:
    """Decimals are stored as their strings and tuples as lists; what append returns is
    exactly what a later read returns."""
    record = store.append(
        Entry(payload={"amount": Decimal("12.30"), "lines": ("L1", "L2")}, key="d1")
    )
    assert record.payload == {"amount": "12.30", "lines": ["L1", "L2"]}
    assert store.get("d1") == record


def test_floats_are_refused_and_nothing_is_recorded(store: AuditStore) -> None:
    """A float has no canonical form: TypeError, and the store is unchanged."""
    with pytest.raises(TypeError, match="floats have no canonical JSON form"):
        store.append(Entry(payload={"amount": 12.3}, key="f1"))
    with pytest.raises(TypeError, match="floats"):
        store.append_many([entry(1), Entry(payload={"x": [1.5]})])
    assert store.head().seq == 0
    assert store.get("f1") is None and store.get("k1") is None


def test_a_plain_payload_is_kept_as_given_and_recorded_alike(store: AuditStore) -> None:
    """``Entry(plain=True)`` skips the conversion, not the record: the same canonical
    line and hash as the converted payload; a non-dict payload is converted anyway."""
    payload = {"amount": "12.30", "lines": ["L1", "L2"], "n": 2, "ok": True, "none": None}
    plain = store.append(Entry(payload=payload, key="p1", plain=True))
    assert plain.payload == payload
    converted = store.append(Entry(payload=dict(payload), key="p2"))
    assert converted.payload == plain.payload
    body = {**record_to_dict(plain)}
    del body["hash"]
    assert record_hash(canonical_bytes(body), None) == plain.hash
    mapping = store.append(
        Entry(payload=MappingProxyType({"amount": Decimal("1.00")}), key="p3", plain=True)
    )
    assert mapping.payload == {"amount": "1.00"}
    assert store.verify().ok


def test_bad_keys_and_tags_are_refused(store: AuditStore) -> None:
    """Keys are non-empty strings; tags a sequence of non-empty strings."""
    with pytest.raises(ValueError, match="idempotency key must be a non-empty string"):
        store.append(Entry(payload={}, key=""))
    with pytest.raises(TypeError, match="tags must be a sequence of strings"):
        store.append(Entry(payload={}, tags="order:O1"))  # type: ignore[arg-type]
    assert store.head().seq == 0


def test_get_by_idempotency_key(store: AuditStore) -> None:
    """``get(key)`` returns the record stored under that key, or None."""
    records = fill(store, 5)
    assert store.get("k3") == records[2]
    assert store.get("nope") is None


def test_prefetch_is_only_a_hint(store: AuditStore) -> None:
    """``tx.prefetch(keys)`` changes no answer of ``tx.get``: recorded, pending and absent
    keys read the same, and a prefetched absent key can still be appended once."""
    records = fill(store, 3)
    with store.transaction() as tx:
        tx.prefetch(["k1", "k3", "k4", "nope"])
        assert tx.get("k1") == records[0] and tx.get("k3") == records[2]
        assert tx.get("k4") is None and tx.get("nope") is None
        pending = tx.append(entry(4))
        tx.prefetch(["k4"])
        assert tx.get("k4") == pending
        with pytest.raises(audit.DuplicateKey, match="'k4' is pending"):
            tx.append(entry(4))
    assert store.get("k4") == pending and store.get("nope") is None


def test_a_key_is_recorded_once(store: AuditStore) -> None:
    """Reusing an idempotency key raises DuplicateKey naming the record; nothing is added."""
    store.append(entry(1))
    with pytest.raises(audit.DuplicateKey, match=r"'k1' is already recorded as record 1"):
        store.append(entry(1))
    with pytest.raises(audit.DuplicateKey, match="'k2' is pending"):
        store.append_many([entry(2), entry(2)])
    with pytest.raises(audit.DuplicateKey, match="'k1' is already recorded"):
        store.append_many([entry(3), entry(1)])
    assert store.head().seq == 1
    assert store.get("k3") is None


def test_find_by_tag_in_seq_order(store: AuditStore) -> None:
    """``find(tag)`` returns every record carrying the tag, in seq order."""
    records = fill(store, 7)
    assert store.find("order:O1") == [records[0], records[3], records[6]]
    assert store.find("order:O9") == []


def test_record_by_seq(store: AuditStore) -> None:
    """``record(seq)`` returns record number ``seq``, or None outside 1..head; inside a
    transaction it sees committed and pending records alike."""
    records = fill(store, 4)
    assert [store.record(n) for n in (1, 4)] == [records[0], records[3]]
    assert store.record(0) is None and store.record(5) is None and store.record(-1) is None
    with store.transaction() as tx:
        pending = tx.append(entry(5))
        assert tx.record(2) == records[1]
        assert tx.record(5) == pending
        assert tx.record(6) is None and tx.record(0) is None
    assert store.record(5) == pending


def test_append_many_is_one_contiguous_group(store: AuditStore) -> None:
    """A group commit's records are consecutive and chained."""
    store.append(entry(0))
    group = store.append_many([entry(n) for n in range(1, 6)])
    assert [r.seq for r in group] == [2, 3, 4, 5, 6]
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(group))


def test_a_transaction_sees_its_own_pending_appends(store: AuditStore) -> None:
    """Inside a transaction, get/find see committed records and the pending ones."""
    committed = store.append(entry(1))
    with store.transaction() as tx:
        assert tx.get("k1") == committed
        pending = tx.append(entry(4))
        assert pending.seq == 2 and pending.prev_hash == committed.hash
        assert tx.get("k4") == pending
        assert tx.find("order:O1") == [committed, pending]
        with pytest.raises(audit.DuplicateKey, match="'k4' is pending in this transaction"):
            tx.append(entry(4))
        with pytest.raises(audit.DuplicateKey, match="'k1' is already recorded"):
            tx.append(entry(1))
        again = tx.append(entry(7))
        assert again.seq == 3 and again.prev_hash == pending.hash
    assert store.get("k4") == pending
    assert store.head() == Checkpoint(3, again.hash)
    assert store.verify().ok


def test_a_failed_transaction_writes_nothing(store: AuditStore) -> None:
    """An exception inside the block discards every pending append."""
    store.append(entry(1))
    head = store.head()
    with pytest.raises(RuntimeError, match="decided against it"), store.transaction() as tx:
        tx.append(entry(2))
        tx.append(entry(3))
        raise RuntimeError("decided against it")
    assert store.head() == head
    assert store.get("k2") is None and store.get("k3") is None
    assert store.append(entry(2)).seq == 2


def test_an_empty_transaction_writes_nothing(store: AuditStore) -> None:
    with store.transaction() as tx:
        assert tx.get("k1") is None
    assert store.head().seq == 0


def test_a_transaction_excludes_other_writers(store: AuditStore) -> None:
    """While a transaction is open, another thread's append waits for it to finish."""
    entered, release = threading.Event(), threading.Event()
    order: list[str] = []

    def other_writer() -> None:
        entered.wait()
        store.append(entry(99))
        order.append("other")

    thread = threading.Thread(target=other_writer)
    thread.start()
    with store.transaction() as tx:
        entered.set()
        release.wait(0.2)  # give the other writer every chance to cut in (it must not)
        tx.append(entry(1))
        order.append("tx")
    thread.join()
    assert order == ["tx", "other"]
    assert [r.key for r in store.query()] == ["k1", "k99"]


def test_threads_appending_at_once_lose_nothing(store: AuditStore) -> None:
    """Several threads on one handle: every record lands once, seq gap-free."""

    def work(t: int) -> None:
        for i in range(50):
            store.append(Entry(payload={"t": t, "i": i}, key=f"t{t}-{i}"))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seqs = [r.seq for r in store.query()]
    assert seqs == list(range(1, 201))
    assert store.verify().ok


def test_query_by_payload_fields(store: AuditStore) -> None:
    """``where`` maps dotted payload paths to required values; results stream in seq order."""
    records = fill(store, 6)
    store.append(Entry(payload={"kind": "other", "status": "approved", "n": True}))
    result = store.query({"kind": "demo", "request.input.order_id": "O2"})
    assert not isinstance(result, list)  # a stream, not a materialised list
    assert list(result) == [records[1], records[4]]
    assert [r.seq for r in store.query({"status": "approved"})] == [7]
    assert list(store.query({"request.input.missing": "x"})) == []
    assert [r.seq for r in store.query({"n": 1})] == [1]  # JSON true is not 1
    assert [r.seq for r in store.query({"n": True})] == [7]
    assert len(list(store.query())) == 7


def test_query_by_time_range(store_factory: StoreFactory) -> None:
    """since/until (aware datetimes) filter recorded_at: since inclusive, until exclusive."""
    store = store_factory(clock=FakeClock(step=timedelta(minutes=1)))
    fill(store, 10)  # one record a minute from T0
    got = store.query(since=T0 + timedelta(minutes=3), until=T0 + timedelta(minutes=6))
    assert [r.seq for r in got] == [4, 5, 6]
    since = store.query({"request.input.order_id": "O1"}, since=T0 + timedelta(minutes=5))
    assert [r.seq for r in since] == [7, 10]
    assert [r.seq for r in store.query(until=T0 + timedelta(minutes=2))] == [1, 2]
    assert list(store.query(since=T0 + timedelta(days=1))) == []


def test_verify_reports_count_and_head(store: AuditStore) -> None:
    records = fill(store, 4)
    assert store.verify() == audit.VerifyReport(
        ok=True, count=4, head=Checkpoint(4, records[-1].hash)
    )


def test_verify_against_a_checkpoint(store: AuditStore) -> None:
    """A checkpoint taken earlier still matches; one beyond the end or with another hash
    does not, and the report says why."""
    fill(store, 3)
    checkpoint = store.head()
    store.append(entry(4))
    assert store.verify(checkpoint).ok
    beyond = store.verify(Checkpoint(9, "a" * 64))
    assert (beyond.ok, beyond.bad_seq) == (False, 5)
    assert beyond.problem is not None
    assert "cut off (truncated) since the checkpoint" in beyond.problem
    other = store.verify(Checkpoint(2, "b" * 64))
    assert (other.ok, other.bad_seq) == (False, 2)
    assert other.problem is not None and "rewritten since the checkpoint" in other.problem


def test_export_jsonl_round_trip(store: AuditStore) -> None:
    """JSON Lines export: one full record per line; parsing gives the records back."""
    records = fill(store, 5)
    out = io.StringIO()
    assert store.export(out, "jsonl") == 5
    lines = out.getvalue().splitlines()
    assert [json.loads(line) for line in lines] == [record_to_dict(r) for r in records]
    assert lines[0].encode() == canonical_bytes(record_to_dict(records[0]))


def test_export_csv_round_trip_with_formula_escaping(store: AuditStore) -> None:
    """CSV export: a header and one row per record; cells that a spreadsheet would run as a
    formula (= + - @ tab CR) are prefixed with ', and unescaping gives the values back."""
    # "\tx" and "\ry": keys unique in lookup form (ends stripped), so not "\tx" and "\rx"
    hostile = ['=HYPERLINK("http://x")', "+1", "-5", "@SUM(A1)", "\tx", "\ry", "'q", "ok"]
    records = store.append_many(
        [Entry(payload={"note": k}, key=k, tags=(k,)) for k in hostile]
        + [Entry(payload={"note": "no key"})]
    )
    out = io.StringIO(newline="")
    assert store.export(out, "csv") == len(records)
    rows = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    keys = [row[3] for row in rows[1:]]
    assert keys == [
        '\'=HYPERLINK("http://x")',
        "'+1",
        "'-5",
        "'@SUM(A1)",
        "'\tx",
        "'\ry",
        "''q",
        "ok",
        "",
    ]
    for row, record in zip(rows[1:], records, strict=True):
        cells = dict(zip(CSV_COLUMNS, (unescape_csv_cell(c) for c in row), strict=True))
        assert int(cells["seq"]) == record.seq
        assert (cells["id"], cells["recorded_at"]) == (record.id, record.recorded_at)
        assert (cells["key"] or None) == record.key
        assert tuple(json.loads(cells["tags"])) == record.tags
        assert json.loads(cells["payload"]) == record.payload
        assert (cells["prev_hash"], cells["hash"]) == (record.prev_hash, record.hash)


def test_export_of_chosen_records(store: AuditStore) -> None:
    fill(store, 6)
    out = io.StringIO()
    assert store.export(out, "jsonl", store.find("order:O0")) == 2
    assert [json.loads(line)["seq"] for line in out.getvalue().splitlines()] == [3, 6]


def test_two_handles_share_one_chain(store_factory: StoreFactory) -> None:
    """A second handle on the same store sees the first one's records and continues the
    chain (each catches up on what the other appended)."""
    a = store_factory("shared", clock=FakeClock())
    b = store_factory("shared", clock=FakeClock())
    first = a.append(entry(1))
    second = b.append(entry(2))
    assert second.prev_hash == first.hash and second.seq == 2
    assert a.get("k2") == second and a.head() == b.head()
    with pytest.raises(
        audit.DuplicateKey,
        match=r"^idempotency key 'k2' is already recorded as record 2; keys are unique in a store$",
    ):
        a.append(entry(2))
    third = a.append(entry(3))
    assert third.seq == 3
    assert b.verify().ok


def test_a_closed_store_refuses_work(store: AuditStore) -> None:
    store.close()
    with pytest.raises(audit.AuditError, match="is closed"):
        store.append(entry(1))
    store.close()  # closing twice is harmless


def test_records_are_values(store: AuditStore) -> None:
    """What ``append`` returns is a frozen Record equal to what lookups return."""
    record = store.append(entry(1))
    assert isinstance(record, Record)
    assert store.find("order:O1") == [record]
    assert list(store.query()) == [record]
