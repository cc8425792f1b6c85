"""Signed checkpoints: C2SP signed-note with Ed25519, C2SP tlog-checkpoint, Go's key
encodings (SPEC §9). Known answers come from golang.org/x/mod/sumdb/note's documentation
(its PeterNeumann example key, whose signature Ed25519 reproduces byte for byte)."""

from __future__ import annotations

import base64
import os
import re
import stat
from pathlib import Path

import pytest

from audit.merkle import EMPTY_ROOT
from audit.note import (
    NoteError,
    SigningKey,
    TreeCheckpoint,
    VerifierKey,
    check_key_name,
    key_id,
    load_verifier_key,
    open_checkpoint,
    open_note,
    parse_checkpoint,
    read_signing_key,
    sign_checkpoint,
    sign_note,
    write_signing_key,
)

GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdng"
    "otpRZb6KE6RyyBwJnAM=\n"
)
ORIGIN = "finance.example/chaozhigou-2026"
ROOT = bytes(range(32))


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate(ORIGIN)


def test_go_sumdb_note_example() -> None:
    """Go's documented signer key gives Go's verifier key and Go's signature, exactly."""
    signer = SigningKey.parse(GO_SKEY)
    assert signer.to_text() == GO_SKEY
    assert str(signer.verifier) == GO_VKEY
    assert VerifierKey.parse(GO_VKEY) == signer.verifier
    assert sign_note(GO_TEXT, signer) == GO_TEXT + "\n" + GO_SIG
    opened = open_note(GO_TEXT + "\n" + GO_SIG, VerifierKey.parse(GO_VKEY))
    assert opened.text == GO_TEXT and opened.others == ()


def test_key_id_is_the_c2sp_recommendation(key: SigningKey) -> None:
    """key ID = SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4]; the verifier key carries it
    as 8 hex digits and base64(0x01 ‖ key)."""
    import hashlib

    public = key.verifier.public_key
    digest = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + public).digest()
    assert key.key_id == key_id(ORIGIN, public) == int.from_bytes(digest[:4], "big")
    text = str(key.verifier)
    assert re.fullmatch(re.escape(ORIGIN) + r"\+[0-9a-f]{8}\+[A-Za-z0-9+/]{44}", text)
    _, hex8, b64 = text.split("+", 2)
    assert int(hex8, 16) == key.key_id and base64.b64decode(b64) == b"\x01" + public
    assert SigningKey.parse(key.to_text()).verifier == key.verifier


@pytest.mark.parametrize(
    "name", ["", "a+b", "a b", "a\tb", "a\nb", "a\u3000b", "a\u00a0b", "a\x00b", "\ud800"]
)
def test_key_names_signed_note_refuses(name: str) -> None:
    """Non-empty, no '+', no Unicode space, no control character, valid Unicode."""
    with pytest.raises(ValueError, match="key name"):
        check_key_name(name)
    with pytest.raises(
        ValueError, match=r"^(a key name must be non-empty text$|the key name .+ may not contain )"
    ):
        SigningKey.generate(name)


def test_a_checkpoint_to_the_byte(key: SigningKey) -> None:
    """origin, size, base64 root, each on its line; a blank line; our signature line."""
    note = sign_checkpoint(key, 3, ROOT)
    body = f"{ORIGIN}\n3\n{base64.b64encode(ROOT).decode()}\n"
    assert note.startswith(body + "\n— " + ORIGIN + " ")
    assert note.count("\n") == 5
    signature = base64.b64decode(note.split(" ")[-1])
    assert signature[:4] == key.key_id.to_bytes(4, "big") and len(signature) == 68
    assert open_checkpoint(note, key.verifier) == TreeCheckpoint(ORIGIN, 3, ROOT)
    assert parse_checkpoint(note) == TreeCheckpoint(ORIGIN, 3, ROOT)
    empty = open_checkpoint(sign_checkpoint(key, 0, EMPTY_ROOT), key.verifier)
    assert (empty.size, empty.root) == (0, EMPTY_ROOT)


def test_another_key_with_the_same_name_is_refused(key: SigningKey) -> None:
    """An impostor's key of the same name signs a checkpoint: no signature of ours."""
    impostor = SigningKey.generate(ORIGIN)
    with pytest.raises(NoteError, match="not signed by"):
        open_checkpoint(sign_checkpoint(impostor, 3, ROOT), key.verifier)


