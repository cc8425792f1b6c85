"""What both backends share about the chain: sealing new records with their tree leaves,
and answering for the Merkle tree (SPEC §9) — roots and proofs, each proof checked
against the log before it is handed out.

A backend gives a :class:`TreeView` (how many leaves its tree holds, its stored nodes,
and a record's leaf recomputed from the record itself); :func:`root_at`,
:func:`inclusion_proof` and :func:`consistency_proof` do the rest. Because every proof is
verified (RFC 9162 §2.1.3.2 / §2.1.4.2) against the view's own root and the record's own
leaf before it leaves the store, a damaged node in a backend's tree raises
:class:`TreeMismatch` instead of producing a proof nobody can check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from audit.errors import AuditError
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
from audit.protocol import Checkpoint, Record
from audit.records import Sealed, format_timestamp, seal_record

__all__ = [
    "TreeMismatch",
    "TreeView",
    "consistency_proof",
    "grow",
    "inclusion_proof",
    "root_at",
    "seal_batch",
]

Checked = tuple[str | None, tuple[str, ...], dict[str, Any]]


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


def seal_batch(
    checked: Iterable[Checked],
    head: Checkpoint,
    clock: Callable[[], datetime],
    hmac_key: bytes | None,
) -> list[Sealed]:
    """Chain new records onto ``head``: each sealed (encoded, checked, hashed) in turn."""
    out: list[Sealed] = []
    seq, prev = head.seq, head.hash
    for valid in checked:
        seq += 1
        sealed = seal_record(
            valid, seq=seq, prev_hash=prev, stamp=format_timestamp(clock()), hmac_key=hmac_key
        )
        out.append(sealed)
        prev = sealed.record.hash
    return out


def grow(tree: CompactTree, leaves: Iterable[bytes]) -> list[tuple[int, bytes]]:
    """Append leaf data to ``tree``; return the new stored nodes ``(position, hash)``."""
    nodes: list[tuple[int, bytes]] = []
    for data in leaves:
        nodes.extend(tree.append(leaf_hash(data)))
    return nodes


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


def record_leaf(record: Record, checked: tuple[str | None, bytes | None]) -> bytes:
    """The leaf hash of ``record`` given :func:`audit.records.checked_leaf`'s verdict."""
    problem, data = checked
    if problem is not None or data is None:
        raise TreeMismatch(f"record {record.seq} does not check out ({problem}); run verify()")
    return leaf_hash(data)
