"""Idempotency keys: the ``Idempotency-Key`` header (draft-ietf-httpapi-idempotency-key-
header: an RFC 8941 sf-string), its agreement with the body's ``request_id`` (SPEC §11),
and the keys in flight in this process (409 while one is).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from pricecalc.errors import InvalidInput
from pricecalc.fields import identifier, stored_identifier
from pricecalc.service.problems import Problem

#: An sf-string without escapes, the usual header (``"order-1001-1"``): read at once.
_UNESCAPED_SF_STRING = re.compile(r' *"([\x20\x21\x23-\x5b\x5d-\x7e]*)" *')


def parse_sf_string(value: str) -> str:
    """An RFC 8941 §3.3.3 sf-string: ``"`` … ``"``, printable ASCII, ``\\"`` and ``\\\\``
    the only escapes (§4.2.5). Surrounding spaces are allowed (§4.2). Raises
    :class:`Problem` ``idempotency-key-invalid``."""
    unescaped = _UNESCAPED_SF_STRING.fullmatch(value)
    if unescaped is not None and unescaped[1].strip():
        return unescaped[1]
    text = value.strip(" ")
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise Problem(
            "idempotency-key-invalid",
            'the Idempotency-Key header must be a quoted string, such as "order-1001-1"',
        )
    out: list[str] = []
    body = text[1:-1]
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\":
            if index + 1 >= len(body) or body[index + 1] not in '"\\':
                raise Problem(
                    "idempotency-key-invalid",
                    'the Idempotency-Key header may escape only " and \\ with a backslash',
                )
            out.append(body[index + 1])
            index += 2
            continue
        if char == '"' or not (0x20 <= ord(char) <= 0x7E):
            raise Problem(
                "idempotency-key-invalid",
                "the Idempotency-Key header holds a character that is not printable ASCII "
                "or an unescaped quote",
            )
        out.append(char)
        index += 1
    if not "".join(out).strip():
        raise Problem("idempotency-key-invalid", "the Idempotency-Key header is empty")
    return "".join(out)


def header_key(value: str) -> str:
    """The key an ``Idempotency-Key`` header names: an sf-string (:func:`parse_sf_string`)
    held to SPEC §1's identifier rules as a body's ``request_id`` is (at most 128
    characters, never Excel's scientific notation), in its §1 form. Raises
    :class:`Problem` ``idempotency-key-invalid``."""
    text = parse_sf_string(value)
    try:
        return identifier(text, "Idempotency-Key")
    except InvalidInput as exc:
        detail = f"the Idempotency-Key header: {exc.problem}"
        raise Problem("idempotency-key-invalid", detail) from None


def normal_key(key: str) -> str:
    """A key compared as SPEC §1 compares identifiers: NFKC, surrounding whitespace off
    (:func:`pricecalc.fields.stored_identifier`, the one reading of a recorded id)."""
    return str(stored_identifier(key))


def agreed_key(header: str | None, body: str | None) -> str:
    """The request's key: the header's, the body's ``request_id`` (as the envelope read
    it: an integer is its decimal text), or both when equal after normalisation
    (SPEC §11)."""
    given = None if header is None else header_key(header)
    if given is None and body is None:
        raise Problem(
            "idempotency-key-missing",
            "name the request: send an Idempotency-Key header or a request_id",
        )
    if given is not None and body is not None and normal_key(given) != normal_key(body):
        raise Problem(
            "idempotency-key-mismatch",
            "the Idempotency-Key header and the body's request_id name different requests",
        )
    return given if given is not None else str(body)


class InFlight:
    """The keys being decided in this process: a second request with one of them is
    answered 409 until the first is done (the draft's "request in progress")."""

    def __init__(self) -> None:
        self._keys: set[str] = set()
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        key = normal_key(key)
        with self._lock:
            if key in self._keys:
                raise Problem(
                    "request-in-flight",
                    "a request with this key is being decided; retry once it is answered",
                    headers={"Retry-After": "1"},
                )
            self._keys.add(key)
        try:
            yield
        finally:
            with self._lock:
                self._keys.discard(key)
