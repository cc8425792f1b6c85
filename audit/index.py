"""The sidecar index: a rebuildable SQLite accelerator of where each record sits in the log.

The JSON Lines file is the single source of truth; the index is never believed on its own
word (SPEC §7, docs/audit.md "What the store trusts and what it checks"). It maps
idempotency keys and tags (as *names*, in a generic text-normalised form: Unicode NFKC,
surrounding whitespace removed — :func:`normal_text`), seqs and times to byte offsets so
that ``get``/``find`` do not scan the file. What it answers is checked:

* a record found through it is read from the log and checked there by the caller (its
  hash or HMAC, its seq, the key or tag it was found by);
* an answer of *none* must be proven. The ``names`` table is one sorted chain of
  ``(name, seq)`` pairs in which every row names its successor and carries a MAC over both
  (HMAC-SHA256 with the store's key when keyed, SHA-256 otherwise), from a sentinel row
  ``('', 0)`` on. :meth:`SidecarIndex.lookup` reads a name's rows together with the row
  before them and checks that the links run unbroken from that row through every row of
  the name and on past it: a deleted, edited or unreachable row breaks the chain and
  raises :class:`IndexBroken` — two indexed reads per lookup, whatever the index's size;
* the ``state`` row records the head it covers (seq, hash, offsets) and a running digest
  of every row it was given, and carries a MAC over all of it; the keeper compares that
  head with the log before using the index.

It also keeps the log's Merkle tree (RFC 9162, SPEC §9): table ``tree`` holds the hash of
every complete subtree of 16 leaves or more (levels below are recomputed from the log when
needed), ``id`` being its position in completion order
(:func:`audit.merkle.stored_index`); ``state.tree_size`` is the number of leaves and
``state.frontier`` the tree's right edge (what appends grow, without reading records). Rows
and tree nodes move forward together, in one SQLite transaction.

It runs in WAL mode with ``synchronous=NORMAL``: a power loss may lose the last index
transactions (the index then lags, and is caught up from the log) but never leaves a mix
of two transactions, which a chain of links could not always tell from a consistent index
(docs/audit.md says why ``OFF`` is not enough and ``FULL`` is not needed).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import json
import os
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from audit.protocol import Record
from audit.records import normal_text

__all__ = [
    "IndexBroken",
    "IndexRow",
    "IndexState",
    "SidecarIndex",
    "key_name",
    "normal_text",
    "tag_name",
]

# 2: the Merkle tree; 3: its nodes of level >= 4 and state.frontier; 4: the names chain,
# the running digest and the state's MAC (issue 19). An index of another layout is rebuilt.
SCHEMA_VERSION = 4

_SCHEMA = """
CREATE TABLE IF NOT EXISTS state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL,
    end_offset INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    last_offset INTEGER NOT NULL,
    last_hash TEXT NOT NULL,
    tree_size INTEGER NOT NULL,
    frontier BLOB NOT NULL,
    digest BLOB NOT NULL,
    mac BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL,
    recorded_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_time ON records (recorded_us);
