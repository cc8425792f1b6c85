"""Opening the PostgreSQL audit store's schema, and the statements the store sends to it.

:func:`open_schema` finds the record table on a new connection (its schema and oid),
checks the schema version, asks whether the role may use the flush barrier, and renders
every statement of the store once, for that schema: a :class:`Statements`, which the store
(:mod:`audit.postgres`), its writer (:mod:`audit.pg_writer`) and its snapshot verify
(:mod:`audit.pg_verify`) use as they are. Nothing here reads or writes a record.
"""

from __future__ import annotations

from typing import Any, LiteralString

import attrs
import psycopg
from psycopg import sql

from audit.errors import AuditError
from audit.pg_rows import _COLUMNS, _first_line
from audit.pg_schema import (
    LOCK_CLASS,
    RECORD_TABLE,
    SCHEMA_VERSION,
    TREE_TABLE,
    VERSION_TABLE,
    _lock_sql,
)

# Where the store has the flush barrier, its lock statement also makes the transaction's
# commit asynchronous (for this transaction only); the barrier after the COMMIT makes it
# durable.
_ASYNC_COMMIT = b", set_config('synchronous_commit', 'off', true)"
# The flush barrier, run with the session's synchronous_commit = on right after an
# asynchronous COMMIT (and after a transaction that only read): when the write-ahead log
# is not yet on disk up to where it has been written, write a tiny transactional message
# to it — that gives this statement's transaction an id and a commit record, so its
# commit waits until the log is flushed past it, and so past every earlier commit. When
# it already is (nothing written since the last flush), it writes and waits for nothing.
# pg_logical_emit_message needs no replication set-up (any wal_level) and, as the LSN
# functions, may be called by every role unless an administrator revoked it.
_BARRIER = (
    b"SELECT CASE WHEN pg_current_wal_flush_lsn() < pg_current_wal_insert_lsn() "
    b"THEN pg_logical_emit_message(true, 'pricecalc-audit', '') END"
)
_BARRIER_USABLE = (
    b"SELECT has_function_privilege('pg_logical_emit_message(boolean, text, text)', "
    b"'EXECUTE') AND has_function_privilege('pg_current_wal_flush_lsn()', 'EXECUTE') "
    b"AND has_function_privilege('pg_current_wal_insert_lsn()', 'EXECUTE') "
    b"AND NOT pg_is_in_recovery()"
)


@attrs.define(slots=True)
class Statements:
    """Every statement of one store, rendered for its schema (bytes, ready to send).

    ``durable`` is the flush barrier, or None where the role may not call it (then the
    COMMIT itself is synchronous and ``lock`` leaves ``synchronous_commit`` alone).
    """

    schema: str
    table: sql.Identifier  # the record table, qualified
    lock: bytes
    durable: bytes | None
    prepare: bytes
    tree_size: bytes
    nodes: bytes
    tree_insert: bytes
    tree_copy: bytes
    range: bytes
    insert: bytes
    copy: bytes
    head: bytes
    get: bytes
    keys: bytes
    find: bytes
    record: bytes
    verify: bytes
    # The same reads as SQL-level prepared statements of the session (``EXECUTE name(%s)``,
    # the arguments as literals, :func:`audit.pg_rows._literal`), so that a round trip is
    # one simple query — the statement behind each parsed and planned once per session —
    # rather than a pipeline of extended-protocol messages: a fraction of the client's
    # CPU (docs/scaling.md).
    run_prepare: bytes
    run_get: bytes
    run_keys: bytes
    run_find: bytes
    run_record: bytes
    # The start of a multi-row INSERT of records and of tree nodes (``VALUES`` follows).
    insert_values: bytes
    tree_values: bytes


