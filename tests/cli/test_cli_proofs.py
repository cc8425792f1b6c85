"""`pricecalc audit keygen / checkpoint / prove / verify-proof` and `audit verify
--checkpoint` (SPEC §9: a merchant checks a decision alone, with the log's verifier key,
a signed checkpoint and a proof document; docs/audit.md "Proofs a merchant checks alone")."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cli_support import ROOT, SPLIT, Invoke, jsonl

import audit
from audit.canonical import canonical_bytes
from audit.merkle import EMPTY_ROOT
from audit.note import load_verifier_key, open_checkpoint, read_signing_key
from audit.records import record_to_dict

NAME = "finance.example/chaozhigou-test"


def split(n: int) -> dict[str, Any]:
    """A subsidy_split request of its own (request_id split-<n>)."""
    request = copy.deepcopy(SPLIT)
    request["request_id"] = f"split-{n}"
    request["input"]["cost_price"] = f"{100 + n}.00"
    return request


def decide(invoke: Invoke, tmp_path: Path, *numbers: int) -> None:
    batch = tmp_path / "in.jsonl"
    batch.write_text(jsonl(*(split(n) for n in numbers)), encoding="utf-8")
    result = invoke("batch", str(batch), "--output", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 0, result.output


class Log:
    """A store of three decisions, its signing key and verifier key, and two signed
    checkpoints: ``cp1`` taken at one record, ``cp3`` at three."""

    def __init__(self, invoke: Invoke, store: Path, tmp_path: Path) -> None:
        self.invoke, self.store, self.dir = invoke, store, tmp_path
        self.key = tmp_path / "signing.key"
        made = invoke("audit", "keygen", NAME, "--output", str(self.key), audit=False)
        assert made.exit_code == 0, made.output
        self.vkey = made.stdout.strip()
        self.vkey_file = tmp_path / "verifier.key"
        self.vkey_file.write_text(made.stdout, encoding="utf-8")
        decide(invoke, tmp_path, 1)
        self.cp1 = self.checkpoint("cp1.txt")
        decide(invoke, tmp_path, 2, 3)
        self.cp3 = self.checkpoint("cp3.txt")

    def checkpoint(self, name: str) -> Path:
        path = self.dir / name
        result = self.invoke("audit", "checkpoint", "--signing-key", str(self.key), "-o", str(path))
        assert result.exit_code == 0, result.output
        return path

    def prove(self, *args: str) -> dict[str, Any]:
        result = self.invoke("audit", "prove", *args)
        assert result.exit_code == 0, result.output
        doc = json.loads(result.stdout)
        assert isinstance(doc, dict)
        return doc

    def verify_proof(self, doc: dict[str, Any], *args: str) -> Any:
        path = self.dir / "proof.json"
        path.write_text(json.dumps(doc), encoding="utf-8")
        return self.invoke(
            "audit", "verify-proof", str(path), "--verifier-key", self.vkey, *args, audit=False
        )


@pytest.fixture
def log(invoke: Invoke, store: Path, tmp_path: Path) -> Log:
    return Log(invoke, store, tmp_path)


def decided(doc: dict[str, Any]) -> str:
    """The lines after the OK line of a proof of one of the Log's splits (issue 24): what
    the record decided, its time in Beijing time (worked out here, not by pricecalc)."""
    record = doc["record"]
    utc = datetime.fromisoformat(record["recorded_at"].replace("Z", "+00:00"))
    beijing = utc.astimezone(timezone(timedelta(hours=8))).strftime("%Y-%m-%d %H:%M:%S")
    seq = record["seq"]
    return (
        f"record {seq} decided / 记录 {seq} 的决定:\n"
        "  kind 类型: 补贴分摊 subsidy_split\n"
        f"  request_id 请求号: split-{seq}\n"
        "  status 状态: 已批准 approved\n"
        "  商家补贴 merchant subsidy (merchant_subsidy): 60.00\n"
        "  平台补贴 platform subsidy (platform_subsidy): 40.00\n"
        f"  recorded at 记录时间: {beijing} +08:00 北京时间 Beijing time "
        f"(recorded_at {record['recorded_at']})\n"
    )


def b64(values: list[bytes]) -> list[str]:
    return [base64.b64encode(v).decode("ascii") for v in values]


# -- keygen ---------------------------------------------------------------------------------


def test_keygen_prints_the_verifier_key_and_keeps_the_key_private(
    invoke: Invoke, tmp_path: Path
) -> None:
    """The verifier key is `<name>+<8 hex>+<base64>`; the key file is mode 0600 and is
    never overwritten (exit 1, the file unchanged)."""
    key = tmp_path / "audit.key"
    result = invoke("audit", "keygen", NAME, "--output", str(key), audit=False)
    assert result.exit_code == 0, result.output
    assert re.fullmatch(re.escape(NAME) + r"\+[0-9a-f]{8}\+[A-Za-z0-9+/]{44}\n", result.stdout)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert str(read_signing_key(key).verifier) == result.stdout.strip()
    assert load_verifier_key(result.stdout.strip()).name == NAME
    before = key.read_bytes()
    again = invoke("audit", "keygen", NAME, "--output", str(key), audit=False)
    assert (again.exit_code, again.stdout) == (1, "")
    assert again.stderr == f"Error: {key} already exists; a signing key is never overwritten\n"
    assert key.read_bytes() == before


@pytest.mark.parametrize("name", ["finance+log", "finance log", "finance\tlog", ""])
def test_keygen_refuses_a_name_signed_notes_cannot_carry(
    invoke: Invoke, tmp_path: Path, name: str
) -> None:
    """Key names follow signed-note: no '+', no whitespace (a usage error, exit 2)."""
    key = tmp_path / "audit.key"
    result = invoke("audit", "keygen", name, "--output", str(key), audit=False)
    assert result.exit_code == 2
    assert "Error: Invalid value for NAME: " in result.stderr
    assert not key.exists()


# -- checkpoint -----------------------------------------------------------------------------


def test_checkpoint_to_stdout_to_a_file_and_from_the_environment(
    log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A C2SP checkpoint (origin, size, base64 root) signed with the key; --output saves
    it and says so; PRICECALC_AUDIT_SIGNING_KEY names the key when the option does not."""
    with audit.TinyDBAuditStore(log.store) as store:
        root = store.root()
    result = log.invoke("audit", "checkpoint", "--signing-key", str(log.key))
    assert result.exit_code == 0, result.output
    body = f"{NAME}\n3\n{base64.b64encode(root).decode()}\n"
    assert result.stdout.startswith(body + "\n\u2014 " + NAME + " ")
    signed = open_checkpoint(result.stdout, load_verifier_key(log.vkey))
    assert (signed.origin, signed.size, signed.root) == (NAME, 3, root)
    assert log.cp3.read_text(encoding="utf-8").startswith(body)
    saved = log.dir / "saved.txt"
    told = log.invoke("audit", "checkpoint", "--signing-key", str(log.key), "--output", str(saved))
    assert told.stdout == f"checkpoint of 3 records signed by {NAME} saved to {saved}\n"
    monkeypatch.setenv("PRICECALC_AUDIT_SIGNING_KEY", str(log.key))
    from_env = log.invoke("audit", "checkpoint")
    assert from_env.exit_code == 0 and from_env.stdout.startswith(body)
    monkeypatch.delenv("PRICECALC_AUDIT_SIGNING_KEY")
    missing = log.invoke("audit", "checkpoint")
    assert missing.exit_code == 2
    assert "name the signing key with --signing-key or $PRICECALC_AUDIT_SIGNING_KEY" in (
        missing.stderr
    )


