"""Proof documents: what a merchant receives, and the check that needs no store (SPEC §9).

An inclusion proof document::

    {"seq": 2, "leaf_index": 1, "tree_size": 3, "hash_rule": "sha256",
     "record": {...the whole stored record...}, "inclusion_path": ["<base64>", ...],
     "checkpoint": "<signed checkpoint text>"}          (checkpoint: optional)

A consistency proof document::

    {"old_size": 2, "new_size": 3, "consistency_path": ["<base64>", ...],
     "checkpoint": "..."}                                (the new size's, optional)

``hash_rule`` says how the record's own ``hash`` was made: ``sha256`` (then it must equal
the leaf data) or ``hmac-sha256`` (a keyed store: a reader without the key cannot check
it, and need not — the leaf covers everything but that field).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from audit.canonical import canonical_bytes
from audit.merkle import ProofError, leaf_hash, verify_consistency, verify_inclusion
from audit.note import (
    NoteError,
    TreeCheckpoint,
    VerifierKey,
    open_checkpoint,
    parse_checkpoint,
    signature_names,
)
from audit.protocol import AuditStore
from audit.records import record_to_dict

__all__ = [
    "CheckpointProblem",
    "consistency_document",
    "inclusion_document",
    "is_of_store",
    "load_document",
    "published_checkpoint",
    "verify_document",
]

HASH_RULES = ("sha256", "hmac-sha256")


def _b64(values: list[bytes]) -> list[str]:
    return [base64.b64encode(v).decode("ascii") for v in values]


def is_of_store(store: AuditStore, checkpoint: TreeCheckpoint) -> bool:
    """Whether a (published) checkpoint names this store's tree: the store holds at least
    its size and its root at that size is the checkpoint's. The signature is the reader's
    to check, with the log's verifier key."""
    return checkpoint.size <= store.tree_size() and store.root(checkpoint.size) == checkpoint.root


class CheckpointProblem(ValueError):
    """A checkpoint that cannot serve: not a signed checkpoint, or (``foreign``) a
    checkpoint but not one of this store. The message is one sentence naming it."""

    def __init__(self, message: str, *, foreign: bool = False) -> None:
        super().__init__(message)
        self.foreign = foreign


def published_checkpoint(
    store: AuditStore, note: str, where: str = "the checkpoint"
) -> TreeCheckpoint:
    """A published checkpoint's text, read and checked against ``store``: a signed note
    (at least one signature line) whose root at its size is the store's
    (:func:`is_of_store`). ``where`` names it in messages (its file). Raises
    :class:`CheckpointProblem`. The signature itself is the reader's to check, with the
    log's verifier key (:func:`verify_document`)."""
    try:
        checkpoint = parse_checkpoint(note)
    except ValueError as exc:
        raise CheckpointProblem(f"{where} is not a signed checkpoint ({exc})") from exc
    if not signature_names(note):
        raise CheckpointProblem(f"{where} is not signed (it has no signature line)")
    if not is_of_store(store, checkpoint):
        raise CheckpointProblem(
            f"{where} is not of this store (its root at size {checkpoint.size} differs, or "
            "the store is smaller)",
            foreign=True,
        )
    return checkpoint


def inclusion_document(
    store: AuditStore,
    seq: int,
    size: int | None = None,
    *,
    checkpoint: str | None = None,
    keyed: bool = False,
) -> dict[str, Any]:
    """The inclusion proof document of record ``seq`` at tree ``size`` (default: now)."""
    size = store.tree_size() if size is None else size
    path = store.inclusion_proof(seq, size)
    record = store.record(seq)
    assert record is not None
    doc: dict[str, Any] = {
        "seq": seq,
        "leaf_index": seq - 1,
        "tree_size": size,
        "hash_rule": "hmac-sha256" if keyed else "sha256",
        "record": record_to_dict(record),
        "inclusion_path": _b64(path),
    }
    if checkpoint is not None:
        doc["checkpoint"] = checkpoint
    return doc


def consistency_document(
    store: AuditStore, old: int, new: int | None = None, *, checkpoint: str | None = None
) -> dict[str, Any]:
    """The consistency proof document from tree size ``old`` to ``new`` (default: now)."""
    new = store.tree_size() if new is None else new
    doc: dict[str, Any] = {
        "old_size": old,
        "new_size": new,
        "consistency_path": _b64(store.consistency_proof(old, new)),
    }
    if checkpoint is not None:
        doc["checkpoint"] = checkpoint
    return doc


def _no_float(text: str) -> Any:
    raise ValueError(f"a float ({text}) has no place in a proof document")


