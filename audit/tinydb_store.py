"""The embedded backend: a hash-chained JSON Lines file behind TinyDB's extension points.

TinyDB is extended the way it is meant to be (``Storage`` and ``Table`` subclasses), but
its stock storage model — read the whole database, change it, write it all back — is
replaced. Stock ``JSONStorage`` rewrites the whole file on every insert (O(n) per insert),
loses inserts when several processes write, and can leave a half-written file after a
crash. Here instead:

* :class:`~audit.tinydb_log.AuditLogStorage` (:mod:`audit.tinydb_log`) owns the log
  file. An append writes only the new lines at the end (``O_APPEND``) and fsyncs them,
  under a thread lock and an inter-process lock (:mod:`audit.flock`), after catching up on
  what other processes appended.
* :class:`AppendOnlyTable` (``TinyDB.table_class`` of :class:`AuditTinyDB`) turns
  ``insert``/``insert_multiple`` into appends, streams ``search``/iteration from the file
  and refuses ``update``/``remove``/``truncate``/``upsert`` with
  :class:`~audit.errors.AppendOnlyViolation`.
* :class:`TinyDBAuditStore` is the :class:`~audit.protocol.AuditStore` over both.

Lookups by key, tag, seq and time go through a rebuildable SQLite sidecar index
(:mod:`audit.index`), which :class:`audit.tinydb_index.IndexKeeper` keeps in step with the
log, along with the Merkle tree's cache; the log file stays the single source of truth.
:mod:`audit.tinydb_log` owns the log; the keeper knows nothing of it but a file and a line
reader; this module is TinyDB's table and database over them, and the store.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, NoReturn, TextIO, cast

from tinydb import TinyDB
from tinydb.queries import QueryLike
from tinydb.storages import Storage
from tinydb.table import Document, Table

from audit.errors import (
    AppendOnlyViolation,
    AuditError,
)
from audit.export import write_records
from audit.protocol import (
    Checkpoint,
    Entry,
    ExportFormat,
    Record,
    VerifyReport,
)
from audit.tinydb_log import AuditLogStorage, Clock, StoreTransaction
from audit.tinydb_view import RecordsView

__all__ = [
    "AppendOnlyTable",
    "AuditLogStorage",
    "AuditTinyDB",
    "StoreTransaction",
    "TinyDBAuditStore",
]

def _refuse(operation: str, detail: str = "") -> NoReturn:
    raise AppendOnlyViolation(
        f"{operation} is not allowed{detail}: the audit table is append-only (records are "
        "never updated or removed, and seq numbers are assigned by the store)"
    )


class AppendOnlyTable(Table):
    """A TinyDB table over an :class:`AuditLogStorage`: insert appends, nothing rewrites.

    Documents are whole records (``seq``, ``id``, ``recorded_at``, ``key``, ``tags``,
    ``payload``, ``prev_hash``, ``hash``) and ``doc_id`` is ``seq``. ``insert(doc)``
    appends a record whose payload is ``doc``; use :meth:`append` for a key and tags.
    """

    def __init__(
        self,
        storage: Storage,
        name: str,
        cache_size: int = 0,
        persist_empty: bool = False,
    ) -> None:
        if not isinstance(storage, AuditLogStorage):
            raise TypeError("AppendOnlyTable needs an AuditLogStorage")
        if name != storage.table_name:
            raise AuditError(
                f"an audit store holds one table, {storage.table_name!r}; not {name!r}"
            )
        super().__init__(storage, name, cache_size=cache_size)
        self._log = storage

    # appending
    def append(self, entry: Entry) -> Record:
        """Durably append one entry (key and tags included)."""
        return self._log.append_entries([entry])[0]

    def append_many(self, entries: Sequence[Entry]) -> list[Record]:
        """Durably append entries as one group commit."""
        return self._log.append_entries(entries)

    def insert(self, document: Mapping[Any, Any]) -> int:
        if isinstance(document, Document):
            _refuse("insert with an explicit doc_id", f" (doc_id {document.doc_id})")
        if not isinstance(document, Mapping):
            raise ValueError("Document is not a Mapping")
        return self.append(Entry(payload=document)).seq

    def insert_multiple(self, documents: Iterable[Mapping[Any, Any]]) -> list[int]:
        entries = []
        for document in documents:
            if isinstance(document, Document):
                _refuse("insert_multiple with an explicit doc_id", f" (doc_id {document.doc_id})")
            if not isinstance(document, Mapping):
                raise ValueError("Document is not a Mapping")
            entries.append(Entry(payload=document))
        return [record.seq for record in self.append_many(entries)]

    # reading: streamed from the log, never cached (other processes append too)
    def search(self, cond: QueryLike) -> list[Document]:
        return [
            self.document_class(doc, self.document_id_class(doc["seq"]))
            for doc in self._log.iter_dicts()
            if cond(doc)
        ]

    def __iter__(self) -> Iterator[Document]:
        for doc in self._log.iter_dicts():
            yield self.document_class(doc, self.document_id_class(doc["seq"]))

    def __len__(self) -> int:
        return self._log.count()

    def _read_table(self) -> dict[str, Mapping[Any, Any]]:
        return cast(dict[str, Mapping[Any, Any]], RecordsView(self._log))

    # rewriting: refused
    def update(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("update")

    def update_multiple(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("update_multiple")

    def upsert(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("upsert")

    def remove(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("remove")

    def truncate(self) -> NoReturn:
        _refuse("truncate")

    def _update_table(self, updater: Callable[[dict[int, Mapping[Any, Any]]], None]) -> NoReturn:
        _refuse("rewriting the table")


class AuditTinyDB(TinyDB):
    """``TinyDB`` with :class:`AuditLogStorage` and :class:`AppendOnlyTable` as defaults.

    >>> db = AuditTinyDB(path)                                  # doctest: +SKIP
    >>> db.insert({"kind": "x"})                                # appends record 1
    >>> db.search(Query().payload.kind == "x")                  # streams the log
    """

    table_class = AppendOnlyTable

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # (TinyDB types ``default_storage_class`` as JSONStorage, so default it here.)
        kwargs.setdefault("storage", AuditLogStorage)
        super().__init__(*args, **kwargs)


class TinyDBAuditStore:
    """The :class:`~audit.protocol.AuditStore` on a JSON Lines file, through TinyDB.

    ``hmac_key`` makes every hash an HMAC-SHA256 with that key, so that whoever can write
    the file cannot recompute the chain. ``lock_timeout`` bounds the wait for the writer
    lock (:class:`~audit.errors.StoreLocked`). ``clock`` returns the aware UTC time stamped
    on each record (tests pass a fake one).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        hmac_key: bytes | None = None,
        lock_timeout: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        self.db = AuditTinyDB(path, hmac_key=hmac_key, lock_timeout=lock_timeout, clock=clock)
        self.storage = cast(AuditLogStorage, self.db.storage)
        self.table = cast(AppendOnlyTable, self.db.table(AuditLogStorage.table_name))

    @property
    def path(self) -> str:
        return self.storage.path

    def __repr__(self) -> str:
        return f"TinyDBAuditStore({self.path!r})"

    def __enter__(self) -> TinyDBAuditStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def append(self, entry: Entry) -> Record:
        """Durably append one record (written and fsynced before this returns)."""
        return self.table.append(entry)

    def append_many(self, entries: Sequence[Entry]) -> list[Record]:
        """Durably append records as one group commit (one write, one fsync)."""
        return self.table.append_many(entries)

    def transaction(self) -> AbstractContextManager[StoreTransaction]:
        """Hold the writer lock across read → decide → append; commit once on clean exit."""
        return self.storage.transaction()

    def get(self, key: str) -> Record | None:
        return self.storage.get(key)

    def find(self, tag: str) -> list[Record]:
        return self.storage.find(tag)

    def record(self, seq: int) -> Record | None:
        """Record number ``seq`` (1-based), or None."""
        return self.storage.record_at(seq) if seq >= 1 else None

    def query(
        self,
        where: Mapping[str, Any] | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[Record]:
        return self.storage.query(where, since=since, until=until)

    def records(self) -> Iterator[Record]:
        """Every committed record, in seq order (streamed)."""
        return self.storage.query()

    def head(self) -> Checkpoint:
        return self.storage.head()

    def verify(self, checkpoint: Checkpoint | None = None, *, deep: bool = False) -> VerifyReport:
        return self.storage.verify(checkpoint, deep=deep)

    def check_index(self) -> list[str]:
        """Cross-check the sidecar index against the log (``audit verify --deep``): the
        disagreements found, as sentences (an index that disagrees is rebuilt)."""
        return self.storage.check_index()

    def accept_rollback(self) -> tuple[Checkpoint | None, Checkpoint]:
        """Accept a log behind its high-water mark (see :func:`audit.accept_rollback`):
        the mark given up (None: the log was not behind it) and the head accepted."""
        return self.storage.accept_rollback()

    def tree_size(self) -> int:
        """How many records the Merkle tree holds (SPEC §9)."""
        return self.storage.tree_size()

    def root(self, size: int | None = None) -> bytes:
        """The Merkle tree's root hash at ``size`` (default: the current size)."""
        return self.storage.root(size)

    def inclusion_proof(self, seq: int, size: int | None = None) -> list[bytes]:
        """The RFC 9162 inclusion path of record ``seq`` in the tree of ``size``."""
        return self.storage.inclusion_proof(seq, size)

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        """The RFC 9162 consistency path from tree size ``old`` to ``new``."""
        return self.storage.consistency_proof(old, new)

    def export(
        self, out: TextIO, fmt: ExportFormat, records: Iterable[Record] | None = None
    ) -> int:
        """Stream ``records`` (default: all) to ``out`` as JSON Lines or CSV; return the count."""
        return write_records(out, fmt, self.storage.query() if records is None else records)

    def close(self) -> None:
        self.db.close()

