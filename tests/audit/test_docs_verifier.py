"""The standalone verifier script in docs/audit.md agrees with the store (so the documented
hash rule is the real one)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from audit_support import fill, read_lines, write_lines

import audit

DOC = Path(__file__).resolve().parents[2] / "docs" / "audit.md"


@pytest.fixture(scope="module")
def verifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    blocks = re.findall(r"^```python[^\n]*\n(.*?)^```", DOC.read_text("utf-8"), re.S | re.M)
    script = next(b for b in blocks if "STORE_PATH" in b and "hashlib" in b)
    path = tmp_path_factory.mktemp("doc") / "verify_audit.py"
    path.write_text(script, encoding="utf-8")
    return path


def run(verifier: Path, store: Path, key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PRICECALC_AUDIT_KEY": key} if key else {}
    return subprocess.run(
        [sys.executable, str(verifier), str(store)], capture_output=True, text=True, env=env
    )


def test_the_documented_verifier_accepts_a_good_store(verifier: Path, tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    with audit.TinyDBAuditStore(path) as store:
        fill(store, 4)
        store.append(audit.Entry({"text": '超值购 "quoted" \\ \n\t\x01', "n": -5}))
        head = store.head()
    result = run(verifier, path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"OK: 5 records, head seq 5 hash {head.hash}\n"


def test_the_documented_verifier_handles_keys(verifier: Path, tmp_path: Path) -> None:
    path = tmp_path / "k.jsonl"
    with audit.TinyDBAuditStore(path, hmac_key=b"s3cret") as store:
        fill(store, 3)
    assert run(verifier, path, key="s3cret").returncode == 0
    assert "record 1: hash mismatch" in run(verifier, path).stderr


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda ls: [*ls[:2], ls[2].replace(b'"n":3', b'"n":4'), *ls[3:]], "record 3: hash"),
        (lambda ls: [*ls[:2], ls[2].replace(b'"n":3', b'"n": 3'), *ls[3:]], "record 3: hash"),
        (lambda ls: ls[:2] + ls[3:], "line 3: seq or prev_hash out of chain"),
        (lambda ls: [*ls[:-1], ls[-1][:-1]], "line 4: incomplete last line"),
    ],
)
def test_the_documented_verifier_finds_damage(
    verifier: Path, tmp_path: Path, damage: object, message: str
) -> None:
    path = tmp_path / "d.jsonl"
    with audit.TinyDBAuditStore(path) as store:
        fill(store, 4)
    write_lines(path, damage(read_lines(path)))  # type: ignore[operator]
    result = run(verifier, path)
    assert result.returncode == 1 and message in result.stderr
