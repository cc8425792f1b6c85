"""The audit store on PostgreSQL: what the database itself enforces, many writers, failures,
and migration from the embedded store (issue 7, SPEC §7).

The backend-neutral behaviour is pinned by test_contract.py, which runs against PostgreSQL
as well; these tests cover what only a server database has. They talk to a real server
(postgres_support.py says which), never to a mock.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
from audit_support import FakeClock, entry, fill
from postgres_support import (
    PgStore,
    append_worker,
    backends_of,
    claim_worker,
    count_rows,
    make_url,
)

import audit
import audit.pg_rows
import audit.pg_statements
import audit.pg_writer
from audit.postgres import APP_ROLE, SCHEMA_VERSION, PostgresAuditStore
from audit.protocol import Checkpoint, Entry

pytestmark = pytest.mark.postgres

SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def pg(pg_store: Callable[..., PgStore]) -> PgStore:
    return pg_store()


@pytest.fixture
def open_pg(pg: PgStore) -> Iterator[Callable[..., PostgresAuditStore]]:
    """Open handles on the test's store as the application role; all closed afterwards."""
    opened: list[PostgresAuditStore] = []

    def make(url: str | None = None, **kw: Any) -> PostgresAuditStore:
        store = PostgresAuditStore(url or pg.app_url, **kw)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


# -- schema, roles and URL selection -----------------------------------------------------


def test_open_store_selects_postgres_by_url(pg: PgStore) -> None:
    """``audit.open_store("postgresql://…")`` opens the PostgreSQL backend."""
    with audit.open_store(pg.app_url) as store:
        assert isinstance(store, PostgresAuditStore)
        assert store.append(entry(1)).seq == 1
    postgres_scheme = pg.app_url.replace("postgresql://", "postgres://", 1)
    with audit.open_store(postgres_scheme) as store:
        assert store.head().seq == 1


def test_init_store_is_versioned_and_idempotent(pg_store: Callable[..., PgStore]) -> None:
    """The first run applies migrations 1 and 2 and records them; a second run changes
    nothing."""
    bare = pg_store("bare", init=False)
    first = audit.init_store(bare.admin_url)
    assert f"audit store in schema {bare.schema}:" in first
    assert "applied migration 1 (record table, chain-link and append-only triggers)" in first
    assert "applied migration 2 (Merkle tree table, its link and append-only triggers)" in first
    again = audit.init_store(bare.admin_url)
    assert "schema already at version 2, nothing to migrate" in again
    assert "applied" not in again
    with bare.admin() as conn:
        rows = conn.execute(
            "SELECT version, description FROM pricecalc_audit_schema_version ORDER BY version"
        ).fetchall()
    assert rows == [
        (1, "record table, chain-link and append-only triggers"),
        (2, "Merkle tree table, its link and append-only triggers"),
    ]
    assert SCHEMA_VERSION == 2


def test_an_uninitialised_database_names_the_command_to_run(
    pg_store: Callable[..., PgStore],
) -> None:
    bare = pg_store("bare", init=False)
    expected = "table pricecalc_audit_record not found; create it with `pricecalc audit init URL`"
    with pytest.raises(audit.AuditError, match=re.escape(expected)):
        PostgresAuditStore(bare.admin_url)


def test_init_repairs_drifted_grants_and_disabled_triggers(pg: PgStore) -> None:
    """Re-running init revokes a stray UPDATE grant and re-enables the triggers ALWAYS."""
    with pg.admin() as conn:
        conn.execute(f"GRANT UPDATE ON pricecalc_audit_record TO {APP_ROLE}")
        conn.execute(
            "ALTER TABLE pricecalc_audit_record DISABLE TRIGGER pricecalc_audit_no_truncate"
        )
    audit.init_store(pg.admin_url)
    with pg.admin() as conn:
        granted = conn.execute(
            "SELECT has_table_privilege(%s, 'pricecalc_audit_record', 'UPDATE')", (APP_ROLE,)
        ).fetchone()
        states = conn.execute(
            "SELECT tgname, tgenabled FROM pg_trigger "
            "WHERE tgrelid = 'pricecalc_audit_record'::regclass AND NOT tgisinternal "
            "ORDER BY tgname"
        ).fetchall()
    assert granted == (False,)
    assert states == [
        ("pricecalc_audit_chain_link", "A"),
        ("pricecalc_audit_no_truncate", "A"),
        ("pricecalc_audit_no_update_delete", "A"),
    ]


