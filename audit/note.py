"""Signed checkpoints: C2SP ``signed-note`` with Ed25519, C2SP ``tlog-checkpoint`` bodies.

Formats, to the byte (docs/audit.md has a worked example):

* **Verifier key** (Go's ``golang.org/x/mod/sumdb/note`` form, public):
  ``<name>+<key ID, 8 lowercase hex digits>+<base64(0x01 ‖ 32-byte Ed25519 public key)>``.
* **Signing key** (the same package's signer key form, secret):
  ``PRIVATE+KEY+<name>+<key ID>+<base64(0x01 ‖ 32-byte Ed25519 seed)>``. A key file holds
  that one line and a newline, mode 0600.
* **Key ID** = the first 4 bytes (big-endian) of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key).
* **Note** = text ending in a newline, a blank line, then one or more signature lines
  ``— <name> <base64(key ID ‖ 64-byte Ed25519 signature of the text)>`` (em dash U+2014,
  space). UTF-8, no control characters other than newline.
* **Checkpoint** body = ``<origin>\\n<tree size>\\n<base64(root hash)>\\n`` (and optional
  extension lines, which we never write). The origin is the key's name.

Opening a note (:func:`open_note`) follows signed-note: lines from unknown keys (another
name, or the same name with another key ID — a witness, an old key) are ignored; every
line from the verifier's own key must verify, or the whole note is refused; at least one
must. Key names are non-empty and hold neither ``+`` nor any Unicode space.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import stat
from collections.abc import Sequence

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.merkle import HASH_SIZE

__all__ = [
    "ALG_ED25519",
    "NoteError",
    "OpenedNote",
    "SigningKey",
    "TreeCheckpoint",
    "VerifierKey",
    "check_key_name",
    "key_id",
    "load_verifier_key",
    "open_checkpoint",
    "open_note",
    "parse_checkpoint",
    "read_signing_key",
    "sign_checkpoint",
    "sign_note",
    "write_signing_key",
]

ALG_ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "
MAX_SIGNATURES = 100
_SIZE = re.compile(r"0|[1-9][0-9]*")
_HEX8 = re.compile(r"[0-9a-f]{8}")


class NoteError(ValueError):
    """A note, checkpoint or key that is malformed or does not verify (says which)."""


def check_key_name(name: str) -> None:
    """Refuse a key name signed-note does not allow: empty, ``+``, a space, a control
    character, or text that is not valid Unicode. Raises :class:`ValueError`."""
    if not isinstance(name, str) or not name:
        raise ValueError("a key name must be non-empty text")
    for ch in name:
        if ch == "+" or ch.isspace() or ord(ch) < 0x20 or 0xD800 <= ord(ch) <= 0xDFFF:
            raise ValueError(
                f"the key name {name!r} may not contain {ch!r}: a signed-note key name holds "
                "neither '+' nor spaces nor control characters (e.g. finance.example/log-2026)"
            )


def key_id(name: str, public_key: bytes) -> int:
    """SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4] as a big-endian integer."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key)
    return int.from_bytes(digest.digest()[:4], "big")


