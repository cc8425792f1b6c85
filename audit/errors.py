"""Errors of the audit store (it has its own hierarchy: it knows nothing of pricecalc)."""

from __future__ import annotations


class AuditError(Exception):
    """Base class of every audit store error."""


class AppendOnlyViolation(AuditError):
    """An attempt to update, remove, truncate or upsert records."""


class TamperedError(AuditError):
    """The store's content does not match its hash chain. Names the first bad record."""

    def __init__(self, seq: int | None, problem: str) -> None:
        self.seq = seq
        self.problem = problem
        where = f"record {seq}" if seq is not None else "the store"
        super().__init__(f"audit store tampered at {where}: {problem}")


class StoreUnusable(AuditError):
    """A write or sync failed; this handle refuses further appends (never retried silently)."""


class RolledBack(AuditError):
    """The log is behind the high-water mark its writers left: record ``seq`` (``hash``)
    was written and is gone. Appends are refused until an operator accepts the rollback."""

    def __init__(self, seq: int, digest: str, message: str) -> None:
        self.seq = seq
        self.hash = digest
        super().__init__(message)


class StoreLocked(AuditError):
    """The writer lock could not be taken in time."""


class DuplicateKey(AuditError):
    """An append reused an idempotency key that is already recorded (or pending)."""

    def __init__(self, key: str, seq: int | None, *, pending: bool = False) -> None:
        self.key = key
        self.seq = seq
        self.pending = pending
        where = "pending in this transaction (or batch)" if pending else "already recorded"
        at = f" as record {seq}" if seq is not None else ""
        super().__init__(f"idempotency key {key!r} is {where}{at}; keys are unique in a store")


class IncompleteRecordWarning(UserWarning):
    """An incomplete last line (a write cut short by a crash) was cut off the log.

    Such a record was never acknowledged: ``append`` returns only after the whole line is
    written and synced.
    """
