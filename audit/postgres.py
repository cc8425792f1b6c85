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
* **Durable.** A write commits with ``synchronous_commit = on`` before it returns; a batch
  (``append_many``, ``transaction()``) is one database transaction: all of it or none.
* **Failures.** A lost connection makes the handle unusable (:class:`StoreUnusable`); it is
  never retried silently. The server rolls back a transaction whose connection died, so a
  batch is either wholly recorded or not at all; when the connection died while the COMMIT
  was in flight the error says so, and a retry of a keyed batch is safe (keys are unique).
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any, LiteralString, TextIO

import attrs
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb, set_json_loads

from audit.canonical import to_json_value
from audit.chain import (
    ChainTransaction,
    TreeMismatch,
    check_entries,
    consistency_proof,
    grow,
    inclusion_proof,
    record_leaf,
    root_at,
)
from audit.errors import (
    AppendOnlyViolation,
    AuditError,
    DuplicateKey,
    StoreLocked,
    StoreUnusable,
    TamperedError,
)
from audit.export import write_records
from audit.merkle import CompactTree, Node, frontier_nodes, leaf_hash, node_at
from audit.protocol import GENESIS_HASH, Checkpoint, Entry, ExportFormat, Record, VerifyReport
from audit.records import (
    Sealed,
    Sealer,
    checked_leaf,
    epoch_micros,
    parse_timestamp,
    record_leaf_data,
)
from audit.verifying import ChainChecker

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

RECORD_TABLE = "pricecalc_audit_record"
TREE_TABLE = "pricecalc_audit_tree"
VERSION_TABLE = "pricecalc_audit_schema_version"
APP_ROLE = "pricecalc_app"
SCHEMA_VERSION = 2

# The advisory lock of a chain is (LOCK_CLASS, oid of its record table): one lock per store,
# even with several stores (schemas) in one database. 0x70636175 is "pcau".
LOCK_CLASS = 0x70636175
# init_store serialises concurrent runs on this single advisory lock.
_INIT_LOCK = (LOCK_CLASS, 0)

_APPLICATION_NAME = "pricecalc-audit"
_FETCH = 2000  # rows per round trip when streaming


def is_postgres_url(target: str) -> bool:
    """True for ``postgresql://…`` and ``postgres://…`` URLs (the PostgreSQL backend)."""
    return target.startswith(("postgresql://", "postgres://"))


# --------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------