def _b64decode(text: str, what: str) -> bytes:
    """Strict RFC 4648 base64: the alphabet, the padding, and the canonical encoding (the
    unused low bits of the last character zero), so one text has one reading."""
    try:
        raw = text.encode("ascii")
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise NoteError(f"{what} is not valid base64") from exc
    if base64.b64encode(data) != raw:
        raise NoteError(f"{what} is not canonical base64")
    return data


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@attrs.frozen
class VerifierKey:
    """A public key that checks one log's checkpoints: ``name+<key ID>+<key data>``."""

    name: str
    key_id: int
    public_key: bytes = attrs.field(repr=False)

    @classmethod
    def from_public_key(cls, name: str, public_key: bytes) -> VerifierKey:
        check_key_name(name)
        if len(public_key) != 32:
            raise NoteError(f"an Ed25519 public key has 32 bytes, not {len(public_key)}")
        return cls(name, key_id(name, public_key), public_key)

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """Read ``name+hash+keydata``; refuses a malformed key or a key ID that does not
        match the name and key (a key copied wrongly)."""
        parts = text.strip().split("+", 2)  # the base64 key data may itself hold '+'
        if len(parts) != 3:
            raise NoteError(
                "a verifier key is <name>+<8 hex digits>+<base64 key>, e.g. "
                "finance.example/log+1a2b3c4d+AQ…"
            )
        name, hash16, key64 = parts
        try:
            check_key_name(name)
        except ValueError as exc:
            raise NoteError(str(exc)) from exc
        if not _HEX8.fullmatch(hash16):
            raise NoteError(f"the key ID {hash16!r} of a verifier key is 8 lowercase hex digits")
        data = _b64decode(key64, "the verifier key's key data")
        if len(data) != 33 or data[0] != ALG_ED25519:
            raise NoteError("the verifier key is not an Ed25519 key (0x01 and 32 bytes)")
        key = cls(name, int(hash16, 16), data[1:])
        if key_id(name, data[1:]) != key.key_id:
            raise NoteError(
                f"the verifier key's ID {hash16} does not match its name and key "
                "(the key was copied wrongly or altered)"
            )
        return key

    def __str__(self) -> str:
        return f"{self.name}+{self.key_id:08x}+{_b64(bytes([ALG_ED25519]) + self.public_key)}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