def test_the_app_role_may_select_and_insert_only(pg: PgStore) -> None:
    with pg.admin() as conn:
        rows = conn.execute(
            "SELECT p, has_table_privilege(%s, 'pricecalc_audit_record', p) "
            "FROM unnest(ARRAY['SELECT','INSERT','UPDATE','DELETE','TRUNCATE','REFERENCES',"
            "'TRIGGER']) AS p",
            (APP_ROLE,),
        ).fetchall()
    assert dict(rows) == {
        "SELECT": True, "INSERT": True, "UPDATE": False, "DELETE": False,
        "TRUNCATE": False, "REFERENCES": False, "TRIGGER": False,
    }  # fmt: skip


# -- append-only, enforced by the database -------------------------------------------------

CHANGES = {
    "UPDATE": "UPDATE pricecalc_audit_record SET payload = '{\"n\": 0}' WHERE seq = 2",
    "DELETE": "DELETE FROM pricecalc_audit_record WHERE seq = 3",
    "TRUNCATE": "TRUNCATE pricecalc_audit_record",
}


@pytest.mark.parametrize("operation", CHANGES)
def test_the_app_role_cannot_change_or_remove_records(
    operation: str, pg: PgStore, open_pg: Callable[..., PostgresAuditStore]
) -> None:
    """As the application role, UPDATE/DELETE/TRUNCATE are refused: permission denied."""
    store = open_pg()
    fill(store, 3)
    head = store.head()
    with pg.app() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
        conn.execute(CHANGES[operation])
    assert "permission denied for table pricecalc_audit_record" in str(caught.value)
    assert store.head() == head and store.verify().ok


@pytest.mark.parametrize("replication_role", ["origin", "replica"])
@pytest.mark.parametrize("operation", CHANGES)
def test_the_triggers_refuse_even_a_superuser(
    operation: str,
    replication_role: str,
    pg: PgStore,
    open_pg: Callable[..., PostgresAuditStore],
) -> None:
    """A superuser (who has every privilege) is stopped by the triggers — also with
    ``session_replication_role = replica``, which skips ordinary triggers (they are
    ENABLE ALWAYS)."""
    store = open_pg()
    fill(store, 3)
    head = store.head()
    with pg.admin() as conn:
        conn.execute(f"SET session_replication_role = {replication_role}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
            conn.execute(CHANGES[operation])
    assert re.search(rf"append-only: {operation} on t_\w+\.pricecalc_audit_record is refused",
                     str(caught.value))  # fmt: skip
    assert store.head() == head and store.verify().ok
    assert count_rows(pg) == 3


def test_the_database_refuses_a_gap_or_a_fork(
    pg: PgStore, open_pg: Callable[..., PostgresAuditStore]
) -> None:
    """Even a writer that skips the store's code cannot leave a gap in seq, chain a record
    onto anything but the last one, or reuse a seq or a key."""
    store = open_pg()
    records = fill(store, 2)
    row = (
        "INSERT INTO pricecalc_audit_record (seq, id, recorded_at, recorded_us, key, tags, "
        "payload, prev_hash, hash) VALUES (%s, 'x', '2025-06-18T08:00:00.000000Z', "
        "1750233600000000, %s, '{}', '{}', %s, %s)"
    )
    with pg.app() as conn:
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="leave a gap"):
            conn.execute(row, (4, None, records[1].hash, "c" * 64))
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="does not chain"):
            conn.execute(row, (3, None, records[0].hash, "c" * 64))
        with pytest.raises(
            psycopg.errors.UniqueViolation, match=r"Key \(seq\)=\(2\) already exists"
        ):
            conn.execute(row, (2, None, records[0].hash, "c" * 64))
        with pytest.raises(
            psycopg.errors.UniqueViolation, match=r"Key \(key\)=\(k1\) already exists"
        ):
            conn.execute(row, (3, "k1", records[1].hash, "c" * 64))
    assert store.verify() == audit.VerifyReport(ok=True, count=2, head=store.head())


def test_verify_catches_what_the_owner_can_still_do(
    pg: PgStore, open_pg: Callable[..., PostgresAuditStore]
) -> None:
    """The table owner can switch the triggers off; the hash chain still gives it away,
    naming the first bad record."""
    store = open_pg()
    fill(store, 5)
    with pg.admin() as conn:
        conn.execute("ALTER TABLE pricecalc_audit_record DISABLE TRIGGER USER")
        conn.execute(
            "UPDATE pricecalc_audit_record SET payload = jsonb_set(payload, '{n}', '40') "
            "WHERE seq = 4"
        )
    edited = store.verify()
    assert (edited.ok, edited.bad_seq, edited.count) == (False, 4, 3)
    assert edited.problem is not None and "record 4 hash mismatch" in edited.problem
    with pg.admin() as conn:
        conn.execute("DELETE FROM pricecalc_audit_record WHERE seq = 2")
    deleted = store.verify()
    assert (deleted.ok, deleted.bad_seq) == (False, 2)
    assert deleted.problem is not None and "record 2 is missing (deleted)" in deleted.problem


