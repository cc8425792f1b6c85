"""The Merkle tree over the records and its proofs, on every backend (SPEC §9).

Leaf i is record i+1; its data is SHA-256 of the record's canonical bytes without
``hash`` (plain SHA-256 even in an HMAC-keyed store). Written against the protocol only.
"""

from __future__ import annotations

import hashlib

import pytest
from audit_support import FakeClock, StoreFactory, entry, fill

import audit
from audit.canonical import canonical_bytes
from audit.merkle import (
    EMPTY_ROOT,
    leaf_hash,
    root_of_leaves,
    verify_consistency,
    verify_inclusion,
)
from audit.note import TreeCheckpoint
from audit.proofdoc import is_of_store
from audit.protocol import AuditStore, Entry, Record
from audit.records import record_to_dict


def leaf_data(record: Record) -> bytes:
    body = {k: v for k, v in record_to_dict(record).items() if k != "hash"}
    return hashlib.sha256(canonical_bytes(body)).digest()


def test_the_tree_follows_the_records(store: AuditStore) -> None:
    """tree_size is the head's seq; the root at every size is RFC 9162's MTH of the leaves."""
    assert (store.tree_size(), store.root()) == (0, EMPTY_ROOT)
    records = fill(store, 9)
    store.append(entry(10))
    records = list(store.query())
    assert store.tree_size() == 10
    leaves = [leaf_hash(leaf_data(r)) for r in records]
    for size in range(11):
        assert store.root(size) == root_of_leaves(leaves[:size])
    assert store.root() == store.root(10)
    assert leaf_data(records[0]).hex() == records[0].hash  # unkeyed: the record hash


def test_every_proof_of_a_small_store(store: AuditStore) -> None:
    """Every record's inclusion at every size, every consistency pair, all verify."""
    records = fill(store, 13)
    roots = [store.root(n) for n in range(14)]
    for size in range(1, 14):
        for record in records[:size]:
            path = store.inclusion_proof(record.seq, size)
            verify_inclusion(leaf_hash(leaf_data(record)), record.seq - 1, size, path, roots[size])
        for old in range(size + 1):
            path = store.consistency_proof(old, size)
            verify_consistency(old, size, roots[old], roots[size], path)
    assert store.consistency_proof(0) == [] and store.consistency_proof(13, 13) == []
    assert store.inclusion_proof(5) == store.inclusion_proof(5, 13)


def test_a_keyed_store_keeps_plain_sha256_leaves(store_factory: StoreFactory) -> None:
    """With an hmac_key the record hash is the HMAC; the leaf is still SHA-256, so a
    merchant without the key can recompute it."""
    keyed = store_factory("keyed", hmac_key=b"secret", clock=FakeClock())
    records = fill(keyed, 5)
    assert leaf_data(records[2]).hex() != records[2].hash
    path = keyed.inclusion_proof(3, 5)
    verify_inclusion(leaf_hash(leaf_data(records[2])), 2, 5, path, keyed.root(5))


def test_is_of_store_names_only_this_stores_tree(store: AuditStore) -> None:
    """A checkpoint is of a store when the store holds its size with the same root there:
    a later, larger or foreign checkpoint is not."""
    fill(store, 5)
    ours = TreeCheckpoint("example.invalid/log", 3, store.root(3))
    assert is_of_store(store, ours)
    assert not is_of_store(store, TreeCheckpoint("example.invalid/log", 6, store.root(5)))
    assert not is_of_store(store, TreeCheckpoint("example.invalid/log", 3, store.root(4)))
    assert is_of_store(store, TreeCheckpoint("example.invalid/log", 0, EMPTY_ROOT))


def test_verify_reports_the_logs_own_root(store: AuditStore) -> None:
    fill(store, 7)
    report = store.verify()
    assert report.ok and report.root == store.root(7)
    assert store.verify(deep=True).root == report.root


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.inclusion_proof(0), "record 0 is not in the tree of size 4"),
        (lambda s: s.inclusion_proof(5), "record 5 is not in the tree"),
        (lambda s: s.inclusion_proof(3, 2), "record 3 is not in the tree of size 2"),
        (lambda s: s.root(5), "tree size 5 is not between 0 and the tree's size 4"),
        (lambda s: s.consistency_proof(3, 2), "old tree size 3 is larger than the new 2"),
        (lambda s: s.consistency_proof(1, 9), "tree size 9 is not between"),
    ],
)
def test_out_of_range_questions_are_refused(store: AuditStore, call: object, message: str) -> None:
    fill(store, 4)
    with pytest.raises(ValueError, match=message):
        call(store)  # type: ignore[operator]


@pytest.mark.parametrize(
    "bad",
    [
        Entry(payload={"note": "a\x00b"}, key="n1"),
        Entry(payload={"a\x00": 1}),
        Entry(payload={"deep": [{"x": ["\x00"]}]}),
        Entry(payload={}, key="k\x00"),
        Entry(payload={}, tags=("t\x00",)),
    ],
)
def test_nul_is_refused_before_anything_is_written(store: AuditStore, bad: Entry) -> None:
    """U+0000 in any text of an entry: a clear ValueError on every backend, nothing
    written, and a transaction goes on."""
    with pytest.raises(ValueError, match=r"cannot store the character U\+0000"):
        store.append(bad)
    with store.transaction() as tx:
        with pytest.raises(ValueError, match=r"U\+0000"):
            tx.append(bad)
        tx.append(entry(1))
    assert store.head().seq == 1 and store.tree_size() == 1
    assert store.append(Entry(payload={"escaped": "\\u0000 is six characters"})).seq == 2


@pytest.mark.parametrize(
    "bad",
    [
        Entry(payload={"note": "a\ud800b"}),
        Entry(payload={"\udfff": 1}),
        Entry(payload={}, key="k\ud83d"),
        Entry(payload={}, tags=("\udc00",)),
    ],
)
def test_lone_surrogates_are_refused_clearly(store: AuditStore, bad: Entry) -> None:
    with pytest.raises(ValueError, match="lone surrogate"):
        store.append(bad)
    assert store.head().seq == 0


def test_two_handles_grow_one_tree(store_factory: StoreFactory) -> None:
    a = store_factory("shared", clock=FakeClock())
    b = store_factory("shared", clock=FakeClock())
    fill(a, 3)
    b.append(entry(4))
    with a.transaction() as tx:
        tx.append(entry(5))
    assert a.tree_size() == b.tree_size() == 5
    assert a.root() == b.root()
    records = list(a.query())
    assert a.root() == root_of_leaves([leaf_hash(leaf_data(r)) for r in records])
    assert isinstance(a.inclusion_proof(4), list)
    assert audit.VerifyReport  # the report type carries the root (above)