# Each migration is applied once, in order, in the same transaction as its row in the
# version table. Identifiers: {schema} (the schema the store lives in), {record},
# {app} (the application role), {refuse}, {link} (the trigger functions).
_MIGRATIONS: tuple[tuple[int, str, LiteralString], ...] = (
    (
        1,
        "record table, chain-link and append-only triggers",
        """
CREATE TABLE {schema}.{record} (
    seq         bigint  PRIMARY KEY CHECK (seq > 0),
    id          text    NOT NULL,
    recorded_at text    NOT NULL,
    recorded_us bigint  NOT NULL,
    key         text    UNIQUE,
    tags        text[]  NOT NULL,
    payload     jsonb   NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    prev_hash   text    NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{{64}}$'),
    hash        text    NOT NULL CHECK (hash ~ '^[0-9a-f]{{64}}$'),
    CONSTRAINT recorded_us_matches_recorded_at CHECK (
        recorded_us = (extract(epoch FROM recorded_at::timestamptz) * 1000000)::bigint
    )
);
COMMENT ON TABLE {schema}.{record} IS
    'pricecalc audit records: append-only, hash-chained (docs/audit.md)';
CREATE INDEX ON {schema}.{record} USING gin (tags);
CREATE INDEX ON {schema}.{record} USING gin (payload jsonb_path_ops);
CREATE INDEX ON {schema}.{record} (recorded_us);

CREATE FUNCTION {schema}.{refuse}() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION 'the audit store is append-only: % on %.% is refused',
        TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'audit records are never changed or removed; append a new record';
END
$fn$;

CREATE FUNCTION {schema}.{link}() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    previous text;
BEGIN
    IF NEW.seq = 1 THEN
        previous := repeat('0', 64);
    ELSE
        SELECT r.hash INTO previous FROM {schema}.{record} AS r WHERE r.seq = NEW.seq - 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'audit record % would leave a gap: record % is not in the store',
                NEW.seq, NEW.seq - 1 USING ERRCODE = 'integrity_constraint_violation';
        END IF;
    END IF;
    IF NEW.prev_hash IS DISTINCT FROM previous THEN
        RAISE EXCEPTION 'audit record % does not chain onto record %: prev_hash % is not %',
            NEW.seq, NEW.seq - 1, NEW.prev_hash, previous
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$fn$;

CREATE TRIGGER pricecalc_audit_no_update_delete
    BEFORE UPDATE OR DELETE ON {schema}.{record}
    FOR EACH ROW EXECUTE FUNCTION {schema}.{refuse}();
CREATE TRIGGER pricecalc_audit_no_truncate
    BEFORE TRUNCATE ON {schema}.{record}
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.{refuse}();
CREATE TRIGGER pricecalc_audit_chain_link
    BEFORE INSERT ON {schema}.{record}
    FOR EACH ROW EXECUTE FUNCTION {schema}.{link}();
""",
    ),
    (
        2,
        "Merkle tree table, its link and append-only triggers",
        """
CREATE TABLE {schema}.{tree} (
    id    bigint   PRIMARY KEY CHECK (id >= 0),
    level smallint NOT NULL CHECK (level BETWEEN 0 AND 62),
    idx   bigint   NOT NULL CHECK (idx >= 0),
    hash  bytea    NOT NULL CHECK (length(hash) = 32),
    UNIQUE (level, idx)
);
COMMENT ON TABLE {schema}.{tree} IS
    'pricecalc audit Merkle tree (RFC 9162): every complete subtree, append-only';

CREATE FUNCTION {schema}.{tree_link}() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    left_hash bytea;
    right_hash bytea;
BEGIN
    IF NEW.id > 0 AND NOT EXISTS (SELECT 1 FROM {schema}.{tree} AS t WHERE t.id = NEW.id - 1)
    THEN
        RAISE EXCEPTION 'audit tree node % would leave a gap', NEW.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.level = 0 THEN
        IF NOT EXISTS (SELECT 1 FROM {schema}.{record} AS r WHERE r.seq = NEW.idx + 1) THEN
            RAISE EXCEPTION 'audit tree leaf % has no record %', NEW.idx, NEW.idx + 1
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
    ELSE
        SELECT t.hash INTO left_hash FROM {schema}.{tree} AS t
            WHERE t.level = NEW.level - 1 AND t.idx = 2 * NEW.idx;
        SELECT t.hash INTO right_hash FROM {schema}.{tree} AS t
            WHERE t.level = NEW.level - 1 AND t.idx = 2 * NEW.idx + 1;
        IF left_hash IS NULL OR right_hash IS NULL
           OR NEW.hash IS DISTINCT FROM sha256('\\x01'::bytea || left_hash || right_hash) THEN
            RAISE EXCEPTION 'audit tree node (%, %) is not the hash of its two children',
                NEW.level, NEW.idx USING ERRCODE = 'integrity_constraint_violation';
        END IF;
    END IF;
    RETURN NEW;
END
$fn$;

CREATE TRIGGER pricecalc_audit_tree_no_update_delete
    BEFORE UPDATE OR DELETE ON {schema}.{tree}
    FOR EACH ROW EXECUTE FUNCTION {schema}.{refuse}();
CREATE TRIGGER pricecalc_audit_tree_no_truncate
    BEFORE TRUNCATE ON {schema}.{tree}
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.{refuse}();
CREATE TRIGGER pricecalc_audit_tree_link
    BEFORE INSERT ON {schema}.{tree}
    FOR EACH ROW EXECUTE FUNCTION {schema}.{tree_link}();
""",
    ),
)

# Re-asserted on every init_store run, so a drifted grant or a disabled trigger is repaired.
_ENFORCE = """
ALTER TABLE {schema}.{record} ENABLE ALWAYS TRIGGER pricecalc_audit_no_update_delete;
ALTER TABLE {schema}.{record} ENABLE ALWAYS TRIGGER pricecalc_audit_no_truncate;
ALTER TABLE {schema}.{record} ENABLE ALWAYS TRIGGER pricecalc_audit_chain_link;
REVOKE ALL ON TABLE {schema}.{record} FROM PUBLIC;
REVOKE ALL ON TABLE {schema}.{version} FROM PUBLIC;
REVOKE ALL ON TABLE {schema}.{record} FROM {app};
GRANT USAGE ON SCHEMA {schema} TO {app};
GRANT SELECT, INSERT ON TABLE {schema}.{record} TO {app};
GRANT SELECT ON TABLE {schema}.{version} TO {app};
ALTER TABLE {schema}.{tree} ENABLE ALWAYS TRIGGER pricecalc_audit_tree_no_update_delete;
ALTER TABLE {schema}.{tree} ENABLE ALWAYS TRIGGER pricecalc_audit_tree_no_truncate;
ALTER TABLE {schema}.{tree} ENABLE ALWAYS TRIGGER pricecalc_audit_tree_link;
REVOKE ALL ON TABLE {schema}.{tree} FROM PUBLIC;
REVOKE ALL ON TABLE {schema}.{tree} FROM {app};
GRANT SELECT, INSERT ON TABLE {schema}.{tree} TO {app};
"""