# -- prove ----------------------------------------------------------------------------------


def test_prove_inclusion_at_a_size_and_with_a_checkpoint(log: Log) -> None:
    """The document carries the record, its leaf index, the tree size and RFC 9162's
    path; --size proves at an earlier size; --checkpoint embeds the note and gives the
    size; --output writes the file and says so."""
    with audit.TinyDBAuditStore(log.store) as store:
        record, path3 = store.record(2), store.inclusion_proof(2)
        path2 = store.inclusion_proof(2, 2)
    assert record is not None
    assert log.prove("2") == {
        "seq": 2,
        "leaf_index": 1,
        "tree_size": 3,
        "hash_rule": "sha256",
        "record": record_to_dict(record),
        "inclusion_path": b64(path3),
    }
    assert log.prove("2", "--size", "2")["inclusion_path"] == b64(path2)
    embedded = log.prove("2", "--checkpoint", str(log.cp3))
    assert embedded["checkpoint"] == log.cp3.read_text(encoding="utf-8")
    assert embedded["tree_size"] == 3
    out = log.dir / "proof-2.json"
    written = log.invoke("audit", "prove", "2", "--checkpoint", str(log.cp3), "-o", str(out))
    assert written.stdout == f"proof written to {out}\n"
    assert json.loads(out.read_text(encoding="utf-8")) == embedded


