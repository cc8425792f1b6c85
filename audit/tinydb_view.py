"""TinyDB's read-only view of the file store's log: the table TinyDB reads through,
streamed from the log (:class:`RecordsView`), never loaded whole."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from audit.records import record_to_dict


class ReadableLog(Protocol):
    """What the view reads of the log (:class:`audit.tinydb_log.AuditLogStorage`)."""

    def record_at(self, seq: int) -> Any: ...

    def iter_dicts(self) -> Iterator[dict[str, Any]]: ...

    def count(self) -> int: ...


class RecordsView(Mapping[str, Mapping[str, Any]]):
    """TinyDB's view of the table (doc_id string → document), read lazily from the log."""

    def __init__(self, storage: ReadableLog) -> None:
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


__all__ = ["ReadableLog", "RecordsView"]
