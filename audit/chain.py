"""What both backends share about the chain: the transaction that seals new records onto
the head (the duplicate-key rule, the pending records, the Merkle tree grown with them),
and answering for the tree (SPEC §9) — roots and proofs, each proof checked against the
log before it is handed out.

A backend's transaction subclasses :class:`ChainTransaction` and keeps only its storage:
how committed records are looked up, what the head and the tree are when an append
begins, and where sealed records and new tree nodes go. Everything else — the protocol's
``get`` / ``prefetch`` / ``find`` / ``record`` / ``append`` / ``append_many`` /
``pending``, the thread and open checks, which keys are refused — is here, once.

A backend also gives a :class:`TreeView` (how many leaves its tree holds, its stored
nodes, and a record's leaf recomputed from the record itself); :func:`root_at`,
:func:`inclusion_proof` and :func:`consistency_proof` do the rest, and
:class:`TreeQuestions` asks them through the backend's view for the store's protocol.
Because every proof is verified (RFC 9162 §2.1.3.2 / §2.1.4.2) against the view's own
root and the record's own leaf before it leaves the store, a damaged node in a backend's
tree raises :class:`TreeMismatch` instead of producing a proof nobody can check.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

from audit.errors import AuditError, DuplicateKey
from audit.merkle import (
    CompactTree,
    Node,
    ProofError,
    consistency_path,
    frontier_nodes,
    inclusion_path,
    leaf_hash,
    root_from_frontier,
    verify_consistency,
    verify_inclusion,
)
from audit.protocol import Checkpoint, Entry, Record
from audit.records import Checked, Sealed, Sealer, check_entry, normal_text

__all__ = [
    "ChainTransaction",
    "TreeMismatch",
    "TreeQuestions",
    "TreeView",
    "check_entries",
    "consistency_proof",
    "grow",
    "inclusion_proof",
    "root_at",
]

Clock = Callable[[], datetime]


class TreeMismatch(AuditError):
    """A backend's stored tree does not agree with its records."""


class TreeView(Protocol):
    """A backend's Merkle tree, as of one moment (under its lock or in one snapshot)."""

    def size(self) -> int:
        """How many leaves the tree holds."""
        ...

    def nodes(self, wanted: Sequence[Node]) -> Mapping[Node, bytes]:
        """The stored hashes of these complete subtrees (raise if one is missing)."""
        ...

    def leaf(self, seq: int) -> bytes:
        """Record ``seq``'s leaf hash, recomputed from the record as stored."""
        ...


def grow(
    tree: CompactTree, leaves: Iterable[bytes], min_level: int = 0
) -> list[tuple[int, bytes]]:
    """Append leaf data to ``tree``; return the new nodes ``(position, hash)`` of level
    ``min_level`` and above — the tree step of every append (bench/audit_verify.py times
    appends without it)."""
    return tree.extend(leaves, min_level)


def check_entries(entries: Iterable[Entry]) -> list[Checked]:
    """Validate a batch before anything is locked: each entry (:func:`check_entry`), and
    no idempotency key twice in it (:class:`DuplicateKey`, ``pending``) — compared in its
    lookup form (:func:`audit.records.normal_text`), as the store compares keys."""
    checked = [check_entry(entry) for entry in entries]
    if len(checked) > 1:
        seen: set[str] = set()
        for key, _, _ in checked:
            if key is not None:
                normal = normal_text(key)
                if normal in seen:
                    raise DuplicateKey(key, None, pending=True)
                seen.add(normal)
    return checked


