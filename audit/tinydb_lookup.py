"""The file store's lookups: records by key, tag and seq through the sidecar index, the
records past it, and the streaming reads (``query``, ``iter_dicts``).

Every record found through the index is read from the log and checked (its hash or
HMAC, its seq, the key or tag it was found by); an answer of none comes only from an
index whose head is the log's and whose chain proves it complete (:mod:`audit.index`).
Anything else rebuilds the index from the log and asks once more. No answer is given
before the log is durable up to what it saw (:meth:`DurableLog._durable_answer`).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Collection, Iterator, Mapping
from datetime import datetime
from typing import Any, TypeVar

from audit.canonical import canonical_text, to_json_value
from audit.errors import (
    AuditError,
    TamperedError,
)
from audit.index import IndexBroken, key_name, record_names, tag_name
from audit.logfile import iter_lines
from audit.protocol import (
    Checkpoint,
    Record,
)
from audit.records import (
    decode_line,
    epoch_micros,
    parse_timestamp,
    record_to_dict,
)
from audit.tinydb_handle import LogHandle, TailLine
from audit.tinydb_index import (
    INDEX_FAILURES,
    IndexUnavailable,
    index_damaged,
)
from audit.tinydb_sync import DurableLog
from audit.verifying import line_fields

__all__ = ["LogLookups"]

logger = logging.getLogger("audit")

_MISSING = object()

_T = TypeVar("_T")


class _BadRecord(IndexBroken):
    """A record found through the index does not check out against its own hash."""

    def __init__(self, seq: int, problem: str) -> None:
        super().__init__(problem)
        self.seq = seq
        self.problem = problem


#: Past this many names looked for at once, every line past the index is decoded.
_TEXTS_AT_MOST = 16


def _texts(names: Collection[str]) -> list[str] | None:
    """The normal texts of index ``names`` (``k:…``, ``t:…``), for :func:`_may_hold`."""
    if len(names) > _TEXTS_AT_MOST:
        return None
    return [name.partition(":")[2] for name in names]


def _may_hold(line: bytes, texts: Collection[str]) -> bool:
    """Whether the record in ``line`` may hold a key or tag whose normal text
    (:func:`audit.records.normal_text`) is one of ``texts``. False only when it cannot:
    a line of ASCII without a backslash holds its strings as they are (no escapes), NFKC
    leaves ASCII text as it is and stripping only cuts its ends, so a string of it whose
    normal text is ``text`` has ``text`` in it — and so has the line."""
    if not line.isascii() or b"\\" in line:
        return True
    return any(text.encode("utf-8") in line for text in texts)


def unavailable(storage: LogHandle, exc: Exception) -> str:
    """Why the index of ``storage`` cannot be used, as a sentence."""
    if isinstance(exc, IndexUnavailable):
        return str(exc)
    return f"the index {storage._index.path} is unavailable: {exc}"


class LogLookups(DurableLog):
    """The reads of the log handle: checked lookups, and streams from a snapshot."""

    def _tail_records(self, texts: Collection[str] | None = None) -> list[TailLine]:
        """The log's lines past the index, up to the end (under the lock, after
        :meth:`_sync_index`): the groups whose syncs may still be in flight, and those
        the index has not yet been brought to. Kept between lock holds (catching up and
        committing add to them), read from the log otherwise. Decoded — once — only
        where they may hold a name whose text is one of ``texts`` (:func:`_may_hold`;
        None: every line); the others stay undecoded (record None)."""
        assert self._end is not None
        start = self._keeper.indexed()[0]
        if not self._tail_from <= start <= self._tail_to or self._tail_to > self._end:
            self._tail, self._tail_from, self._tail_to = [], start, start
        elif start > self._tail_from:
            self._tail = [item for item in self._tail if item[0] >= start]
            self._tail_from = start
        if self._tail_to < self._end:
            for offset, line in iter_lines(self.path, self._tail_to, self._end):
                self._tail.append((offset, line, None, ()))
                self._tail_to = offset + len(line)
        tail = self._tail
        for i, (offset, line, record, _) in enumerate(tail):
            # Undecoded: read while catching up, or unreadable.
            if record is None and (texts is None or _may_hold(line, texts)):
                found = decode_line(line, None, check=False).record
                if found is not None:
                    tail[i] = (offset, line, found, record_names(found))
        return tail


    def _tail_named(self, name: str) -> list[Record]:
        """The records past the index holding ``name``, each checked."""
        return [
            self._checked_line(record.seq, line, name, offset)
            for offset, line, record, names in self._tail_records(_texts([name]))
            if record is not None and name in names
        ]


    # -- reading --------------------------------------------------------------------
    # Every record found through the index is read from the log and checked (its hash or
    # HMAC, its seq, the key or tag it was found by); an answer of none comes only from an
    # index whose head is the log's and whose chain proves it complete (audit.index).
    # Anything else rebuilds the index from the log and asks once more.
    def _lookup(self, find: Callable[[], _T], scan: Callable[[], _T]) -> _T:
        assert self._end is not None
        try:
            try:
                self._sync_index()
                return find()
            except sqlite3.OperationalError as exc:
                if not index_damaged(exc, self._index.path):
                    raise
                self._keeper.rebuild(self._end, exc)
            except INDEX_FAILURES as exc:
                self._keeper.rebuild(self._end, exc)
            try:
                return find()
            except _BadRecord as exc:
                raise TamperedError(exc.seq, exc.problem) from None
            except sqlite3.OperationalError:
                raise
            except INDEX_FAILURES as exc:
                raise AuditError(
                    f"the index {self._index.path} disagrees with the log even after a "
                    f"rebuild: {exc}"
                ) from exc
        except (IndexUnavailable, sqlite3.OperationalError) as exc:
            if self._tx_thread is not None:  # a decision waits on it: never guess
                raise AuditError(f"the index {self._index.path} is unavailable: {exc}") from exc
            logger.warning("audit: %s; reading the log instead", unavailable(self, exc))
            return scan()

    def _checked_line(self, seq: int, line: bytes, name: str | None, offset: int) -> Record:
        """The record in ``line`` — which the index placed at ``offset`` as record ``seq``
        holding ``name`` — once its hash (one hash of the line) and all that hold."""
        fields = line_fields(line, self.hmac_key)
        if fields is None:
            decoded = decode_line(line, self.hmac_key)
            if decoded.record is None or decoded.record.seq != seq:
                raise IndexBroken(
                    f"record {seq} is not where the index says (offset {offset})"
                )
            raise _BadRecord(seq, decoded.problem or f"record {seq} does not check out")
        if fields[0] != seq:
            raise IndexBroken(f"record {seq} is not where the index says (offset {offset})")
        record = decode_line(line, None, check=False).record
        if record is None:  # its bytes hash right, so this cannot happen but by a bug
            raise _BadRecord(seq, f"record {seq} cannot be decoded")
        if name is not None and name not in record_names(record):
            raise IndexBroken(f"record {seq} does not hold the {name!r} it was found by")
        return record

    def _read_seq(self, seq: int, name: str | None) -> Record:
        found = self._keeper.location(seq)
        if found is None:
            raise IndexBroken(f"the index names record {seq}, past its own head")
        _, offset, length = found
        return self._checked_line(seq, self._file.pread(offset, length), name, offset)

    def _scan_names(self, name: str) -> list[Record]:
        """The records holding ``name``, by streaming the log (when the index cannot be
        used), each checked."""
        assert self._end is not None
        found = []
        for offset, line in iter_lines(self.path, 0, self._end):
            record = decode_line(line, None, check=False).record
            if record is not None and name in record_names(record):
                try:
                    found.append(self._checked_line(record.seq, line, name, offset))
                except _BadRecord as exc:
                    raise TamperedError(exc.seq, exc.problem) from None
        return found

    def _get_locked(self, key: str) -> Record | None:
        name = key_name(key)

        def find() -> Record | None:
            seqs = self._keeper.seqs_by_key(key)
            if seqs:
                return self._read_seq(seqs[0], name)
            found = self._tail_named(name)
            return found[0] if found else None

        def scan() -> Record | None:
            found = self._scan_names(name)
            return found[0] if found else None

        return self._lookup(find, scan)

    def _keys_present_locked(self, keys: Collection[str]) -> set[str]:
        def find() -> set[str]:
            present = self._keeper.keys_indexed(keys)  # one statement for them all
            names = {key_name(key): key for key in keys if key not in present}
            if names:
                for offset, line, record, held in self._tail_records(_texts(names)):
                    if record is None or record.key is None:
                        continue
                    key = names.pop(held[-1], None)  # the key's name comes last
                    if key is not None:
                        self._checked_line(record.seq, line, key_name(key), offset)
                        present.add(key)
            return present

        def scan() -> set[str]:
            return {key for key in keys if self._scan_names(key_name(key))}

        return self._lookup(find, scan)

    def _find_locked(self, tag: str) -> list[Record]:
        name = tag_name(tag)

        def find() -> list[Record]:
            found = [self._read_seq(seq, name) for seq in self._keeper.seqs_by_tag(tag)]
            return found + self._tail_named(name)

        return self._lookup(find, lambda: self._scan_names(name))

    def get(self, key: str) -> Record | None:
        """The record with idempotency key ``key``, or None."""
        return self._durable_answer(lambda: self._get_locked(key))

    def find(self, tag: str) -> list[Record]:
        """Every record tagged ``tag``, in seq order."""
        return self._durable_answer(lambda: self._find_locked(tag))

    def _record_locked(self, seq: int) -> Record | None:
        assert self._end is not None
        if seq > self._head.seq or seq < 1:
            return None

        def scan() -> Record | None:
            for offset, line in iter_lines(self.path, 0, self._end or 0):
                record = decode_line(line, None, check=False).record
                if record is not None and record.seq == seq:
                    try:
                        return self._checked_line(seq, line, None, offset)
                    except _BadRecord as exc:
                        raise TamperedError(exc.seq, exc.problem) from None
            return None

        def find() -> Record | None:
            if seq <= self._keeper.indexed()[1]:
                return self._read_seq(seq, None)
            for offset, line, record, _ in self._tail_records():
                if record is not None and record.seq == seq:
                    return self._checked_line(seq, line, None, offset)
            raise IndexBroken(f"record {seq} is neither in the index nor past it")

        return self._lookup(find, scan)

    def record_at(self, seq: int) -> Record | None:
        """Record number ``seq`` (1-based), or None."""
        return self._durable_answer(lambda: self._record_locked(seq))

    def head(self) -> Checkpoint:
        """The chain head; raises :class:`TamperedError` if the tail does not check out."""

        def read() -> Checkpoint:
            if self._head_problem is not None:
                raise TamperedError(self._head_problem.seq, self._head_problem.problem)
            return self._head

        return self._durable_answer(read)

    def count(self) -> int:
        """How many records the log holds (the head's seq)."""
        return self._durable_answer(lambda: self._head.seq)

    def _snapshot_end(self) -> int:
        with self._locked():
            assert self._end is not None
            return self._end

    def iter_lines(self) -> Iterator[tuple[int, bytes]]:
        """``(offset, line)`` of every committed line, streamed from a snapshot of the end."""
        return iter_lines(self.path, 0, self._snapshot_end())

    def iter_dicts(self) -> Iterator[dict[str, Any]]:
        """Every committed record as a plain dict (TinyDB's document form), streamed."""
        for offset, line in self.iter_lines():
            record = decode_line(line, None, check=False).record
            if record is None:
                raise TamperedError(None, f"the line at offset {offset} is not a record")
            yield record_to_dict(record)

    def query(
        self,
        where: Mapping[str, Any] | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[Record]:
        """Stream the records whose payload matches ``where`` recorded in ``[since, until)``.

        ``where`` maps dotted payload paths to required values. The snapshot is taken now;
        records appended later are not included.
        """
        conditions = [
            (tuple(path.split(".")), to_json_value(value)) for path, value in (where or {}).items()
        ]
        since_us = None if since is None else epoch_micros(since)
        until_us = None if until is None else epoch_micros(until)
        with self._locked():
            assert self._end is not None
            start, end = 0, self._end
            if since_us is not None or until_us is not None:
                start, end = self._lookup(
                    lambda: self._checked_span(since_us, until_us), lambda: (0, end)
                )
        return self._scan(start, end, conditions, since_us, until_us)

    def _checked_span(self, since_us: int | None, until_us: int | None) -> tuple[int, int]:
        """Where to stream ``[since, until)`` from: the index's span, widened to the whole
        log unless the lines just outside it are outside the period (the records' times
        rise with their seq, so then nothing in the period lies beyond the span)."""
        assert self._end is not None
        span = self._keeper.span(since_us, until_us)
        if span is None:
            return 0, self._end  # a none that cannot be proven cheaply: stream it all
        start, end = span[0], min(span[1], self._end)
        before = self._file.line_before(start) if start > 0 else None
        if before is not None and not _outside(before[1], since_us, None):
            start = 0
        if end < self._end:
            after = next(iter_lines(self.path, end, self._end), None)
            if after is not None and not _outside(after[1], None, until_us):
                end = self._end
        return start, end

    def _scan(
        self,
        start: int,
        end: int,
        conditions: list[tuple[tuple[str, ...], Any]],
        since_us: int | None,
        until_us: int | None,
    ) -> Iterator[Record]:
        for offset, line in iter_lines(self.path, start, end):
            record = decode_line(line, None, check=False).record
            if record is None:
                raise TamperedError(None, f"the line at offset {offset} is not a record")
            if since_us is not None or until_us is not None:
                moment = epoch_micros(parse_timestamp(record.recorded_at))
                if since_us is not None and moment < since_us:
                    continue
                if until_us is not None and moment >= until_us:
                    continue
            if all(_matches(record.payload, path, value) for path, value in conditions):
                yield record


def _outside(line: bytes, since_us: int | None, until_us: int | None) -> bool:
    """Whether the record in ``line`` was recorded before ``since`` / at or after
    ``until`` (False when it cannot be read: then the span is not trusted)."""
    record = decode_line(line, None, check=False).record
    if record is None:
        return False
    try:
        moment = epoch_micros(parse_timestamp(record.recorded_at))
    except ValueError:
        return False
    if since_us is not None:
        return moment < since_us
    return until_us is not None and moment > until_us


def _matches(payload: Mapping[str, Any], path: tuple[str, ...], expected: Any) -> bool:
    value: Any = payload
    for part in path:
        if not isinstance(value, Mapping):
            return False
        value = value.get(part, _MISSING)
        if value is _MISSING:
            return False
    # ``1 == True`` in Python but not in JSON: confirm an equal value has the same encoding.
    return bool(value == expected) and canonical_text(value) == canonical_text(expected)