def open_schema(conn: psycopg.Connection[Any], location: str) -> Statements:
    """The store's :class:`Statements` on ``conn`` (autocommit), once its record table is
    found and its schema is at :data:`SCHEMA_VERSION` (else :class:`AuditError` saying to
    run ``pricecalc audit init``)."""
    try:
        row = conn.execute(
            "SELECT c.oid, n.nspname FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.oid = to_regclass(%s)",
            (RECORD_TABLE,),
        ).fetchone()
        if row is None:
            raise AuditError(
                f"no audit store at {location}: table {RECORD_TABLE} not found; "
                "create it with `pricecalc audit init URL` (audit.init_store)"
            )
        oid, schema = int(row[0]), str(row[1])
        vrow = conn.execute(
            sql.SQL("SELECT max(version) FROM {}").format(sql.Identifier(schema, VERSION_TABLE))
        ).fetchone()
    except psycopg.Error as exc:
        raise AuditError(f"cannot open the audit store at {location}: {_first_line(exc)}") from exc
    version = vrow[0] if vrow else None
    if version != SCHEMA_VERSION:
        raise AuditError(
            f"the audit schema in {schema} is at version {version}, this pricecalc needs "
            f"{SCHEMA_VERSION}: run `pricecalc audit init URL` (audit.init_store)"
        )
    # Durable outside the lock (audit.postgres): the group commits asynchronously and a
    # flush barrier follows; only where the role may call what the barrier uses.
    try:
        usable = conn.execute(_BARRIER_USABLE).fetchone()
    except psycopg.Error as exc:
        raise AuditError(f"cannot open the audit store at {location}: {_first_line(exc)}") from exc
    durable = _BARRIER if usable and usable[0] else None
    table = sql.Identifier(schema, RECORD_TABLE)
    tree_table = sql.Identifier(schema, TREE_TABLE)

    def q(text: LiteralString) -> bytes:
        return sql.SQL(text).format(t=table, tr=tree_table, cols=sql.SQL(_COLUMNS)).as_bytes(conn)

    # The chain lock: (LOCK_CLASS, table oid) as signed int4s (oids are unsigned).
    lock = _lock_sql((LOCK_CLASS, oid - 2**32 if oid >= 2**31 else oid)).as_bytes(conn)
    statements = Statements(
        schema=schema,
        table=table,
        lock=lock + (b"" if durable is None else _ASYNC_COMMIT),
        durable=durable,
        # After the lock, in the same round trip: the head, the server clock, which of the
        # batch's keys are already recorded (key -> seq), the tree's size and the hashes
        # of its right edge (the frontier: one complete subtree per set bit of the size,
        # left to right), so that no further round trip is needed under the lock to chain
        # on. The head comes whole (every column), so that it is checked before anything
        # is chained onto it (SPEC §7). Keys are looked up one by one through the unique
        # index (the LATERAL subquery, kept apart by OFFSET 0): ``key = ANY(array)``
        # got a generic plan that scanned the whole table on every append (planned
        # while the table was small, kept for the session), its cost growing with the
        # store. The same for ``keys`` below.
        prepare=q(
            "WITH size AS (SELECT coalesce((SELECT idx + 1 FROM {tr} WHERE level = 0 "
            "ORDER BY idx DESC LIMIT 1), 0) AS n) "
            "SELECT h.*, clock_timestamp(), "
            "(SELECT jsonb_object_agg(u.k, r.seq) FROM unnest(%s::text[]) AS u(k) "
            "CROSS JOIN LATERAL (SELECT seq FROM {t} WHERE key = u.k OFFSET 0) AS r), "
            "size.n, "
            "(SELECT array_agg(f.hash ORDER BY f.level DESC) FROM {tr} AS f "
            "WHERE (f.level, f.idx) IN (SELECT l, (size.n >> l) - 1 "
            "FROM generate_series(0, 62) AS l WHERE (size.n >> l) & 1 = 1)) "
            "FROM size LEFT JOIN LATERAL "
            "(SELECT {cols} FROM {t} ORDER BY seq DESC LIMIT 1) AS h ON true"
        ),
        tree_size=q("SELECT idx + 1 FROM {tr} WHERE level = 0 ORDER BY idx DESC LIMIT 1"),
        nodes=q(
            "SELECT level, idx, hash FROM {tr} WHERE (level, idx) IN "
            "(SELECT * FROM unnest(%s::smallint[], %s::bigint[]))"
        ),
        tree_insert=q("INSERT INTO {tr} (id, level, idx, hash) VALUES (%s, %s, %s, %s)"),
        tree_copy=q("COPY {tr} (id, level, idx, hash) FROM STDIN"),
        range=q("SELECT {cols} FROM {t} WHERE seq > %s AND seq <= %s ORDER BY seq"),
        insert=q(
            "INSERT INTO {t} (seq, id, recorded_at, recorded_us, key, tags, payload, "
            "prev_hash, hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
        ),
        copy=q(
            "COPY {t} (seq, id, recorded_at, recorded_us, key, tags, payload, prev_hash, "
            "hash) FROM STDIN"
        ),
        head=q("SELECT seq, hash FROM {t} ORDER BY seq DESC LIMIT 1"),
        get=q("SELECT {cols} FROM {t} WHERE key = %s"),
        keys=q(
            "SELECT r.* FROM unnest(%s::text[]) AS u(k) "
            "CROSS JOIN LATERAL (SELECT {cols} FROM {t} WHERE key = u.k OFFSET 0) AS r"
        ),
        find=q("SELECT {cols} FROM {t} WHERE tags @> ARRAY[%s]::text[] ORDER BY seq"),
        record=q("SELECT {cols} FROM {t} WHERE seq = %s"),
        verify=q("SELECT {cols}, recorded_us FROM {t} ORDER BY seq"),
        run_prepare=b"EXECUTE pricecalc_audit_prepare(%s)",
        run_get=b"EXECUTE pricecalc_audit_get(%s)",
        run_keys=b"EXECUTE pricecalc_audit_keys(%s)",
        run_find=b"EXECUTE pricecalc_audit_find(%s)",
        run_record=b"EXECUTE pricecalc_audit_record(%s)",
        insert_values=q(
            "INSERT INTO {t} (seq, id, recorded_at, recorded_us, key, tags, payload, "
            "prev_hash, hash) VALUES "
        ),
        tree_values=q("INSERT INTO {tr} (id, level, idx, hash) VALUES "),
    )
    prepared = (
        (statements.run_prepare, "text[]", statements.prepare),
        (statements.run_get, "text", statements.get),
        (statements.run_keys, "text[]", statements.keys),
        (statements.run_find, "text", statements.find),
        (statements.run_record, "bigint", statements.record),
    )
    try:
        conn.execute(
            b"; ".join(
                b"PREPARE %s(%s) AS %s"
                % (run.split(b" ")[1].split(b"(")[0], types.encode(), text.replace(b"%s", b"$1"))
                for run, types, text in prepared
            )
        )
    except psycopg.Error as exc:
        raise AuditError(f"cannot open the audit store at {location}: {_first_line(exc)}") from exc
    return statements
