"""The audit store on PostgreSQL (psycopg 3): many writers, one chain, enforced by the database.

Records are the same records as in the embedded store (:mod:`audit.records` builds, hashes
and checks them), kept one row each in ``pricecalc_audit_record``; a record copied from one
backend to the other keeps its hash. The schema is created by :func:`init_store`
(``pricecalc audit init``); the store itself only reads and inserts, and should connect as
the application role (``pricecalc_app``), which may not UPDATE, DELETE or TRUNCATE.

How the guarantees are kept:

* **One linear chain.** Every write transaction first takes a transaction-scoped advisory
  lock on the record table (``pg_advisory_xact_lock``), then reads the head, so appends from
  any number of connections serialise and each one chains onto the last committed record.
  A ``BEFORE INSERT`` trigger refuses a row whose ``seq`` is not the next one or whose
  ``prev_hash`` is not the hash of the record before it, so even a writer that skipped the
  lock cannot fork the chain or leave a gap.
* **Append-only.** The application role has SELECT and INSERT only; ``BEFORE UPDATE OR
  DELETE`` (row) and ``BEFORE TRUNCATE`` (statement) triggers refuse the rest for everyone
  else, and are ``ENABLE ALWAYS`` so ``session_replication_role = replica`` does not skip
  them.
* **Durable, flushed after the lock.** A write is on disk before it returns; a batch
  (``append_many``, ``transaction()``) is one database transaction: all of it or none. Its
  head is read once, with the lock (taken by the block's first read or append, in the
  same round trip); its records go to the server in bulk with the COMMIT
  (:class:`audit.pg_writer._Writer`). The COMMIT is asynchronous, so the lock goes with
  the commit record, and a flush barrier in the same round trip then waits, with
  ``synchronous_commit = on``, until the write-ahead log is on disk past it — and past
  every earlier commit, so past every record the block read: writers' flushes overlap
  instead of queueing behind the lock. Where the role may not call the barrier's
  functions, the COMMIT itself is synchronous, under the lock.
* **Rows are checked, not believed** (SPEC §7). The application role may INSERT, so a row
  may have been written past this code. Every record read for a decision (``get``,
  ``find``, ``record``, a transaction's reads and ``prefetch``) and the head before an
  append is checked against its hash (HMAC when keyed) and the key, tag or seq it was
  found by; a forged row raises :class:`~audit.errors.TamperedError` naming its seq.
  Without an ``hmac_key`` a forger who recomputes SHA-256 cannot be told apart: key the
  store (docs/audit.md).
* **Failures.** A lost connection makes the handle unusable (:class:`StoreUnusable`); it is
  never retried silently. The server rolls back a transaction whose connection died, so a
  batch is either wholly recorded or not at all; when the connection died while the COMMIT
  was in flight the error says so, and a retry of a keyed batch is safe (keys are unique).

This module holds the store (:class:`PostgresAuditStore`: connecting, locking, reading,
the tree's proofs). Its siblings, one job each: :mod:`audit.pg_statements` (finding the
schema on a new connection and rendering the statements the store sends),
:mod:`audit.pg_writer` (the write transaction and the tree read through a connection),
:mod:`audit.pg_verify` (verify, in one snapshot), :mod:`audit.pg_schema` (migrations,
grants, :func:`init_store` and the table names, re-exported here) and
:mod:`audit.pg_rows` (rows and the connection string, which both the store and the
schema use).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TextIO

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb

from audit.canonical import to_json_value
from audit.chain import TreeMismatch, TreeQuestions, check_entries
from audit.errors import (
    AppendOnlyViolation,
    AuditError,
    DuplicateKey,
    StoreLocked,
    StoreUnusable,
)
from audit.export import write_records
from audit.merkle import CompactTree
from audit.pg_rows import _COLUMNS, _FETCH, _checked, _conninfo, _first_line, _record
from audit.pg_schema import (
    APP_ROLE,
    RECORD_TABLE,
    SCHEMA_VERSION,
    TREE_TABLE,
    VERSION_TABLE,
    init_store,
)
from audit.pg_statements import Statements, open_schema
from audit.pg_verify import verify_snapshot
from audit.pg_writer import _PgTreeView, _Writer
from audit.protocol import GENESIS_HASH, Checkpoint, Entry, ExportFormat, Record, VerifyReport
from audit.records import Sealer
from audit.stamps import epoch_micros

__all__ = [
    "APP_ROLE",
    "RECORD_TABLE",
    "SCHEMA_VERSION",
    "TREE_TABLE",
    "VERSION_TABLE",
    "PostgresAuditStore",
    "init_store",
    "is_postgres_url",
]


def is_postgres_url(target: str) -> bool:
    """True for ``postgresql://…`` and ``postgres://…`` URLs (the PostgreSQL backend)."""
    return target.startswith(("postgresql://", "postgres://"))