def test_prove_consistency(log: Log) -> None:
    """--consistency OLD: RFC 9162's consistency path from OLD to the size (default now,
    or the embedded checkpoint's)."""
    with audit.TinyDBAuditStore(log.store) as store:
        path = store.consistency_proof(1, 3)
    assert log.prove("--consistency", "1") == {
        "old_size": 1,
        "new_size": 3,
        "consistency_path": b64(path),
    }
    doc = log.prove("--consistency", "1", "--checkpoint", str(log.cp3))
    assert doc["checkpoint"] == log.cp3.read_text(encoding="utf-8")
    assert log.prove("--consistency", "0", "--size", "2")["consistency_path"] == []


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("4",), 1, "Error: record 4 is not in the tree of size 3\n"),
        (("2", "--size", "4"), 1, "Error: tree size 4 is not between 0 and the tree's size 3\n"),
        (("--consistency", "4"), 1,
         "Error: old tree size 4 is not between 0 and the tree's size 3\n"),
        ((), 2, "Error: give either SEQ or --consistency OLD\n"),
        (("2", "--consistency", "1"), 2, "Error: give either SEQ or --consistency OLD\n"),
    ],
)  # fmt: skip
def test_prove_refuses_what_is_not_in_the_tree(
    log: Log, args: tuple[str, ...], code: int, message: str
) -> None:
    result = log.invoke("audit", "prove", *args)
    assert result.exit_code == code
    assert result.stderr.endswith(message)


def test_prove_refuses_a_checkpoint_of_another_size_or_store(log: Log) -> None:
    """--size must be the checkpoint's; a checkpoint whose root is not this store's root
    at its size is refused (exit 1) — an earlier checkpoint of the store still proves."""
    wrong_size = log.invoke("audit", "prove", "1", "--size", "2", "--checkpoint", str(log.cp3))
    assert wrong_size.exit_code == 2
    assert "--size 2 is not the checkpoint's size 3" in wrong_size.stderr
    earlier = log.invoke("audit", "prove", "1", "--checkpoint", str(log.cp1))
    assert earlier.exit_code == 0 and json.loads(earlier.stdout)["tree_size"] == 1
    text = log.cp3.read_text(encoding="utf-8").split("\n")
    text[2] = log.cp1.read_text(encoding="utf-8").split("\n")[2]  # size 1's root as size 3's
    forged = log.dir / "forged.txt"
    forged.write_text("\n".join(text), encoding="utf-8")
    refused = log.invoke("audit", "prove", "1", "--checkpoint", str(forged))
    assert refused.exit_code == 1
    assert refused.stderr == (
        f"Error: the checkpoint {forged} is not of this store (its root at size 3 differs, "
        "or the store is smaller)\n"
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot read {cp}: no such file or directory"),
        (b"\xff\xfe not text", "{cp} is not UTF-8 text"),
        ("unsigned", "{cp} is not signed (it has no signature line)"),
    ],
)
def test_every_command_reads_a_checkpoint_file_one_way(
    log: Log, content: bytes | str | None, problem: str
) -> None:
    """``audit prove``, ``statement`` and ``report`` read ``--checkpoint`` with one reader
    and check it with one check (audit.proofdoc.published_checkpoint): the same file
    problem is the same sentence, exit 2, in each (a checkpoint of another store stays exit
    1 for ``prove``, above). A note without a signature line is no published checkpoint."""
    cp = log.dir / "cp.txt"
    if content == "unsigned":  # cp3's text up to its blank line: no signature
        text = log.cp3.read_text(encoding="utf-8")
        cp.write_text(text[: text.index("\n\n") + 2], encoding="utf-8")
    elif isinstance(content, bytes):
        cp.write_bytes(content)
    sentence = problem.format(cp=cp)
    if content == "unsigned":  # the check names it as each command does
        sentence = {
            "prove": f"Invalid value for --checkpoint: the checkpoint {sentence}",
            "statement": f"--checkpoint {sentence}",
            "report": f"Invalid value for '--checkpoint': {sentence}",
        }  # type: ignore[assignment]
    commands = {
        "prove": ("audit", "prove", "1", "--checkpoint", str(cp)),
        "statement": ("statement", "--merchant", "M-1", "--since", "2026-11-01",
                      "--until", "2026-12-01", "-o", str(log.dir / "s.csv"),
                      "--checkpoint", str(cp)),
        "report": ("report", "-o", str(log.dir / "r.html"), "--checkpoint", str(cp)),
    }  # fmt: skip
    for name, args in commands.items():
        result = log.invoke(*args)
        expected = (
            sentence[name]
            if isinstance(sentence, dict)
            else f"Invalid value for '--checkpoint': {sentence}"
        )
        assert (name, result.exit_code, result.stderr.splitlines()[-1]) == (
            name,
            2,
            f"Error: {expected}",
        )
    assert not (log.dir / "s.csv").exists() and not (log.dir / "r.html").exists()


