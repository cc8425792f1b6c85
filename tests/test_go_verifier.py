"""A stranger's verifier checks what pricecalc emits (SPEC §9, issue 24): Go's
``golang.org/x/mod/sumdb/note`` opens the signed checkpoints and ``sumdb/tlog`` checks the
inclusion and consistency proofs, recomputing each record's leaf from the record itself.

The Go program is tests/go/verify/main.go, built in GOPATH mode against Debian's
``golang-golang-x-mod-dev`` (/usr/share/gocode) with ``golang-go``: no module download, no
network (GOPROXY=off). Without the toolchain the test skips naming the apt-get line —
except under CI (``CI=true``), where it fails loudly (.ci/run installs both).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from needs_support import missing
from report_support import build_campaign_store

import audit
from audit.merkle import EMPTY_ROOT
from audit.note import read_signing_key, sign_checkpoint
from audit.proofdoc import consistency_document, inclusion_document
from pricecalc.cli import cli

HERE = Path(__file__).resolve().parent / "go" / "verify"
GOPATH = Path("/usr/share/gocode")
X_MOD = GOPATH / "src" / "golang.org" / "x" / "mod" / "sumdb"
APT = "apt-get install golang-go golang-golang-x-mod-dev"
NAME = "财务.example/日志-2026"  # a key name C2SP allows and Go's note package takes


@pytest.fixture(scope="module")
def go_verify(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go verifier, built once; or a skip (a failure under CI) naming what to install."""
    go = shutil.which("go")
    if go is None or not (X_MOD / "note").is_dir() or not (X_MOD / "tlog").is_dir():
        message = f"Go and golang.org/x/mod are needed for the stranger's-verifier test ({APT})"
        missing(message)
    work = tmp_path_factory.mktemp("go")
    binary = work / "verify"
    env = {
        **os.environ,
        "GO111MODULE": "off",  # GOPATH mode: Debian's packaged source, no module download
        "GOPATH": str(GOPATH),
        "GOFLAGS": "",
        "GOPROXY": "off",
        "GOCACHE": str(work / "cache"),
        "CGO_ENABLED": "0",
    }
    built = subprocess.run([go, "build", "-o", str(binary), "."], cwd=HERE, env=env,
                           capture_output=True, text=True, check=False)  # fmt: skip
    assert built.returncode == 0, built.stderr
    return binary


def go(binary: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True,
                          check=False)  # fmt: skip


def pricecalc(store: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--audit", str(store), *args],
                                env={"PRICECALC_AUDIT_KEY": None})  # fmt: skip
    assert result.exit_code == 0, result.output
    return result.stdout


def write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The example campaign's store (every kind, voids, Chinese text), a signing key with
    a CJK name made by `pricecalc audit keygen`, and two checkpoints signed by `pricecalc
    audit checkpoint`: at the campaign's size, and after three more records."""
    work = tmp_path_factory.mktemp("log")
    store = work / "audit.jsonl"
    build_campaign_store(store)
    key = work / "signing.key"
    vkey = pricecalc(store, "audit", "keygen", NAME, "--output", str(key)).strip()
    cp1, cp2 = work / "cp1.txt", work / "cp2.txt"
    pricecalc(store, "audit", "checkpoint", "--signing-key", str(key), "--output", str(cp1))
    with audit.open_store(str(store)) as opened:
        size1 = opened.tree_size()
        for n in range(3):
            opened.append(audit.Entry({"kind": "demo", "备注": f"第{n}条 <&> \u00e9"},
                                      key=f"extra-{n}", tags=("demo",)))  # fmt: skip
    pricecalc(store, "audit", "checkpoint", "--signing-key", str(key), "--output", str(cp2))
    return {"dir": work, "store": store, "key": key, "vkey": vkey, "cp1": cp1, "cp2": cp2,
            "size1": size1, "size2": size1 + 3}  # fmt: skip


