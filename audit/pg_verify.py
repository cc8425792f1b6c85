"""Verifying the PostgreSQL audit store: every record, link and the stored Merkle tree,
read in one consistent snapshot on a connection of its own (``PostgresAuditStore.verify``).

The records stream through a server-side cursor and are fed to
:class:`audit.verifying.ChainChecker`, as the embedded store's are; on top, each row's
time index (``recorded_us``) is checked against its ``recorded_at``, and the stored tree's
root, in the same snapshot, against the root of the records. Appends go on meanwhile:
records committed after the snapshot are left for the next run.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import attrs
import psycopg
from psycopg.types.json import set_json_loads

from audit.chain import TreeMismatch, root_at
from audit.errors import AuditError
from audit.pg_rows import _FETCH, _first_line, _record
from audit.pg_writer import _PgTreeView, _StoreForWriter
from audit.protocol import GENESIS_HASH, Checkpoint, Record, VerifyReport
from audit.stamps import epoch_micros, parse_timestamp
from audit.verifying import ChainChecker


def verify_snapshot(
    store: _StoreForWriter, conninfo: str, location: str, checkpoint: Checkpoint | None
) -> VerifyReport:
    """The verify report of the store at ``conninfo`` (see docs/audit.md)."""
    checker = ChainChecker(store.hmac_key, checkpoint)
    count, head = 0, Checkpoint(0, GENESIS_HASH)  # what checked out so far
    try:
        with psycopg.connect(conninfo) as conn:
            # A float (only SQL can put one there) becomes a Decimal, which has no
            # canonical form: reported as such rather than hashed as something else.
            set_json_loads(_loads_exact, conn)
            conn.read_only = True
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            with conn.cursor(name="pricecalc_audit_verify") as cur:
                cur.itersize = _FETCH
                cur.execute(store._sql.verify)
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
                view = _PgTreeView(store, conn)
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
        raise AuditError(f"verify of {location} failed: {_first_line(exc)}") from exc
    if tree_problem is not None:
        return attrs.evolve(
            report,
            ok=False,
            bad_seq=None,
            problem=f"the Merkle tree table does not match the records: {tree_problem}",
        )
    return report


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