# -- verify-proof ---------------------------------------------------------------------------


def test_verify_proof_accepts_what_the_store_proved(log: Log) -> None:
    """Exit 0 and one line saying what was proven: inclusion (the checkpoint embedded, or
    given with --checkpoint) and consistency (with --old-checkpoint)."""
    doc = log.prove("2", "--checkpoint", str(log.cp3))
    digest = doc["record"]["hash"]
    key_id = load_verifier_key(log.vkey).key_id
    ok = (
        f"OK: record 2 (hash {digest[:16]}…) is in the log {NAME} at tree size 3, unchanged; "
        f"checkpoint signed by {NAME}+{key_id:08x}\n"
    ) + decided(doc)
    accepted = log.verify_proof(doc)
    assert (accepted.exit_code, accepted.stdout) == (0, ok)
    bare = log.prove("2")
    assert log.verify_proof(bare, "--checkpoint", str(log.cp3)).stdout == ok
    from_file = log.invoke(
        "audit", "verify-proof", str(log.dir / "proof.json"), "--checkpoint", str(log.cp3),
        "--verifier-key", str(log.vkey_file), audit=False,
    )  # fmt: skip
    assert (from_file.exit_code, from_file.stdout) == (0, ok)
    grown = log.prove("--consistency", "1", "--checkpoint", str(log.cp3))
    extended = log.verify_proof(grown, "--old-checkpoint", str(log.cp1))
    assert (extended.exit_code, extended.stdout) == (
        0,
        f"OK: the log {NAME} at size 3 is an extension of the log at size 1: nothing in the "
        "first 1 records was changed or removed\n",
    )