CREATE TABLE IF NOT EXISTS tree (
    id INTEGER PRIMARY KEY,
    hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS names (
    name TEXT NOT NULL,
    seq INTEGER NOT NULL,
    next_name TEXT,
    next_seq INTEGER,
    mac BLOB NOT NULL,
    PRIMARY KEY (name, seq)
) WITHOUT ROWID;
"""

_GENESIS_DIGEST = bytes(32)

#: How many link MACs :class:`Macs` keeps (each a few hundred bytes).
_MACS_KEPT = 4096


class IndexBroken(Exception):
    """The index contradicts itself or the log: it must be rebuilt before it is used."""


def key_name(key: str) -> str:
    """The index name of an idempotency key."""
    return "k:" + normal_text(key)


def tag_name(tag: str) -> str:
    """The index name of a tag."""
    return "t:" + normal_text(tag)


def record_names(record: Record) -> tuple[str, ...]:
    """The index names of a record's key and tags (distinct, in a fixed order)."""
    names = [tag_name(tag) for tag in record.tags]
    if record.key is not None:
        names.append(key_name(record.key))
    return tuple(dict.fromkeys(names))


@attrs.frozen
class IndexState:
    """How far the index reaches: the file offset indexed up to and the last record there,
    and the running digest of every row indexed (in order)."""

    end_offset: int
    seq: int
    last_offset: int
    last_hash: str
    tree_size: int = 0
    #: The tree's right edge at ``tree_size`` (its frontier hashes, 32 bytes each).
    frontier: bytes = b""
    digest: bytes = _GENESIS_DIGEST


EMPTY = IndexState(end_offset=0, seq=0, last_offset=0, last_hash="", tree_size=0)


@attrs.frozen
class IndexRow:
    seq: int
    offset: int
    length: int
    recorded_us: int
    #: The record's key and tag names (:func:`key_name`, :func:`tag_name`), distinct.
    names: tuple[str, ...]


Location = tuple[int, int, int]  # seq, offset, length
_Link = tuple[str | None, int | None]


class Macs:
    """The MACs of the index (HMAC-SHA256 with the store's key, SHA-256 without one)."""

    def __init__(self, hmac_key: bytes | None) -> None:
        self._key = hmac_key
        # The MACs made lately, by what they cover: a row this handle linked (or checked)
        # is checked again at its next look-up, the state at every lock hold. A MAC is a
        # function of its fields and the key: a row's stored MAC is still compared with it.
        self._links: dict[tuple[str, int, str | None, int | None], bytes] = {}
        self._states: dict[IndexState, bytes] = {}

    def _digest(self, data: bytes) -> bytes:
        if self._key is None:
            return hashlib.sha256(data).digest()
        return hmac.digest(self._key, data, "sha256")

    def link(self, name: str, seq: int, next_name: str | None, next_seq: int | None) -> bytes:
        fields = (name, seq, next_name, next_seq)
        known = self._links.get(fields)
        if known is not None:
            return known
        data = f"link\n{len(name)}:{name}{seq}\n"
        if next_name is not None:
            data += f"{len(next_name)}:{next_name}{next_seq}"
        mac = self._digest(data.encode("utf-8", "surrogatepass"))[:16]
        if len(self._links) >= _MACS_KEPT:
            self._links.clear()
        self._links[fields] = mac
        return mac

    def state(self, state: IndexState) -> bytes:
        known = self._states.get(state)
        if known is not None:
            return known
        mac = self._state(state)
        if len(self._states) >= 4:
            self._states.clear()
        self._states[state] = mac
        return mac

    def _state(self, state: IndexState) -> bytes:
        data = json.dumps(
            [
                state.end_offset,
                state.seq,
                state.last_offset,
                state.last_hash,
                state.tree_size,
                state.frontier.hex(),
                state.digest.hex(),
            ]
        )
        return self._digest(b"state\n" + data.encode("ascii"))

    def fold(self, digest: bytes, row: IndexRow) -> bytes:
        """The running digest after ``row``."""
        data = json.dumps(
            [row.seq, row.offset, row.length, row.recorded_us, list(row.names)],
            ensure_ascii=False,
        )
        return self._digest(b"row\n" + digest + data.encode("utf-8", "surrogatepass"))

    def digest_of(self, digest: bytes, rows: Iterable[IndexRow]) -> bytes:
        for row in rows:
            digest = self.fold(digest, row)
        return digest


class SidecarIndex:
    """One connection to the index file. Callers serialise access (the store's locks).
    ``hmac_key`` is the store's: the index's MACs are made with it."""

    def __init__(self, path: str, hmac_key: bytes | None = None) -> None:
        self.path = path
        self.macs = Macs(hmac_key)
        self._conn: sqlite3.Connection | None = None
        self._inode: int | None = None
        # The file was found to be the one connected to in this hold of the store's lock
        # (:meth:`pin`): only lock holders replace it, so it is not looked at again.
        self._pinned = False

    # -- connection ------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=60.0, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            row = _schema_version(conn)
            if row is None:
                conn.executescript(_SCHEMA)
                empty = EMPTY
                conn.execute(
                    "INSERT OR IGNORE INTO state VALUES (1, ?, 0, 0, 0, '', 0, x'', ?, ?)",
                    (SCHEMA_VERSION, empty.digest, self.macs.state(empty)),
                )
                conn.execute(
                    "INSERT OR IGNORE INTO names VALUES ('', 0, NULL, NULL, ?)",
                    (self.macs.link("", 0, None, None),),
                )
            elif row != SCHEMA_VERSION:
                raise IndexBroken(f"index layout {row} is not {SCHEMA_VERSION}")
        except BaseException:
            conn.close()
            raise
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection, reopened if another process replaced the index file (looked
        at on every use, but not while pinned: :meth:`pin`)."""
        if self._pinned and self._conn is not None:
            return self._conn
        try:
            inode: int | None = os.stat(self.path).st_ino
        except FileNotFoundError:
            inode = None
        if self._conn is None or inode is None or inode != self._inode:
            self.close()
            self._conn = self._connect()
            self._inode = os.stat(self.path).st_ino
        return self._conn

    def pin(self, pinned: bool = True) -> None:
        """While the caller holds the store's lock, nobody replaces the file: the
        connection is used without looking at the file again until ``pin(False)``."""
        self._pinned = pinned and self._conn is not None

    def close(self) -> None:
        self._pinned = False
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
        """The state row, its MAC checked (:class:`IndexBroken` when it does not hold)."""
        row = self.conn.execute(
            "SELECT end_offset, seq, last_offset, last_hash, tree_size, frontier, digest, mac "
            "FROM state WHERE id = 1"
        ).fetchone()
        if row is None:
            raise IndexBroken("the index has no state row")
        state = IndexState(
            end_offset=int(row[0]),
            seq=int(row[1]),
            last_offset=int(row[2]),
            last_hash=str(row[3]),
            tree_size=int(row[4]),
            frontier=bytes(row[5]),
            digest=bytes(row[6]),
        )
        if not hmac.compare_digest(bytes(row[7]), self.macs.state(state)):
            raise IndexBroken("the index's state does not match its MAC")
        if min(state.end_offset, state.seq, state.last_offset, state.tree_size) < 0:
            raise IndexBroken("the index's state holds a negative offset, seq or size")
        return state

    def add(
        self,
        rows: Iterable[IndexRow],
        state: IndexState,
        nodes: Sequence[tuple[int, bytes]] = (),
    ) -> IndexState:
        """Index ``rows``, keep the tree ``nodes`` (stored index, hash) and move the state
        to ``state`` (its digest folded over ``rows``), atomically; return that state."""
        rows = list(rows)
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            before = self.state()
            state = attrs.evolve(state, digest=self.macs.digest_of(before.digest, rows))
            conn.executemany(
                "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?)",
                [(r.seq, r.offset, r.length, r.recorded_us) for r in rows],
            )
            self._link(conn, sorted({(name, row.seq) for row in rows for name in row.names}))
            if nodes:
                conn.executemany("INSERT OR REPLACE INTO tree VALUES (?, ?)", nodes)
            conn.execute(
                "UPDATE state SET end_offset = ?, seq = ?, last_offset = ?, last_hash = ?, "
                "tree_size = ?, frontier = ?, digest = ?, mac = ?",
                (
                    state.end_offset,
                    state.seq,
                    state.last_offset,
                    state.last_hash,
                    state.tree_size,
                    state.frontier,
                    state.digest,
                    self.macs.state(state),
                ),
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return state

    def _link(self, conn: sqlite3.Connection, pairs: list[tuple[str, int]]) -> None:
        """Insert the ``(name, seq)`` pairs (sorted) into the chain: each goes after the row
        before it; pairs that fall between the same two rows are chained to each other."""
        macs = self.macs
        inserts: list[tuple[str, int, str | None, int | None, bytes]] = []
        updates: list[tuple[str, int, bytes, str, int]] = []
        run: list[tuple[str, int]] = []  # new pairs after ``pred``, in order
        pred: tuple[str, int, str | None, int | None] | None = None

        def close_run() -> None:
            if pred is None or not run:
                return
            first = run[0]
            updates.append((*first, macs.link(pred[0], pred[1], *first), pred[0], pred[1]))
            ends: list[tuple[str | None, int | None]] = [*run[1:], (pred[2], pred[3])]
            for (name, seq), (after_name, after_seq) in zip(run, ends, strict=True):
                inserts.append(
                    (name, seq, after_name, after_seq, macs.link(name, seq, after_name, after_seq))
                )

        for pair in pairs:
            row = conn.execute(
                "SELECT name, seq, next_name, next_seq FROM names WHERE (name, seq) < (?, ?) "
                "ORDER BY name DESC, seq DESC LIMIT 1",
                pair,
            ).fetchone()
            if row is None:
                raise IndexBroken("the index lost its first row")
            if (row[2], row[3]) == pair:
                continue  # already there
            found = (row[0], row[1], row[2], row[3])
            if found != pred:
                close_run()
                pred, run = found, []
            run.append(pair)
        close_run()
        conn.executemany("INSERT INTO names VALUES (?, ?, ?, ?, ?)", inserts)
        conn.executemany(
            "UPDATE names SET next_name = ?, next_seq = ?, mac = ? WHERE name = ? AND seq = ?",
            updates,
        )

    # -- the tree --------------------------------------------------------------------
    def nodes(self, ids: Iterable[int]) -> dict[int, bytes]:
        """The stored tree nodes with these ids (those that exist)."""
        wanted = list(ids)
        found: dict[int, bytes] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                (int(row[0]), bytes(row[1]))
                for row in self.conn.execute(
                    f"SELECT id, hash FROM tree WHERE id IN ({marks})", chunk
                )
            )
        return found

    # -- lookups ---------------------------------------------------------------------
    def lookup(self, name: str) -> list[int]:
        """The seqs of the rows named ``name``, in order — proven complete by the chain
        (:class:`IndexBroken` when a link or a MAC does not hold): the row before the name
        must link to its first row (or past the name), each row to the next, the last
        past the name. Two indexed reads, whatever the index's size."""
        conn = self.conn
        pred = conn.execute(
            "SELECT name, seq, next_name, next_seq, mac FROM names WHERE name < ? "
            "ORDER BY name DESC, seq DESC LIMIT 1",
            (name,),
        ).fetchone()
        rows = conn.execute(
            "SELECT name, seq, next_name, next_seq, mac FROM names WHERE name = ? ORDER BY seq",
            (name,),
        ).fetchall()
        return _proven(self.macs, name, pred, rows)

    def lookup_many(self, names: Iterable[str]) -> dict[str, list[int]]:
        """:meth:`lookup` of every one of ``names`` in one statement (per 400 names): each
        name's row before it and its rows, read together, each answer proven the same way."""
        wanted = sorted(set(names))
        if len(wanted) < _NAMES_JOINED_FROM:  # two plain reads each cost less then
            return {name: self.lookup(name) for name in wanted}
        out: dict[str, list[int]] = {}
        conn = self.conn
        for i in range(0, len(wanted), _NAMES_AT_ONCE):
            chunk = wanted[i : i + _NAMES_AT_ONCE]
            preds: dict[str, Sequence[object]] = {}
            rows: dict[str, list[Sequence[object]]] = {name: [] for name in chunk}
            for row in conn.execute(_lookup_many_sql(len(chunk)), chunk):
                if row[1]:
                    rows[row[0]].append(row[2:])
                else:
                    preds[row[0]] = row[2:]
            for name in chunk:
                found = sorted(rows[name], key=_seq_of)
                out[name] = _proven(self.macs, name, preds.get(name), found)
        return out

    def location(self, seq: int) -> Location | None:
        row = self.conn.execute(
            "SELECT seq, offset, length FROM records WHERE seq = ?", (seq,)
        ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]), int(row[2]))

    def record_rows(self) -> tuple[int, int]:
        """(how many record rows, the highest seq among them): both the head's seq when no
        row is missing (one pass over the table inside SQLite)."""
        row = self.conn.execute("SELECT count(*), max(seq) FROM records").fetchone()
        return int(row[0]), int(row[1] or 0)

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

    # -- the cross-check (verify --deep) ---------------------------------------------
    def all_names(self) -> dict[tuple[str, int], _Link]:
        """Every row of the chain (but the sentinel) with its link, each MAC checked."""
        out: dict[tuple[str, int], _Link] = {}
        for row in self.conn.execute(
            "SELECT name, seq, next_name, next_seq, mac FROM names ORDER BY name, seq"
        ):
            _check_link(self.macs, row)
            if (row[0], row[1]) != ("", 0):
                out[(str(row[0]), int(row[1]))] = (row[2], row[3])
        return out

    def all_records(self) -> dict[int, tuple[int, int, int]]:
        """seq → (offset, length, recorded_us) of every record row."""
        return {
            int(r[0]): (int(r[1]), int(r[2]), int(r[3]))
            for r in self.conn.execute("SELECT seq, offset, length, recorded_us FROM records")
        }