_VERSION_DDL = """
CREATE TABLE IF NOT EXISTS {schema}.{version} (
    version     integer     PRIMARY KEY,
    description text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    applied_by  text        NOT NULL DEFAULT current_user
)
"""


def _identifiers(schema: str, app_role: str) -> dict[str, sql.Composable]:
    return {
        "schema": sql.Identifier(schema),
        "record": sql.Identifier(RECORD_TABLE),
        "tree": sql.Identifier(TREE_TABLE),
        "tree_link": sql.Identifier("pricecalc_audit_tree_link"),
        "version": sql.Identifier(VERSION_TABLE),
        "app": sql.Identifier(app_role),
        "refuse": sql.Identifier("pricecalc_audit_refuse"),
        "link": sql.Identifier("pricecalc_audit_chain_link"),
    }


def _lock_sql(key: tuple[int, int]) -> sql.Composed:
    return sql.SQL("SELECT pg_advisory_xact_lock({}, {})").format(
        sql.Literal(key[0]), sql.Literal(key[1])
    )


def init_store(url: str, *, app_role: str = APP_ROLE) -> str:
    """Create or upgrade the audit schema at ``url``; return what was done, in a sentence.

    Idempotent: run it again and it applies only the migrations not yet recorded in
    ``pricecalc_audit_schema_version``. Every run also creates the application role when
    it is absent (``LOGIN``, no password: set one, or map it in ``pg_hba.conf``), grants it
    SELECT and INSERT on the records (and nothing else), and re-enables the append-only
    triggers as ``ENABLE ALWAYS``. The tables go into the first schema of the connection's
    ``search_path`` (``public`` by default; choose another with
    ``?options=-csearch_path%3Dmy_schema``). Connect as the schema owner or a superuser,
    never as the application role. Everything happens in one transaction.
    """
    try:
        conn = psycopg.connect(_conninfo(url), autocommit=True)
    except psycopg.Error as exc:
        raise AuditError(f"cannot connect to the audit database: {_first_line(exc)}") from exc
    done: list[str] = []
    try:
        with conn.transaction():
            conn.execute(_lock_sql(_INIT_LOCK))
            row = conn.execute("SELECT current_schema()").fetchone()
            schema = row[0] if row else None
            if schema is None:
                raise AuditError(
                    "no schema to create the audit tables in: the search_path names no "
                    "existing schema"
                )
            names = _identifiers(schema, app_role)
            exists = conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (app_role,)
            ).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(names["app"]))
                done.append(f"created role {app_role}")
            conn.execute(sql.SQL(_VERSION_DDL).format(**names))
            vrow = conn.execute(
                sql.SQL("SELECT coalesce(max(version), 0) FROM {schema}.{version}").format(**names)
            ).fetchone()
            current = int(vrow[0]) if vrow else 0
            if current > SCHEMA_VERSION:
                raise AuditError(
                    f"the audit schema in {schema} is at version {current}, newer than this "
                    f"pricecalc ({SCHEMA_VERSION}); upgrade pricecalc"
                )
            for version, description, ddl in _MIGRATIONS:
                if version <= current:
                    continue
                conn.execute(sql.SQL(ddl).format(**names))
                conn.execute(
                    sql.SQL(
                        "INSERT INTO {schema}.{version} (version, description) VALUES (%s, %s)"
                    ).format(**names),
                    (version, description),
                )
                done.append(f"applied migration {version} ({description})")
                if version == 2:
                    filled = _backfill_tree(conn, names)
                    if filled:
                        done.append(f"built the Merkle tree of the {filled} existing records")
            conn.execute(sql.SQL(_ENFORCE).format(**names))
    except psycopg.Error as exc:
        raise AuditError(f"audit schema set-up failed: {_first_line(exc)}") from exc
    finally:
        conn.close()
    if not any(step.startswith("applied") for step in done):
        done.append(f"schema already at version {SCHEMA_VERSION}, nothing to migrate")
    done.append(f"{app_role} may SELECT and INSERT only; append-only triggers enabled ALWAYS")
    return f"audit store in schema {schema}: " + "; ".join(done) + "."