def test_verify_reports_a_value_json_cannot_hash(
    pg: PgStore, open_pg: Callable[..., PostgresAuditStore]
) -> None:
    """A float planted in a payload by SQL is reported (no canonical form), not raised."""
    store = open_pg()
    fill(store, 3)
    with pg.admin() as conn:
        conn.execute("ALTER TABLE pricecalc_audit_record DISABLE TRIGGER USER")
        conn.execute("UPDATE pricecalc_audit_record SET payload = '{\"n\": 1.5}' WHERE seq = 3")
    report = store.verify()
    assert (report.ok, report.bad_seq, report.count, report.head.seq) == (False, 3, 2, 2)
    assert report.problem is not None and "record 3 has no canonical form" in report.problem


def test_verify_catches_an_edited_time_index(
    pg: PgStore, open_pg: Callable[..., PostgresAuditStore]
) -> None:
    """``recorded_us`` (the time index, not hashed) must match ``recorded_at``."""
    store = open_pg(clock=FakeClock())
    fill(store, 3)
    with pg.admin() as conn:
        conn.execute("ALTER TABLE pricecalc_audit_record DISABLE TRIGGER USER")
        conn.execute(
            "ALTER TABLE pricecalc_audit_record DROP CONSTRAINT recorded_us_matches_recorded_at"
        )
        conn.execute("UPDATE pricecalc_audit_record SET recorded_us = 0 WHERE seq = 2")
    report = store.verify()
    assert (report.ok, report.bad_seq, report.count) == (False, 2, 1)
    assert report.problem is not None and "recorded_us was edited" in report.problem


# -- the handle -----------------------------------------------------------------------------


def test_the_server_clock_stamps_records_in_chain_order(
    open_pg: Callable[..., PostgresAuditStore],
) -> None:
    """Without a clock, recorded_at comes from the server, taken under the chain lock."""
    a, b = open_pg(), open_pg()
    stamps = [(a if n % 2 else b).append(entry(n)).recorded_at for n in range(1, 7)]
    assert stamps == sorted(stamps)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", s) for s in stamps)


def test_a_held_chain_lock_times_out_as_store_locked(
    open_pg: Callable[..., PostgresAuditStore],
) -> None:
    holder, waiter = open_pg(), open_pg(lock_timeout=0.2)
    with holder.transaction() as tx:
        tx.append(entry(1))
        with pytest.raises(audit.StoreLocked, match=r"within 0\.2s \(append: taking the chain"):
            waiter.append(entry(2))
    assert waiter.append(entry(2)).seq == 2


def test_a_database_error_spoils_the_whole_transaction(
    pg: PgStore, open_pg: Callable[..., PostgresAuditStore]
) -> None:
    """When the database refuses a step inside a transaction (here: the SELECT grant was
    revoked meanwhile, so a history read fails), carrying on and leaving the block
    cleanly still records nothing, and says so."""
    store = open_pg()
    store.append(entry(0))
    aborted = "transaction was aborted by an earlier error"
    with pytest.raises(audit.AuditError, match=aborted), store.transaction() as tx:
        tx.append(entry(1))
        with pg.admin() as conn:
            conn.execute(f"REVOKE SELECT ON pricecalc_audit_record FROM {APP_ROLE}")
        with pytest.raises(audit.AppendOnlyViolation, match="refused by the database"):
            tx.find("t1")
        with pytest.raises(audit.AuditError, match=aborted):
            tx.append(entry(2))
    audit.init_store(pg.admin_url)  # gives the grant back
    assert store.head().seq == 1 and store.get("k1") is None
    assert store.append(entry(1)).seq == 2


def test_a_refused_insert_fails_the_whole_group_at_commit(
    pg: PgStore, open_pg: Callable[..., PostgresAuditStore]
) -> None:
    """Issue 22: a transaction's records are inserted in bulk with its COMMIT. When the
    database refuses them (the INSERT grant revoked meanwhile), the block raises
    AppendOnlyViolation and nothing of it is recorded."""
    store = open_pg()
    store.append(entry(0))
    with (
        pytest.raises(audit.AppendOnlyViolation, match="commit refused by the database: "
                      "permission denied for table pricecalc_audit_record"),
        store.transaction() as tx,
    ):  # fmt: skip
        tx.append(entry(1))
        with pg.admin() as conn:
            conn.execute(f"REVOKE INSERT ON pricecalc_audit_record FROM {APP_ROLE}")
        tx.append(entry(2))
    audit.init_store(pg.admin_url)
    assert store.head().seq == 1 and store.get("k1") is None and store.get("k2") is None
    assert store.append(entry(1)).seq == 2


