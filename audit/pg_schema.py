"""The schema of the PostgreSQL audit store: its migrations, grants and triggers, and
:func:`init_store`, which applies them (``pricecalc audit init``).

Each migration is DDL applied once, in order, and recorded in the version table; every run
re-asserts the grants and the ``ENABLE ALWAYS`` triggers (:data:`_ENFORCE`). Migration 2
builds the Merkle tree of the records already stored (:func:`_backfill_tree`). The store
that reads and appends through this schema is :mod:`audit.postgres`; the tables' rows and
the connection string are in :mod:`audit.pg_rows`.
"""

from __future__ import annotations

from typing import Any, LiteralString

import psycopg
from psycopg import sql

from audit.errors import AuditError
from audit.merkle import CompactTree, leaf_hash
from audit.pg_rows import _COLUMNS, _FETCH, _conninfo, _first_line, _record, _tree_copy_rows
from audit.records import record_leaf_data

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