def load_document(text: str | bytes) -> dict[str, Any]:
    """Parse a proof document (floats refused: no record holds one)."""
    try:
        doc = json.loads(text, parse_float=_no_float, parse_constant=_no_float)
    except ValueError as exc:
        raise ProofError(f"not a proof document: {exc}") from exc
    if not isinstance(doc, dict):
        raise ProofError("not a proof document: not a JSON object")
    return doc


def _int(doc: Mapping[str, Any], name: str) -> int:
    value = doc.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProofError(f"sizes: {name} must be a non-negative integer, got {value!r}")
    return value


def _path(doc: Mapping[str, Any], name: str) -> list[bytes]:
    values = doc.get(name)
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ProofError(f"{name} must be a list of base64 hashes")
    out = []
    for n, value in enumerate(values):
        try:
            raw = base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
            raise ProofError(f"path: {name}[{n}] is not base64") from exc
        if base64.b64encode(raw).decode("ascii") != value:
            raise ProofError(f"path: {name}[{n}] is not canonical base64")
        out.append(raw)
    return out


def _checkpoint(text: str | None, verifier: VerifierKey, what: str) -> TreeCheckpoint:
    if text is None:
        raise ProofError(f"{what} is missing: there is nothing to check the proof against")
    try:
        return open_checkpoint(text, verifier)
    except NoteError as exc:
        raise ProofError(f"{what}: {exc}") from exc


def record_leaf_data(record: Mapping[str, Any]) -> bytes:
    """SHA-256 of the record's canonical bytes without its ``hash`` field (SPEC §9)."""
    body = {name: value for name, value in record.items() if name != "hash"}
    return hashlib.sha256(canonical_bytes(body)).digest()


def verify_document(
    doc: Mapping[str, Any],
    verifier: VerifierKey,
    checkpoint: str | None = None,
    old_checkpoint: str | None = None,
) -> str:
    """Check a proof document against signed checkpoint(s); return one line saying what
    was proven, or raise :class:`ProofError` naming what failed (signature, root, path
    length, sizes, record). ``checkpoint`` defaults to the one the document embeds."""
    text = checkpoint if checkpoint is not None else doc.get("checkpoint")
    if "consistency_path" in doc:
        new_cp = _checkpoint(text, verifier, "the checkpoint")
        old_cp = _checkpoint(old_checkpoint, verifier, "the old checkpoint")
        old, new = _int(doc, "old_size"), _int(doc, "new_size")
        if (old, new) != (old_cp.size, new_cp.size):
            raise ProofError(
                f"sizes: the proof is from {old} to {new}, the checkpoints are of sizes "
                f"{old_cp.size} and {new_cp.size}"
            )
        verify_consistency(old, new, old_cp.root, new_cp.root, _path(doc, "consistency_path"))
        return (
            f"OK: the log {verifier.name} at size {new} is an extension of the log at size "
            f"{old}: nothing in the first {old} records was changed or removed"
        )
    cp = _checkpoint(text, verifier, "the checkpoint")
    seq, index, size = _int(doc, "seq"), _int(doc, "leaf_index"), _int(doc, "tree_size")
    record = doc.get("record")
    if not isinstance(record, dict):
        raise ProofError("record: the document holds no record")
    if size != cp.size:
        raise ProofError(f"sizes: the proof is for tree size {size}, the checkpoint's is {cp.size}")
    if index != seq - 1 or record.get("seq") != seq:
        raise ProofError(
            f"sizes: leaf_index {index}, seq {seq} and the record's seq {record.get('seq')!r} "
            "do not agree (leaf index = seq - 1)"
        )
    try:
        data = record_leaf_data(record)
    except (TypeError, ValueError) as exc:
        raise ProofError(f"record: it has no canonical form ({exc})") from exc
    rule = doc.get("hash_rule", "sha256")
    if rule not in HASH_RULES:
        raise ProofError(f"record: unknown hash_rule {rule!r}")
    if rule == "sha256" and record.get("hash") != data.hex():
        raise ProofError("record: its hash field is not the SHA-256 of its content")
    verify_inclusion(leaf_hash(data), index, size, _path(doc, "inclusion_path"), cp.root)
    signed = f"checkpoint signed by {verifier.name}+{verifier.key_id:08x}"
    if rule == "hmac-sha256":  # the hash field was not checked: say so, never show it as proven
        return (
            f"OK: record {seq} (content SHA-256 {data.hex()[:16]}…) is in the log "
            f"{verifier.name} at tree size {size}, unchanged; its hash field is the store's "
            f"HMAC, which only the store's keeper can check (not checked here); {signed}"
        )
    return (
        f"OK: record {seq} (hash {str(record.get('hash'))[:16]}…) is in the log "
        f"{verifier.name} at tree size {size}, unchanged; {signed}"
    )
