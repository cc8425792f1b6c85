"""Keeping the embedded backend's sidecar index and Merkle tree in step with its log.

One job: :class:`IndexKeeper` brings the rebuildable SQLite index (:mod:`audit.index`) and
the tree's right edge it caches up to the end of the JSON Lines log, checks the index
against the file before trusting it, rebuilds it when it is corrupt or does not match, adds
what a commit wrote, and answers the tree's questions (:class:`audit.chain.TreeView`) from
the nodes the index keeps and the records the log holds.

Siblings: :mod:`audit.tinydb_store` owns the log (locking, catching up, appending, reading,
verify) and holds an :class:`IndexKeeper`, always calling it under its lock; this module
knows the log only as a :class:`~audit.logfile.LogFile` and a function that streams its
lines, so imports run one way (store → keeper → index, logfile, merkle).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence

import attrs

from audit.chain import TreeMismatch, root_at
from audit.errors import AuditError, TamperedError
from audit.index import EMPTY, IndexRow, IndexState, SidecarIndex
from audit.logfile import LogFile
from audit.merkle import CompactTree, leaf_hash, root_of_leaves, stored_index
from audit.protocol import Record
from audit.records import decode_line, epoch_micros, parse_timestamp
from audit.verifying import line_fields

__all__ = ["KEPT_FROM_LEVEL", "IndexKeeper", "LogLines"]

logger = logging.getLogger("audit")

#: ``(offset, line)`` of each line of the log between two offsets (line boundaries).
LogLines = Callable[[int, int], Iterator[tuple[int, bytes]]]

_INDEX_BATCH = 10_000
#: The index keeps the Merkle tree's nodes of this level and above (a node per 16 records,
#: 1/32 of all); a node below is recomputed from the at most 8 records it covers, each
#: checked against its hash, when a root or a proof needs it (docs/audit.md).
KEPT_FROM_LEVEL = 4


class IndexKeeper:
    """Keeps one log's :class:`~audit.index.SidecarIndex` and tree cache in step with it.

    Every method runs under the log's lock (the caller holds it): only lock holders write
    the index, so what this keeper knows stays true until the lock is released.
    """

    def __init__(
        self, index: SidecarIndex, file: LogFile, hmac_key: bytes | None, lines: LogLines
    ) -> None:
        self.index = index
        self._file = file
        self._hmac_key = hmac_key
        self._lines = lines
        self.checked: IndexState | None = None  # an index state known to match
        # The tree's right edge for ``self.checked`` (None: load it from the index).
        self.tree: CompactTree | None = None
        # The log end the index was brought up to during the current lock hold (None: not
        # yet). Only lock holders write the index, so it stays current until release.
        self.synced_to: int | None = None

    def forget_sync(self) -> None:
        """The lock changes hands: others may write the index before it is taken again."""
        self.synced_to = None

    def sync(self, end: int) -> None:
        """Bring the sidecar index up to the log end ``end``.

        Once per lock hold and log end: while this handle holds the lock nobody else
        writes the index, so a second lookup in the same transaction skips the check.
        """
        if self.synced_to is not None and self.synced_to == end:
            return
        self.synced_to = None
        try:
            self._sync_once(end)
        except sqlite3.OperationalError as exc:
            raise AuditError(f"the index {self.index.path} is unavailable: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            logger.warning("audit index %s is corrupt (%s); rebuilding it", self.index.path, exc)
            self.index.destroy()
            self.checked = None
            self._sync_once(end)
        self.synced_to = end

    def _matches_file(self, state: IndexState, end: int) -> bool:
        if state.end_offset > end:
            return False
        if state.end_offset == 0:
            return True
        if self._file.pread(state.end_offset - 1, 1) != b"\n":
            return False
        if state.seq == 0:
            return True
        if state.last_offset > 0 and self._file.pread(state.last_offset - 1, 1) != b"\n":
            return False
        line = self._file.pread(state.last_offset, state.end_offset - state.last_offset)
        line = line[: line.find(b"\n") + 1]
        record = decode_line(line, None, check=False).record
        return record is not None and record.seq == state.seq and record.hash == state.last_hash

    def _sync_once(self, end: int) -> None:
        state = self.index.state()
        if state != self.checked and not self._matches_file(state, end):
            logger.warning("audit index %s does not match the log; rebuilding it", self.index.path)
            self.index.reset()
            state = EMPTY
        self.checked = state
        tree = self._tree_for(state)
        if state.end_offset == end:
            return
        rows: list[IndexRow] = []
        nodes: list[tuple[int, bytes]] = []
        for offset, line in self._lines(state.end_offset, end):
            row = _index_row(offset, line)
            if row is None:
                state = attrs.evolve(state, end_offset=offset + len(line))
                continue
            rows.append(row[0])
            # A leaf only for the next record whose bytes hash to its claimed hash; the
            # tree stops at a damaged record (verify names it), the rows go on.
            fields = line_fields(line, self._hmac_key)
            if fields is not None and fields[0] == tree.size + 1 == row[0].seq:
                nodes.extend(tree.extend((fields[3],), KEPT_FROM_LEVEL))
            state = IndexState(
                offset + len(line), row[0].seq, offset, row[1], tree.size, _edge(tree)
            )
            if len(rows) >= _INDEX_BATCH:
                self.index.add(rows, state, nodes)
                rows, nodes = [], []
        self.index.add(rows, state, nodes)
        self.checked = state

    def _tree_for(self, state: IndexState) -> CompactTree:
        """The tree's right edge at ``state`` (kept in memory; loaded from the index)."""
        tree = self.tree
        if tree is None or tree.size != state.tree_size:
            edge = state.frontier
            hashes = [edge[i : i + 32] for i in range(0, len(edge), 32)]
            if len(hashes) != state.tree_size.bit_count() or len(edge) % 32:
                logger.warning("audit index %s lost the tree's edge; rebuilding", self.index.path)
                raise sqlite3.DatabaseError("tree frontier missing")
            tree = CompactTree(state.tree_size, hashes)
            self.tree = tree
        return tree

    def subtree(self, level: int, index: int) -> bytes:
        """The hash of tree node ``(level, index)`` recomputed from the records it covers
        (a level the index does not keep), each checked against its own hash."""
        first = (index << level) + 1
        last = first + (1 << level) - 1
        start, end = self.index.by_seq(first), self.index.by_seq(last)
        if start is None or end is None:
            raise TreeMismatch(f"records {first}..{last} of node ({level}, {index}) are missing")
        data = self._file.pread(start[1], end[1] + end[2] - start[1])
        leaves = []
        for seq, line in enumerate(data.splitlines(keepends=True), first):
            fields = line_fields(line, self._hmac_key)
            if fields is None or fields[0] != seq:
                raise TamperedError(seq, f"record {seq} does not check out; run verify()")
            leaves.append(leaf_hash(fields[3]))
        if len(leaves) != last - first + 1:
            raise TreeMismatch(f"records {first}..{last} of node ({level}, {index}) are missing")
        return root_of_leaves(leaves)

    def committed(
        self,
        at: int,
        tree: CompactTree | None,
        records: Sequence[Record],
        lines: Sequence[bytes],
        micros: Sequence[int],
        nodes: Sequence[tuple[int, bytes]],
    ) -> None:
        """After a commit written at offset ``at``, add the new records and the tree nodes
        they completed to the index — when the transaction knew the ``tree``, which means
        the index was brought up to ``at`` during this lock hold (only lock holders write
        it). Otherwise it lags and the next lookup catches it up from the file."""
        if tree is None or self.synced_to != at:
            return
        try:
            rows = []
            offset = at
            for record, line, us in zip(records, lines, micros, strict=True):
                rows.append(IndexRow(record.seq, offset, len(line), record.key, us, record.tags))
                offset += len(line)
            last = records[-1]
            state = IndexState(
                offset, last.seq, offset - len(lines[-1]), last.hash, tree.size, _edge(tree)
            )
            self.index.add(rows, state, nodes)
            self.checked = state
            self.synced_to = offset
            self.tree = tree
        except sqlite3.Error as exc:  # the record is durable; the index catches up later
            self.tree = None
            logger.warning("audit index %s not updated (%s)", self.index.path, exc)

    # -- the Merkle tree (SPEC §9) ----------------------------------------------------
    def reset(self) -> None:
        """Empty the index (it is rebuilt from the log at the next sync)."""
        self.index.reset()
        self.checked = None
        self.synced_to = None
        self.tree = None

    def view(self) -> _TreeView:
        """The tree as the index keeps it (read it after :meth:`sync`, under the lock)."""
        return _TreeView(self)

    def tree_mismatch(self, count: int, root: bytes, damaged: bool) -> str | None:
        """How the kept tree disagrees with the log's first ``count`` records, whose root
        verify found to be ``root`` (None: it agrees, or a record is ``damaged`` and the
        tree cannot be judged — that record is what to report)."""
        view = self.view()
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
        edge = self.tree if size == count else None
        if cached == root:
            if edge is None or edge.root() == root:
                return None
            why = f"(the right edge it grows the tree from, at size {size})"
        return why


class _TreeView:
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
        keeper = self._keeper
        found = keeper.index.by_seq(seq)
        line = keeper._file.pread(found[1], found[2]) if found is not None else b""
        fields = line_fields(line, keeper._hmac_key)
        if fields is None or fields[0] != seq:
            raise TamperedError(seq, f"record {seq} does not check out; run verify()")
        return leaf_hash(fields[3])


def _edge(tree: CompactTree) -> bytes:
    return b"".join(tree.frontier)


def _index_row(offset: int, line: bytes) -> tuple[IndexRow, str] | None:
    record = decode_line(line, None, check=False).record
    if record is None:
        return None
    try:
        row = _row_for(record, offset, len(line))
    except ValueError:
        return None
    return row, record.hash


def _row_for(record: Record, offset: int, length: int) -> IndexRow:
    return IndexRow(
        seq=record.seq,
        offset=offset,
        length=length,
        key=record.key,
        recorded_us=epoch_micros(parse_timestamp(record.recorded_at)),
        tags=record.tags,
    )
