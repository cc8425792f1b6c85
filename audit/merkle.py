"""The Merkle tree of RFC 9162 §2.1 (SHA-256), its inclusion and consistency proofs.

Pure arithmetic: nothing here knows where the tree is kept. The definitions, in the RFC's
words:

* ``MTH({})`` = SHA-256 of nothing; ``MTH({d(0)})`` = SHA-256(0x00 ‖ d(0)) (a *leaf hash*);
  for n > 1, with k the largest power of two smaller than n,
  ``MTH(D[n])`` = SHA-256(0x01 ‖ MTH(D[0:k]) ‖ MTH(D[k:n])) (a *node hash*).
* ``PATH(m, D[n])`` (§2.1.3.1), the inclusion path of leaf m, and ``PROOF(m, D[n])``
  (§2.1.4.1), the consistency path from size m to size n.

A store keeps the hash of every *complete* subtree — a perfect subtree of 2^level leaves
starting at a multiple of its size, written ``(level, index)`` — in the order they become
complete as leaves are appended (:func:`stored_index`; the same order Go's
``golang.org/x/mod/sumdb/tlog`` uses). Any subtree the proofs need is a left-to-right run
of such complete subtrees (:func:`range_nodes`), so a proof costs O(log n) node look-ups.

Proofs are built in two steps so a backend can fetch every node it needs in one query:
:func:`inclusion_ranges` / :func:`consistency_ranges` say which leaf ranges are hashed,
:func:`range_nodes` which stored nodes make them up, :func:`fold_range` combines them.

Verification (:func:`verify_inclusion`, :func:`verify_consistency`) follows RFC 9162
§2.1.3.2 and §2.1.4.2 step by step and raises :class:`ProofError` saying what failed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactTree",
    "Node",
    "ProofError",
    "consistency_path",
    "consistency_ranges",
    "expected_inclusion_length",
    "fold_range",
    "frontier_nodes",
    "inclusion_path",
    "inclusion_ranges",
    "leaf_hash",
    "node_at",
    "node_hash",
    "range_nodes",
    "root_from_frontier",
    "root_of_leaves",
    "stored_count",
    "stored_index",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
#: MTH of the empty tree: SHA-256 of nothing.
EMPTY_ROOT = hashlib.sha256(b"").digest()

#: A complete subtree: (level, index) covers leaves [index·2^level, (index+1)·2^level).
Node = tuple[int, int]
NodeSource = Callable[[Sequence[Node]], Mapping[Node, bytes]]

_sha256 = hashlib.sha256


class ProofError(ValueError):
    """A proof did not verify; the message says which check failed."""


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 ‖ data): the hash of one leaf."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 ‖ left ‖ right): the hash of an interior node."""
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of_leaves(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH straight from the definition (recursive; for tests and small trees)."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = _split(n)
    return node_hash(root_of_leaves(leaf_hashes[:k]), root_of_leaves(leaf_hashes[k:]))


# -- where complete subtrees are kept -----------------------------------------------------


def stored_index(level: int, index: int) -> int:
    """The position of node ``(level, index)`` in the order nodes become complete.

    Appending leaf n stores leaf (0, n) and then every node it completes, bottom up; so
    leaf n is at ``stored_count(n)`` and the nodes it completes follow it.
    """
    for _ in range(level):
        index = 2 * index + 1
    position = 0
    while index:
        position += index
        index >>= 1
    return position + level


def stored_count(size: int) -> int:
    """How many complete subtrees a tree of ``size`` leaves has (2·size − popcount(size))."""
    return 2 * size - size.bit_count()


def range_nodes(lo: int, hi: int) -> list[Node]:
    """The complete subtrees that make up leaves [lo, hi), left to right.

    ``lo`` must be a multiple of the largest power of two not above ``hi - lo`` (true of
    every range a proof or a root needs: their starts are aligned).
    """
    nodes: list[Node] = []
    size = hi - lo
    while size:
        level = size.bit_length() - 1
        nodes.append((level, lo >> level))
        lo += 1 << level
        size -= 1 << level
    return nodes


def frontier_nodes(size: int) -> list[Node]:
    """The complete subtrees that make up a whole tree of ``size`` leaves (its right edge)."""
    return range_nodes(0, size)


def fold_range(hashes: Sequence[bytes]) -> bytes:
    """MTH of a run of complete subtrees given left to right (sizes decreasing)."""
    if not hashes:
        return EMPTY_ROOT
    value = hashes[-1]
    for left in reversed(hashes[:-1]):
        value = node_hash(left, value)
    return value


def root_from_frontier(hashes: Sequence[bytes]) -> bytes:
    """The root of a tree from the hashes of its :func:`frontier_nodes`."""
    return fold_range(hashes)


# -- proofs: which ranges ----------------------------------------------------------------


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTH make up ``PATH(index, D[size])``, bottom to top."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    out: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index - lo < k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
    out.reverse()
    return out


def consistency_ranges(old: int, new: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTH make up ``PROOF(old, D[new])``, in the RFC's order.

    Empty for ``old == 0`` and for ``old == new`` (SPEC §9).
    """
    if not 0 <= old <= new:
        raise ValueError(f"no consistency proof from size {old} to size {new}")
    if old == 0 or old == new:
        return []
    out: list[tuple[int, int]] = []
    lo, hi, m, known = 0, new, old, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
            m -= k
            known = False
    if not known:
        out.append((lo, hi))
    out.reverse()
    return out


def _paths(ranges: list[tuple[int, int]], source: NodeSource) -> list[bytes]:
    wanted = [range_nodes(lo, hi) for lo, hi in ranges]
    found = source(sorted({node for nodes in wanted for node in nodes}))
    return [fold_range([found[node] for node in nodes]) for nodes in wanted]


def inclusion_path(index: int, size: int, source: NodeSource) -> list[bytes]:
    """RFC 9162 ``PATH(index, D[size])``; ``source`` maps complete subtrees to hashes."""
    return _paths(inclusion_ranges(index, size), source)


def consistency_path(old: int, new: int, source: NodeSource) -> list[bytes]:
    """RFC 9162 ``PROOF(old, D[new])`` (empty for old == 0 or old == new)."""
    return _paths(consistency_ranges(old, new), source)


# -- verification ---------------------------------------------------------------------------


def _check_hashes(what: str, hashes: Iterable[bytes]) -> None:
    for n, value in enumerate(hashes):
        if not isinstance(value, bytes) or len(value) != HASH_SIZE:
            raise ProofError(f"{what}: element {n} is not a {HASH_SIZE}-byte hash")


def expected_inclusion_length(index: int, size: int) -> int:
    """How many hashes ``PATH(index, D[size])`` has."""
    return len(inclusion_ranges(index, size))


def verify_inclusion(
    leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf`` (a leaf hash) is leaf ``index`` of the tree of ``size`` with
    ``root`` (RFC 9162 §2.1.3.2). Raises :class:`ProofError` naming the failed check."""
    _check_hashes("inclusion path", path)
    _check_hashes("leaf hash and root", (leaf, root))
    if index < 0 or size < 0:
        raise ProofError(f"leaf index {index} and tree size {size} must not be negative")
    if index >= size:  # step 1
        raise ProofError(f"leaf index {index} is not below the tree size {size}")
    expected = expected_inclusion_length(index, size)
    if len(path) != expected:
        raise ProofError(
            f"path length: {len(path)} hashes, but a leaf {index} of a tree of size {size} "
            f"has a path of {expected}"
        )
    fn, sn, r = index, size - 1, leaf  # steps 2 and 3
    for p in path:  # step 4
        if sn == 0:
            raise ProofError("path length: the path is longer than the tree is high")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:  # step 5
        raise ProofError("path length: the path is shorter than the tree is high")
    if not hmac.compare_digest(r, root):
        raise ProofError("root: the path does not lead to the checkpoint's root hash")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, path: Sequence[bytes]
) -> None:
    """Check that the tree of ``new_size`` (``new_root``) extends the tree of ``old_size``
    (``old_root``) (RFC 9162 §2.1.4.2; from size 0 and between equal sizes the path is
    empty, and equal sizes need equal roots). Raises :class:`ProofError`."""
    _check_hashes("consistency path", path)
    _check_hashes("roots", (old_root, new_root))
    if old_size < 0 or new_size < 0:
        raise ProofError(f"sizes {old_size} and {new_size} must not be negative")
    if old_size > new_size:
        raise ProofError(f"sizes: the old size {old_size} is larger than the new {new_size}")
    if old_size == new_size or old_size == 0:
        if path:
            raise ProofError(
                f"path length: from size {old_size} to {new_size} the path must be empty, "
                f"got {len(path)} hashes"
            )
        if old_size == new_size and not hmac.compare_digest(old_root, new_root):
            raise ProofError(f"root: two different roots for the same size {old_size}")
        if old_size == 0 and not hmac.compare_digest(old_root, EMPTY_ROOT):
            raise ProofError("root: the root of size 0 must be the empty tree's")
        return
    expected = len(consistency_ranges(old_size, new_size))
    if len(path) != expected:  # step 1 (an empty path) is one case of this
        raise ProofError(
            f"path length: {len(path)} hashes, but from size {old_size} to {new_size} "
            f"the path has {expected}"
        )
    proof = list(path)
    if old_size & (old_size - 1) == 0:  # step 2: an exact power of two
        proof.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1  # step 3
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]  # step 5
    for c in proof[1:]:  # step 6
        if sn == 0:
            raise ProofError("path length: the path is longer than the trees are high")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:  # step 7
        raise ProofError("path length: the path is shorter than the trees are high")
    if not hmac.compare_digest(fr, old_root):
        raise ProofError("root: the path does not lead to the old checkpoint's root hash")
    if not hmac.compare_digest(sr, new_root):
        raise ProofError("root: the path does not lead to the new checkpoint's root hash")


