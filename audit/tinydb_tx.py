"""The file store's transaction and TinyDB's read-only view of the log.

:class:`StoreTransaction` is one :meth:`audit.tinydb_log.AuditLogStorage.transaction`
block: the chain rules of :class:`audit.chain.ChainTransaction` over the log file, its
records written (and made durable) when the block exits cleanly. :class:`RecordsView` is
the streaming, read-only table TinyDB reads through.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from audit.chain import ChainTransaction
from audit.errors import AuditError, DuplicateKey
from audit.merkle import CompactTree
from audit.protocol import Checkpoint, Record
from audit.records import Sealed, record_to_dict
from audit.tinydb_index import KEPT_FROM_LEVEL

if TYPE_CHECKING:
    from audit.tinydb_log import AuditLogStorage

logger = logging.getLogger("audit")

#: What a store stamps its records' times by.
Clock = Callable[[], datetime]


@attrs.frozen
class Written:
    """Where a commit wrote its group: ``[start, end)``, ending with ``head`` (its line
    at ``last_at``); ``count`` records."""

    start: int
    end: int
    head: Checkpoint
    last_at: int
    count: int


class StoreTransaction(ChainTransaction):
    """The handle a :meth:`AuditLogStorage.transaction` block works through
    (:class:`audit.chain.ChainTransaction` over the log file).

    Reads see committed records and this transaction's pending appends; appends get their
    seq and hash at once but are written (one write, one fsync) only when the block exits
    cleanly. Belongs to the thread that opened it.
    """

    def __init__(self, storage: AuditLogStorage) -> None:
        super().__init__(storage._sealer)
        self.kept_from_level = KEPT_FROM_LEVEL
        self._storage = storage
        self._head = storage._head
        self._lines: list[bytes] = []
        self._micros: list[int] = []  # each pending record's time (the index's column)
        self._nodes: list[tuple[int, bytes]] = []  # the tree nodes they completed
        self._appendable = False  # the store's checks before a first append were made
        self._written: Written | None = None  # where the commit wrote them

    def _committed_get(self, key: str) -> Record | None:
        return self._storage._get_locked(key)

    def _committed_keys(self, keys: set[str]) -> set[str]:
        return self._storage._keys_present_locked(keys)

    def _committed_find(self, tag: str) -> list[Record]:
        return self._storage._find_locked(tag)

    def _committed_record(self, seq: int) -> Record | None:
        return self._storage._record_locked(seq)

    def _begin(self, keys: list[str]) -> tuple[Checkpoint, Clock]:
        storage = self._storage
        if not self._appendable:  # once a transaction: nothing it checks changes under the lock
            storage._check_appendable()
            self._appendable = True
        if keys:
            for key in keys:
                found = storage._get_locked(key)
                if found is not None:
                    raise DuplicateKey(key, found.seq)
        return self._head, storage._clock

    def _tree_at(self, head: Checkpoint) -> CompactTree | None:
        storage = self._storage
        try:
            storage._sync_index()
        except AuditError as exc:  # appends go on; the index catches up later
            logger.warning("audit index %s unavailable (%s)", storage._index.path, exc)
            return None
        tree = storage._keeper.tree
        return tree.copy() if tree is not None and tree.size == head.seq else None

    def _keep(self, sealed: list[Sealed], nodes: list[tuple[int, bytes]]) -> None:
        for item in sealed:
            self._lines.append(item.line)
            self._micros.append(item.recorded_us)
        self._nodes.extend(nodes)
        last = sealed[-1].record
        self._head = Checkpoint(last.seq, last.hash)


class RecordsView(Mapping[str, Mapping[str, Any]]):
    """TinyDB's view of the table (doc_id string → document), read lazily from the log."""

    def __init__(self, storage: AuditLogStorage) -> None:
        self._storage = storage

    def __getitem__(self, doc_id: str) -> Mapping[str, Any]:
        try:
            seq = int(doc_id)
        except ValueError:
            raise KeyError(doc_id) from None
        record = self._storage.record_at(seq)
        if record is None:
            raise KeyError(doc_id)
        return record_to_dict(record)

    def __iter__(self) -> Iterator[str]:
        for doc in self._storage.iter_dicts():
            yield str(doc["seq"])

    def __len__(self) -> int:
        return self._storage.count()

    def items(self) -> _StreamingItems:  # type: ignore[override]
        return _StreamingItems(self)


class _StreamingItems:
    def __init__(self, view: RecordsView) -> None:
        self._view = view

    def __iter__(self) -> Iterator[tuple[str, Mapping[str, Any]]]:
        for doc in self._view._storage.iter_dicts():
            yield str(doc["seq"]), doc

    def __len__(self) -> int:
        return len(self._view)


__all__ = ["Clock", "RecordsView", "StoreTransaction", "Written"]
