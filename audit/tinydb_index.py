"""Keeping the embedded backend's sidecar index and Merkle tree in step with its log.

One job: :class:`IndexKeeper` brings the rebuildable SQLite index (:mod:`audit.index`) and
the tree's right edge it caches up to the end of the JSON Lines log, checks the index
against the file before trusting it, rebuilds it when it is corrupt or does not match, adds
what a commit wrote, and keeps the nodes of the tree from which :mod:`audit.tinydb_tree`
answers the tree's questions (:class:`audit.chain.TreeView`).

Siblings: :mod:`audit.tinydb_store` owns the log (locking, catching up, appending, reading,
verify) and holds an :class:`IndexKeeper`, always calling it under its lock; this module
knows the log only as a :class:`~audit.logfile.LogFile` and a function that streams its
lines, so imports run one way (store → keeper → index, logfile, merkle).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence

import attrs

from audit.chain import TreeMismatch
from audit.errors import AuditError, TamperedError
from audit.index import (
    IndexBroken,
    IndexRow,
    IndexState,
    Location,
    SidecarIndex,
    key_name,
    record_names,
    tag_name,
)
from audit.logfile import LogFile
from audit.merkle import CompactTree, leaf_hash, root_of_leaves
from audit.protocol import GENESIS_HASH, Checkpoint, Record
from audit.records import decode_line
from audit.stamps import epoch_micros, parse_timestamp
from audit.verifying import line_fields

__all__ = [
    "INDEX_FAILURES",
    "KEPT_FROM_LEVEL",
    "IndexKeeper",
    "IndexUnavailable",
    "LogLines",
]

logger = logging.getLogger("audit")

#: ``(offset, line)`` of each line of the log between two offsets (line boundaries).
LogLines = Callable[[int, int], Iterator[tuple[int, bytes]]]

_INDEX_BATCH = 10_000

#: How far (bytes of log) the index may stay behind the durable point before a lookup
#: brings it up: the records past it are looked up among the lines the handle keeps in
#: memory (each checked against its hash when found), and one holder adds some hundred
#: rows in one SQLite transaction instead of every holder adding its few (issue 22:
#: with several processes each holder's own transaction was a fifth of its time). The
#: tree, verify, the index check and closing bring it to the durable point regardless.
LAG = 16 * 1024

#: At most this many commits are held for the index (:meth:`IndexKeeper.hold`); past it
#: the index reads them from the log.
_HELD_AT_MOST = 256

#: What a damaged index can raise: each means "rebuild it from the log" (never a traceback,
#: never a decision on its answer). ``sqlite3.OperationalError`` (locked, disk full, …) is
#: not among them: rebuilding would not help.
INDEX_FAILURES = (IndexBroken, sqlite3.DatabaseError, TypeError, ValueError, IndexError)
#: The index keeps the Merkle tree's nodes of this level and above (a node per 16 records,
#: 1/32 of all); a node below is recomputed from the at most 8 records it covers, each
#: checked against its hash, when a root or a proof needs it (docs/audit.md).
KEPT_FROM_LEVEL = 4


#: What SQLite says when the index cannot be used *now* (rebuilding would not help).
_ENVIRONMENT = ("locked", "busy", "disk is full", "unable to open", "disk i/o error",
                "out of memory", "interrupted")  # fmt: skip


def index_damaged(exc: sqlite3.OperationalError, path: str) -> bool:
    """Whether an "operational" SQLite error is really a damaged index, to be rebuilt like
    any damage: a schema that lost a column or table, an "unsupported file format", or a
    writable file whose header calls itself read-only (its write-version byte) — all seen
    with one byte of the file changed. Locked, busy, full, unopenable or truly read-only
    is the environment, not damage: the index is unavailable, and reads stream the log."""
    text = str(exc).lower()
    if "readonly" in text or "read-only" in text:
        folder = os.path.dirname(os.path.abspath(path))
        return os.access(path, os.W_OK) and os.access(folder, os.W_OK)
    return not any(word in text for word in _ENVIRONMENT)


class IndexUnavailable(AuditError):
    """The index cannot be opened or written now (locked, disk full, read-only): rebuilding
    it would not help. A read may go on by streaming the log instead."""


class IndexKeeper:
    """Keeps one log's :class:`~audit.index.SidecarIndex` and tree cache in step with it.

    Every method runs under the log's lock (the caller holds it): only lock holders write
    the index, so what this keeper knows stays true until the lock is released.
    """

    def __init__(
        self,
        index: SidecarIndex,
        file: LogFile,
        hmac_key: bytes | None,
        lines: LogLines,
        before_rebuild: Callable[[IndexState], None] | None = None,
        durable: Callable[[int], int] | None = None,
    ) -> None:
        self.index = index
        #: Shown the index's own head (its MAC checked) before the index is thrown away:
        #: an index that knew records the log no longer holds witnesses a rollback.
        self._before_rebuild = before_rebuild
        #: Given the log end, the offset up to which the log is known durable: the index is
        #: brought that far and no further (None: to the end).
        self._durable = durable
        self._file = file
        self._hmac_key = hmac_key
        self._lines = lines
        self.checked: IndexState | None = None  # an index state known to match
        # The tree's right edge for ``self.checked`` (None: load it from the index).
        self.tree: CompactTree | None = None
        # ``(log end, offset)``: the index was checked against the log ending at the first
        # and brought up to the second during the current lock hold (None: not yet). Only
        # lock holders write the index, so it stays current until release.
        self.synced_to: tuple[int, int] | None = None
        # The index was left behind the durable point (within :data:`LAG`) in this hold.
        self._lagging = False
        # The commits this handle wrote, one after the other, not yet indexed: their rows
        # go in (without reading the log again) once the store's durable point covers
        # them. While the index lags (LAG) they pile up: a run of this handle's commits
        # is indexed from memory, not decoded and hashed again from the log.
        self._pending: list[_Pending] = []

    def forget_sync(self) -> None:
        """The lock changes hands: others may write the index before it is taken again."""
        self.synced_to = None
        self._lagging = False
        self.index.pin(False)

    def _upto(self, end: int) -> int:
        return end if self._durable is None else min(self._durable(end), end)

    def sync(self, end: int) -> None:
        """Check the sidecar index against the log ending at ``end`` and bring it up to the
        store's durable point (``durable``; never past ``end``), so that the index never
        names a record a power cut could still take (its head is the mark's witness). An
        index already past that point (within ``end``) stays as it is; one behind it by
        less than :data:`LAG` bytes too (lookups read the lines past it; see
        :meth:`sync_fully`).

        Once per lock hold and log end: while this handle holds the lock nobody else
        writes the index, so a second lookup in the same transaction skips the check. A
        damaged index (any of :data:`INDEX_FAILURES`) is rebuilt from the log.
        """
        self._sync(end, full=False)

    def sync_fully(self, end: int) -> None:
        """:meth:`sync`, then the rest of the way to the durable point (for the tree, verify,
        the index check and closing, which need the index there)."""
        self.sync(end)
        if self._lagging:
            self._sync(end, full=True)

    def _sync(self, end: int, *, full: bool) -> None:
        upto = self._upto(end)
        if self.synced_to == (end, upto) and not (full and self._lagging):
            return
        self.synced_to = None
        try:
            self._sync_once(end, upto, full)
        except sqlite3.OperationalError as exc:
            if not index_damaged(exc, self.index.path):
                raise IndexUnavailable(
                    f"the index {self.index.path} is unavailable: {exc}"
                ) from exc
            self.rebuild(end, exc)
            return
        except INDEX_FAILURES as exc:
            self.rebuild(end, exc)
            return
        self.synced_to = (end, upto)

    def indexed(self) -> tuple[int, int]:
        """``(offset, seq)``: where the index (as checked in this lock hold) ends, and its
        last record."""
        state = self.checked
        return (state.end_offset, state.seq) if state is not None else (0, 0)

    def rebuild(self, end: int, why: BaseException) -> None:
        """Throw the index away and build it again from the log (ending at ``end``) up to
        the durable point."""
        logger.warning(
            "audit index %s cannot be trusted (%s); rebuilding it from the log",
            self.index.path,
            why or type(why).__name__,
        )
        self._show_witness()
        self.index.destroy()
        self.checked = None
        self.tree = None
        self.synced_to = None
        self._lagging = False
        self._pending = []
        upto = self._upto(end)
        try:
            self._sync_once(end, upto)
        except sqlite3.OperationalError as exc:
            raise IndexUnavailable(f"the index {self.index.path} is unavailable: {exc}") from exc
        except INDEX_FAILURES as exc:
            raise AuditError(
                f"the index {self.index.path} could not be rebuilt from the log: {exc}"
            ) from exc
        self.synced_to = (end, upto)

    # -- lookups (after sync, under the lock) ----------------------------------------
    def seqs_by_key(self, key: str) -> list[int]:
        """The seqs of the records holding idempotency key ``key`` (proven complete)."""
        return self.index.lookup(key_name(key))

    def keys_indexed(self, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` the index holds records for (every answer proven complete;
        one statement for them all)."""
        names = {key: key_name(key) for key in keys}
        found = self.index.lookup_many(names.values())
        return {key for key, name in names.items() if found[name]}

    def seqs_by_tag(self, tag: str) -> list[int]:
        """The seqs of the records tagged ``tag`` (proven complete)."""
        return self.index.lookup(tag_name(tag))

    def span(self, since_us: int | None, until_us: int | None) -> tuple[int, int] | None:
        """The index's span of the records in ``[since, until]``, from a records table
        with no row missing (:class:`IndexBroken` otherwise)."""
        state = self.checked
        seq = state.seq if state is not None else 0
        if self.index.record_rows() != (seq, seq):
            raise IndexBroken("the index lost record rows")
        return self.index.span(since_us, until_us)

    @property
    def hmac_key(self) -> bytes | None:
        return self._hmac_key

    def line_at(self, seq: int) -> bytes:
        """The log's line where the index places record ``seq`` (``b""`` where it places
        none), unchecked: the caller checks it."""
        found = self.location(seq)
        return self._file.pread(found[1], found[2]) if found is not None else b""

    def location(self, seq: int) -> Location | None:
        """Where record ``seq`` sits; None only for a seq past the indexed head."""
        found = self.index.location(seq)
        state = self.checked
        if found is None and state is not None and 1 <= seq <= state.seq:
            raise IndexBroken(f"the index lost record {seq}'s row")
        if found is not None and found[0] != seq:
            raise IndexBroken(f"the index's row for record {seq} names record {found[0]}")
        if found is not None and (
            found[1] < 0
            or found[2] <= 0
            or (state is not None and found[1] + found[2] > state.end_offset)
        ):
            raise IndexBroken(f"the index's row for record {seq} points outside the log")
        return found

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

    def _sync_once(self, end: int, upto: int, full: bool = True) -> None:
        state = self.index.state()
        self.index.pin()  # the file looked at just now: the same until the lock is let go
        if state != self.checked and not self._matches_file(state, end):
            raise IndexBroken("it does not match the log (its head is not the log's)")
        self.checked = state
        tree = self._tree_for(state)
        self._lagging = not full and state.end_offset < upto < state.end_offset + LAG
        if self._lagging:
            return
        state, tree = self._add_pending(state, tree, upto)
        if state.end_offset >= upto:
            return
        rows: list[IndexRow] = []
        nodes: list[tuple[int, bytes]] = []
        for offset, line in self._lines(state.end_offset, upto):
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
                offset + len(line), row[0].seq, offset, row[1], tree.size, _edge(tree),
                state.digest,
            )
            if len(rows) >= _INDEX_BATCH:
                state = self.index.add(rows, state, nodes)
                rows, nodes = [], []
        self.checked = self.index.add(rows, state, nodes)

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
        start, end = self.location(first), self.location(last)
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

    def tree_at(self, head: Checkpoint) -> CompactTree | None:
        """A copy of the tree of the records up to ``head`` for a transaction to grow: the
        one the last held commit left when it ends at ``head`` (the index lagging behind
        it), else the index's own; None when neither is that size."""
        pending = self._pending
        if pending and (pending[-1].state.seq, pending[-1].state.last_hash) == (
            head.seq,
            head.hash,
        ):
            return pending[-1].tree.copy()
        tree = self.tree
        return tree.copy() if tree is not None and tree.size == head.seq else None

    def hold(
        self,
        at: int,
        tree: CompactTree | None,
        records: Sequence[Record],
        lines: Sequence[bytes],
        micros: Sequence[int],
        nodes: Sequence[tuple[int, bytes]],
        names: Sequence[tuple[str, ...]] | None = None,
    ) -> None:
        """A commit was written at offset ``at`` (not yet known durable): its rows (the
        records' :func:`record_names` given as ``names``, or found here) and the
        tree nodes it completed are kept, to be added by the first :meth:`sync` whose
        durable point covers them — when the transaction knew the ``tree`` and the index
        (or the commits held before it) ends at ``at`` then. Otherwise the index reads
        them from the log."""
        pending = self._pending
        if tree is None or len(pending) >= _HELD_AT_MOST:
            pending.clear()
            if tree is None:
                return
        if pending and (
            pending[-1].state.end_offset != at
            or pending[-1].state.seq + 1 != records[0].seq
            or pending[-1].state.last_hash != records[0].prev_hash
        ):
            pending.clear()  # not the next commit after them (others wrote between)
        rows = []
        offset = at
        if names is None:
            names = [record_names(record) for record in records]
        for record, line, us, held in zip(records, lines, micros, names, strict=True):
            rows.append(IndexRow(record.seq, offset, len(line), us, held))
            offset += len(line)
        last = records[-1]
        state = IndexState(
            offset, last.seq, offset - len(lines[-1]), last.hash, tree.size, _edge(tree)
        )
        pending.append(
            _Pending(at, records[0].seq, records[0].prev_hash, rows, state, list(nodes), tree)
        )

    def drop_pending(self) -> None:
        """Forget the held commits (the file was re-read: they may no longer be where
        they were)."""
        self._pending = []

    def _add_pending(
        self, state: IndexState, tree: CompactTree, upto: int
    ) -> tuple[IndexState, CompactTree]:
        """Index the held commits that start where the index ends and are durable (up to
        ``upto``), in one SQLite transaction; return the index's state and tree then."""
        pending = self._pending
        while pending and pending[0].at < state.end_offset:
            del pending[0]  # already indexed (from the log)
        if not pending or pending[0].at > state.end_offset:
            return state, tree
        head = state.last_hash if state.seq else GENESIS_HASH
        if pending[0].first != state.seq + 1 or pending[0].prev != head:
            pending.clear()  # not ours to add: they do not chain onto the index's head
            return state, tree
        if tree.size != pending[0].first - 1:
            return state, tree
        count = 0
        while count < len(pending) and pending[count].state.end_offset <= upto:
            count += 1
        if not count:
            return state, tree  # not yet durable: kept for a later sync
        taken = pending[:count]
        del pending[:count]
        last = taken[-1]
        rows = [row for held in taken for row in held.rows]
        nodes = [node for held in taken for node in held.nodes]
        added = attrs.evolve(last.state, digest=state.digest)
        self.checked = self.index.add(rows, added, nodes)
        self.tree = last.tree
        return self.checked, last.tree

    # -- the cross-check (verify --deep) ---------------------------------------------
    def check(self, end: int) -> list[str]:
        """Compare the whole index with the log up to ``end`` (a full read of both):
        every problem found, as sentences; empty when the index is exactly what the log
        makes. Nothing is repaired here."""
        try:
            return self._check(end)
        except (sqlite3.Error, *INDEX_FAILURES) as exc:
            return [f"the index cannot be read: {exc}"]

    def _check(self, end: int) -> list[str]:
        problems: list[str] = []
        state = self.index.state()
        rows: list[IndexRow] = []
        last: tuple[int, str] | None = None
        for offset, line in self._lines(0, end):
            found = _index_row(offset, line)
            if found is not None:
                rows.append(found[0])
                last = (found[0].seq, found[1])
        if state.end_offset != end or (last is not None and (state.seq, state.last_hash) != last):
            problems.append(
                f"its head (record {state.seq} ending at offset {state.end_offset}) is not "
                f"the log's (record {last[0] if last else 0} ending at offset {end})"
            )
        if state.digest != self.index.macs.digest_of(bytes(32), rows):
            problems.append("its running digest is not the digest of the log's rows")
        kept = self.index.all_records()
        for row in rows:
            at = kept.pop(row.seq, None)
            if at is None:
                problems.append(f"record {row.seq} has no row")
            elif at != (row.offset, row.length, row.recorded_us):
                problems.append(f"record {row.seq}'s row is wrong {at}")
        problems.extend(f"a row for record {seq}, which the log does not hold" for seq in kept)
        want = {(name, row.seq) for row in rows for name in row.names}
        links = self.index.all_names()
        for name, seq in sorted(want - links.keys()):
            problems.append(f"the {_what(name)} row of record {seq} is missing")
        for name, seq in sorted(links.keys() - want):
            problems.append(f"a {_what(name)} row for record {seq} that the log does not hold")
        order = [("", 0), *sorted(links)]
        for here, there in zip(order, [*order[1:], None], strict=True):
            link = links.get(here) if here != ("", 0) else None
            if link is not None and (link if link != (None, None) else None) != there:
                problems.append(f"the link after the {_what(here[0])} row of record {here[1]}")
        return problems

    # -- the Merkle tree (SPEC §9) ----------------------------------------------------
    def _show_witness(self) -> None:
        """Show the index's own head (MAC checked) to ``before_rebuild``, if it has one."""
        if self._before_rebuild is None:
            return
        try:
            state = self.index.state()
        except (sqlite3.Error, *INDEX_FAILURES):
            return
        self._before_rebuild(state)

    def reset(self, *, witness: bool = True) -> None:
        """Throw the index away (it is rebuilt from the log at the next sync); its head is
        shown to ``before_rebuild`` first unless ``witness`` is false (a rollback accepted)."""
        if witness:
            self._show_witness()
        self.index.destroy()
        self.checked = None
        self.synced_to = None
        self.tree = None
        self._pending = []



@attrs.frozen
class _Pending:
    """A commit's index rows, held until its records are known durable."""

    at: int
    first: int
    #: The hash the first record chains onto (the index's head when they are added).
    prev: str
    rows: list[IndexRow]
    state: IndexState
    nodes: list[tuple[int, bytes]]
    tree: CompactTree


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
        recorded_us=epoch_micros(parse_timestamp(record.recorded_at)),
        names=record_names(record),
    )


def _what(name: str) -> str:
    kind, _, text = name.partition(":")
    return f"{'key' if kind == 'k' else 'tag'} {text!r}"
