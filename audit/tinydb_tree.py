"""The file store's Merkle tree, as the questions of :class:`audit.chain.TreeView` see it:
:class:`KeptTree` from what the sidecar index keeps (its nodes from level
:data:`~audit.tinydb_index.KEPT_FROM_LEVEL` up, the rest recomputed from the records the
log holds, each checked) and :class:`LogTree` from the log alone (when the index cannot be
opened: a full disk); :func:`tree_mismatch` says how the kept tree disagrees with the
log's verified records.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from audit.chain import TreeMismatch, root_at
from audit.errors import TamperedError
from audit.merkle import leaf_hash, root_of_leaves, stored_index
from audit.tinydb_index import KEPT_FROM_LEVEL, IndexKeeper
from audit.verifying import line_fields

__all__ = ["KeptTree", "LogTree", "tree_mismatch"]


class KeptTree:
    """The embedded backend's tree (:class:`audit.chain.TreeView`), read under its lock."""

    def __init__(self, keeper: IndexKeeper) -> None:
        self._keeper = keeper

    def size(self) -> int:
        state = self._keeper.checked
        return state.tree_size if state is not None else 0

    def nodes(self, wanted: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        ids = {node: stored_index(*node) for node in wanted if node[0] >= KEPT_FROM_LEVEL}
        found = self._keeper.index.nodes(ids.values())
        missing = [node for node, i in ids.items() if i not in found]
        if missing:
            raise TreeMismatch(f"node {missing[0]} is missing")
        out = {node: found[i] for node, i in ids.items()}
        for level, index in wanted:
            if level < KEPT_FROM_LEVEL:
                out[(level, index)] = self._keeper.subtree(level, index)
        return out

    def leaf(self, seq: int) -> bytes:
        fields = line_fields(self._keeper.line_at(seq), self._keeper.hmac_key)
        if fields is None or fields[0] != seq:
            raise TamperedError(seq, f"record {seq} does not check out; run verify()")
        return leaf_hash(fields[3])


class LogTree:
    """The tree recomputed from the log itself (:class:`audit.chain.TreeView`), for reads
    when the index cannot be opened (a full disk): every leaf from a line whose bytes
    hash to its claimed hash, up to the first that does not."""

    def __init__(self, lines: Iterator[tuple[int, bytes]], hmac_key: bytes | None) -> None:
        leaves: list[bytes] = []
        for _, line in lines:
            fields = line_fields(line, hmac_key)
            if fields is None or fields[0] != len(leaves) + 1:
                break
            leaves.append(leaf_hash(fields[3]))
        self._leaves = leaves

    def size(self) -> int:
        return len(self._leaves)

    def nodes(self, wanted: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        out = {}
        for level, index in wanted:
            first = index << level
            part = self._leaves[first : first + (1 << level)]
            if len(part) != 1 << level:
                raise TreeMismatch(f"node ({level}, {index}) is past the log's end")
            out[(level, index)] = root_of_leaves(part)
        return out

    def leaf(self, seq: int) -> bytes:
        if not 1 <= seq <= len(self._leaves):
            raise TamperedError(seq, f"record {seq} does not check out; run verify()")
        return self._leaves[seq - 1]


def tree_mismatch(keeper: IndexKeeper, count: int, root: bytes, damaged: bool) -> str | None:
    """How the kept tree disagrees with the log's first ``count`` records, whose root
    verify found to be ``root`` (None: it agrees, or a record is ``damaged`` and the
    tree cannot be judged — that record is what to report)."""
    view = KeptTree(keeper)
    size = view.size()
    try:
        cached = root_at(view, count) if size >= count else None
    except (TreeMismatch, TamperedError) as exc:
        if damaged:
            return None
        cached, why = None, f"(its root at size {count}: {exc})"
    else:
        why = (
            f"(it ends at size {size}, the log's verified records at {count})"
            if cached is None
            else f"at size {count} (root {cached.hex()[:16]}…, the log's "
            f"{root.hex()[:16]}…)"
        )
    edge = keeper.tree if size == count else None
    if cached == root:
        if edge is None or edge.root() == root:
            return None
        why = f"(the right edge it grows the tree from, at size {size})"
    return why