class PostgresAuditStore(TreeQuestions):
    """The :class:`~audit.protocol.AuditStore` in a PostgreSQL database (module docstring).

    ``url`` is a libpq URL or connection string (``postgresql://pricecalc_app@db/pricing``);
    the schema must exist (:func:`init_store`). ``hmac_key`` makes every hash an HMAC-SHA256
    with that key, exactly as in the embedded store. ``lock_timeout`` (seconds) bounds the
    wait for the chain lock (:class:`~audit.errors.StoreLocked`). ``clock`` returns the aware
    time stamped on each record; by default the database server's clock, read after the
    chain lock is taken, so times never go backwards along the chain however many machines
    write.

    One handle is one connection. It is safe to share between threads (calls serialise,
    and a transaction holds the handle); any number of handles, in any number of processes
    and machines, may write to the same store at once.
    """

    def __init__(
        self,
        url: str,
        *,
        hmac_key: bytes | None = None,
        lock_timeout: float = 30.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if hmac_key is not None and (not isinstance(hmac_key, bytes) or not hmac_key):
            raise TypeError("hmac_key must be non-empty bytes (or None)")
        self.hmac_key = hmac_key
        self.lock_timeout = float(lock_timeout)
        self._conninfo = _conninfo(url)
        self._clock = clock
        self._mutex = threading.RLock()
        self._pid = os.getpid()
        self._closed = False
        self._broken: str | None = None
        self._tx_thread: int | None = None
        self._tree_cache: CompactTree | None = None  # the tree's right edge, last seen
        self._sealer = Sealer(hmac_key)
        self._sql: Statements  # the store's statements, rendered once its schema is found
        try:
            self._conn: psycopg.Connection[tuple[Any, ...]] = psycopg.connect(
                self._conninfo, autocommit=True
            )
        except psycopg.Error as exc:
            raise StoreUnusable(
                f"cannot connect to the audit database {self.location}: {_first_line(exc)}"
            ) from exc
        try:
            self._setup()
        except BaseException:
            self._conn.close()
            raise

    def _setup(self) -> None:
        conn = self._conn
        try:
            conn.execute("SET synchronous_commit = on")
            # the writer writes text into its statements as UTF-8 (audit.pg_rows._literal)
            conn.execute("SET client_encoding = 'UTF8'")
            if conn.info.server_version >= 120000:
                # The session runs only the store's statements, each with a plan that
                # is right for every argument (the key and seq look-ups through their
                # unique indexes): plan each once, not again on every EXECUTE.
                conn.execute("SET plan_cache_mode = force_generic_plan")
            conn.execute(
                sql.SQL("SET lock_timeout = {}").format(
                    sql.Literal(f"{max(1, round(self.lock_timeout * 1000))}ms")
                )
            )
        except psycopg.Error as exc:
            raise AuditError(
                f"cannot open the audit store at {self.location}: {_first_line(exc)}"
            ) from exc
        self._sql = open_schema(conn, self.location)
        self.schema = self._sql.schema

    # -- plumbing ------------------------------------------------------------------------
    @property
    def location(self) -> str:
        """Where the store is, without credentials (``postgresql://host:port/db#schema``)."""
        params = conninfo_to_dict(self._conninfo)
        host = params.get("host") or params.get("hostaddr") or "localhost"
        where = f"postgresql://{host}:{params.get('port') or 5432}/{params.get('dbname', '')}"
        schema = getattr(self, "schema", None)
        return where if schema is None else f"{where}#{schema}"

    def __repr__(self) -> str:
        return f"PostgresAuditStore({self.location!r})"

    def __enter__(self) -> PostgresAuditStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _usable(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._closed:
            raise AuditError(f"the audit store {self.location} is closed")
        if os.getpid() != self._pid:
            raise AuditError(
                "this audit store handle was opened in another process (before a fork); "
                "open the store again in this process"
            )
        if self._broken is not None:
            raise StoreUnusable(self._broken)
        return self._conn

    def _failure(self, exc: psycopg.Error, doing: str, *, committing: bool = False) -> AuditError:
        """The audit error to raise for a database error (a lost connection kills the handle)."""
        if isinstance(exc, psycopg.errors.LockNotAvailable):
            return StoreLocked(
                f"could not take the audit chain lock of {self.location} within "
                f"{self.lock_timeout:g}s ({doing}): another writer holds it"
            )
        if self._conn.broken or self._conn.closed:
            if committing:
                outcome = (
                    "it was lost while the COMMIT was in flight, so the batch may or may not "
                    "be recorded: open a new store and look its records up by key before "
                    "retrying (a keyed record is never recorded twice)"
                )
            else:
                outcome = "nothing of the batch was recorded (the database rolled it back)"
            self._broken = (
                f"the connection to the audit database {self.location} was lost ({doing}: "
                f"{_first_line(exc)}); {outcome}. This handle refuses further use; open the "
                "store again"
            )
            self._conn.close()
            return StoreUnusable(self._broken)
        if (
            isinstance(exc, psycopg.errors.UniqueViolation)
            and exc.diag.constraint_name
            and ("key" in exc.diag.constraint_name)
        ):
            match = re.search(r"\(key\)=\((.*)\)", exc.diag.message_detail or "")
            return DuplicateKey(match.group(1) if match else "?", None)
        if isinstance(exc, psycopg.errors.InsufficientPrivilege):
            return AppendOnlyViolation(f"{doing} refused by the database: {_first_line(exc)}")
        return AuditError(f"{doing} failed in {self.location}: {_first_line(exc)}")

    def _rollback(self) -> None:
        if not (self._conn.broken or self._conn.closed):
            try:
                self._conn.execute(b"ROLLBACK")
            except psycopg.Error as exc:
                self._failure(exc, "rolling back")

    @contextmanager
    def _write(self, doing: str) -> Iterator[_Writer]:
        """A write transaction: the writer takes the chain lock with its first read or
        append and commits when the block ends (:class:`audit.pg_writer._Writer`).

        BEGIN, the lock, the head read and that first question go to the server as one
        simple query: one round trip. The block's appends are kept by the writer and sent, with
        the COMMIT and the flush barrier, in one more (:meth:`_Writer.commit`): a group of
        any size costs the same two round trips, plus whatever else the block reads, and
        the lock is let go at the COMMIT, before the flush.
        """
        with self._mutex:
            conn = self._usable()
            if self._tx_thread is not None:
                raise AuditError(
                    "a transaction is open on this store in this thread: append through it "
                    "(tx.append), not through the store"
                )
            writer = _Writer(self, conn, doing)
            self._tx_thread = threading.get_ident()
            try:
                yield writer
            except BaseException:
                if writer.begun:  # else nothing was sent: nothing to roll back
                    self._rollback()
                raise
            finally:
                writer.close()
                self._tx_thread = None
            if writer.aborted is not None:
                if writer.begun:
                    self._rollback()
                raise AuditError(
                    f"the transaction was aborted by an earlier error ({writer.aborted}); "
                    "nothing of it was recorded"
                )
            try:
                writer.commit()
            except psycopg.Error as exc:
                failure = self._failure(exc, f"{doing}: commit", committing=True)
                if writer.committed and not isinstance(failure, StoreUnusable):
                    failure = AuditError(
                        f"{doing}: the records were committed but their flush to disk could "
                        f"not be confirmed ({_first_line(exc)}); look them up by key before "
                        "retrying (a keyed record is never recorded twice)"
                    )
                self._rollback()
                raise failure from exc
            if writer.tree is not None:
                self._tree_cache = writer.tree

    def _read(self, doing: str, query: bytes, params: Sequence[Any] = ()) -> list[Any]:
        with self._mutex:
            conn = self._usable()
            try:
                return conn.execute(query, params).fetchall()
            except psycopg.Error as exc:
                raise self._failure(exc, doing) from exc

    # -- writing -------------------------------------------------------------------------
    def append(self, entry: Entry) -> Record:
        """Durably append one record (committed, synchronously, before this returns)."""
        return self.append_many([entry])[0]

    def append_many(self, entries: Sequence[Entry]) -> list[Record]:
        """Durably append records in one database transaction: all of them, or none."""
        checked = check_entries(entries)
        if not checked:
            return []
        with self._write("append") as writer:
            return writer.append_checked(checked)

    @contextmanager
    def transaction(self) -> Iterator[_Writer]:
        """Hold the chain lock across read → decide → append; commit once on a clean exit.

        Reads inside see every committed record and the block's own appends; no other
        writer can append until the block ends. An exception rolls everything back.
        """
        with self._write("transaction") as writer:
            yield writer

    def import_records(self, records: Iterable[Record]) -> Checkpoint:
        """Copy records made elsewhere onto the end of this chain, unchanged (migration).

        Each record must be the next ``seq``, chain onto the current head and hash
        correctly under this store's ``hmac_key``; otherwise :class:`TamperedError` names it
        and nothing is copied. One transaction (``COPY``). Returns the new head.
        """
        with self._write("import") as writer:
            return writer.import_records(records)

    # -- reading -------------------------------------------------------------------------
    def get(self, key: str) -> Record | None:
        """The record with idempotency key ``key``, or None. Checked before it is handed
        out (:class:`TamperedError` for a row this store did not write)."""
        found = self._read("get", self._sql.get, (key,))
        return _checked(found[0], self.hmac_key, key=key)[0] if found else None

    def find(self, tag: str) -> list[Record]:
        """Every record tagged ``tag``, in seq order, each checked as :meth:`get`'s."""
        rows = self._read("find", self._sql.find, (tag,))
        return [_checked(row, self.hmac_key, tag=tag)[0] for row in rows]

    def record(self, seq: int) -> Record | None:
        """Record number ``seq`` (1-based), or None; checked as :meth:`get`'s."""
        found = self._read("record", self._sql.record, (seq,))
        return _checked(found[0], self.hmac_key, seq=seq)[0] if found else None

    def head(self) -> Checkpoint:
        """The chain head: the last committed record's seq and hash."""
        with self._mutex:
            conn = self._usable()
            try:
                row = conn.execute(self._sql.head).fetchone()
            except psycopg.Error as exc:
                raise self._failure(exc, "head") from exc
        return Checkpoint(0, GENESIS_HASH) if row is None else Checkpoint(row[0], row[1])

    def query(
        self,
        where: Mapping[str, Any] | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[Record]:
        """Stream the records whose payload matches ``where`` recorded in ``[since, until)``.

        ``where`` maps dotted payload paths (``"request.input.order_id"``) to required
        values (compared as JSON: ``true`` is not ``1``). Streams in seq order, a page at a
        time, without holding the handle between pages.
        """
        conditions: list[sql.Composable] = []
        params: list[Any] = []
        for path, value in (where or {}).items():
            keys = path.split(".")
            expected = to_json_value(value)
            nested: Any = expected
            for name in reversed(keys):
                nested = {name: nested}
            # containment narrows through the GIN index; #> = pins the exact value
            conditions.append(sql.SQL("payload @> %s AND payload #> %s = %s"))
            params.extend([Jsonb(nested), keys, Jsonb(expected)])
        if since is not None:
            conditions.append(sql.SQL("recorded_us >= %s"))
            params.append(epoch_micros(since))
        if until is not None:
            conditions.append(sql.SQL("recorded_us < %s"))
            params.append(epoch_micros(until))
        conditions.append(sql.SQL("seq > %s"))
        query = sql.SQL("SELECT {cols} FROM {t} WHERE {cond} ORDER BY seq LIMIT {n}").format(
            cols=sql.SQL(_COLUMNS),
            t=self._sql.table,
            cond=sql.SQL(" AND ").join(conditions),
            n=sql.Literal(_FETCH),
        )
        self._usable()
        return self._pages(query, params)

    def _pages(self, query: sql.Composed, params: list[Any]) -> Iterator[Record]:
        last = 0
        while True:
            with self._mutex:
                conn = self._usable()
                try:
                    rows = conn.execute(query, [*params, last]).fetchall()
                except psycopg.Error as exc:
                    raise self._failure(exc, "query") from exc
            for row in rows:
                yield _record(row)
            if len(rows) < _FETCH:
                return
            last = rows[-1][0]

    def records(self) -> Iterator[Record]:
        """Every committed record, in seq order (streamed)."""
        return self.query()

    def verify(self, checkpoint: Checkpoint | None = None, *, deep: bool = False) -> VerifyReport:
        """Check every record and link in one consistent snapshot (see docs/audit.md).

        Streams through a server-side cursor on a connection of its own, so appends go on
        meanwhile (records committed after the snapshot are left for the next run).
        """
        self._usable()
        return verify_snapshot(self, self._conninfo, self.location, checkpoint)

    def export(
        self, out: TextIO, fmt: ExportFormat, records: Iterable[Record] | None = None
    ) -> int:
        """Stream ``records`` (default: all) to ``out`` as JSON Lines or CSV; return the count."""
        return write_records(out, fmt, self.query() if records is None else records)

    # -- the Merkle tree (SPEC §9) ---------------------------------------------------------
    @contextmanager
    def _tree_view(self) -> Iterator[_PgTreeView]:
        with self._mutex:
            conn = self._usable()
            try:
                yield _PgTreeView(self, conn)
            except psycopg.Error as exc:
                raise self._failure(exc, "reading the tree") from exc
            except TreeMismatch as exc:
                raise TreeMismatch(
                    f"the Merkle tree in {self.location} does not match its records: {exc}"
                ) from exc

    def close(self) -> None:
        """Close the connection (closing twice is harmless)."""
        with self._mutex:
            if not self._closed:
                self._closed = True
                self._conn.close()

