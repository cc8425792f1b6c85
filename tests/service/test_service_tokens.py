"""Tokens and the Idempotency-Key header (SPEC §11, issue 23): the tokens file written by
`pricecalc token add/remove`, and RFC 8941 sf-strings."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from pricecalc.cli import cli
from pricecalc.service import tokens as tokens_file
from pricecalc.service.keys import parse_sf_string
from pricecalc.service.problems import Problem


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_token_add_prints_once_and_keeps_a_digest(tmp_path: Path) -> None:
    """SPEC §11: a token of at least 256 random bits printed once; the file (0600) holds
    its SHA-256 digest only, with the operator, rights and merchant."""
    path = tmp_path / "tokens.json"
    code, out, err = run("token", "add", "shop", "--tokens", str(path), "--operator",
                         "shop-ops", "--rights", "decide,read", "--merchant", "M-1")  # fmt: skip
    assert code == 0
    token = out.strip()
    assert len(token) >= 43  # secrets.token_urlsafe(32): 256 bits
    assert err == (
        f"token 'shop' added to {path}; it is shown only now: keep it secret "
        "(send SIGHUP to a running server to load it)\n"
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert token not in text
    assert json.loads(text) == {
        "format": "pricecalc-tokens-1",
        "tokens": [
            {
                "name": "shop",
                "operator": "shop-ops",
                "rights": ["decide", "read"],
                "sha256": hashlib.sha256(token.encode()).hexdigest(),
                "merchant_id": "M-1",
            }
        ],
    }
    found = tokens_file.load(path).find(token)
    assert found is not None and found.merchant_id == "M-1"
    assert tokens_file.load(path).find(token + "x") is None


def test_two_tokens_differ(tmp_path: Path) -> None:
    """Each token is fresh randomness."""
    path = tmp_path / "tokens.json"
    first = tokens_file.add(path, "a", "op", ["read"])
    second = tokens_file.add(path, "b", "op", ["read"])
    assert first != second


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--rights", "decide,admin"), 2,
         "rights are some of decide, read, void (got 'decide,admin')"),
        (("--rights", ""), 2, "rights are some of decide, read, void (got '')"),
        (("--rights", "read", "--merchant", " "), 2, "must be 1 to 128 characters"),
    ],
)  # fmt: skip
def test_token_add_refuses(tmp_path: Path, args: tuple[str, ...], code: int, message: str) -> None:
    """Bad rights or an empty merchant are refused (exit 2), nothing written."""
    path = tmp_path / "tokens.json"
    result = CliRunner().invoke(
        cli, ["token", "add", "x", "--tokens", str(path), "--operator", "op", *args]
    )
    assert result.exit_code == code
    assert message in result.output
    assert not path.exists()


def test_token_add_same_name_and_remove(tmp_path: Path) -> None:
    """A name is one token: adding it again is refused; remove withdraws it; removing an
    unknown name is refused."""
    path = tmp_path / "tokens.json"
    tokens_file.add(path, "a", "op", ["read"])
    code, _, err = run("token", "add", "a", "--tokens", str(path), "--operator", "op",
                       "--rights", "read")  # fmt: skip
    assert code == 1
    assert f"a token named 'a' is already in {path} (remove it first to replace it)" in err
    assert run("token", "remove", "a", "--tokens", str(path))[0] == 0
    assert tokens_file.load(path).entries == ()
    code, _, err = run("token", "remove", "a", "--tokens", str(path))
    assert code == 1
    assert f"there is no token named 'a' in {path}" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "there is no tokens file at {path} (make one with `pricecalc token add`)"),
        ("{", "the tokens file {path} is not JSON"),
        ('{"format": "other"}', "{path} is not a pricecalc tokens file"),
        ('{"format": "pricecalc-tokens-1", "tokens": [{"name": "a", "operator": "o", '
         '"sha256": "00", "rights": ["read"]}]}', "{path}: entry 'a' has no SHA-256 hex digest"),
        ('{"format": "pricecalc-tokens-1", "tokens": [{"name": "a", "operator": "o", '
         f'"sha256": "{"0" * 64}", "rights": ["root"]}}]}}',
         "{path}: entry 'a' has rights other than decide, read, void"),
    ],
)  # fmt: skip
def test_unusable_tokens_file(tmp_path: Path, content: str | None, message: str) -> None:
    """A tokens file that cannot be used is one sentence naming it (serve refuses to start)."""
    path = tmp_path / "tokens.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(tokens_file.TokensError) as caught:
        tokens_file.load(path)
    assert str(caught.value) == message.format(path=path)


def test_serve_refuses_without_tokens_file(tmp_path: Path) -> None:
    """SPEC §11: no unauthenticated mode: serve without a usable tokens file exits 1."""
    result = CliRunner().invoke(
        cli, ["--audit", str(tmp_path / "a.jsonl"), "serve", "--tokens", str(tmp_path / "no")]
    )
    assert result.exit_code == 1
    assert "there is no tokens file at" in result.output
    missing = CliRunner().invoke(cli, ["--audit", str(tmp_path / "a.jsonl"), "serve"])
    assert missing.exit_code == 2 and "--tokens" in missing.output


@pytest.mark.parametrize(
    ("header", "key"),
    [('"abc"', "abc"), (' "a b" ', "a b"), ('"a\\"b"', 'a"b'), ('"a\\\\b"', "a\\b")],
)
def test_sf_string(header: str, key: str) -> None:
    """RFC 8941 §3.3.3: a quoted string; only \\" and \\\\ are escapes."""
    assert parse_sf_string(header) == key


@pytest.mark.parametrize("header", ["abc", '"abc', '"a\\b"', '"é"', '"\t"', '""', '"a"b"'])
def test_sf_string_refused(header: str) -> None:
    """Anything else is not an sf-string (400 idempotency-key-invalid)."""
    with pytest.raises(Problem) as caught:
        parse_sf_string(header)
    assert caught.value.name == "idempotency-key-invalid"
