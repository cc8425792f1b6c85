"""What the PostgreSQL store may trust (SPEC §7, issue 19): every record read for a
decision, and the head before an append, is checked against its hash (its HMAC in a keyed
store) and against the key, tag or seq it was found by. The attacker here holds only the
``pricecalc_app`` login — which may INSERT — and no HMAC key (postgres_support.forge).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from audit_support import entry, fill
from postgres_support import PgStore, count_rows, forge

import audit
from audit.postgres import PostgresAuditStore
from audit.protocol import Record
from audit.records import record_carries

pytestmark = pytest.mark.postgres

KEY = b"the application servers' secret"
FORGED = {"kind": "demo", "n": 99, "payout_total": "99999.00"}
MISMATCH = (
    r"audit store tampered at record 4: record 4 hash mismatch: its content was edited "
    r"\(or it was hashed with a different hmac_key\); a row this store did not write"
)


@pytest.fixture
def pg(pg_store: Callable[..., PgStore]) -> PgStore:
    return pg_store()


@pytest.fixture
def open_pg(pg: PgStore) -> Iterator[Callable[..., PostgresAuditStore]]:
    opened: list[PostgresAuditStore] = []

    def make(**kw: Any) -> PostgresAuditStore:
        store = PostgresAuditStore(pg.app_url, **kw)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


# How a decision reads: through the store, and through a transaction (prefetch first, as
# decide_prepared does).
READS: dict[str, Callable[[PostgresAuditStore], object]] = {
    "get": lambda s: s.get("forged-1"),
    "find": lambda s: s.find("order:O1"),
    "record": lambda s: s.record(4),
    "tx.get": lambda s: _in_tx(s, lambda tx: tx.get("forged-1")),
    "tx.prefetch": lambda s: _in_tx(s, lambda tx: tx.prefetch(["forged-1", "k1"])),
    "tx.find": lambda s: _in_tx(s, lambda tx: tx.find("order:O1")),
    "tx.record": lambda s: _in_tx(s, lambda tx: tx.record(4)),
}


def _in_tx(store: PostgresAuditStore, read: Callable[[Any], object]) -> object:
    with store.transaction() as tx:
        return read(tx)


@pytest.mark.parametrize("read", READS)
def test_a_row_with_a_hash_that_does_not_match_is_never_handed_out(
    read: str, pg: PgStore, open_pg: Callable[..., PostgresAuditStore]
) -> None:
    """SPEC §7: a row the app role inserted past the store's code, with a hash that is
    not its content's, stops every read a decision makes with TamperedError naming it."""
    store = open_pg()
    fill(store, 3)
    assert forge(pg, FORGED, key="forged-1", tags=("order:O1",)) == 4
    with pytest.raises(audit.TamperedError, match=MISMATCH) as caught:
        READS[read](store)
    assert caught.value.seq == 4


def test_a_forged_head_is_never_chained_onto(
    pg: PgStore, open_pg: Callable[..., PostgresAuditStore]
) -> None:
    """SPEC §7, "the head is checked before a record is chained onto it": a forged row at
    the head refuses the next append (single, batch, in a transaction), and nothing
    legitimate lands on top of it."""
    store = open_pg()
    fill(store, 3)
    forge(pg, FORGED)
    with pytest.raises(audit.TamperedError, match=MISMATCH):
        store.append(entry(10))
    with pytest.raises(audit.TamperedError, match=MISMATCH):
        store.append_many([entry(11), entry(12)])
    with pytest.raises(audit.TamperedError, match=MISMATCH), store.transaction() as tx:
        tx.append(entry(13))
    assert count_rows(pg) == 4 and store.head().seq == 4