def test_a_bad_line_from_our_key_beside_a_good_one_is_refused(key: SigningKey) -> None:
    """signed-note: a signature of a known key that fails rejects the note, wherever it is."""
    good = sign_checkpoint(key, 3, ROOT)
    other = sign_checkpoint(key, 4, ROOT)
    bad_line = other.split("\n\n")[1]  # our key's valid signature of another text
    for note in (good + bad_line, good.replace("\n\n", "\n\n" + bad_line)):
        with pytest.raises(NoteError, match="does not verify"):
            open_checkpoint(note, key.verifier)


def test_a_witness_signature_is_ignored(key: SigningKey) -> None:
    """An extra valid line from a key we do not know (a witness) is accepted and ignored,
    before or after ours; so is a line with our key ID under another name."""
    witness = SigningKey.generate("witness.example/w1")
    note = sign_note(TreeCheckpoint(ORIGIN, 3, ROOT).text(), key, witness)
    opened = open_note(note, key.verifier)
    assert len(opened.others) == 1 and opened.others[0].startswith("— witness.example/w1 ")
    flipped = sign_note(TreeCheckpoint(ORIGIN, 3, ROOT).text(), witness, key)
    assert open_checkpoint(flipped, key.verifier).size == 3
    alias = sign_checkpoint(key, 3, ROOT).replace(f"— {ORIGIN} ", "— alias.example/x ")
    with pytest.raises(NoteError, match="not signed by"):
        open_note(alias, key.verifier)


def test_every_single_byte_change_is_refused(key: SigningKey) -> None:
    """Each byte of the note changed (one bit) is refused: malformed, or not verified."""
    data = sign_checkpoint(key, 12, ROOT).encode()
    for i in range(len(data)):
        changed = bytearray(data)
        changed[i] ^= 0x01
        with pytest.raises(
            NoteError,
            match=rf"^(malformed note: |signature: |the signature of {ORIGIN} is not \w+ base64$)",
        ):
            open_checkpoint(bytes(changed), key.verifier)


