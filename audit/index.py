"""The sidecar index: a rebuildable SQLite cache of where each record sits in the log.

The JSON Lines file is the single source of truth. The index only maps idempotency keys,
tags, seqs and times to byte offsets so that ``get``/``find`` do not scan the file. It
remembers the offset it has indexed up to and the last record it indexed; the store checks
that record against the file before trusting the index, catches the index up from that
offset, and rebuilds it from scratch when it is missing, corrupt or does not match the file.
Because it can always be rebuilt, it runs with ``synchronous=OFF``.

It also keeps the log's Merkle tree (RFC 9162, SPEC §9): table ``tree`` holds the hash of
every complete subtree of 16 leaves or more (levels below are recomputed from the log when
needed), ``id`` being its position in completion order
(:func:`audit.merkle.stored_index`); ``state.tree_size`` is the number of leaves and
``state.frontier`` the tree's right edge (what appends grow, without reading records). Rows
and tree nodes move forward together, in one SQLite transaction.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence

import attrs

__all__ = ["IndexRow", "IndexState", "SidecarIndex"]

SCHEMA_VERSION = 3  # 2: the Merkle tree; 3: its nodes of level >= 4 and state.frontier

_SCHEMA = """
CREATE TABLE IF NOT EXISTS state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL,
    end_offset INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    last_offset INTEGER NOT NULL,
    last_hash TEXT NOT NULL,
    tree_size INTEGER NOT NULL,
    frontier BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL,
    key TEXT,
    recorded_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_key ON records (key) WHERE key IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_by_time ON records (recorded_us);
CREATE TABLE IF NOT EXISTS tree (
    id INTEGER PRIMARY KEY,
    hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS tags (
    tag TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (tag, seq)
) WITHOUT ROWID;
"""


@attrs.frozen
class IndexState:
    """How far the index reaches: the file offset indexed up to and the last record there."""

    end_offset: int
    seq: int
    last_offset: int
    last_hash: str
    tree_size: int = 0
    #: The tree's right edge at ``tree_size`` (its frontier hashes, 32 bytes each).
    frontier: bytes = b""


EMPTY = IndexState(end_offset=0, seq=0, last_offset=0, last_hash="", tree_size=0)


@attrs.frozen
class IndexRow:
    seq: int
    offset: int
    length: int
    key: str | None
    recorded_us: int
    tags: tuple[str, ...]


Location = tuple[int, int, int]  # seq, offset, length


class SidecarIndex:
    """One connection to the index file. Callers serialise access (the store's locks)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._inode: int | None = None

    # -- connection ------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=60.0, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF")
            conn.executescript(_SCHEMA)
            row = conn.execute("SELECT version FROM state WHERE id = 1").fetchone()
            if row is None:
                conn.execute(
                    "INSERT OR IGNORE INTO state VALUES (1, ?, 0, 0, 0, '', 0, x'')",
                    (SCHEMA_VERSION,),
                )
            elif row[0] != SCHEMA_VERSION:
                raise sqlite3.DatabaseError(f"index schema {row[0]} is not {SCHEMA_VERSION}")
        except BaseException:
            conn.close()
            raise
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection, reopened if another process replaced the index file."""
        try:
            inode: int | None = os.stat(self.path).st_ino
        except FileNotFoundError:
            inode = None
        if self._conn is None or inode is None or inode != self._inode:
            self.close()
            self._conn = self._connect()
            self._inode = os.stat(self.path).st_ino
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
            self._inode = None

    def destroy(self) -> None:
        """Delete the index files (they are rebuilt on next use)."""
        self.close()
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path + suffix)

    # -- state -----------------------------------------------------------------------
    def state(self) -> IndexState:
        row = self.conn.execute(
            "SELECT end_offset, seq, last_offset, last_hash, tree_size, frontier FROM state "
            "WHERE id = 1"
        ).fetchone()
        if row is None:
            return EMPTY
        return IndexState(
            end_offset=row[0],
            seq=row[1],
            last_offset=row[2],
            last_hash=row[3],
            tree_size=row[4],
            frontier=bytes(row[5]),
        )

    def reset(self) -> None:
        """Forget everything (the caller then re-indexes from offset 0)."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM records")
            conn.execute("DELETE FROM tags")
            conn.execute("DELETE FROM tree")
            conn.execute(
                "UPDATE state SET end_offset = 0, seq = 0, last_offset = 0, last_hash = '', "
                "tree_size = 0, frontier = x''"
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def add(
        self,
        rows: Iterable[IndexRow],
        state: IndexState,
        nodes: Sequence[tuple[int, bytes]] = (),
    ) -> None:
        """Index ``rows``, keep the tree ``nodes`` (stored index, hash) and move the state
        to ``state``, atomically."""
        rows = list(rows)
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?)",
                [(r.seq, r.offset, r.length, r.key, r.recorded_us) for r in rows],
            )
            conn.executemany(
                "INSERT OR IGNORE INTO tags VALUES (?, ?)",
                [(tag, r.seq) for r in rows for tag in r.tags],
            )
            if nodes:
                conn.executemany("INSERT OR REPLACE INTO tree VALUES (?, ?)", nodes)
            conn.execute(
                "UPDATE state SET end_offset = ?, seq = ?, last_offset = ?, last_hash = ?, "
                "tree_size = ?, frontier = ?",
                (
                    state.end_offset,
                    state.seq,
                    state.last_offset,
                    state.last_hash,
                    state.tree_size,
                    state.frontier,
                ),
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # -- the tree --------------------------------------------------------------------
    def nodes(self, ids: Iterable[int]) -> dict[int, bytes]:
        """The stored tree nodes with these ids (those that exist)."""
        wanted = list(ids)
        found: dict[int, bytes] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                (row[0], bytes(row[1]))
                for row in self.conn.execute(
                    f"SELECT id, hash FROM tree WHERE id IN ({marks})", chunk
                )
            )
        return found

    # -- lookups ---------------------------------------------------------------------
    def by_key(self, key: str) -> Location | None:
        row = self.conn.execute(
            "SELECT seq, offset, length FROM records WHERE key = ? ORDER BY seq LIMIT 1", (key,)
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def keys_present(self, keys: Iterable[str]) -> set[str]:
        wanted = list(keys)
        found: set[str] = set()
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                row[0]
                for row in self.conn.execute(
                    f"SELECT DISTINCT key FROM records WHERE key IN ({marks})", chunk
                )
            )
        return found

    def by_seq(self, seq: int) -> Location | None:
        row = self.conn.execute(
            "SELECT seq, offset, length FROM records WHERE seq = ?", (seq,)
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def by_tag(self, tag: str) -> Iterator[Location]:
        cursor = self.conn.execute(
            "SELECT r.seq, r.offset, r.length FROM tags t JOIN records r ON r.seq = t.seq "
            "WHERE t.tag = ? ORDER BY t.seq",
            (tag,),
        )
        for row in cursor:
            yield row[0], row[1], row[2]

    def span(self, since_us: int | None, until_us: int | None) -> tuple[int, int] | None:
        """(first offset, end offset) of the records recorded in ``[since, until]``."""
        lo = since_us if since_us is not None else -(2**62)
        hi = until_us if until_us is not None else 2**62
        row = self.conn.execute(
            "SELECT MIN(offset), MAX(offset + length) FROM records "
            "WHERE recorded_us BETWEEN ? AND ?",
            (lo, hi),
        ).fetchone()
        if row is None or row[0] is None:
            return None
        return int(row[0]), int(row[1])
