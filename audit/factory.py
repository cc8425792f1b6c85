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


_BACKENDS: dict[str, BackendFactory] = {"file": _open_file_url}


def register_backend(scheme: str, factory: BackendFactory) -> None:
    """Dispatch ``scheme://`` URLs to ``factory(url, **kw)``.

    This is the hook for server backends: the PostgreSQL store will register itself for
    ``postgresql`` and ``postgres`` (``register_backend("postgresql", PostgresAuditStore)``).
    """
    _BACKENDS[scheme.lower()] = factory


def open_store(url_or_path: str | os.PathLike[str], **kw: Any) -> AuditStore:
    """Open an audit store.

    A plain path (or ``file://`` URL) opens the embedded :class:`TinyDBAuditStore`
    (keyword arguments: ``hmac_key``, ``lock_timeout``, ``clock``). A URL with another
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
    if scheme in ("postgresql", "postgres"):
        raise AuditError(
            f"no PostgreSQL audit backend is installed yet (got a {scheme}:// URL); "
            f"known: {known}, or a plain path for the embedded TinyDB store"
        )
    raise AuditError(
        f"unknown audit store URL scheme {scheme!r}; known: {known}, or a plain path for "
        "the embedded TinyDB store"
    )
