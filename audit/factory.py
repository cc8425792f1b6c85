"""Opening a store from a path or URL, and the place new backends plug in."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from audit.errors import AuditError
from audit.protocol import AuditStore
from audit.tinydb_store import TinyDBAuditStore

__all__ = ["BackendFactory", "open_store", "register_backend"]

#: Makes a store from a URL (``scheme://...``) and the keyword arguments of ``open_store``.
BackendFactory = Callable[..., AuditStore]


def _open_file_url(url: str, **kw: Any) -> AuditStore:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise AuditError(f"file URLs must name a local file, not host {parts.netloc!r}")
    return TinyDBAuditStore(unquote(parts.path), **kw)


def _open_postgres(url: str, **kw: Any) -> AuditStore:
    # psycopg is the optional "postgres" extra: import it only when a URL asks for it.
    try:
        from audit.postgres import PostgresAuditStore
    except ImportError as exc:
        raise AuditError(
            f"a PostgreSQL audit store needs psycopg ({exc}); install it with "
            "pip install 'chaozhigou-pricecalc[postgres]'"
        ) from exc
    return PostgresAuditStore(url, **kw)


_BACKENDS: dict[str, BackendFactory] = {
    "file": _open_file_url,
    "postgresql": _open_postgres,
    "postgres": _open_postgres,
}


def register_backend(scheme: str, factory: BackendFactory) -> None:
    """Dispatch ``scheme://`` URLs to ``factory(url, **kw)``.

    This is the hook for server backends; ``postgresql`` and ``postgres`` are registered
    for :class:`~audit.postgres.PostgresAuditStore` (imported when first used).
    """
    _BACKENDS[scheme.lower()] = factory


def open_store(url_or_path: str | os.PathLike[str], **kw: Any) -> AuditStore:
    """Open an audit store.

    A plain path (or ``file://`` URL) opens the embedded :class:`TinyDBAuditStore`
    (keyword arguments: ``hmac_key``, ``lock_timeout``, ``clock``); a ``postgresql://``
    URL the :class:`~audit.postgres.PostgresAuditStore` (same keywords). A URL with another
    scheme goes to the backend registered for it with :func:`register_backend`; an
    unknown scheme raises :class:`AuditError`.
    """
    if not isinstance(url_or_path, str) or "://" not in url_or_path:
        return TinyDBAuditStore(url_or_path, **kw)
    scheme = urlsplit(url_or_path).scheme.lower()
    factory = _BACKENDS.get(scheme)
    if factory is not None:
        return factory(url_or_path, **kw)
    known = ", ".join(sorted(f"{s}://" for s in _BACKENDS))
    raise AuditError(
        f"unknown audit store URL scheme {scheme!r}; known: {known}, or a plain path for "
        "the embedded TinyDB store"
    )