class ChainTransaction(ABC):
    """The protocol's ``Transaction``, for every backend: reads see the committed records
    and this transaction's own pending ones; appends are sealed at once (seq, hash, tree
    leaf) onto the head; a key is refused when it is already recorded, pending, or twice
    in a batch. Belongs to the thread that opened it, until :meth:`close`.

    A subclass supplies the storage: the ``_committed_*`` lookups (which never need to
    return this transaction's own records: they are answered here first), ``_begin`` (the
    head to chain onto, the clock, refusing keys already committed), ``_tree_at`` (the
    tree at the head, or None when the backend cannot tell now) and ``_keep`` (where the
    sealed records and the tree's new nodes go).
    """

    #: The lowest tree level the backend keeps (levels below are recomputed from records).
    kept_from_level = 0

    def __init__(self, sealer: Sealer) -> None:
        self._sealer = sealer
        self._thread = threading.get_ident()
        self._open = True
        self._records: list[Record] = []
        # This transaction's records by key and by tag, each in its lookup form
        # (:func:`audit.records.normal_text`), as the backends compare committed ones.
        self._by_key: dict[str, Record] = {}
        self._by_tag: dict[str, list[Record]] = {}
        # Keys looked up and found in no committed record. The store's lock is held for
        # the whole transaction, so they stay absent; an append need not ask again.
        self._absent: set[str] = set()
        #: The Merkle tree as this transaction grows it (None: not known to the backend).
        self.tree: CompactTree | None = None

    # -- what a backend provides ---------------------------------------------------------
    @abstractmethod
    def _committed_get(self, key: str) -> Record | None: ...

    @abstractmethod
    def _committed_keys(self, keys: set[str]) -> set[str]:
        """Which of ``keys`` committed records hold."""

    @abstractmethod
    def _committed_find(self, tag: str) -> list[Record]: ...

    @abstractmethod
    def _committed_record(self, seq: int) -> Record | None: ...

    @abstractmethod
    def _begin(self, keys: list[str]) -> tuple[Checkpoint, Clock]:
        """Before an append: refuse ``keys`` already committed (:class:`DuplicateKey`) or
        a store that cannot be appended to; return the head and the clock to stamp with."""

    @abstractmethod
    def _tree_at(self, head: Checkpoint) -> CompactTree | None:
        """The tree of the ``head.seq`` records before them (a copy the transaction may
        grow), or None when it is not known now."""

    @abstractmethod
    def _keep(self, sealed: list[Sealed], nodes: list[tuple[int, bytes]]) -> None:
        """Keep newly sealed records and the tree nodes they completed (``(position,
        hash)``, empty when the tree is not known)."""

    # -- the protocol --------------------------------------------------------------------
    def _check(self) -> None:
        if not self._open:
            raise AuditError("this transaction is over; open a new one")
        if threading.get_ident() != self._thread:
            raise AuditError("a transaction belongs to the thread that opened it")

    def close(self) -> None:
        """End the transaction: every later call is refused."""
        self._open = False

    @property
    def pending(self) -> tuple[Record, ...]:
        """The records appended in this transaction so far (not yet durable)."""
        return tuple(self._records)

    def get(self, key: str) -> Record | None:
        self._check()
        pending = self._by_key.get(normal_text(key)) if self._by_key else None
        if pending is not None:
            return pending
        if key in self._absent:
            return None
        found = self._committed_get(key)
        if found is None:
            self._absent.add(key)
        return found

    def prefetch(self, keys: Iterable[str]) -> None:
        """Look ``keys`` up in one go; ``get`` then answers those that are not recorded
        without asking the backend again (the lock keeps them absent)."""
        self._check()
        by_key = self._by_key
        wanted = {
            key
            for key in keys
            if key not in self._absent and not (by_key and normal_text(key) in by_key)
        }
        if wanted:
            self._absent.update(wanted - self._committed_keys(wanted))

    def find(self, tag: str) -> list[Record]:
        self._check()
        committed = self._committed_find(tag)
        if not self._records:
            return committed
        first = self._records[0].seq  # a backend that already holds them: not twice
        return [r for r in committed if r.seq < first] + self._by_tag.get(normal_text(tag), [])

    def record(self, seq: int) -> Record | None:
        self._check()
        if self._records and seq >= self._records[0].seq:
            index = seq - self._records[0].seq
            return self._records[index] if index < len(self._records) else None
        return self._committed_record(seq) if seq >= 1 else None

    def append(self, entry: Entry) -> Record:
        self._check()
        return self.append_checked([check_entry(entry)])[0]

    def append_many(self, entries: Sequence[Entry]) -> list[Record]:
        self._check()
        return self.append_checked(check_entries(entries))

    def append_checked(self, checked: list[Checked]) -> list[Record]:
        """Append entries :func:`check_entries` already validated (the stores' own
        ``append_many`` validates before taking the lock)."""
        self._check()
        if not checked:
            return []
        keys: list[str] = []
        by_key = self._by_key
        for key, _, _ in checked:
            if key is not None:
                pending = by_key.get(normal_text(key)) if by_key else None
                if pending is not None:
                    raise DuplicateKey(key, pending.seq, pending=True)
                if key not in self._absent:
                    keys.append(key)
        head, clock = self._begin(keys)
        sealed = self._sealer.seal(checked, head.seq, head.hash, clock)
        tree = self.tree
        if tree is None or tree.size != head.seq:
            tree = self._tree_at(head)
        try:
            nodes = (
                grow(tree, [s.leaf for s in sealed], self.kept_from_level)
                if tree is not None
                else []
            )
            self._keep(sealed, nodes)
        except BaseException:
            self.tree = None  # it may have grown past what was kept
            raise
        self.tree = tree
        records = [s.record for s in sealed]
        self._records.extend(records)
        by_tag = self._by_tag
        for record in records:
            if record.key is not None:
                by_key[normal_text(record.key)] = record
            for tag in dict.fromkeys(normal_text(t) for t in record.tags):
                by_tag.setdefault(tag, []).append(record)
        return records



