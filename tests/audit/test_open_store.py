"""open_store: a path opens the embedded TinyDB store; URLs go to registered backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import audit
from audit.protocol import AuditStore


def test_a_plain_path_opens_the_tinydb_store(tmp_path: Path) -> None:
    for target in (str(tmp_path / "a.jsonl"), tmp_path / "b.jsonl"):
        store = audit.open_store(target, lock_timeout=5.0)
        try:
            assert isinstance(store, audit.TinyDBAuditStore)
            store.append(audit.Entry({"k": 1}))
        finally:
            store.close()


def test_a_file_url(tmp_path: Path) -> None:
    store = audit.open_store(f"file://{tmp_path}/c%20d.jsonl", hmac_key=b"k")
    try:
        assert isinstance(store, audit.TinyDBAuditStore)
        assert store.path == f"{tmp_path}/c d.jsonl"
    finally:
        store.close()


def test_an_unknown_scheme_is_a_clear_error() -> None:
    with pytest.raises(audit.AuditError, match="unknown audit store URL scheme 'mongodb'"):
        audit.open_store("mongodb://db.example/audit")


def test_backends_register_for_a_scheme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """register_backend is the hook server backends (PostgreSQL) plug into."""
    import audit.factory

    monkeypatch.setattr(audit.factory, "_BACKENDS", dict(audit.factory._BACKENDS))
    seen: list[tuple[str, dict[str, Any]]] = []

    def factory(url: str, **kw: Any) -> AuditStore:
        seen.append((url, kw))
        return audit.TinyDBAuditStore(tmp_path / "x.jsonl")

    audit.register_backend("Demo", factory)
    store = audit.open_store("demo://somewhere/db", hmac_key=b"k")
    store.close()
    assert seen == [("demo://somewhere/db", {"hmac_key": b"k"})]