@pytest.mark.parametrize("size", [8, 70], ids=["pipelined", "copy"])
def test_a_group_is_one_transaction_sent_in_bulk(
    size: int, pg: PgStore, open_pg: Callable[..., PostgresAuditStore]
) -> None:
    """Issue 22: a transaction's appends chain onto its own records (reads inside see
    them before anything is sent), go to the server together with the COMMIT (pipelined
    INSERTs, or COPY for a large group), and leave a verified chain and tree; nothing is
    visible to others before the commit."""
    store, other = open_pg(), open_pg()
    fill(store, 2)
    with store.transaction() as tx:
        tx.prefetch([f"g{n}" for n in range(size)])
        for n in range(size):
            record = tx.append(Entry(payload={"n": n}, key=f"g{n}", tags=("order:G",)))
            assert record.seq == 3 + n
            assert tx.find("order:G")[-1] == record and tx.get(f"g{n}") == record
        assert count_rows(pg) == 2 and other.get("g0") is None
    assert store.head().seq == other.head().seq == 2 + size
    assert [r.key for r in other.find("order:G")] == [f"g{n}" for n in range(size)]
    report = other.verify()
    assert (report.ok, report.count) == (True, 2 + size)


def test_text_postgresql_cannot_hold_is_refused_before_writing(
    open_pg: Callable[..., PostgresAuditStore],
) -> None:
    store = open_pg()
    with pytest.raises(ValueError, match="cannot store the character U\\+0000"):
        store.append(Entry(payload={"note": "a\x00b"}, key="n1"))
    assert store.head().seq == 0
    with store.transaction() as tx:  # a refused append does not spoil the transaction
        with pytest.raises(ValueError, match="U\\+0000"):
            tx.append(Entry(payload={}, tags=("a\x00",)))
        tx.append(entry(1))
    assert store.head().seq == 1


def test_query_streams_across_pages(open_pg: Callable[..., PostgresAuditStore]) -> None:
    """More records than one page: every one comes back once, in order, also filtered."""
    store = open_pg()
    store.append_many([entry(n) for n in range(1, 4501)])
    assert [r.seq for r in store.query()] == list(range(1, 4501))
    assert [r.seq for r in store.query({"request.input.order_id": "O1"})] == list(range(1, 4501, 3))
    assert [r.seq for r in store.find("order:O2")] == list(range(2, 4501, 3))
    report = store.verify()
    assert (report.ok, report.count) == (True, 4500)


# -- many writers ---------------------------------------------------------------------------


@pytest.mark.slow
def test_eight_processes_append_into_one_chain(
    pg: PgStore, open_pg: Callable[..., PostgresAuditStore]
) -> None:
    """8 processes × 500 durable appends on their own connections: 4,000 records, seq
    1..4000 without a gap, one chain that verifies, every key exactly once."""
    workers, each = 8, 500
    with SPAWN.Manager() as manager, ProcessPoolExecutor(workers, mp_context=SPAWN) as pool:
        start = manager.Barrier(workers)
        futures = [pool.submit(append_worker, pg.app_url, w, each, start) for w in range(workers)]
        assert [f.result(timeout=300) for f in futures] == [each] * workers
    store = open_pg()
    report = store.verify()
    assert (report.ok, report.count) == (True, workers * each)
    records = list(store.query())
    assert [r.seq for r in records] == list(range(1, workers * each + 1))
    keys = sorted(r.key or "" for r in records)
    assert keys == sorted(f"w{w}-{i}" for w in range(workers) for i in range(each))
    # the writers really interleaved: no process got one contiguous run of the chain
    runs = sum(1 for a, b in itertools.pairwise(records)
               if a.payload["worker"] != b.payload["worker"])  # fmt: skip
    assert runs > workers


@pytest.mark.slow
def test_a_claim_raced_by_two_processes_is_paid_once(pg: PgStore) -> None:
    """Two processes check-then-append the same claims at the same moment (a barrier per
    claim): for every claim exactly one of them appends (the price-protection rule "paid
    once", at the store level)."""
    tags = [f"claim:O{n}:L1" for n in range(25)]
    with SPAWN.Manager() as manager, ProcessPoolExecutor(2, mp_context=SPAWN) as pool:
        start = manager.Barrier(2)
        futures = [pool.submit(claim_worker, pg.app_url, w, tags, start) for w in range(2)]
        paid = [f.result(timeout=120) for f in futures]
    assert sorted(paid[0] + paid[1]) == sorted(tags)  # each claim paid by exactly one
    with audit.open_store(pg.app_url) as store:
        assert [len(store.find(tag)) for tag in tags] == [1] * len(tags)
        assert store.verify().count == len(tags)


# -- the chain lock: held briefly, let go before the flush (issue 22) ------------------------