def _flip(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[5] ^= 0x01
    return base64.b64encode(bytes(raw)).decode("ascii")


def _resign_other(doc: dict[str, Any]) -> None:
    lines = doc["checkpoint"].split("\n")
    name, signature = lines[4].rsplit(" ", 1)
    lines[4] = f"{name} {_flip(signature)}"
    doc["checkpoint"] = "\n".join(lines)


TAMPERING = [
    (
        "the record's content",
        lambda d: d["record"]["payload"].update(status="rejected"),
        "record: its hash field is not the SHA-256 of its content",
    ),
    (
        "the record's hash",
        lambda d: d["record"].update(hash="0" * 64),
        "record: its hash field is not the SHA-256 of its content",
    ),
    (
        "a hash of the path",
        lambda d: d["inclusion_path"].__setitem__(0, _flip(d["inclusion_path"][0])),
        "root: the path does not lead to the checkpoint's root hash",
    ),
    (
        "the path's length",
        lambda d: d["inclusion_path"].pop(),
        "path length: 1 hashes, but a leaf 1 of a tree of size 3 has a path of 2",
    ),
    (
        "the tree size",
        lambda d: d.update(tree_size=2),
        "sizes: the proof is for tree size 2, the checkpoint's is 3",
    ),
    (
        "the leaf index",
        lambda d: d.update(leaf_index=0),
        "sizes: leaf_index 0, seq 2 and the record's seq 2 do not agree (leaf index = seq - 1)",
    ),
    (
        "the checkpoint's size",
        lambda d: d.update(checkpoint=d["checkpoint"].replace("\n3\n", "\n4\n", 1)),
        "the checkpoint: signature: the signature line of",
    ),
    (
        "the checkpoint's signature",
        _resign_other,
        "the checkpoint: signature: the signature line of",
    ),
]


@pytest.mark.parametrize(
    ("what", "damage", "failure"), TAMPERING, ids=[case[0] for case in TAMPERING]
)
def test_verify_proof_names_what_failed(log: Log, what: str, damage: Any, failure: str) -> None:
    """Exit 1 with one line naming the failed check: record, root, path length, sizes,
    signature."""
    doc = log.prove("2", "--checkpoint", str(log.cp3))
    damage(doc)
    result = log.verify_proof(doc)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.startswith("Error: proof refused: " + failure)
    assert result.stderr.count("\n") == 1


def test_verify_proof_refuses_another_logs_key(log: Log, tmp_path: Path) -> None:
    doc = log.prove("2", "--checkpoint", str(log.cp3))
    other = log.invoke(
        "audit", "keygen", NAME, "--output", str(tmp_path / "other.key"), audit=False
    ).stdout.strip()
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    result = log.invoke("audit", "verify-proof", str(path), "--verifier-key", other, audit=False)
    assert result.exit_code == 1
    named = "+".join(other.split("+")[:2])  # name+key ID
    assert result.stderr == (
        f"Error: proof refused: the checkpoint: signature: the note is not signed by {named} "
        "(signed by another key, or a key with the same name that is not ours)\n"
    )
    old = log.prove("--consistency", "1", "--checkpoint", str(log.cp3))
    no_old = log.verify_proof(old)
    assert no_old.exit_code == 1
    assert no_old.stderr == (
        "Error: proof refused: the old checkpoint is missing: there is nothing to check the "
        "proof against\n"
    )


# -- verify --checkpoint --------------------------------------------------------------------


def test_verify_against_a_saved_head_and_a_signed_checkpoint(log: Log) -> None:
    """A saved head (JSON) and a signed checkpoint are told apart by form; a signed one
    needs --verifier-key and is proven extended by a consistency proof; --deep too."""
    with audit.TinyDBAuditStore(log.store) as store:
        head = store.head()
    ok = f"OK: 3 records, chain intact; head seq 3 hash {head.hash}"
    saved = log.dir / "head.json"
    first = log.invoke("audit", "verify", "--save-checkpoint", str(saved))
    assert first.stdout == f"{ok}\ncheckpoint saved to {saved}\n"
    against_head = log.invoke("audit", "verify", "--checkpoint", str(saved))
    assert against_head.stdout == f"{ok} (checkpoint seq 3 found)\n"
    unkeyed = log.invoke("audit", "verify", "--checkpoint", str(log.cp1))
    assert unkeyed.exit_code == 2
    assert unkeyed.stderr.endswith(
        "Error: a signed --checkpoint needs --verifier-key VKEY to check it\n"
    )
    for cp, size in ((log.cp1, 1), (log.cp3, 3)):
        signed = log.invoke("audit", "verify", "--checkpoint", str(cp), "--verifier-key", log.vkey)
        assert signed.stdout == (
            f"{ok} (signed checkpoint of size {size}: the log is an extension of it)\n"
        )
    wrong = log.invoke(
        "audit", "verify", "--checkpoint", str(log.cp1), "--verifier-key",
        log.invoke("audit", "keygen", "x.example/other", "--output", str(log.dir / "x.key"),
                   audit=False).stdout.strip(),
    )  # fmt: skip
    assert wrong.exit_code == 1
    assert wrong.stderr.startswith("Error: the signed checkpoint does not verify: ")
    deep = log.invoke("audit", "verify", "--deep")
    assert (deep.exit_code, deep.stdout) == (0, ok + "\n")


def test_a_rewritten_log_is_not_an_extension_of_its_signed_checkpoint(log: Log) -> None:
    """Rewriting record 1 and re-hashing the whole chain (no HMAC key) passes plain
    verify, but not the signed checkpoint taken before: exit 1, 'the log was rewritten'."""
    lines = log.store.read_bytes().splitlines()
    prev = audit.GENESIS_HASH
    rewritten = []
    for n, line in enumerate(lines):
        record = json.loads(line)
        if n == 0:
            record["payload"]["operator"] = "mallory"
        record["prev_hash"] = prev
        body = {k: v for k, v in record.items() if k != "hash"}
        record["hash"] = prev = hashlib.sha256(canonical_bytes(body)).hexdigest()
        rewritten.append(canonical_bytes(record) + b"\n")
    log.store.write_bytes(b"".join(rewritten))
    # An attacker who rewrites every file: the index and the high-water mark go too (kept,
    # the mark alone makes plain `verify` fail: it names a record the log no longer holds).
    Path(str(log.store) + ".idx").unlink()
    Path(str(log.store) + ".head").unlink()
    assert log.invoke("audit", "verify").exit_code == 0
    result = log.invoke("audit", "verify", "--checkpoint", str(log.cp3), "--verifier-key", log.vkey)
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"Error: the audit store {log.store} failed verification: it is not an extension of "
        "the signed checkpoint of size 3 ("
    )
    assert result.stderr.endswith("): the log was rewritten\n")