def _tree_copy_rows(nodes: Iterable[tuple[int, bytes]]) -> Iterator[tuple[int, int, int, bytes]]:
    """Rows of the tree table for stored nodes ``(position, hash)``."""
    for position, value in nodes:
        level, index = node_at(position)
        yield position, level, index, value


def _backfill_tree(conn: psycopg.Connection[Any], names: dict[str, sql.Composable]) -> int:
    """Build the tree of the records already in a store (migration 2), in one pass."""
    tree = CompactTree()
    cols = sql.SQL(_COLUMNS)
    query = sql.SQL("SELECT {cols} FROM {schema}.{record} ORDER BY seq").format(
        cols=cols, **names
    )
    copy_sql = sql.SQL("COPY {schema}.{tree} (id, level, idx, hash) FROM STDIN").format(**names)
    with conn.cursor(name="pricecalc_audit_backfill") as cur:
        cur.itersize = _FETCH
        cur.execute(query)
        leaves = []
        for row in cur:
            leaves.append(leaf_hash(record_leaf_data(_record(row))))
    with conn.cursor() as out, out.copy(copy_sql) as copy:
        for leaf in leaves:
            for node in _tree_copy_rows(tree.append(leaf)):
                copy.write_row(node)
    return tree.size


# --------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------

_COLUMNS = "seq, id, recorded_at, key, tags, payload, prev_hash, hash"