# -- growing a tree ------------------------------------------------------------------------


class CompactTree:
    """The right edge of a tree (its frontier): enough to append and to compute the root.

    ``append(leaf)`` returns the complete subtrees the new leaf creates — the leaf itself
    and every node it completes — with their :func:`stored_index` positions, so a store
    can keep them; O(log n) work per leaf, O(1) on average.
    """

    __slots__ = ("_frontier", "size")

    def __init__(self, size: int = 0, frontier: Sequence[bytes] = ()) -> None:
        if len(frontier) != size.bit_count():
            raise ValueError(
                f"a tree of size {size} has {size.bit_count()} frontier hashes, "
                f"not {len(frontier)}"
            )
        self.size = size
        self._frontier = list(frontier)

    @property
    def frontier(self) -> list[bytes]:
        return list(self._frontier)

    def append(self, leaf: bytes) -> list[tuple[int, bytes]]:
        """Add one leaf hash; return the new stored nodes as ``(stored_index, hash)``."""
        position = stored_count(self.size)
        out = [(position, leaf)]
        value = leaf
        n = self.size
        frontier = self._frontier
        while n & 1:
            value = node_hash(frontier.pop(), value)
            position += 1
            out.append((position, value))
            n >>= 1
        frontier.append(value)
        self.size += 1
        return out

    def extend(self, leaf_data: Iterable[bytes], min_level: int = 0) -> list[tuple[int, bytes]]:
        """Add a leaf for each of ``leaf_data`` (hashed here: :func:`leaf_hash`); return the
        new stored nodes of level ``min_level`` and above as ``(stored_index, hash)``.

        :meth:`append` in one tight loop: the tree step of every append to a store.
        """
        out: list[tuple[int, bytes]] = []
        frontier = self._frontier
        size = self.size
        for data in leaf_data:
            position = 2 * size - size.bit_count()  # stored_count(size): the leaf's place
            value = _sha256(b"\x00" + data).digest()
            if not min_level:
                out.append((position, value))
            n, level = size, 0
            while n & 1:
                value = _sha256(b"\x01" + frontier.pop() + value).digest()
                level += 1
                if level >= min_level:
                    out.append((position + level, value))
                n >>= 1
            frontier.append(value)
            size += 1
        self.size = size
        return out

    def root(self) -> bytes:
        return fold_range(self._frontier)

    def copy(self) -> CompactTree:
        return CompactTree(self.size, self._frontier)


def node_at(position: int) -> Node:
    """The ``(level, index)`` of the node stored at ``position`` (inverse of
    :func:`stored_index`)."""
    if position < 0:
        raise ValueError(f"no node at position {position}")
    # n, the leaf count whose leaf opens the run holding ``position``, is the largest with
    # stored_count(n) = 2n - popcount(n) <= position. Then n <= position (2n - popcount(n)
    # >= n), so popcount(n) <= bit_length(n) <= bit_length(position), and
    # n <= (position + bit_length(position)) // 2: a start a few steps above n, not ~32.
    # stored_count rises with n, so the first n walking down is the largest.
    n = (position + position.bit_length()) // 2
    while 2 * n - n.bit_count() > position:
        n -= 1
    level = position - stored_count(n)
    return level, n >> level
