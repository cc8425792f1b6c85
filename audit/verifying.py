"""Checking a stored log: each line's bytes against its hash, the links of the chain, and
the Merkle tree of the good records (SPEC §9), in one pass.

:func:`line_fields` is the byte-level check of one stored line (no JSON decoding);
:class:`ChainChecker` checks a stream of lines in file order — the hot path takes whole
blocks — and builds the tree as it goes; :func:`verify_lines` and :func:`verify_blocks`
run it over a log. What a record is, and how it is sealed, encoded and decoded, is
:mod:`audit.records`; this module only checks.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import itertools
import json
from collections.abc import Iterable, Iterator

from audit.merkle import CompactTree, leaf_hash
from audit.protocol import GENESIS_HASH, Checkpoint, Record, VerifyReport
from audit.records import Decoded, checked_leaf, decode_line

__all__ = ["ChainChecker", "line_fields", "verify_blocks", "verify_lines"]

_PREFIX = b'{"hash":"'
_TAGS = b',"tags":['
_SEQ = b',"seq":'
_PREV = b',"prev_hash":"'
_AFTER_PREV = b'","recorded_at":"'


def line_fields(line: bytes, hmac_key: bytes | None) -> tuple[int, bytes, bytes, bytes] | None:
    """The byte-level check of one stored line: ``(seq, prev_hash, hash, leaf data)`` when
    the line has the stored layout and its own bytes hash to the hash it claims; None
    otherwise (the caller then decodes it fully, to say what is wrong).

    A stored line is ``{"hash":"<64 hex>",`` + the rest of the canonical body, so the body
    is recovered by slicing, and ``prev_hash`` and ``seq`` are found from the end (the
    record's last members, in sorted order: ``prev_hash``, ``recorded_at``, ``seq``,
    ``tags``; no text inside a string can hold ``,"seq":`` — its quotes would be escaped).
    It does not re-derive the canonical form: that is :meth:`ChainChecker` ``deep``.
    """
    if line[:9] != _PREFIX or line[73:75] != b'",' or line[-1:] != b"\n":
        return None
    claimed = line[9:73]
    body = b"{" + line[75:-1]
    leaf = hashlib.sha256(body).digest()
    if hmac_key is None:
        if leaf.hex().encode("ascii") != claimed:
            return None
    elif hmac.digest(hmac_key, body, "sha256").hex().encode("ascii") != claimed:
        return None
    tags = body.rfind(_TAGS)
    at = body.rfind(_SEQ, 0, tags)
    prev = body.rfind(_PREV, 0, at)
    if prev < 0 or body[prev + 78 : prev + 95] != _AFTER_PREV:
        return None
    digits = body[at + 7 : tags]
    if not digits.isdigit() or digits[:1] == b"0":
        return None
    return int(digits), body[prev + 14 : prev + 78], claimed, leaf


class ChainChecker:
    """Check a stream of stored lines, in file order, against the hash chain and build the
    Merkle tree of the good records (SPEC §9) as it goes.

    Feed it every line with :meth:`feed` (False once a problem was found), or whole
    blocks of lines with :meth:`feed_blocks` (the hot path), and read the result with
    :meth:`report`. ``checkpoint`` (a head taken earlier and kept elsewhere) additionally
    catches a store that was cut back or re-hashed since. By default a line whose bytes
    hash to its claimed hash and link to the record before is accepted without being
    parsed (:func:`line_fields`); ``deep`` parses every line and requires it to be exactly
    the canonical encoding of the record it holds. Any line the fast check does not accept
    is decoded fully, so the problem reported is the same either way.
    """

    def __init__(
        self,
        hmac_key: bytes | None,
        checkpoint: Checkpoint | None = None,
        *,
        deep: bool = False,
    ) -> None:
        self._key = hmac_key
        self._checkpoint = checkpoint
        self._cp_seq = checkpoint.seq if checkpoint is not None else -1
        self._deep = deep
        self._seq = 0
        self._hash = GENESIS_HASH.encode("ascii")
        self._count = 0
        self._bad_seq: int | None = None
        self._problem: str | None = None
        self.tree = CompactTree()
        if checkpoint is not None and checkpoint.seq == 0 and checkpoint.hash != GENESIS_HASH:
            self._fail(0, "the checkpoint is invalid: seq 0 must carry the genesis hash")

    @property
    def _head(self) -> Checkpoint:
        return Checkpoint(self._seq, self._hash.decode("ascii"))

    @property
    def failed(self) -> bool:
        return self._problem is not None

    def _fail(self, seq: int, problem: str) -> bool:
        self._bad_seq, self._problem = seq, problem
        return False

    def _grow(self, leaf: bytes) -> None:
        self.tree.append(leaf_hash(leaf))

    def feed(self, line: bytes, next_line: bytes | None = None) -> bool:
        """Check the next line. ``next_line`` (if known) tells a deletion from a reordering."""
        if self._problem is not None:
            return False
        if not self._deep:
            fields = line_fields(line, self._key)
            if (
                fields is not None
                and fields[0] == self._seq + 1
                and fields[1] == self._hash
                and fields[0] != self._cp_seq
            ):
                self._seq, self._hash = fields[0], fields[2]
                self._count += 1
                self._grow(fields[3])
                return True
        return self._feed(decode_line(line, self._key), next_line, line)

    def feed_blocks(self, blocks: Iterable[list[bytes]]) -> bool:
        """Check every line of a stream given as blocks of lines **without** their
        newlines (as :func:`audit.logfile.read_blocks` yields them); False once a problem
        was found. Verify's hot path: whole blocks through the byte-level check in one
        tight loop; from the first line it does not accept on, :meth:`feed_all`."""
        if self._deep:
            return self.feed_all(itertools.chain.from_iterable(blocks))
        it = iter(blocks)
        for block in it:
            done = self._fast(block)
            if done < len(block):
                rest = itertools.chain(block[done:], itertools.chain.from_iterable(it))
                return self.feed_all(rest)
        return not self.failed

    def feed_all(self, lines: Iterable[bytes]) -> bool:
        """Check every line of a stream, in order, given **without** their newlines;
        False once a problem was found. A line the byte-level check does not accept goes
        through :meth:`feed`, so the problem reported is the same."""
        it: Iterator[bytes] = iter(lines)
        line = next(it, None)
        while line is not None:
            if not self._deep and self._problem is None and self._fast([line]):
                line = next(it, None)
                continue
            following = next(it, None)
            if not self.feed(line + b"\n", None if following is None else following + b"\n"):
                return False
            line = following
        return not self.failed

    def _fast(self, block: list[bytes]) -> int:
        """Accept lines of ``block`` while the byte-level check passes; return how many."""
        digest, key, hexlify, sha256 = hmac.digest, self._key, binascii.hexlify, hashlib.sha256
        frontier = self.tree._frontier
        size = self.tree.size
        start = seq = self._seq
        prev, cp_seq = self._hash, self._cp_seq
        link = _PREV + prev + _AFTER_PREV  # what must stand before this line's recorded_at
        try:
            for line in block:
                if line[:9] != _PREFIX or line[73:75] != b'",':
                    break
                claimed = line[9:73]
                body = b"{" + line[75:]
                leaf = sha256(body).digest()
                if hexlify(leaf if key is None else digest(key, body, "sha256")) != claimed:
                    break
                # The record's last members, in sorted order, end the line: prev_hash,
                # recorded_at (27 characters as the store writes it), seq, tags. Found
                # from the end and compared in place; anything else takes the slow path.
                tags = line.rfind(_TAGS)
                number = b'","seq":%d' % (seq + 1)  # from the '"' closing recorded_at
                at = tags - len(number)
                if (
                    tags < 0
                    or line[-1] != 125  # the '}' closing the record
                    or line[at:tags] != number
                    or line[at - 122 : at - 27] != link
                    or seq + 1 == cp_seq
                ):
                    break
                seq, prev = seq + 1, claimed
                link = _PREV + claimed + _AFTER_PREV
                # The tree, inline (audit.merkle.CompactTree.append): the leaf, then each
                # complete subtree it closes, bottom up.
                value = sha256(b"\x00" + leaf).digest()
                n = size
                while n & 1:
                    value = sha256(b"\x01" + frontier.pop() + value).digest()
                    n >>= 1
                frontier.append(value)
                size += 1
            return seq - start
        finally:
            self._count += seq - start
            self._seq, self._hash = seq, prev
            self.tree.size = size

    def feed_record(self, record: Record) -> bool:
        """Check the next record of a backend that keeps fields rather than lines
        (PostgreSQL): the checks of :meth:`feed`, without encoding and decoding a line.
        ``record.payload`` must be what :func:`json.loads` gives (plain JSON data)."""
        if self._problem is not None:
            return False
        problem, leaf = checked_leaf(record, None, self._key, plain=True)
        return self._feed(Decoded(record, problem), None, None, leaf)

    def _feed(
        self,
        decoded: Decoded,
        next_line: bytes | None,
        line: bytes | None,
        leaf: bytes | None = None,
    ) -> bool:
        expected = self._seq + 1
        record = decoded.record
        if record is None:
            return self._fail(expected, f"record {expected} is unreadable: {decoded.problem}")
        if record.seq > expected:
            upcoming = _peek_seq(next_line)
            if upcoming is not None and upcoming <= expected:
                why = f"records were reordered (record {record.seq} comes before {upcoming})"
            else:
                why = (
                    f"record {expected} is missing (deleted)"
                    if record.seq == expected + 1
                    else f"records {expected}..{record.seq - 1} are missing (deleted)"
                )
            return self._fail(expected, f"seq gap: expected {expected}, found {record.seq}: {why}")
        if record.seq < expected:
            if record.seq == self._seq and record.hash == self._hash.decode("ascii"):
                return self._fail(record.seq, f"record {record.seq} appears twice (duplicated)")
            return self._fail(
                expected,
                f"seq repeat: expected {expected}, found {record.seq} again: "
                "a record was duplicated, inserted or moved",
            )
        if decoded.problem is not None:
            return self._fail(record.seq, decoded.problem)
        if record.prev_hash != self._hash.decode("ascii"):
            return self._fail(
                record.seq,
                f"record {record.seq} prev_hash does not match record {self._seq}'s hash: "
                "a record before it was replaced or inserted, or the chain was forked",
            )
        cp = self._checkpoint
        if cp is not None and cp.seq == record.seq and cp.hash != record.hash:
            return self._fail(
                record.seq,
                f"record {record.seq} was rewritten since the checkpoint "
                f"(hash {record.hash[:16]}…, checkpoint {cp.hash[:16]}…)",
            )
        if leaf is None:
            assert line is not None
            leaf = hashlib.sha256(b"{" + line[75:].rstrip(b"\n")).digest()
        self._seq, self._hash = record.seq, record.hash.encode("ascii")
        self._count += 1
        self._grow(leaf)
        return True

    def report(self) -> VerifyReport:
        """The verdict so far (call it after the last line)."""
        cp = self._checkpoint
        if self._problem is None and cp is not None and cp.seq > self._seq:
            self._fail(
                self._seq + 1,
                f"the store ends at record {self._seq} but the checkpoint names record "
                f"{cp.seq}: records were cut off (truncated) since the checkpoint",
            )
        return VerifyReport(
            ok=self._problem is None,
            count=self._count,
            head=self._head,
            bad_seq=self._bad_seq,
            problem=self._problem,
            root=self.tree.root(),
        )


def _peek_seq(line: bytes | None) -> int | None:
    if line is None:
        return None
    try:
        seq = json.loads(line).get("seq")
    except (ValueError, AttributeError):
        return None
    return seq if isinstance(seq, int) else None


def verify_lines(
    lines: Iterable[bytes],
    hmac_key: bytes | None,
    checkpoint: Checkpoint | None = None,
    *,
    deep: bool = False,
) -> VerifyReport:
    """Check a whole stream of stored lines, given without their newlines (see
    :class:`ChainChecker`)."""
    checker = ChainChecker(hmac_key, checkpoint, deep=deep)
    checker.feed_all(lines)
    return checker.report()


def verify_blocks(
    blocks: Iterable[list[bytes]],
    hmac_key: bytes | None,
    checkpoint: Checkpoint | None = None,
    *,
    deep: bool = False,
) -> VerifyReport:
    """:func:`verify_lines` for blocks of lines (:func:`audit.logfile.read_blocks`)."""
    checker = ChainChecker(hmac_key, checkpoint, deep=deep)
    checker.feed_blocks(blocks)
    return checker.report()