def _conninfo(url: str, **extra: Any) -> str:
    """``url`` with our defaults (application name, connect timeout) where it names none."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise AuditError(f"not a PostgreSQL URL or connection string: {exc}") from exc
    params.setdefault("application_name", _APPLICATION_NAME)
    params.setdefault("connect_timeout", 10)
    params.update(extra)
    return make_conninfo("", **params)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _record(row: Sequence[Any]) -> Record:
    seq, rid, recorded_at, key, tags, payload, prev_hash, digest = row[:8]
    return Record(
        seq=seq,
        id=rid,
        recorded_at=recorded_at,
        key=key,
        tags=tuple(tags),
        payload=payload,
        prev_hash=prev_hash,
        hash=digest,
    )


def _row(record: Record, recorded_us: int | None = None) -> tuple[Any, ...]:
    """The columns of ``record``: its fields plus ``recorded_us`` (the time index; from
    ``recorded_at`` unless given)."""
    return (
        record.seq,
        record.id,
        record.recorded_at,
        epoch_micros(parse_timestamp(record.recorded_at)) if recorded_us is None else recorded_us,
        record.key,
        list(record.tags),
        Jsonb(record.payload),
        record.prev_hash,
        record.hash,
    )


class PostgresAuditStore:
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
            conn.execute(
                sql.SQL("SET lock_timeout = {}").format(
                    sql.Literal(f"{max(1, round(self.lock_timeout * 1000))}ms")
                )
            )
            row = conn.execute(
                "SELECT c.oid, n.nspname FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.oid = to_regclass(%s)",
                (RECORD_TABLE,),
            ).fetchone()
            if row is None:
                raise AuditError(
                    f"no audit store at {self.location}: table {RECORD_TABLE} not found; "
                    "create it with `pricecalc audit init URL` (audit.init_store)"
                )
            oid, schema = int(row[0]), str(row[1])
            vrow = conn.execute(
                sql.SQL("SELECT max(version) FROM {}").format(sql.Identifier(schema, VERSION_TABLE))
            ).fetchone()
        except psycopg.Error as exc:
            raise AuditError(
                f"cannot open the audit store at {self.location}: {_first_line(exc)}"
            ) from exc
        version = vrow[0] if vrow else None
        if version != SCHEMA_VERSION:
            raise AuditError(
                f"the audit schema in {schema} is at version {version}, this pricecalc needs "
                f"{SCHEMA_VERSION}: run `pricecalc audit init URL` (audit.init_store)"
            )
        self.schema = schema
        self._table = sql.Identifier(schema, RECORD_TABLE)

        self._tree_table = sql.Identifier(schema, TREE_TABLE)

        def q(text: LiteralString) -> bytes:
            return (
                sql.SQL(text)
                .format(t=self._table, tr=self._tree_table, cols=sql.SQL(_COLUMNS))
                .as_bytes(conn)
            )

        # The chain lock: (LOCK_CLASS, table oid) as signed int4s (oids are unsigned).
        lock = _lock_sql((LOCK_CLASS, oid - 2**32 if oid >= 2**31 else oid))
        self._sql_lock = lock.as_bytes(conn)
        # After the lock, in one round trip: the head, the server clock, and which of the
        # batch's keys are already recorded (key -> seq).
        self._sql_prepare = q(
            "SELECT h.seq, h.hash, clock_timestamp(), "
            "(SELECT jsonb_object_agg(key, seq) FROM {t} WHERE key = ANY(%s::text[])), "
            "(SELECT idx + 1 FROM {tr} WHERE level = 0 ORDER BY idx DESC LIMIT 1) "
            "FROM (SELECT 1) AS one LEFT JOIN LATERAL "
            "(SELECT seq, hash FROM {t} ORDER BY seq DESC LIMIT 1) AS h ON true"
        )
        self._sql_tree_size = q(
            "SELECT idx + 1 FROM {tr} WHERE level = 0 ORDER BY idx DESC LIMIT 1"
        )
        self._sql_nodes = q(
            "SELECT level, idx, hash FROM {tr} WHERE (level, idx) IN "
            "(SELECT * FROM unnest(%s::smallint[], %s::bigint[]))"
        )
        self._sql_tree_insert = q("INSERT INTO {tr} (id, level, idx, hash) VALUES (%s, %s, %s, %s)")
        self._sql_tree_copy = q("COPY {tr} (id, level, idx, hash) FROM STDIN")
        self._sql_range = q("SELECT {cols} FROM {t} WHERE seq > %s AND seq <= %s ORDER BY seq")
        self._sql_insert = q(
            "INSERT INTO {t} (seq, id, recorded_at, recorded_us, key, tags, payload, "
            "prev_hash, hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
        )
        self._sql_copy = q(
            "COPY {t} (seq, id, recorded_at, recorded_us, key, tags, payload, prev_hash, hash) "
            "FROM STDIN"
        )
        self._sql_head = q("SELECT seq, hash FROM {t} ORDER BY seq DESC LIMIT 1")
        self._sql_get = q("SELECT {cols} FROM {t} WHERE key = %s")
        self._sql_keys = q("SELECT key FROM {t} WHERE key = ANY(%s::text[])")
        self._sql_find = q("SELECT {cols} FROM {t} WHERE tags @> ARRAY[%s]::text[] ORDER BY seq")
        self._sql_record = q("SELECT {cols} FROM {t} WHERE seq = %s")
        self._sql_verify = q("SELECT {cols}, recorded_us FROM {t} ORDER BY seq")

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
    def _write(self, doing: str, keys: list[str] | None = None) -> Iterator[_Writer]:
        """Hold the chain lock in one database transaction; commit when the block ends.

        BEGIN, the lock and (given the ``keys`` of a batch about to be appended) the head
        read go to the server in one pipeline: one round trip.
        """
        with self._mutex:
            conn = self._usable()
            if self._tx_thread is not None:
                raise AuditError(
                    "a transaction is open on this store in this thread: append through it "
                    "(tx.append), not through the store"
                )
            try:
                with conn.pipeline():
                    conn.execute(b"BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE")
                    conn.execute(self._sql_lock)
                    # runs after the lock is granted, so it reads the current head
                    cur = None if keys is None else conn.execute(self._sql_prepare, (keys,))
                prepared = None if cur is None else cur.fetchone()
            except psycopg.Error as exc:
                failure = self._failure(exc, f"{doing}: taking the chain lock")
                self._rollback()
                raise failure from exc
            writer = _Writer(self, conn, prepared)
            self._tx_thread = threading.get_ident()
            try:
                yield writer
            except BaseException:
                self._rollback()
                raise
            finally:
                writer.close()
                self._tx_thread = None
            if writer.aborted is not None:
                self._rollback()
                raise AuditError(
                    f"the transaction was aborted by an earlier error ({writer.aborted}); "
                    "nothing of it was recorded"
                )
            if writer.committed:
                self._tree_cache = writer.tree
                return
            try:
                conn.execute(b"COMMIT")
            except psycopg.Error as exc:
                raise self._failure(exc, f"{doing}: commit", committing=True) from exc
            self._tree_cache = writer.tree

    def _read(self, doing: str, query: bytes, params: Sequence[Any] = ()) -> list[Record]:
        with self._mutex:
            conn = self._usable()
            try:
                rows = conn.execute(query, params).fetchall()
            except psycopg.Error as exc:
                raise self._failure(exc, doing) from exc
        return [_record(row) for row in rows]

    # -- writing -------------------------------------------------------------------------
    def append(self, entry: Entry) -> Record:
        """Durably append one record (committed, synchronously, before this returns)."""
        return self.append_many([entry])[0]

    def append_many(self, entries: Sequence[Entry]) -> list[Record]:
        """Durably append records in one database transaction: all of them, or none."""
        checked = check_entries(entries)
        if not checked:
            return []
        keys = [key for key, _, _ in checked if key is not None]
        with self._write("append", keys) as writer:
            writer.commit_with_append = True
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
        """The record with idempotency key ``key``, or None."""
        found = self._read("get", self._sql_get, (key,))
        return found[0] if found else None

    def find(self, tag: str) -> list[Record]:
        """Every record tagged ``tag``, in seq order."""
        return self._read("find", self._sql_find, (tag,))

    def record(self, seq: int) -> Record | None:
        """Record number ``seq`` (1-based), or None."""
        found = self._read("record", self._sql_record, (seq,))
        return found[0] if found else None

    def head(self) -> Checkpoint:
        """The chain head: the last committed record's seq and hash."""
        with self._mutex:
            conn = self._usable()
            try:
                row = conn.execute(self._sql_head).fetchone()
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
            t=self._table,
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
        checker = ChainChecker(self.hmac_key, checkpoint)
        count, head = 0, Checkpoint(0, GENESIS_HASH)  # what checked out so far
        try:
            with psycopg.connect(self._conninfo) as conn:
                # A float (only SQL can put one there) becomes a Decimal, which has no
                # canonical form: reported as such rather than hashed as something else.
                set_json_loads(_loads_exact, conn)
                conn.read_only = True
                conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                with conn.cursor(name="pricecalc_audit_verify") as cur:
                    cur.itersize = _FETCH
                    cur.execute(self._sql_verify)
                    for row in cur:
                        record = _record(row)
                        if not checker.feed_record(record):
                            break
                        problem = _time_index_problem(record, row[8])
                        if problem is not None:
                            return VerifyReport(False, count, head, record.seq, problem)
                        count, head = count + 1, Checkpoint(record.seq, record.hash)
                report = checker.report()
                tree_problem = None
                if report.count:  # the stored tree, in the same snapshot, against the log's
                    view = _PgTreeView(self, conn)
                    try:
                        stored = root_at(view, report.count)
                    except (TreeMismatch, ValueError) as exc:
                        tree_problem = f"{exc}"
                    else:
                        if stored != report.root:
                            tree_problem = (
                                f"its root at size {report.count} is {stored.hex()[:16]}…, "
                                f"the records' is {(report.root or b'').hex()[:16]}…"
                            )
                conn.rollback()
        except psycopg.Error as exc:
            raise AuditError(f"verify of {self.location} failed: {_first_line(exc)}") from exc
        if tree_problem is not None:
            return attrs.evolve(
                report,
                ok=False,
                bad_seq=None,
                problem=f"the Merkle tree table does not match the records: {tree_problem}",
            )
        return report

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

    def tree_size(self) -> int:
        """How many records the Merkle tree holds."""
        with self._tree_view() as view:
            return view.size()

    def root(self, size: int | None = None) -> bytes:
        """The tree's root hash at ``size`` (default: now)."""
        with self._tree_view() as view:
            return root_at(view, size)

    def inclusion_proof(self, seq: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 inclusion path of record ``seq`` at tree ``size``."""
        with self._tree_view() as view:
            return inclusion_proof(view, seq, size)

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        """RFC 9162 consistency path from tree size ``old`` to ``new``."""
        with self._tree_view() as view:
            return consistency_proof(view, old, new)

    def close(self) -> None:
        """Close the connection (closing twice is harmless)."""
        with self._mutex:
            if not self._closed:
                self._closed = True
                self._conn.close()


def _loads_exact(data: str | bytes) -> Any:
    return json.loads(data, parse_float=Decimal)


def _time_index_problem(record: Record, recorded_us: int) -> str | None:
    try:
        moment = epoch_micros(parse_timestamp(record.recorded_at))
    except ValueError:
        moment = None
    if moment != recorded_us:
        return (
            f"record {record.seq} is indexed at another time than its recorded_at "
            "(recorded_us was edited): time-range queries would miss it"
        )
    return None


class _Writer(ChainTransaction):
    """The open write transaction of a :class:`PostgresAuditStore` (a ``Transaction``:
    :class:`audit.chain.ChainTransaction` over the database).

    Its appends are inserted at once, inside the database transaction, so the database
    enforces the chain on them as they come; they become durable (and visible to others)
    only when the block commits.
    """

    def __init__(
        self,
        store: PostgresAuditStore,
        conn: psycopg.Connection[Any],
        prepared: tuple[Any, ...] | None = None,
    ) -> None:
        super().__init__(store._sealer)
        self._store = store
        self._conn = conn
        self._prepared = prepared  # the head read pipelined with the lock, if any
        self._tree_size = 0  # the tree table's size, as read with the head
        self.commit_with_append = False  # the next append carries the COMMIT
        self.committed = False  # the last append carried the COMMIT
        self.aborted: str | None = None  # a database error inside spoilt the transaction

    def _failed(self, exc: psycopg.Error, doing: str) -> AuditError:
        self.aborted = _first_line(exc)
        return self._store._failure(exc, doing)

    def _select(self, doing: str, query: bytes, param: Any) -> list[Any]:
        try:
            return self._conn.execute(query, (param,)).fetchall()
        except psycopg.Error as exc:
            raise self._failed(exc, doing) from exc

    def _committed_get(self, key: str) -> Record | None:
        found = self._select("get", self._store._sql_get, key)
        return _record(found[0]) if found else None

    def _committed_keys(self, keys: set[str]) -> set[str]:
        return {row[0] for row in self._select("get", self._store._sql_keys, list(keys))}

    def _committed_find(self, tag: str) -> list[Record]:
        return [_record(row) for row in self._select("find", self._store._sql_find, tag)]

    def _committed_record(self, seq: int) -> Record | None:
        found = self._select("record", self._store._sql_record, seq)
        return _record(found[0]) if found else None

    def _begin(self, keys: list[str]) -> tuple[Checkpoint, Callable[[], datetime]]:
        """The head, the server's clock and the keys already taken, in one round trip
        after the chain lock (pipelined with the lock for a plain append)."""
        store = self._store
        row, self._prepared = self._prepared, None
        if row is None:
            try:
                row = self._conn.execute(store._sql_prepare, (keys,)).fetchone()
            except psycopg.Error as exc:
                raise self._failed(exc, "append") from exc
        assert row is not None
        seq, prev, server_now, taken, tree_size = row
        if taken:
            key = next(k for k in keys if k in taken)
            raise DuplicateKey(key, int(taken[key]))
        self._tree_size = tree_size or 0
        clock = store._clock if store._clock is not None else (lambda: server_now)
        return Checkpoint(seq or 0, prev or GENESIS_HASH), clock

    def _tree_at(self, head: Checkpoint) -> CompactTree:
        try:
            return self._grown_tree(head.seq, self._tree_size).copy()
        except psycopg.Error as exc:
            raise self._failed(exc, "append") from exc

    def _keep(self, sealed: list[Sealed], nodes: list[tuple[int, bytes]]) -> None:
        """Insert the records and their tree nodes; with :attr:`commit_with_append`, COMMIT
        in the same round trip (a plain append: nothing follows it in the transaction)."""
        store = self._store
        commit, self.commit_with_append = self.commit_with_append, False
        rows = [_row(s.record, s.recorded_us) for s in sealed]
        tree_rows = list(_tree_copy_rows(nodes))
        # One record: INSERT and COMMIT in one round trip. A batch: COPY (a third faster
        # than row-by-row INSERTs at 100 records; triggers fire the same), then COMMIT.
        committing = False
        try:
            if len(rows) == 1:
                committing = commit
                with self._conn.pipeline():
                    self._conn.execute(store._sql_insert, rows[0])
                    with self._conn.cursor() as cur:
                        cur.executemany(store._sql_tree_insert, tree_rows)
                    if commit:
                        self._conn.execute(b"COMMIT")
            else:
                with self._conn.cursor() as cur:
                    with cur.copy(store._sql_copy) as copy:
                        for row in rows:
                            copy.write_row(row)
                    with cur.copy(store._sql_tree_copy) as copy:
                        for node in tree_rows:
                            copy.write_row(node)
                if commit:
                    committing = True
                    self._conn.execute(b"COMMIT")
        except psycopg.Error as exc:
            self.aborted = _first_line(exc)
            raise store._failure(exc, "append", committing=committing) from exc
        self.committed = commit

    def _grown_tree(self, head_seq: int, tree_size: int) -> CompactTree:
        """The tree's right edge at ``tree_size`` leaves, grown to ``head_seq`` if records
        were added without their leaves (by SQL, or before the tree existed)."""
        store = self._store
        tree = self.tree if self.tree is not None and self.tree.size == head_seq else None
        if tree is None:
            cached = store._tree_cache
            if cached is not None and cached.size == tree_size:
                tree = cached.copy()
            else:
                wanted = frontier_nodes(tree_size)
                found = _PgTreeView(store, self._conn).nodes(wanted)
                tree = CompactTree(tree_size, [found[node] for node in wanted])
        if tree.size < head_seq:
            rows = self._conn.execute(store._sql_range, (tree.size, head_seq)).fetchall()
            leaves = []
            for row in rows:
                leaves.append(leaf_hash(record_leaf_data(_record(row))))
            lagging = tree.copy()
            nodes = list(_tree_copy_rows(_grow_hashes(lagging, leaves)))
            with self._conn.cursor() as cur, cur.copy(store._sql_tree_copy) as copy:
                for node in nodes:
                    copy.write_row(node)
            tree = lagging
        self.tree = tree
        return tree

    def import_records(self, records: Iterable[Record]) -> Checkpoint:
        self._check()
        store = self._store
        try:
            row = self._conn.execute(store._sql_head).fetchone()
            head = Checkpoint(0, GENESIS_HASH) if row is None else Checkpoint(row[0], row[1])
            tree_row = self._conn.execute(store._sql_tree_size).fetchone()
            tree = self._grown_tree(head.seq, tree_row[0] if tree_row else 0).copy()
            leaves: list[bytes] = []
            with self._conn.cursor() as cur, cur.copy(store._sql_copy) as copy:
                for record in records:
                    problem, leaf = _import_problem(record, head, store.hmac_key)
                    if problem is not None:
                        self.aborted = problem
                        raise TamperedError(record.seq, problem)
                    copy.write_row(_row(record))
                    assert leaf is not None
                    leaves.append(leaf)
                    head = Checkpoint(record.seq, record.hash)
            with self._conn.cursor() as cur, cur.copy(store._sql_tree_copy) as copy:
                for node in _tree_copy_rows(grow(tree, leaves)):
                    copy.write_row(node)
            self.tree = tree
        except psycopg.Error as exc:
            raise self._failed(exc, "import") from exc
        return head


def _import_problem(
    record: Record, head: Checkpoint, hmac_key: bytes | None
) -> tuple[str | None, bytes | None]:
    if record.seq != head.seq + 1:
        return f"expected record {head.seq + 1} next, got record {record.seq}", None
    if record.prev_hash != head.hash:
        return f"record {record.seq} prev_hash does not match record {head.seq}'s hash", None
    return checked_leaf(record, None, hmac_key)


def _grow_hashes(tree: CompactTree, leaf_hashes: Iterable[bytes]) -> list[tuple[int, bytes]]:
    nodes: list[tuple[int, bytes]] = []
    for value in leaf_hashes:
        nodes.extend(tree.append(value))
    return nodes


class _PgTreeView:
    """The PostgreSQL store's tree (chain.TreeView) through one connection."""

    def __init__(self, store: PostgresAuditStore, conn: psycopg.Connection[Any]) -> None:
        self._store = store
        self._conn = conn

    def size(self) -> int:
        row = self._conn.execute(self._store._sql_tree_size).fetchone()
        return int(row[0]) if row else 0

    def nodes(self, wanted: Sequence[Node]) -> dict[Node, bytes]:
        if not wanted:
            return {}
        rows = self._conn.execute(
            self._store._sql_nodes, ([n[0] for n in wanted], [n[1] for n in wanted])
        ).fetchall()
        found = {(int(level), int(idx)): bytes(value) for level, idx, value in rows}
        missing = [node for node in wanted if node not in found]
        if missing:
            raise TreeMismatch(f"node {missing[0]} is missing")
        return found

    def leaf(self, seq: int) -> bytes:
        rows = self._conn.execute(self._store._sql_record, (seq,)).fetchall()
        if not rows:
            raise TreeMismatch(f"record {seq} is missing")
        record = _record(rows[0])
        return record_leaf(record, checked_leaf(record, None, self._store.hmac_key, plain=True))