def test_go_opens_the_checkpoints_and_checks_the_cli_proofs(
    go_verify: Path, log: dict[str, Any]
) -> None:
    """`audit checkpoint`, `audit prove SEQ` and `audit prove --consistency OLD` as a
    merchant receives them: Go's note.Open accepts the signatures (key name 财务…), Go's
    tlog.CheckRecord and tlog.CheckTree accept the proofs."""
    work, store, vkey = log["dir"], log["store"], log["vkey"]
    size1, size2 = log["size1"], log["size2"]
    for cp, size in ((log["cp1"], size1), (log["cp2"], size2)):
        opened = go(go_verify, "checkpoint", vkey, cp)
        assert (opened.returncode, opened.stdout) == (0, f"checkpoint {NAME} {size}\n")
    for seq in (1, 2, size1 // 2, size1, size2):
        proof = work / f"proof-{seq}.json"
        pricecalc(store, "audit", "prove", str(seq), "--checkpoint", str(log["cp2"]),
                  "--output", str(proof))  # fmt: skip
        checked = go(go_verify, "inclusion", vkey, log["cp2"], proof)
        assert (checked.returncode, checked.stdout) == (0, f"inclusion {NAME} {seq} {size2}\n")
    grown = work / "consistency.json"
    pricecalc(store, "audit", "prove", "--consistency", str(size1), "--checkpoint",
              str(log["cp2"]), "--output", str(grown))  # fmt: skip
    checked = go(go_verify, "consistency", vkey, log["cp1"], log["cp2"], grown)
    assert (checked.returncode, checked.stdout) == (
        0, f"consistency {NAME} {size1} {size2}\n",
    )  # fmt: skip


def test_go_agrees_at_many_sizes(go_verify: Path, log: dict[str, Any]) -> None:
    """Inclusion and consistency documents between many tree sizes ≥ 1 (powers of two and
    their neighbours, where RFC 9162's paths change shape), each checkpoint signed by the
    key `audit keygen` made: Go accepts every one."""
    work = log["dir"]
    key = read_signing_key(log["key"])
    size2 = log["size2"]
    sizes = sorted({s for p in (1, 2, 4, 8, 16, 32, 64, 128, 256) for s in (p - 1, p, p + 1)
                    if 1 <= s <= size2} | {size2})  # fmt: skip
    with audit.open_store(str(log["store"])) as store:
        notes = {}
        for size in sizes:
            notes[size] = work / f"cp-at-{size}.txt"
            notes[size].write_text(sign_checkpoint(key, size, store.root(size)), encoding="utf-8")
        for old, new in zip(sizes, sizes[3:] + [size2] * 3, strict=True):
            doc = write(work / "c.json", consistency_document(store, old, new))
            done = go(go_verify, "consistency", log["vkey"], notes[old], notes[new], doc)
            assert (done.returncode, done.stderr) == (0, ""), (old, new)
            for seq in {1, old, (old + new) // 2, new}:
                doc = write(work / "i.json", inclusion_document(store, seq, new))
                done = go(go_verify, "inclusion", log["vkey"], notes[new], doc)
                assert (done.returncode, done.stderr) == (0, ""), (seq, new)


def test_go_checks_a_keyed_stores_leaf_and_refuses_what_pricecalc_refuses(
    go_verify: Path, log: dict[str, Any], tmp_path: Path
) -> None:
    """The harness can fail: Go refuses a changed record, a changed path hash, a
    checkpoint with CRLF line ends (as `audit verify-proof` now does) and a consistency
    proof from size 0 (beyond RFC 9162: tlog.CheckTree's "invalid inputs"; docs/audit.md).
    In an HMAC-keyed store Go recomputes the leaf from the record, the HMAC aside."""
    key = read_signing_key(log["key"])
    keyed_path = tmp_path / "keyed.jsonl"
    with audit.open_store(str(keyed_path), hmac_key=b"the store's secret") as keyed:
        for n in range(5):
            keyed.append(audit.Entry({"kind": "demo", "订单": f"O-{n}"}, key=f"k-{n}"))
        note = tmp_path / "keyed-cp.txt"
        note.write_text(sign_checkpoint(key, 5, keyed.root()), encoding="utf-8")
        doc = inclusion_document(keyed, 3, keyed=True)
    proof = write(tmp_path / "keyed.json", doc)
    assert go(go_verify, "inclusion", log["vkey"], note, proof).returncode == 0

    with audit.open_store(str(log["store"])) as store:
        good = inclusion_document(store, 2, log["size2"])
        zero = consistency_document(store, 0, log["size2"])
    changed = json.loads(json.dumps(good))
    changed["record"]["payload"]["operator"] = "mallory"
    cp2 = log["cp2"]
    refused = go(go_verify, "inclusion", log["vkey"], cp2, write(tmp_path / "x.json", changed))
    assert (refused.returncode, refused.stderr) == (
        1, "refused: record 2: its hash field is not the SHA-256 of its content\n",
    )  # fmt: skip
    flipped = json.loads(json.dumps(good))
    raw = bytearray(base64.b64decode(flipped["inclusion_path"][0]))
    raw[0] ^= 1
    flipped["inclusion_path"][0] = base64.b64encode(bytes(raw)).decode()
    refused = go(go_verify, "inclusion", log["vkey"], cp2, write(tmp_path / "y.json", flipped))
    assert refused.returncode == 1 and "invalid transparency proof" in refused.stderr

    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(log["cp2"].read_bytes().replace(b"\n", b"\r\n"))
    refused = go(go_verify, "checkpoint", log["vkey"], crlf)
    assert (refused.returncode, refused.stderr) == (
        1, f"refused: checkpoint {crlf}: malformed note\n",
    )  # fmt: skip

    empty = tmp_path / "cp-0.txt"
    empty.write_text(sign_checkpoint(key, 0, EMPTY_ROOT), encoding="utf-8")
    assert zero["consistency_path"] == []  # SPEC §9: from size 0, the empty path
    refused = go(go_verify, "consistency", log["vkey"], empty, log["cp2"],
                 write(tmp_path / "z.json", zero))  # fmt: skip
    assert (refused.returncode, refused.stderr) == (
        1, f"refused: consistency from 0 to {log['size2']}: tlog: invalid inputs in CheckTree\n",
    )  # fmt: skip
