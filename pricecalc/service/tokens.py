"""The tokens file (SPEC §11): who may call the service, as whom, with which rights.

The file is JSON, written by ``pricecalc token add/remove`` only, readable by its owner
only (0600). It holds each token's SHA-256 digest, never the token: a token is at least
256 random bits (:func:`secrets.token_urlsafe`), printed once when it is made. A bearer
token is found by comparing its digest with every entry's in constant time
(:func:`hmac.compare_digest`), so the answer's timing says nothing about which digest
came close.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from pricecalc.errors import PricecalcError

RIGHTS = ("decide", "read", "void")
#: Bytes of randomness in a token (256 bits): secrets.token_urlsafe(32).
TOKEN_BYTES = 32
FORMAT = "pricecalc-tokens-1"


class TokensError(PricecalcError):
    """The tokens file cannot be used, or a change to it is refused; one sentence."""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@attrs.frozen
class Token:
    """One entry: its name, the operator recorded on its decisions, its rights, the one
    merchant it is limited to (or None) and its token's SHA-256 digest."""

    name: str
    operator: str
    rights: frozenset[str]
    sha256: str
    merchant_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "operator": self.operator,
            "rights": sorted(self.rights),
            "sha256": self.sha256,
        }
        if self.merchant_id is not None:
            out["merchant_id"] = self.merchant_id
        return out

    @classmethod
    def from_json(cls, item: Any, where: str) -> Token:
        if not isinstance(item, Mapping):
            raise TokensError(f"{where}: an entry is not an object")
        name, operator, sha, rights = (
            item.get("name"),
            item.get("operator"),
            item.get("sha256"),
            item.get("rights"),
        )
        merchant = item.get("merchant_id")
        if not (isinstance(name, str) and isinstance(operator, str) and isinstance(sha, str)):
            raise TokensError(f"{where}: an entry lacks its name, operator or sha256")
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise TokensError(f"{where}: entry {name!r} has no SHA-256 hex digest")
        if not isinstance(rights, list) or not set(rights) <= set(RIGHTS) or not rights:
            raise TokensError(f"{where}: entry {name!r} has rights other than {', '.join(RIGHTS)}")
        if merchant is not None and not isinstance(merchant, str):
            raise TokensError(f"{where}: entry {name!r} has a merchant_id that is not text")
        return cls(name, operator, frozenset(rights), sha, merchant)


@attrs.frozen
class Tokens:
    """The entries of a tokens file."""

    entries: tuple[Token, ...] = ()

    def find(self, token: str) -> Token | None:
        """The entry whose digest is ``token``'s, comparing every entry in constant time."""
        wanted = digest(token).encode("ascii")
        found = None
        for entry in self.entries:
            if hmac.compare_digest(wanted, entry.sha256.encode("ascii")):
                found = entry
        return found

    def named(self, name: str) -> Token | None:
        return next((t for t in self.entries if t.name == name), None)


def load(path: str | os.PathLike[str]) -> Tokens:
    """Read a tokens file; a missing file is refused (there is no unauthenticated mode)."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TokensError(
            f"there is no tokens file at {where} (make one with `pricecalc token add`)"
        ) from None
    except OSError as exc:
        raise TokensError(f"the tokens file {where} cannot be read: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise TokensError(f"the tokens file {where} is not JSON") from None
    if not isinstance(data, Mapping) or data.get("format") != FORMAT:
        raise TokensError(f"{where} is not a pricecalc tokens file")
    items = data.get("tokens")
    if not isinstance(items, list):
        raise TokensError(f"{where}: its tokens are not a list")
    return Tokens(tuple(Token.from_json(item, where) for item in items))


def save(path: str | os.PathLike[str], tokens: Iterable[Token]) -> None:
    """Write the file atomically, 0600 from its creation (never readable by others)."""
    target = Path(path)
    data = {"format": FORMAT, "tokens": [t.to_json() for t in tokens]}
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or Path("."))
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fp:
            fp.write(text)
            fp.flush()
            os.fsync(fp.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def add(
    path: str | os.PathLike[str],
    name: str,
    operator: str,
    rights: Iterable[str],
    merchant_id: str | None = None,
) -> str:
    """Add an entry and return its new token (the only time it exists in clear)."""
    wanted = frozenset(rights)
    if not wanted or not wanted <= set(RIGHTS):
        raise TokensError(f"rights must be some of {', '.join(RIGHTS)}")
    current = load(path) if Path(path).exists() else Tokens()
    if current.named(name) is not None:
        raise TokensError(
            f"a token named {name!r} is already in {path} (remove it first to replace it)"
        )
    token = secrets.token_urlsafe(TOKEN_BYTES)
    entry = Token(name, operator, wanted, digest(token), merchant_id)
    save(path, [*current.entries, entry])
    return token


def remove(path: str | os.PathLike[str], name: str) -> None:
    current = load(path)
    if current.named(name) is None:
        raise TokensError(f"there is no token named {name!r} in {path}")
    save(path, [t for t in current.entries if t.name != name])