def test_a_keyed_store_catches_a_forger_who_recomputes_the_hash(
    pg: PgStore, open_pg: Callable[..., PostgresAuditStore]
) -> None:
    """SPEC §7: the forger recomputes the plain SHA-256 of the forged body (all an
    attacker without the HMAC key can do); the keyed store's HMAC check refuses it on
    reads and at the head."""
    store = open_pg(hmac_key=KEY)
    store.append_many([entry(n) for n in (1, 2, 3)])
    forge(pg, FORGED, key="forged-1", tags=("order:O1",), recompute=True)
    for read in ("get", "find", "tx.prefetch"):
        with pytest.raises(audit.TamperedError, match=MISMATCH):
            READS[read](store)
    with pytest.raises(audit.TamperedError, match=MISMATCH):
        store.append(entry(10))
    assert count_rows(pg) == 4


def test_an_unkeyed_store_cannot_tell_a_forger_who_recomputes_the_hash(
    pg: PgStore, open_pg: Callable[..., PostgresAuditStore]
) -> None:
    """The limit docs/audit.md states (SPEC §7): without an HMAC key, whoever holds the
    database login and recomputes SHA-256 writes a record indistinguishable from the
    store's own — reads believe it, the next record chains onto it, and verify passes.
    Only a keyed store (or a checkpoint published elsewhere) protects; this test pins why
    the docs recommend one."""
    store = open_pg()
    fill(store, 3)
    forge(pg, FORGED, key="forged-1", tags=("order:O1",), recompute=True)
    found = store.get("forged-1")
    assert found is not None and found.payload == FORGED
    assert store.append(entry(5)).seq == 5
    assert store.verify().ok


def test_records_the_store_wrote_are_read_back_unchanged(
    open_pg: Callable[..., PostgresAuditStore],
) -> None:
    """The checks refuse nothing genuine: through the store and a transaction, every
    read returns what was appended."""
    store = open_pg()
    records = {r.key: r for r in fill(store, 3)}
    assert store.get("k1") == records["k1"]
    assert store.find("order:O1") == [records["k1"]]
    assert store.record(2) == records["k2"]
    with store.transaction() as tx:
        tx.prefetch(["k1", "k2", "missing"])
        assert (tx.get("k2"), tx.get("missing")) == (records["k2"], None)
        assert tx.find("order:O2") == [records["k2"]]
        assert tx.append(entry(4)).seq == 4
    assert store.verify().ok


def test_a_keyed_store_reads_its_own_records(
    pg_store: Callable[..., PgStore],
) -> None:
    """The checks refuse nothing genuine in a keyed store either (its hashes are HMACs)."""
    with PostgresAuditStore(pg_store("keyed").app_url, hmac_key=KEY) as store:
        records = {r.key: r for r in fill(store, 3)}
        assert store.get("k3") == records["k3"]
        assert store.find("order:O2") == [records["k2"]]
        with store.transaction() as tx:
            tx.prefetch(["k1"])
            assert tx.get("k1") == records["k1"]
            assert tx.append(entry(4)).seq == 4
        assert store.verify().ok


RECORD = Record(1, "r", "2026-11-12T02:00:00.000000Z", "O-1", ("order:O-1",), {}, "0" * 64,
                "0" * 64)  # fmt: skip


@pytest.mark.parametrize(
    ("asked", "carried"),
    [
        ({"key": "O-1"}, True),
        ({"key": "Ｏ-1"}, True),  # fullwidth O: NFKC makes it O
        ({"key": " O-1 "}, True),
        ({"key": "O-2"}, False),
        ({"tag": "order:Ｏ-1"}, True),
        ({"tag": "order:O-2"}, False),
        ({"key": "O-1", "tag": "order:O-1"}, True),
    ],
)
def test_record_carries_compares_keys_and_tags_in_lookup_form(
    asked: dict[str, str], carried: bool
) -> None:
    """SPEC §7: a record must carry the key or tag it was found by, compared in
    normalised form (NFKC, surrounding whitespace removed) so records written before
    normalisation are still recognised."""
    assert record_carries(RECORD, **asked) is carried
