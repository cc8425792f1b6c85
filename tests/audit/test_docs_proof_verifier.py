"""The standalone proof verifier in docs/audit.md (stdlib + cryptography) accepts what the
stores prove, on every backend, and refuses every single-byte change to the record, the
path or the checkpoint (SPEC §9)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from audit_support import FakeClock, StoreFactory

import audit
from audit.note import SigningKey, sign_checkpoint
from audit.proofdoc import inclusion_document

DOC = Path(__file__).resolve().parents[2] / "docs" / "audit.md"
NAME = "finance.example/chaozhigou-2026"


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    blocks = re.findall(r"^```python[^\n]*\n(.*?)^```", DOC.read_text("utf-8"), re.S | re.M)
    source = next(b for b in blocks if "verify_proof.py" in b)
    path = tmp_path_factory.mktemp("doc") / "verify_proof.py"
    path.write_text(source, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def checker(script: Path) -> Any:
    namespace: dict[str, Any] = {"__name__": "verify_proof"}
    exec(compile(script.read_text("utf-8"), str(script), "exec"), namespace)
    return namespace["check"]


def made(
    store: audit.AuditStore, key: SigningKey, keyed: bool = False
) -> tuple[dict[str, Any], str]:
    for n in range(1, 8):
        store.append(audit.Entry({"kind": "price_protection", "n": n, "note": "价保 ok"},
                                 key=f"claim-{n}", tags=(f"order:O{n}",)))  # fmt: skip
    note = sign_checkpoint(key, store.tree_size(), store.root())
    return inclusion_document(store, 5, checkpoint=note, keyed=keyed), note


def run(script: Path, tmp: Path, proof: dict[str, Any], note: str, vkey: str) -> Any:
    (tmp / "p.json").write_text(json.dumps(proof, ensure_ascii=False), encoding="utf-8")
    (tmp / "cp.txt").write_text(note, encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(script), str(tmp / "p.json"), str(tmp / "cp.txt"), vkey],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_the_docs_verifier_accepts_the_stores_proofs(
    store_factory: StoreFactory, script: Path, tmp_path: Path
) -> None:
    key = SigningKey.generate(NAME)
    proof, note = made(store_factory(clock=FakeClock()), key)
    done = run(script, tmp_path, proof, note, str(key.verifier))
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"OK: record 5 is in {NAME} at size 7\n"
    keyed_proof, keyed_note = made(
        store_factory("keyed", hmac_key=b"s3cret", clock=FakeClock()), key, keyed=True
    )
    assert run(script, tmp_path, keyed_proof, keyed_note, str(key.verifier)).returncode == 0
    other = SigningKey.generate(NAME)  # same name, another key
    refused = run(script, tmp_path, proof, note, str(other.verifier))
    assert refused.returncode == 1 and "not signed by the verifier key" in refused.stderr


def test_every_single_byte_change_is_refused(store_factory: StoreFactory, checker: Any) -> None:
    """The record (as canonical JSON), each path hash and the checkpoint, one byte at a
    time: the docs' verifier refuses every change that parses, and so does audit's."""
    from audit.proofdoc import load_document, verify_document

    key = SigningKey.generate(NAME)
    proof, note = made(store_factory(clock=FakeClock()), key)
    assert checker(proof, note, str(key.verifier)).startswith("OK")
    record = json.dumps(proof["record"], ensure_ascii=False).encode()
    variants: list[tuple[dict[str, Any], str]] = []
    for i in range(len(record)):
        changed = bytearray(record)
        changed[i] ^= 0x01
        try:
            variants.append(({**proof, "record": json.loads(bytes(changed))}, note))
        except ValueError:
            continue  # not JSON any more: nothing to check
    for n, value in enumerate(proof["inclusion_path"]):
        for i in range(len(value)):
            path = list(proof["inclusion_path"])
            path[n] = value[:i] + chr(ord(value[i]) ^ 0x01) + value[i + 1 :]
            variants.append(({**proof, "inclusion_path": path}, note))
    for i in range(len(note)):
        variants.append((proof, note[:i] + chr(ord(note[i]) ^ 0x01) + note[i + 1 :]))
    assert len(variants) > 300
    for doc, cp in variants:
        try:
            checker(doc, cp, str(key.verifier))
        except Exception:  # the script refuses by raising
            pass
        else:
            raise AssertionError(f"accepted: {doc['record']!r} {cp!r}")
        with pytest.raises(  # ProofError is a ValueError, naming the part refused
            ValueError, match=r"^(record|path|root|sizes|the checkpoint): "
        ):
            verify_document(load_document(json.dumps(doc)), key.verifier, cp)


@pytest.mark.parametrize("ending", [b"\r\n", b"\r"], ids=["CRLF", "lone CR"])
def test_the_docs_verifier_refuses_a_checkpoint_with_cr_line_ends(
    store_factory: StoreFactory, script: Path, tmp_path: Path, ending: bytes
) -> None:
    """The script reads the checkpoint file as bytes, as pricecalc does (issue 24): with
    CRLF or lone CR line ends it is refused (C2SP and Go's note package refuse a CR), the
    same note with LF accepted."""
    key = SigningKey.generate(NAME)
    proof, note = made(store_factory(clock=FakeClock()), key)
    assert run(script, tmp_path, proof, note, str(key.verifier)).returncode == 0
    (tmp_path / "cp.txt").write_bytes(note.encode("utf-8").replace(b"\n", ending))
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "p.json"), str(tmp_path / "cp.txt"),
         str(key.verifier)], capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "proof refused: AssertionError('malformed note')\n"