class SigningKey:
    """An Ed25519 signing key named after the log (keep it out of the store: SPEC §9)."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        check_key_name(name)
        self.name = name
        self._private = private_key
        public = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.verifier = VerifierKey(name, key_id(name, public), public)

    @property
    def key_id(self) -> int:
        return self.verifier.key_id

    def __repr__(self) -> str:
        return f"SigningKey({self.name!r}, key ID {self.key_id:08x})"

    @classmethod
    def generate(cls, name: str) -> SigningKey:
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def parse(cls, text: str) -> SigningKey:
        """Read ``PRIVATE+KEY+name+hash+keydata`` (Go's signer key encoding)."""
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("a signing key is PRIVATE+KEY+<name>+<8 hex digits>+<base64 key>")
        name, hash16, key64 = parts[2:]
        try:
            check_key_name(name)
        except ValueError as exc:
            raise NoteError(str(exc)) from exc
        if not _HEX8.fullmatch(hash16):
            raise NoteError("the key ID of a signing key is 8 lowercase hex digits")
        data = _b64decode(key64, "the signing key's key data")
        if len(data) != 33 or data[0] != ALG_ED25519:
            raise NoteError("the signing key is not an Ed25519 key (0x01 and a 32-byte seed)")
        key = cls(name, Ed25519PrivateKey.from_private_bytes(data[1:]))
        if key.key_id != int(hash16, 16):
            raise NoteError("the signing key's ID does not match its name and key")
        return key

    def to_text(self) -> str:
        seed = self._private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return (
            f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{_b64(bytes([ALG_ED25519]) + seed)}"
        )

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def signature_line(self, text: str) -> str:
        """``— <name> <base64(key ID ‖ signature)>`` for the note text ``text``."""
        signature = self.key_id.to_bytes(4, "big") + self.sign(text.encode("utf-8"))
        return f"{SIGNATURE_PREFIX}{self.name} {_b64(signature)}\n"


# -- notes ------------------------------------------------------------------------------------


def _check_text(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NoteError(f"{what} is not valid UTF-8 (a lone surrogate)") from exc
    if "\r" in text:
        raise NoteError(
            f"{what} holds a carriage return (CR): a note's lines end in a line feed only "
            "(C2SP signed-note; saved with Windows line ends?)"
        )
    for ch in text:
        if ord(ch) < 0x20 and ch != "\n":
            raise NoteError(f"{what} holds the control character {ch!r}")


def sign_note(text: str, *keys: SigningKey) -> str:
    """The signed note of ``text`` (which must end in a newline) by ``keys``."""
    if not text.endswith("\n") or not keys:
        raise NoteError("a note's text ends in a newline and is signed by at least one key")
    _check_text(text, "the note text")
    return text + "\n" + "".join(key.signature_line(text) for key in keys)


@attrs.frozen
class OpenedNote:
    """A note whose signature by ``verifier`` checked out; ``others`` are the lines of keys
    it did not know (ignored, as signed-note says: a witness, an old key)."""

    text: str
    verifier: VerifierKey
    others: tuple[str, ...]


def _decode(note: str | bytes) -> str:
    if isinstance(note, bytes):
        try:
            return note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError("malformed note: not valid UTF-8") from exc
    return note


def open_note(note: str | bytes, verifier: VerifierKey) -> OpenedNote:
    """Check a signed note against ``verifier``; return its text (signed-note rules).

    Raises :class:`NoteError`: malformed (layout, base64, control characters, more than
    100 signatures), a signature line from ``verifier``'s key that does not verify, or no
    signature from it at all.
    """
    msg = _decode(note)
    _check_text(msg, "malformed note: it")
    split = msg.rfind("\n\n")
    if split < 0:
        raise NoteError("malformed note: no blank line before the signatures")
    text, block = msg[: split + 1], msg[split + 2 :]
    if not block or not block.endswith("\n"):
        raise NoteError("malformed note: no signature lines, or the last one has no newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"malformed note: more than {MAX_SIGNATURES} signatures")
    message = text.encode("utf-8")
    verified = 0
    others: list[str] = []
    for line in lines:
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError(f"malformed note: a signature line must start with '— ': {line!r}")
        name, _, b64 = line[len(SIGNATURE_PREFIX) :].partition(" ")
        try:
            check_key_name(name)
        except ValueError as exc:
            raise NoteError(f"malformed note: {exc}") from exc
        raw = _b64decode(b64, f"the signature of {name}") if b64 else b""
        if len(raw) < 5:
            raise NoteError(f"malformed note: the signature line of {name} is too short")
        ident = int.from_bytes(raw[:4], "big")
        if name != verifier.name or ident != verifier.key_id:
            others.append(line)  # an unknown key: ignored, even if it shares name or ID
            continue
        if not verifier.verify(message, raw[4:]):
            raise NoteError(
                f"signature: the signature line of {verifier.name}+{verifier.key_id:08x} "
                "does not verify (the text or the signature was altered)"
            )
        verified += 1
    if not verified:
        raise NoteError(
            f"signature: the note is not signed by {verifier.name}+{verifier.key_id:08x} "
            "(signed by another key, or a key with the same name that is not ours)"
        )
    return OpenedNote(text, verifier, tuple(others))


# -- checkpoints -------------------------------------------------------------------------


@attrs.frozen
class TreeCheckpoint:
    """A C2SP tlog-checkpoint body: origin, tree size, root hash (and extension lines)."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        lines = [self.origin, str(self.size), _b64(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> TreeCheckpoint:
        if not text.endswith("\n"):
            raise NoteError("checkpoint: the text must end in a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3 or not all(lines):
            raise NoteError("checkpoint: at least three non-empty lines (origin, size, root)")
        origin, size, root64, *extensions = lines
        if not _SIZE.fullmatch(size):
            raise NoteError(f"checkpoint: the tree size {size!r} is not a decimal number")
        root = _b64decode(root64, "checkpoint: the root hash")
        if len(root) != HASH_SIZE:
            raise NoteError(f"checkpoint: the root hash has {len(root)} bytes, not {HASH_SIZE}")
        return cls(origin, int(size), root, tuple(extensions))


def sign_checkpoint(key: SigningKey, size: int, root: bytes) -> str:
    """The signed checkpoint (a note) of a tree of ``size`` leaves with ``root``; the origin
    is the key's name."""
    if size < 0 or len(root) != HASH_SIZE:
        raise ValueError("a checkpoint needs a size >= 0 and a 32-byte root")
    return sign_note(TreeCheckpoint(key.name, size, root).text(), key)


def open_checkpoint(note: str | bytes, verifier: VerifierKey) -> TreeCheckpoint:
    """Verify a signed checkpoint against ``verifier`` and return it; its origin must be
    the key's name (SPEC §9). Raises :class:`NoteError`."""
    opened = open_note(note, verifier)
    checkpoint = TreeCheckpoint.parse(opened.text)
    if checkpoint.origin != verifier.name:
        raise NoteError(
            f"checkpoint: its origin {checkpoint.origin!r} is not the log "
            f"{verifier.name!r} of the verifier key"
        )
    return checkpoint


def parse_checkpoint(note: str | bytes) -> TreeCheckpoint:
    """The checkpoint inside a signed note, **without** checking any signature (for the
    log's own operator; a reader must use :func:`open_checkpoint`)."""
    msg = _decode(note)
    _check_text(msg, "malformed note: it")
    split = msg.rfind("\n\n")
    if split < 0:
        raise NoteError("malformed note: no blank line before the signatures")
    return TreeCheckpoint.parse(msg[: split + 1])


# -- key files ---------------------------------------------------------------------------


def write_signing_key(path: str | os.PathLike[str], key: SigningKey) -> None:
    """Write a new key file: mode 0600, never overwriting (FileExistsError), all or nothing.

    The key is written and fsynced under a temporary name in the same folder (created
    0600, exclusively) and then hard-linked to ``path``, which fails if anything — a file,
    a symbolic link — is already there; the temporary name is removed either way. A
    failure at any step leaves no file at ``path``, so a rerun is not told "already
    exists" about an empty key. The key's name may be any signed-note name (UTF-8)."""
    target = os.fspath(path)
    data = (key.to_text() + "\n").encode("utf-8")
    folder = os.path.dirname(target) or "."
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        temporary = os.path.join(folder, f".{os.path.basename(target)}.{os.urandom(6).hex()}.tmp")
        try:
            fd = os.open(temporary, flags, 0o600)
        except FileExistsError:
            continue
        break
    else:  # pragma: no cover - 100 collisions of 48 random bits
        raise FileExistsError(f"cannot make a temporary file beside {target}")
    try:
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            while data:
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(temporary, target)  # never over an existing file, never through a link
    finally:
        os.unlink(temporary)
    _sync_folder(folder)


def _sync_folder(folder: str) -> None:
    """fsync a folder so a new name in it survives a crash (where the system allows)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_signing_key(path: str | os.PathLike[str]) -> SigningKey:
    """Read a key file; refuse one that others than its owner may read (as ssh does). The
    file is UTF-8 (a key name may be non-ASCII, as Go's note package allows)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise NoteError(
                f"the signing key {os.fspath(path)} may be read by others "
                f"(mode {stat.S_IMODE(mode):04o}); make it readable by its owner only: "
                f"chmod 600 {os.fspath(path)}"
            )
        raw = os.read(fd, 4096)
    finally:
        os.close(fd)
    try:
        return SigningKey.parse(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise NoteError(f"{os.fspath(path)} is not a signing key") from exc


def load_verifier_key(value: str) -> VerifierKey:
    """A verifier key given as its text or as the path of a file holding it."""
    text = value.strip()
    if "+" not in text and os.path.exists(value):
        with open(value, encoding="utf-8") as fh:
            text = fh.read().strip()
    return VerifierKey.parse(text)


def signature_names(note: str) -> Sequence[str]:
    """The key names on a note's signature lines (for messages)."""
    split = note.rfind("\n\n")
    lines = note[split + 2 :].splitlines() if split >= 0 else []
    return [line[len(SIGNATURE_PREFIX) :].partition(" ")[0] for line in lines]
