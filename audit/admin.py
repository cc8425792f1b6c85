"""Administration of stores of any backend: creating one, and moving a chain between two.

Both take a path (the embedded TinyDB store) or a ``postgresql://`` URL, like
:func:`audit.open_store`. The PostgreSQL backend (and psycopg) is imported only when a URL
asks for it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from typing import Protocol, runtime_checkable

from audit.errors import AuditError, TamperedError
from audit.factory import open_store
from audit.protocol import AuditStore, Checkpoint, Record

__all__ = ["RecordImporter", "accept_rollback", "init_store", "migrate_store"]

Target = str | os.PathLike[str]


def _is_postgres(target: Target | AuditStore) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def init_store(url_or_path: Target, *, app_role: str | None = None) -> str:
    """Create the store at ``url_or_path`` if needed; return what was done, in a sentence.

    For a ``postgresql://`` URL this creates or upgrades the schema, the application role
    and its grants (:func:`audit.postgres.init_store`; ``app_role`` defaults to
    ``pricecalc_app``); run it as the schema owner. For a path it creates the (empty)
    store file. Running it again changes nothing that is already in place.
    """
    if _is_postgres(url_or_path):
        from audit.postgres import APP_ROLE, init_store as init_postgres

        assert isinstance(url_or_path, str)
        return init_postgres(url_or_path, app_role=app_role or APP_ROLE)
    if app_role is not None:
        raise AuditError("app_role applies to PostgreSQL stores only")
    path = os.fspath(url_or_path)
    existed = "://" not in path and os.path.exists(path)
    store = open_store(url_or_path)
    try:
        head = store.head()
    finally:
        store.close()
    if existed:
        return f"audit store {path} already exists ({head.seq} records); nothing to do."
    return f"created the audit store {path}."


def accept_rollback(path: Target, *, hmac_key: bytes | None = None) -> str:
    """Accept a file store's log as it is now, though it is behind the high-water mark its
    writers left (restored from an older copy): move the mark to the log's head so that
    appends are allowed again. Returns what was accepted, in a sentence; records nothing
    in the log. Records after the head are gone: whatever they decided may be decided again.
    """
    if _is_postgres(path) or (isinstance(path, str) and "://" in path):
        raise AuditError("accept-rollback applies to the file store (a path) only")
    from audit.tinydb_store import TinyDBAuditStore

    with TinyDBAuditStore(path, hmac_key=hmac_key) as store:
        lost, head = store.accept_rollback()
    where = f"record {head.seq} (hash {head.hash})" if head.seq else "no record (empty)"
    if lost is None:
        return (
            f"the audit store {os.fspath(path)} is not behind its high-water mark; it ends at "
            f"{where}. Nothing to accept."
        )
    return (
        f"accepted the rollback of the audit store {os.fspath(path)}: its log ends at "
        f"{where}; record {lost.seq} (hash {lost.hash}), which was written to it, is no "
        "longer there. Appends are allowed again; nothing else was recorded."
    )


@runtime_checkable
class RecordImporter(Protocol):
    """A store that can take records made elsewhere, unchanged (a migration target)."""

    def import_records(self, records: Iterable[Record]) -> Checkpoint: ...


def _upto(records: Iterable[Record], last: int) -> Iterator[Record]:
    for record in records:
        if record.seq > last:
            return
        yield record


def migrate_store(
    source: Target | AuditStore,
    target: Target | AuditStore,
    *,
    hmac_key: bytes | None = None,
) -> tuple[int, Checkpoint]:
    """Copy every record of ``source`` into the empty ``target``, unchanged; prove it.

    ``source`` and ``target`` are paths, URLs or open stores (the ones opened here are
    closed again; ``hmac_key`` is used for those). The source is verified first (a
    tampered source raises :class:`TamperedError` and nothing is copied); its records up
    to the verified head are copied with their ``seq``, ``id``, ``recorded_at``,
    ``prev_hash`` and ``hash`` exactly as they are, in one transaction; then the target
    is verified against the source's head, so the head hash is proved unchanged.
    Returns ``(records copied, head)``. Stop the writers of the source first: records
    appended after its verification are not copied.
    """
    if isinstance(source, str | os.PathLike) and not _is_postgres(source):
        path = os.fspath(source)
        if "://" not in path and not os.path.exists(path):
            raise AuditError(f"there is no audit store at {path} to migrate from")
    with ExitStack() as stack:
        src = _opened(source, hmac_key, stack)
        dst = _opened(target, hmac_key, stack)
        if not isinstance(dst, RecordImporter):
            raise AuditError(
                f"{dst!r} cannot take records made elsewhere (it has no import_records); "
                "migrate into a PostgreSQL store"
            )
        if dst.head().seq != 0:
            raise AuditError(
                f"the target store already holds {dst.head().seq} records; migrate into "
                "an empty store"
            )
        report = src.verify()
        if not report.ok:
            raise TamperedError(
                report.bad_seq, f"the source does not verify, nothing copied: {report.problem}"
            )
        head = dst.import_records(_upto(src.query(), report.head.seq))
        if head != report.head:
            raise AuditError(
                f"the copy ends at record {head.seq} but the source's verified head is "
                f"record {report.head.seq}: records went missing on the way"
            )
        check = dst.verify(report.head)
        if not check.ok or check.head != report.head:
            raise TamperedError(
                check.bad_seq,
                f"the copy does not verify against the source's head: {check.problem}",
            )
        return check.count, check.head


def _opened(store: Target | AuditStore, hmac_key: bytes | None, stack: ExitStack) -> AuditStore:
    if isinstance(store, str | os.PathLike):
        opened = open_store(store, hmac_key=hmac_key)
        stack.callback(opened.close)
        return opened
    return store