def test_an_empty_store_checkpoints_and_proves_nothing(invoke: Invoke, tmp_path: Path) -> None:
    assert invoke("audit", "init").exit_code == 0
    key = tmp_path / "k.key"
    assert invoke("audit", "keygen", NAME, "--output", str(key), audit=False).exit_code == 0
    result = invoke("audit", "checkpoint", "--signing-key", str(key))
    assert result.stdout.startswith(f"{NAME}\n0\n{base64.b64encode(EMPTY_ROOT).decode()}\n")
    assert invoke("audit", "prove", "1").stderr == "Error: record 1 is not in the tree of size 0\n"


# -- make run -------------------------------------------------------------------------------


def test_the_proof_steps_of_make_run(invoke: Invoke, tmp_path: Path) -> None:
    """What `make run` does after the batch: keygen once (verifier key to a file),
    checkpoint --output, prove 1 --checkpoint --output, verify-proof --verifier-key FILE."""
    campaign = ROOT / "examples" / "campaign.jsonl"
    out = tmp_path / "out"
    out.mkdir()
    batch = invoke("--policy", str(ROOT / "examples" / "policy.toml"), "batch", str(campaign),
                   "--output", str(out / "decisions.jsonl"))  # fmt: skip
    assert batch.exit_code == 1 and (out / "decisions.jsonl").exists()  # invalid lines, by design
    key, vkey = out / "audit-signing.key", out / "audit-verifier.key"
    made = invoke("audit", "keygen", "example.invalid/pricecalc-run", "--output", str(key),
                  audit=False)  # fmt: skip
    vkey.write_text(made.stdout, encoding="utf-8")
    cp = out / "checkpoint.txt"
    signed = invoke("audit", "checkpoint", "--signing-key", str(key), "--output", str(cp))
    assert signed.exit_code == 0, signed.output
    size = int(cp.read_text(encoding="utf-8").split("\n")[1])
    assert size > 0
    proof = out / "proof-1.json"
    proved = invoke("audit", "prove", "1", "--checkpoint", str(cp), "--output", str(proof))
    assert proved.stdout == f"proof written to {proof}\n"
    checked = invoke("audit", "verify-proof", str(proof), "--verifier-key", str(vkey), audit=False)
    assert checked.exit_code == 0, checked.output
    assert checked.stdout.startswith("OK: record 1 (hash ")
    assert f"is in the log example.invalid/pricecalc-run at tree size {size}, unchanged" in (
        checked.stdout
    )


