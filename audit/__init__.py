"""audit — an append-only, hash-chained record store. It knows nothing about prices.

>>> import audit, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "audit.jsonl")
>>> with audit.open_store(path) as store:
...     r = store.append(audit.Entry({"kind": "demo"}, key="k1", tags=("order:O1",)))
...     (r.seq, store.get("k1") == r, store.verify().ok)
(1, True, True)
"""

from __future__ import annotations

from audit.admin import accept_rollback, init_store, migrate_store
from audit.canonical import canonical_bytes, canonical_text
from audit.errors import (
    AppendOnlyViolation,
    AuditError,
    DuplicateKey,
    IncompleteRecordWarning,
    RolledBack,
    StoreLocked,
    StoreUnusable,
    TamperedError,
)
from audit.export import escape_csv_cell, unescape_csv_cell
from audit.factory import open_store, register_backend
from audit.protocol import (
    GENESIS_HASH,
    AuditStore,
    Checkpoint,
    Entry,
    ExportFormat,
    Record,
    Transaction,
    VerifyReport,
)
from audit.records import record_hash, record_to_dict
from audit.tinydb_log import AuditLogStorage
from audit.tinydb_store import AppendOnlyTable, AuditTinyDB, TinyDBAuditStore

__all__ = [
    "GENESIS_HASH",
    "AppendOnlyTable",
    "AppendOnlyViolation",
    "AuditError",
    "AuditLogStorage",
    "AuditStore",
    "AuditTinyDB",
    "Checkpoint",
    "DuplicateKey",
    "Entry",
    "ExportFormat",
    "IncompleteRecordWarning",
    "Record",
    "RolledBack",
    "StoreLocked",
    "StoreUnusable",
    "TamperedError",
    "TinyDBAuditStore",
    "Transaction",
    "VerifyReport",
    "accept_rollback",
    "canonical_bytes",
    "canonical_text",
    "escape_csv_cell",
    "init_store",
    "migrate_store",
    "open_store",
    "record_hash",
    "record_to_dict",
    "register_backend",
    "unescape_csv_cell",
]