def _round_trips(monkeypatch: pytest.MonkeyPatch, store: PostgresAuditStore) -> list[list[str]]:
    """Record the statements ``store`` sends through ``execute``, one list per round trip
    (a pipeline is one; a statement outside a pipeline is one; the statements the writer
    sends as one simple query are one), each statement shortened to its first words (a
    prepared statement's ``EXECUTE`` to those of the statement it runs). The records' and
    tree nodes' INSERTs go in the same round trip as the COMMIT and are not listed."""
    trips: list[list[str]] = []
    conn = store._conn
    execute, pipeline, simple = conn.execute, conn.pipeline, audit.pg_writer._simple
    depth = [0]
    prepared = {
        getattr(store._sql, f"run_{name}").split(b"(")[0]: getattr(store._sql, name)
        for name in ("prepare", "get", "keys", "find", "record")
    }

    def shortened(text: str) -> str:
        return re.sub(r"\d+", "N", " ".join(text.split()[:3]))

    def recorded_simple(conn: Any, statements: list[bytes]) -> Any:
        trips.append([
            shortened(prepared.get(text.split(b"(")[0], text).decode())
            for text in statements
            if not text.startswith(b"INSERT INTO")
        ])  # fmt: skip
        return simple(conn, statements)

    def recorded_execute(query: Any, *args: Any, **kwargs: Any) -> Any:
        text = query.decode() if isinstance(query, bytes) else str(query)
        words = shortened(text)
        if depth[0]:
            trips[-1].append(words)
        else:
            trips.append([words])
        return execute(query, *args, **kwargs)

    @contextlib.contextmanager
    def recorded_pipeline() -> Iterator[Any]:
        if not depth[0]:
            trips.append([])
        depth[0] += 1
        try:
            with pipeline() as p:
                yield p
        finally:
            depth[0] -= 1

    monkeypatch.setattr(conn, "execute", recorded_execute)
    monkeypatch.setattr(conn, "pipeline", recorded_pipeline)
    monkeypatch.setattr(audit.pg_writer, "_simple", recorded_simple)
    return trips


OPEN = ["BEGIN ISOLATION LEVEL", "SELECT pg_advisory_xact_lock(N, N),", "WITH size AS"]
COMMIT_DURABLE = ["COMMIT", "SELECT CASE WHEN"]


def test_a_lone_decision_is_two_round_trips_with_the_flush_after_the_commit(
    monkeypatch: pytest.MonkeyPatch, open_pg: Callable[..., PostgresAuditStore]
) -> None:
    """Issue 22: what a lone ``decide`` does — look its key up, append — costs two round
    trips. The first takes the lock, reads the head (with the tree's right edge, although
    another handle appended since this one last saw the tree) and answers the look-up;
    the second sends the rows, COMMITs — asynchronously, which lets the lock go — and
    then waits for the write-ahead log's flush past that commit (the barrier) before the
    block returns. The chain and tree verify."""
    store, other = open_pg(), open_pg()
    fill(store, 3)
    other.append(entry(4))  # store's cached tree edge is now stale
    assert store._sql.durable is not None  # the test server lets the role flush
    trips = _round_trips(monkeypatch, store)
    with store.transaction() as tx:
        assert tx.get("k5") is None
        assert tx.append(entry(5)).seq == 5
    assert trips == [[*OPEN, "SELECT seq, id,"], COMMIT_DURABLE]
    assert store._sql.lock.endswith(b", set_config('synchronous_commit', 'off', true)")
    report = other.verify()
    assert (report.ok, report.count, other.get("k5")) == (True, 5, store.get("k5"))


def test_a_transaction_that_only_read_waits_for_the_flush_of_what_it_read(
    monkeypatch: pytest.MonkeyPatch, open_pg: Callable[..., PostgresAuditStore]
) -> None:
    """A replay reads a record another writer may have committed but not yet flushed: the
    block still ends with the barrier, so nothing it read is acknowledged before it is on
    disk. A block that never asked the database costs nothing."""
    store = open_pg()
    recorded = fill(store, 2)
    trips = _round_trips(monkeypatch, store)
    with store.transaction() as tx:
        assert tx.get("k1") == recorded[0]
    with store.transaction():
        pass
    assert trips == [[*OPEN, "SELECT seq, id,"], COMMIT_DURABLE]