def _schema_version(conn: sqlite3.Connection) -> int | None:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'state'"
    ).fetchone()
    if exists is None:
        return None
    row = conn.execute("SELECT version FROM state WHERE id = 1").fetchone()
    if row is None:
        raise IndexBroken("the index has no state row")
    return int(row[0])


#: Names read back per statement by :meth:`SidecarIndex.lookup_many`.
_NAMES_AT_ONCE = 400
#: From this many names on, :meth:`SidecarIndex.lookup_many` reads them in one statement
#: (callgrind: one name 56k instructions by lookup, 86k joined; two 112k and 120k; three
#: 168k and 150k).
_NAMES_JOINED_FROM = 3


@functools.lru_cache(maxsize=32)
def _lookup_many_sql(count: int) -> str:
    """``count`` names' rows before them (marked 0) and their own rows (marked 1): a
    correlated search of the primary key per name, like :meth:`SidecarIndex.lookup`'s."""
    values = ", ".join(["(?)"] * count)
    return (
        f"WITH wanted(w) AS (VALUES {values}) "
        "SELECT w, 0, p.name, p.seq, p.next_name, p.next_seq, p.mac FROM wanted "
        "JOIN names p ON (p.name, p.seq) = (SELECT name, seq FROM names WHERE name < w "
        "ORDER BY name DESC, seq DESC LIMIT 1) "
        "UNION ALL "
        "SELECT w, 1, n.name, n.seq, n.next_name, n.next_seq, n.mac FROM wanted "
        "JOIN names n ON n.name = w"
    )