def _size(view: TreeView, size: int | None, what: str = "tree size") -> int:
    have = view.size()
    if size is None:
        return have
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= have:
        raise ValueError(f"{what} {size!r} is not between 0 and the tree's size {have}")
    return size


def root_at(view: TreeView, size: int | None = None) -> bytes:
    """The root of the tree at ``size`` (default: all of it)."""
    size = _size(view, size)
    wanted = frontier_nodes(size)
    found = view.nodes(wanted)
    return root_from_frontier([found[node] for node in wanted])


def inclusion_proof(view: TreeView, seq: int, size: int | None = None) -> list[bytes]:
    """RFC 9162 inclusion path of record ``seq`` (leaf ``seq - 1``) at ``size``, verified
    against the tree's root and the record's own leaf before it is returned."""
    size = _size(view, size)
    if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= size:
        raise ValueError(f"record {seq!r} is not in the tree of size {size}")
    path = inclusion_path(seq - 1, size, view.nodes)
    try:
        verify_inclusion(view.leaf(seq), seq - 1, size, path, root_at(view, size))
    except ProofError as exc:
        raise TreeMismatch(f"the stored tree does not match record {seq} ({exc})") from exc
    return path


def consistency_proof(view: TreeView, old: int, new: int | None = None) -> list[bytes]:
    """RFC 9162 consistency path from size ``old`` to ``new``, verified before it is
    returned (empty from 0 and between equal sizes)."""
    new = _size(view, new)
    old = _size(view, old, "old tree size")
    if old > new:
        raise ValueError(f"the old tree size {old} is larger than the new {new}")
    path = consistency_path(old, new, view.nodes)
    try:
        verify_consistency(old, new, root_at(view, old), root_at(view, new), path)
    except ProofError as exc:
        raise TreeMismatch(f"the stored tree is not consistent with itself ({exc})") from exc
    return path


class TreeQuestions(ABC):
    """The store's four tree questions (SPEC §9), answered through the backend's
    :meth:`_tree_view` — a context giving a :class:`TreeView` under whatever lock and
    connection the backend needs, and turning its failures into the store's errors."""

    @abstractmethod
    def _tree_view(self) -> AbstractContextManager[TreeView]: ...

    def tree_size(self) -> int:
        """How many records the Merkle tree holds."""
        with self._tree_view() as view:
            return view.size()

    def root(self, size: int | None = None) -> bytes:
        """The tree's root hash at ``size`` (default: now)."""
        with self._tree_view() as view:
            return root_at(view, size)

    def inclusion_proof(self, seq: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 inclusion path of record ``seq`` (leaf ``seq - 1``) at tree ``size``."""
        with self._tree_view() as view:
            return inclusion_proof(view, seq, size)

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        """RFC 9162 consistency path from tree size ``old`` to ``new`` (default: now)."""
        with self._tree_view() as view:
            return consistency_proof(view, old, new)


def record_leaf(record: Record, checked: tuple[str | None, bytes | None]) -> bytes:
    """The leaf hash of ``record`` given :func:`audit.records.checked_leaf`'s verdict."""
    problem, data = checked
    if problem is not None or data is None:
        raise TreeMismatch(f"record {record.seq} does not check out ({problem}); run verify()")
    return leaf_hash(data)