@pytest.mark.parametrize(
    ("note", "message"),
    [
        ("a\n3\nAA==\n", "no blank line"),
        ("a\n\n— a AAAA", "no signature lines, or the last one has no newline"),
        ("a\n\nxx\n", "must start with"),
        ("a\n\n-- a AAAAAAAA\n", "must start with"),
        ("a\x01\n\n— a AAAAAAAA\n", "control character"),
        ("a\n\n— a AAAA\n", "too short"),
        ("a\n\n— a !!!!\n", "not valid base64"),
        ("a\n\n— a+b AAAAAAAA\n", "key name"),
    ],
)
def test_malformed_notes(key: SigningKey, note: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        open_note(note, key.verifier)


def test_too_many_signatures(key: SigningKey) -> None:
    note = sign_checkpoint(key, 3, ROOT)
    line = note.split("\n\n")[1]
    with pytest.raises(NoteError, match="more than 100"):
        open_note(note + line * 100, key.verifier)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (f"{ORIGIN}\n03\n{base64.b64encode(ROOT).decode()}\n", "not a decimal number"),
        (f"{ORIGIN}\n-3\n{base64.b64encode(ROOT).decode()}\n", "not a decimal number"),
        (f"{ORIGIN}\n3\n{base64.b64encode(ROOT[:31]).decode()}\n", "31 bytes"),
        (f"{ORIGIN}\n3\n", "three non-empty lines"),
        (f"other.example/log\n3\n{base64.b64encode(ROOT).decode()}\n", "is not the log"),
    ],
)
def test_malformed_checkpoints(key: SigningKey, body: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        open_checkpoint(sign_note(body, key), key.verifier)


def test_extension_lines_are_kept(key: SigningKey) -> None:
    body = TreeCheckpoint(ORIGIN, 3, ROOT, ("ext one",)).text()
    assert open_checkpoint(sign_note(body, key), key.verifier).extensions == ("ext one",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 lowercase hex"),
        ("PeterNeumann+c74f20a3+Apc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "base64"),
        ("PeterNeumann+c74f20a3", "is <name>"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "key name"),
    ],
)
def test_malformed_verifier_keys(text: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        VerifierKey.parse(text)


def test_key_files(tmp_path: Path, key: SigningKey) -> None:
    """Written 0600 and never over an existing file; read back only if private."""
    path = tmp_path / "log.key"
    write_signing_key(path, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == key.to_text() + "\n"
    assert read_signing_key(path).verifier == key.verifier
    with pytest.raises(FileExistsError, match=r"^\[Errno 17\] File exists: '.+' -> '.+/log\.key'$"):
        write_signing_key(path, SigningKey.generate(ORIGIN))
    assert read_signing_key(path).verifier == key.verifier
    os.chmod(path, 0o640)
    with pytest.raises(NoteError, match=r"may be read by others \(mode 0640\).*chmod 600"):
        read_signing_key(path)
    vkey = tmp_path / "log.vkey"
    vkey.write_text(str(key.verifier) + "\n")
    assert load_verifier_key(str(vkey)) == key.verifier == load_verifier_key(str(key.verifier))


# -- issue 24: the edges a stranger's verifier showed ------------------------------------

#: Made by Go's ``note.GenerateKey(rand.Reader, "财务.example/日志-2026")`` (tests/go/verify).
GO_CJK_SKEY = (
    "PRIVATE+KEY+财务.example/日志-2026+b2e522eb+AertVaPVxK9re6rNz1oD1ltZHVmnGImm6vrBv6CAj8eA"
)
GO_CJK_VKEY = "财务.example/日志-2026+b2e522eb+AZTrRut8dHYoSUQnSK+LuE81bcJuN+duHBxWrsAO8xSZ"
CR_MESSAGE = (
    r"malformed note: it holds a carriage return \(CR\): a note's lines end in a line feed "
    r"only \(C2SP signed-note; saved with Windows line ends\?\)"
)


@pytest.mark.parametrize("ending", ["\r\n", "\r"], ids=["CRLF", "lone CR"])
def test_a_note_with_cr_line_ends_is_refused(key: SigningKey, ending: str) -> None:
    """C2SP signed-note allows LF only, and Go's note.Open refuses a CR (issue 24): a
    checkpoint saved with Windows line ends is refused by the reader and by the
    operator's unsigned look alike, never repaired into another text than was signed."""
    note = sign_checkpoint(key, 3, ROOT)
    crlf = note.replace("\n", ending)
    for reader in (lambda n: open_checkpoint(n, key.verifier), parse_checkpoint):
        with pytest.raises(NoteError, match=CR_MESSAGE):
            reader(crlf)
        with pytest.raises(NoteError, match=CR_MESSAGE):
            reader(crlf.encode("utf-8"))
    one = note.replace("\n", "\r\n", 1)  # one CR, in the origin line
    with pytest.raises(NoteError, match=CR_MESSAGE):
        parse_checkpoint(one)


def test_a_go_made_key_with_a_cjk_name(tmp_path: Path) -> None:
    """A key name C2SP allows may be any Unicode without '+' or spaces (issue 24): a key
    Go's note package made for 财务.example/日志-2026 is read from its file, signs a
    checkpoint its Go verifier key opens, and our own keys with that name round-trip."""
    path = tmp_path / "go.key"
    path.write_bytes((GO_CJK_SKEY + "\n").encode("utf-8"))
    path.chmod(0o600)
    key = read_signing_key(path)
    assert (key.name, f"{key.key_id:08x}") == ("财务.example/日志-2026", "b2e522eb")
    assert str(key.verifier) == GO_CJK_VKEY and key.to_text() == GO_CJK_SKEY
    note = sign_checkpoint(key, 2, ROOT)
    assert note.startswith("财务.example/日志-2026\n2\n")
    assert open_checkpoint(note, VerifierKey.parse(GO_CJK_VKEY)) == TreeCheckpoint(
        "财务.example/日志-2026", 2, ROOT
    )
    ours = SigningKey.generate("财务.example/日志-2026")
    write_signing_key(tmp_path / "ours.key", ours)
    assert read_signing_key(tmp_path / "ours.key").verifier == ours.verifier
    assert (tmp_path / "ours.key").read_bytes() == (ours.to_text() + "\n").encode("utf-8")


def test_a_key_file_is_all_or_nothing(
    tmp_path: Path, key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key is written under a temporary name and linked into place (issue 24): a
    failure (here a full disk at fsync) leaves neither the key file nor the temporary
    one, so the rerun writes the key; a symbolic link at the path is never followed."""

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    path = tmp_path / "log.key"
    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", full)
        with pytest.raises(OSError, match="No space left on device"):
            write_signing_key(path, key)
    assert list(tmp_path.iterdir()) == []
    write_signing_key(path, key)
    assert [p.name for p in tmp_path.iterdir()] == ["log.key"]
    target = tmp_path / "elsewhere"
    link = tmp_path / "link.key"
    link.symlink_to(target)
    with pytest.raises(FileExistsError, match=r"^\[Errno 17\] File exists: '.+' -> '.+/link\.key'"):
        write_signing_key(link, key)
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.key", "log.key"]