# -- issue 24: proof edges ------------------------------------------------------------------

CR_SENTENCE = (
    "malformed note: it holds a carriage return (CR): a note's lines end in a line feed only "
    "(C2SP signed-note; saved with Windows line ends?)"
)


@pytest.mark.parametrize("ending", ["\r\n", "\r"], ids=["CRLF", "lone CR"])
def test_a_checkpoint_file_with_cr_line_ends_is_refused_everywhere(
    log: Log, ending: str
) -> None:
    """Checkpoint files are read as bytes (issue 24): a copy of cp3 with CRLF or lone CR
    line ends is refused by verify-proof and verify (exit 1: it does not verify) and by
    prove, statement and report (exit 2: not a signed checkpoint), each naming the CR —
    C2SP and Go's note package refuse it; it used to be accepted by newline translation."""
    cp = log.dir / "cp-crlf.txt"
    cp.write_bytes(log.cp3.read_bytes().replace(b"\n", ending.encode()))
    doc = log.prove("2")
    checked = log.verify_proof(doc, "--checkpoint", str(cp))
    assert (checked.exit_code, checked.stderr) == (
        1,
        f"Error: proof refused: the checkpoint: {CR_SENTENCE}\n",
    )
    embedded = log.verify_proof({**doc, "checkpoint": cp.read_bytes().decode("utf-8")})
    assert (embedded.exit_code, embedded.stderr) == (
        1,
        f"Error: proof refused: the checkpoint: {CR_SENTENCE}\n",
    )
    verified = log.invoke("audit", "verify", "--checkpoint", str(cp), "--verifier-key", log.vkey)
    assert (verified.exit_code, verified.stderr) == (
        1,
        f"Error: the signed checkpoint does not verify: {CR_SENTENCE}\n",
    )
    not_signed = f"is not a signed checkpoint ({CR_SENTENCE})"
    commands = {
        "prove": (("audit", "prove", "1", "--checkpoint", str(cp)),
                  f"Invalid value for --checkpoint: the checkpoint {cp} {not_signed}"),
        "statement": (("statement", "--merchant", "M-1", "--since", "2026-11-01", "--until",
                       "2026-12-01", "-o", str(log.dir / "s.csv"), "--checkpoint", str(cp)),
                      f"--checkpoint {cp} {not_signed}"),
        "report": (("report", "-o", str(log.dir / "r.html"), "--checkpoint", str(cp)),
                   f"Invalid value for '--checkpoint': {cp} {not_signed}"),
    }  # fmt: skip
    for name, (args, sentence) in commands.items():
        result = log.invoke(*args)
        assert (name, result.exit_code, result.stderr.splitlines()[-1]) == (
            name, 2, f"Error: {sentence}",
        )  # fmt: skip
    assert not (log.dir / "s.csv").exists() and not (log.dir / "r.html").exists()
    assert log.verify_proof(doc, "--checkpoint", str(log.cp3)).exit_code == 0


CJK_NAME = "财务.example/日志-2026"