def test_the_chain_lock_is_taken_by_the_first_read_not_by_opening(
    open_pg: Callable[..., PostgresAuditStore],
) -> None:
    """Opening a transaction takes nothing; its first question to the database takes the
    lock (in the same round trip), and from then on other writers wait."""
    holder, waiter = open_pg(), open_pg(lock_timeout=0.2)
    with holder.transaction() as tx:
        assert waiter.append(entry(1)).seq == 1
        assert [r.seq for r in tx.find("order:O1")] == [1]
        with pytest.raises(audit.StoreLocked, match=r"within 0\.2s \(append: taking the chain"):
            waiter.append(entry(2))
        tx.append(entry(2))
        locked = r"within 0\.2s \(transaction: taking the chain lock\)"
        with (
            pytest.raises(audit.AuditError, match="aborted by an earlier error"),
            waiter.transaction() as late,
        ):
            with pytest.raises(audit.StoreLocked, match=locked):
                late.get("k9")
            # a caller that carries on (a group's next request) hears the same
            with pytest.raises(audit.StoreLocked, match=locked):
                late.find("order:O1")
    assert waiter.append(entry(3)).seq == 3


def test_without_the_flush_barrier_each_commit_is_synchronous(
    monkeypatch: pytest.MonkeyPatch, open_pg: Callable[..., PostgresAuditStore]
) -> None:
    """Where the role may not call the barrier's functions (an administrator revoked
    them), the store keeps PostgreSQL's synchronous commit, lock held through the flush:
    slower with many writers, as durable."""
    monkeypatch.setattr(audit.pg_statements, "_BARRIER_USABLE", b"SELECT false")
    store = open_pg()
    assert store._sql.durable is None
    assert not store._sql.lock.endswith(b"true)")
    trips = _round_trips(monkeypatch, store)
    assert store.append(entry(1)).seq == 1
    assert trips == [
        ["BEGIN ISOLATION LEVEL", "SELECT pg_advisory_xact_lock(N, N)", "WITH size AS"],
        ["COMMIT"],
    ]
    assert store._conn.execute("SHOW synchronous_commit").fetchone() == ("on",)


def test_a_failed_flush_after_the_commit_says_the_records_are_committed(
    open_pg: Callable[..., PostgresAuditStore],
) -> None:
    """When the COMMIT went through but the barrier failed (here: made to divide by
    zero), the records are in the store; the error says so, not that nothing was
    recorded, and the handle goes on."""
    store, other = open_pg(), open_pg()
    store._sql.durable = b"SELECT 1/0"
    with pytest.raises(
        audit.AuditError,
        match=r"append: the records were committed but their flush to disk could not be "
        r"confirmed \(division by zero\); look them up by key before retrying",
    ):
        store.append(entry(1))
    assert other.get("k1") is not None and other.head().seq == 1
    store._sql.durable = audit.pg_statements._BARRIER
    assert store.append(entry(2)).seq == 2


# -- a dropped connection -------------------------------------------------------------------


def _kill(pg: PgStore, application_name: str) -> None:
    with pg.admin() as conn:
        pids = backends_of(conn, application_name)
        assert len(pids) == 1
        conn.execute("SELECT pg_terminate_backend(%s, 5000)", (pids[0],))


def test_a_connection_killed_mid_batch_records_nothing_and_a_keyed_retry_is_safe(
    pg: PgStore, open_pg: Callable[..., PostgresAuditStore]
) -> None:
    """The server kills the writer's connection inside its transaction (after three
    appends): the batch is reported failed, nothing of it is recorded, the handle refuses
    further use, and retrying the keyed batch on a new handle records it exactly once."""
    store = open_pg(make_url(pg.app_url, application_name="pricecalc-doomed"))
    store.append(entry(0))
    batch = [entry(n) for n in range(1, 6)]
    with pytest.raises(audit.StoreUnusable) as caught, store.transaction() as tx:
        for item in batch[:3]:
            tx.append(item)
        _kill(pg, "pricecalc-doomed")
        for item in batch[3:]:
            tx.append(item)
    message = str(caught.value)
    assert "connection to the audit database" in message and "was lost" in message
    assert "nothing of the batch was recorded (the database rolled it back)" in message
    with pytest.raises(audit.StoreUnusable, match="refuses further use"):
        store.get("k0")

    fresh = open_pg()
    assert fresh.head().seq == 1 and count_rows(pg) == 1
    assert [fresh.get(item.key or "") for item in batch] == [None] * 5
    retried = fresh.append_many(batch)
    assert [r.seq for r in retried] == [2, 3, 4, 5, 6]
    with pytest.raises(audit.DuplicateKey, match="'k1' is already recorded as record 2"):
        fresh.append_many(batch)  # a second retry is refused: never recorded twice
    assert fresh.verify().count == 6


def test_a_connection_killed_between_batches_fails_the_next_one_cleanly(
    pg: PgStore, open_pg: Callable[..., PostgresAuditStore]
) -> None:
    store = open_pg(make_url(pg.app_url, application_name="pricecalc-idle"))
    fill(store, 2)
    _kill(pg, "pricecalc-idle")
    with pytest.raises(audit.StoreUnusable, match="nothing of the batch was recorded"):
        store.append_many([entry(3), entry(4)])
    assert open_pg().head().seq == 2