def _seq_of(row: Sequence[object]) -> Any:
    return row[1]


def _proven(
    macs: Macs, name: str, pred: Sequence[object] | None, rows: Sequence[Sequence[object]]
) -> list[int]:
    """The seqs of ``rows`` (the rows named ``name``, in seq order) once the chain proves
    them all: ``pred`` (the row before the name) links to the first of them or past the
    name, each to the next, the last past the name; every MAC holds."""
    if pred is None:
        raise IndexBroken("the index lost its first row")
    _check_link(macs, pred)
    expected: _Link = (pred[2], pred[3])  # type: ignore[assignment]
    seqs: list[int] = []
    for row in rows:
        if (row[0], row[1]) != expected:
            raise IndexBroken(f"the index's chain is broken before {name!r}")
        _check_link(macs, row)
        seqs.append(int(row[1]))  # type: ignore[call-overload]
        expected = (row[2], row[3])  # type: ignore[assignment]
    # The last row's link must leave the name: to a later name, or to the chain's end.
    after = expected[0]
    if (after is None) != (expected[1] is None) or (after is not None and after <= name):
        raise IndexBroken(f"the index's chain is broken after {name!r}")
    return seqs


def _check_link(macs: Macs, row: Sequence[object]) -> None:
    name, seq, next_name, next_seq, mac = row
    if not isinstance(name, str) or not isinstance(seq, int) or not isinstance(mac, bytes):
        raise IndexBroken("the index holds a row of the wrong type")
    if next_name is not None and not isinstance(next_name, str):
        raise IndexBroken("the index holds a row of the wrong type")
    if next_seq is not None and not isinstance(next_seq, int):
        raise IndexBroken("the index holds a row of the wrong type")
    if not hmac.compare_digest(mac, macs.link(name, seq, next_name, next_seq)):
        raise IndexBroken(f"the index's row ({name!r}, {seq}) does not match its MAC")