def test_a_cjk_key_name_works_end_to_end(invoke: Invoke, tmp_path: Path) -> None:
    """`audit keygen "财务.example/日志-2026"` (a name C2SP allows): no traceback, the
    key file holds the name in UTF-8, and checkpoint, prove and verify-proof work with
    it (issue 24)."""
    key = tmp_path / "财务.key"
    made = invoke("audit", "keygen", CJK_NAME, "--output", str(key), audit=False)
    assert (made.exit_code, made.stderr) == (0, "")
    vkey = made.stdout.strip()
    assert re.fullmatch(re.escape(CJK_NAME) + r"\+[0-9a-f]{8}\+[A-Za-z0-9+/]{44}", vkey)
    assert key.read_bytes().startswith(f"PRIVATE+KEY+{CJK_NAME}+".encode())
    assert str(read_signing_key(key).verifier) == vkey
    decide(invoke, tmp_path, 1, 2)
    cp = tmp_path / "cp.txt"
    signed = invoke("audit", "checkpoint", "--signing-key", str(key), "--output", str(cp))
    assert signed.stdout == f"checkpoint of 2 records signed by {CJK_NAME} saved to {cp}\n"
    proof = tmp_path / "proof.json"
    assert invoke("audit", "prove", "2", "--checkpoint", str(cp), "-o", str(proof)).exit_code == 0
    checked = invoke("audit", "verify-proof", str(proof), "--verifier-key", vkey, audit=False)
    assert checked.exit_code == 0, checked.output
    assert f"is in the log {CJK_NAME} at tree size 2, unchanged" in checked.stdout


def test_a_failed_keygen_leaves_no_file(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A keygen that fails while writing (a full disk) says so (exit 1) and leaves no key
    file and no temporary one, so the rerun is not told "already exists" (issue 24)."""
    import os

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    key = tmp_path / "keys" / "audit.key"
    key.parent.mkdir()
    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", full)
        failed = invoke("audit", "keygen", CJK_NAME, "--output", str(key), audit=False)
    assert (failed.exit_code, failed.stdout) == (1, "")
    assert failed.stderr == f"Error: cannot write {key}: No space left on device\n"
    assert list(key.parent.iterdir()) == []
    again = invoke("audit", "keygen", CJK_NAME, "--output", str(key), audit=False)
    assert again.exit_code == 0, again.output
    assert [p.name for p in key.parent.iterdir()] == ["audit.key"]


def test_a_keyed_stores_ok_line_does_not_show_the_hmac_as_proven(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an HMAC-keyed store the record's hash field is the HMAC, which a merchant
    cannot check (SPEC §9): verify-proof's OK line names the content SHA-256 it did check
    and says the HMAC was not checked, instead of printing the hash as if proven."""
    from click.testing import CliRunner

    from pricecalc.cli import cli

    monkeypatch.chdir(tmp_path)
    keyed = {"PRICECALC_AUDIT_KEY": "the-stores-secret", "PRICECALC_AUDIT": str(store)}

    def run(*args: str, env: dict[str, str | None] = keyed) -> Any:
        return CliRunner().invoke(cli, list(args), env=env)

    key = tmp_path / "k.key"
    vkey = run("audit", "keygen", NAME, "-o", str(key)).stdout.strip()
    batch = tmp_path / "in.jsonl"
    batch.write_text(jsonl(split(1), split(2)), encoding="utf-8")
    assert run("batch", str(batch), "-o", str(tmp_path / "out.jsonl")).exit_code == 0
    cp = tmp_path / "cp.txt"
    assert run("audit", "checkpoint", "--signing-key", str(key), "-o", str(cp)).exit_code == 0
    proof = tmp_path / "proof.json"
    assert run("audit", "prove", "2", "--checkpoint", str(cp), "-o", str(proof)).exit_code == 0
    doc = json.loads(proof.read_text(encoding="utf-8"))
    body = {k: v for k, v in doc["record"].items() if k != "hash"}
    content = hashlib.sha256(canonical_bytes(body)).hexdigest()
    assert doc["hash_rule"] == "hmac-sha256" and doc["record"]["hash"] != content
    merchant = run("audit", "verify-proof", str(proof), "--verifier-key", vkey,
                   env={"PRICECALC_AUDIT_KEY": None, "PRICECALC_AUDIT": None})  # fmt: skip
    key_id = load_verifier_key(vkey).key_id
    assert (merchant.exit_code, merchant.stdout) == (
        0,
        f"OK: record 2 (content SHA-256 {content[:16]}…) is in the log {NAME} at tree size 2, "
        "unchanged; its hash field is the store's HMAC, which only the store's keeper can "
        f"check (not checked here); checkpoint signed by {NAME}+{key_id:08x}\n"
        + decided(doc),
    )
    assert doc["record"]["hash"][:16] not in merchant.stdout