# -- migration ------------------------------------------------------------------------------


def test_migrate_from_tinydb_keeps_every_record_and_the_head(
    tmp_path: Path, pg: PgStore, open_pg: Callable[..., PostgresAuditStore]
) -> None:
    """Every record arrives with the same seq, id, recorded_at, prev_hash and hash; the
    head hash is proved unchanged; the chain then continues on PostgreSQL."""
    key = b"finance-key-2025"
    path = tmp_path / "audit.jsonl"
    with audit.TinyDBAuditStore(path, hmac_key=key, clock=FakeClock()) as source:
        fill(source, 40)
        source.append(Entry(payload={"note": "=cmd|' /C calc'!A0", "ü": "价保"}, key="odd"))
        expected = list(source.query())
        head = source.head()
    count, checkpoint = audit.migrate_store(str(path), pg.app_url, hmac_key=key)
    assert (count, checkpoint) == (41, head)
    target = open_pg(hmac_key=key)
    assert list(target.query()) == expected
    assert target.head() == head and target.verify(head).ok
    nxt = target.append(entry(99))
    assert (nxt.seq, nxt.prev_hash) == (42, head.hash)


def test_migrate_refuses_a_tampered_source_and_a_non_empty_target(
    tmp_path: Path, pg_store: Callable[..., PgStore], open_pg: Callable[..., PostgresAuditStore]
) -> None:
    path = tmp_path / "audit.jsonl"
    with audit.TinyDBAuditStore(path, clock=FakeClock()) as source:
        fill(source, 3)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"n":2', b'"n":7')
    path.write_bytes(b"".join(lines))
    empty = pg_store("empty")
    with pytest.raises(audit.TamperedError, match="the source does not verify, nothing copied"):
        audit.migrate_store(str(path), empty.app_url)
    assert count_rows(empty) == 0

    busy = open_pg()
    busy.append(entry(1))
    with pytest.raises(audit.AuditError, match="already holds 1 records; migrate into an empty"):
        audit.migrate_store(str(path), busy)

    missing = tmp_path / "typo.jsonl"
    with pytest.raises(audit.AuditError, match=r"there is no audit store at .*typo\.jsonl"):
        audit.migrate_store(str(missing), empty.app_url)
    assert not missing.exists()  # not created as an empty store "migrated" with 0 records


def test_import_refuses_a_record_that_does_not_chain(
    open_pg: Callable[..., PostgresAuditStore], tmp_path: Path
) -> None:
    """Records copied in must hash and chain under the target's key; nothing is copied
    otherwise (one transaction)."""
    with audit.TinyDBAuditStore(tmp_path / "a.jsonl", clock=FakeClock()) as source:
        records = fill(source, 3)
    target = open_pg(hmac_key=b"another key")
    with pytest.raises(audit.TamperedError, match="record 1 hash mismatch"):
        target.import_records(records)
    plain = open_pg()
    with pytest.raises(audit.TamperedError, match="expected record 1 next, got record 2"):
        plain.import_records(records[1:])
    assert plain.head() == Checkpoint(0, audit.GENESIS_HASH)
    assert plain.import_records(records) == Checkpoint(3, records[-1].hash)


# -- values written into the statements (issue 22) -------------------------------------------

TRICKY = "it's \\ a; %s $1 '); DROP TABLE pricecalc_audit_record; -- 价格 é"


def test_a_group_sent_as_one_simple_query_stores_every_text_exactly(
    open_pg: Callable[..., PostgresAuditStore], pg: PgStore
) -> None:
    """The writer sends a group's records, tree nodes, COMMIT and barrier as one simple
    query, with the values written in as literals, and its reads as ``EXECUTE`` of the
    session's prepared statements: keys, tags and payload text holding quotes,
    backslashes, semicolons, placeholders and CJK are stored and read back exactly,
    nothing else runs, and the chain and tree verify."""
    store = open_pg()
    tricky = [
        Entry({"note": TRICKY, "n": n}, key=f"{TRICKY}#{n}", tags=(f"t:{TRICKY}",))
        for n in range(3)
    ]
    with store.transaction() as tx:
        tx.prefetch([f"{TRICKY}#0", f"{TRICKY}#9"])
        assert tx.get(f"{TRICKY}#9") is None
        recorded = [tx.append(item) for item in tricky]
    assert [r.seq for r in recorded] == [1, 2, 3]
    assert [store.get(f"{TRICKY}#{n}") for n in range(3)] == recorded
    assert store.find(f"t:{TRICKY}") == recorded
    assert [r.payload for r in recorded] == [{"note": TRICKY, "n": n} for n in range(3)]
    with store.transaction() as tx:
        tx.prefetch([f"{TRICKY}#1"])
        assert tx.get(f"{TRICKY}#1") == recorded[1]
        assert tx.record(3) == recorded[2]
    assert count_rows(pg) == 3  # the DROP TABLE in the text stayed text
    report = store.verify()
    assert (report.ok, report.count) == (True, 3)


