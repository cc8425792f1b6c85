"""The audit store contract. TinyDB is one implementation; a server database another.

An audit store is an append-only, hash-chained log of JSON payloads. It knows nothing
about what the payloads mean. Every implementation provides:

``append`` / ``append_many``
    Durably add records (written and synced before returning; ``append_many`` commits the
    batch with one sync). Each record may carry an idempotency ``key`` (unique in the
    store) and lookup ``tags`` (not unique).
``transaction()``
    A context manager holding the store's writer lock across read → decide → append, so
    that reads inside see every record (including the transaction's own pending appends)
    and no other writer can append in between. Its appends commit, as one group, when the
    block exits without an exception; nothing is reported durable before that.
``get(key)``, ``find(tag)``, ``record(seq)``, ``query(...)``
    Look records up by idempotency key, by tag, by seq, and by any payload field and time
    range.
``head()``, ``verify(checkpoint=None, deep=False)``
    The chain head as a checkpoint; a streaming check of the whole chain and its tree.
``tree_size()``, ``root(size)``, ``inclusion_proof(seq, size)``, ``consistency_proof(old, new)``
    The Merkle tree over the records (RFC 9162, SPEC §9) and its proofs.
``export(out, fmt, records=None)``
    Stream records as JSON Lines or CSV (formula injection escaped).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Literal, Protocol, TextIO, runtime_checkable

import attrs

GENESIS_HASH = "0" * 64


@attrs.frozen
class Entry:
    """Something to append: a payload with its optional idempotency key and tags.

    The store converts the payload to plain JSON data (``Decimal`` to text, tuples to
    lists, refusing floats) and keeps that copy. ``plain=True`` is the caller's promise
    that ``payload`` is a ``dict`` already made only of exact ``dict``, ``list``, ``str``,
    ``int``, ``bool`` and ``None`` with ``str`` keys, and that it will not change it: the
    store then keeps it as it is, without the walk. A payload that is not a ``dict`` is
    converted anyway. Breaking the promise is not detected on append (it would store a
    line that ``verify`` cannot re-encode); it is for callers that built the payload
    through such a conversion themselves.
    """

    payload: Mapping[str, Any]
    key: str | None = None
    tags: tuple[str, ...] = ()
    plain: bool = False


@attrs.frozen
class Record:
    """One stored record. ``hash`` covers every other field (docs/audit.md)."""

    seq: int
    id: str
    recorded_at: str
    key: str | None
    tags: tuple[str, ...]
    payload: Mapping[str, Any]
    prev_hash: str
    hash: str


@attrs.frozen
class Checkpoint:
    """The chain head: ``seq`` of the last record (0 for an empty store) and its hash."""

    seq: int
    hash: str


@attrs.frozen
class VerifyReport:
    """The result of :meth:`AuditStore.verify`.

    ``ok`` with ``count`` records and ``head``; otherwise ``bad_seq`` is the first bad
    record (or the position where one is missing) and ``problem`` says why. ``root`` is
    the tree root of the good records as the log itself gives it.
    """

    ok: bool
    count: int
    head: Checkpoint
    bad_seq: int | None = None
    problem: str | None = None
    #: The Merkle tree root (RFC 9162, SPEC §9) of the ``count`` good records, computed
    #: from the log itself; not part of equality (reports compare by their verdict).
    root: bytes | None = attrs.field(default=None, eq=False, repr=False)


ExportFormat = Literal["jsonl", "csv"]


@runtime_checkable
class Transaction(Protocol):
    def get(self, key: str) -> Record | None: ...

    def prefetch(self, keys: Iterable[str]) -> None:
        """A hint: ``get`` will be asked for these keys (a backend may look them up in one
        go). ``get`` answers the same with or without it."""
        ...

    def find(self, tag: str) -> list[Record]: ...

    def record(self, seq: int) -> Record | None:
        """Record number ``seq`` (committed or pending in this transaction), or None."""
        ...

    def append(self, entry: Entry) -> Record: ...

    def append_many(self, entries: Sequence[Entry]) -> list[Record]: ...

    @property
    def pending(self) -> tuple[Record, ...]:
        """The records appended in this transaction so far (not yet durable)."""
        ...


@runtime_checkable
class AuditStore(Protocol):
    def append(self, entry: Entry) -> Record: ...

    def append_many(self, entries: Sequence[Entry]) -> list[Record]: ...

    def transaction(self) -> AbstractContextManager[Transaction]: ...

    def get(self, key: str) -> Record | None: ...

    def find(self, tag: str) -> list[Record]: ...

    def record(self, seq: int) -> Record | None:
        """Record number ``seq`` (1-based), or None when the store has no such record."""
        ...

    def query(
        self,
        where: Mapping[str, Any] | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[Record]: ...

    def head(self) -> Checkpoint: ...

    def verify(self, checkpoint: Checkpoint | None = None, *, deep: bool = False) -> VerifyReport:
        """Check the chain and the Merkle tree against the records; ``deep`` also requires
        every record to be stored exactly in its canonical form."""
        ...

    def tree_size(self) -> int:
        """How many records the Merkle tree (RFC 9162, SPEC §9) holds."""
        ...

    def root(self, size: int | None = None) -> bytes:
        """The tree's root hash at ``size`` leaves (default: the whole tree)."""
        ...

    def inclusion_proof(self, seq: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 inclusion path of record ``seq`` (leaf ``seq - 1``) at ``size``."""
        ...

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        """RFC 9162 consistency path from size ``old`` to ``new`` (empty from 0 or when
        the sizes are equal)."""
        ...

    def export(
        self, out: TextIO, fmt: ExportFormat, records: Iterable[Record] | None = None
    ) -> int: ...

    def close(self) -> None: ...