def test_a_literal_is_what_libpq_escapes_and_nothing_else_is_written_in(
    open_pg: Callable[..., PostgresAuditStore],
) -> None:
    """The literals of the writer's simple queries, exactly — each value's, and a group's
    record and tree-node rows': text through libpq's ``PQescapeLiteral``, integers
    written out, a list as ``text[]``, bytes decoded from hex, JSON as its canonical
    text; any other value is refused."""
    from psycopg.pq import Escaping
    from psycopg.types.json import Jsonb

    from audit.pg_rows import _literal

    escape = Escaping(open_pg()._conn.pgconn).escape_literal
    assert _literal(escape, "it's") == b"'it''s'"
    assert _literal(escape, "a\\b") == b" E'a\\\\b'"
    assert _literal(escape, None) == b"NULL"
    assert _literal(escape, -12) == b"-12"
    assert _literal(escape, []) == b"'{}'::text[]"
    assert _literal(escape, ["x", "y'"]) == b"ARRAY['x','y''']::text[]"
    assert _literal(escape, b"\x00\xff") == b"decode('00ff', 'hex')"
    assert _literal(escape, Jsonb({"b": "é", "a": 1})) == "'{\"a\":1,\"b\":\"é\"}'::jsonb".encode()
    row = (3, "r-3", "2026-01-02T03:04:05.000006Z", 1767323045000006, None, ["a'b"],
           Jsonb({"k": "it's"}), "0" * 64, "f" * 64)  # fmt: skip
    assert audit.pg_rows._record_values(escape, [row, (*row[:4], "k'3", [], *row[6:])]) == (
        b"(3,'r-3','2026-01-02T03:04:05.000006Z',1767323045000006,NULL,ARRAY['a''b']::text[],"
        b"'{\"k\":\"it''s\"}'::jsonb,'" + b"0" * 64 + b"','" + b"f" * 64 + b"'),"
        b"(3,'r-3','2026-01-02T03:04:05.000006Z',1767323045000006,'k''3','{}'::text[],"
        b"'{\"k\":\"it''s\"}'::jsonb,'" + b"0" * 64 + b"','" + b"f" * 64 + b"')"
    )
    assert audit.pg_rows._node_values([(4, 0, 3, b"\x01\xab"), (5, 1, 1, b"")]) == (
        b"(4,0,3,decode('01ab', 'hex')),(5,1,1,decode('', 'hex'))"
    )
    with pytest.raises(TypeError, match="no SQL literal for float"):
        _literal(escape, 1.5)
    with pytest.raises(TypeError, match="no SQL literal for bool"):
        _literal(escape, True)


def test_the_look_ups_under_the_lock_never_scan_the_record_table(
    open_pg: Callable[..., PostgresAuditStore],
) -> None:
    """What a write reads under the chain lock — the head with which keys are taken, a
    group's key prefetch, a key, a record — goes through an index, in the plan the
    session keeps for every call (generic plans: planned once): never a scan of the
    whole record table, whose cost would grow with the store."""
    store = open_pg()
    fill(store, 40)
    conn = store._conn
    assert conn.execute("SHOW plan_cache_mode").fetchone() == ("force_generic_plan",)
    for name, argument in [
        ("prepare", "ARRAY['k1', 'k99']::text[]"),
        ("keys", "ARRAY['k1', 'k99']::text[]"),
        ("get", "'k1'"),
        ("record", "7"),
    ]:
        plan = "\n".join(
            row[0]
            for row in conn.execute(f"EXPLAIN EXECUTE pricecalc_audit_{name}({argument})")
        )
        assert "Seq Scan on pricecalc_audit_record" not in plan, (name, plan)
        assert "pricecalc_audit_record" in plan, (name, plan)


def test_the_session_speaks_utf8_whatever_the_url_asked(
    open_pg: Callable[..., PostgresAuditStore], pg: PgStore
) -> None:
    """The writer writes text into its statements as UTF-8: a handle opened with another
    client encoding in its URL still talks UTF-8, and CJK text round-trips."""
    store = open_pg(make_url(pg.app_url, client_encoding="LATIN1"))
    assert store._conn.execute("SHOW client_encoding").fetchone() == ("UTF8",)
    record = store.append(Entry({"note": "价格 é"}, key="价格-1", tags=("标签",)))
    assert store.get("价格-1") == record and store.find("标签") == [record]
    assert record.payload == {"note": "价格 é"}
