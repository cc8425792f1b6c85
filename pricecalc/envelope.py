"""The request envelope (SPEC §8), parsed once into a frozen value and handed on.

``{"kind", "request_id"?, "merchant_id"?, "campaign"?, "input"}`` becomes an
:class:`Envelope`: the checked envelope fields, the ``input`` exactly as given (what the
rule parses) and the canonical copy of the whole request (what the decision records and
what idempotency compares, SPEC §7). Parsing walks the request once
(:func:`pricecalc.serialize.canonical_request`), refusing at any depth what SPEC §1 calls
invalid — a float, text with U+0000 or a lone surrogate, an integer beyond 64 bits,
nesting deeper than 32 levels — so no later step meets it.

**Content keys** (SPEC §7). The command line gives a request without ``request_id`` a key
derived from what it asks, never from where it stands in a file: ``content-`` and the
first 32 hex digits of SHA-256 over the canonical JSON (docs/audit.md: sorted keys, no
whitespace, UTF-8) of ``{"kind", "input", "merchant_id"?, "campaign"?}`` as canonically
given — every JSON number with a fraction written as its text (``199.9`` → ``"199.9"``),
the policy not included: the **raw-spelling** key of pricecalc 0.2, :func:`content_key`.
Since 0.3 the calculator keys such a request by its meaning instead (``content-v2-``,
:mod:`pricecalc.sameness`, SPEC §7: ``199`` and ``"199.00"`` are one key) and looks the
raw-spelling key up too, so a file decided by 0.2 records nothing new when run again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import attrs

from audit.canonical import canonical_bytes
from pricecalc.errors import InvalidInput, MissingField
from pricecalc.fields import TOO_LONG, identifier
from pricecalc.i18n import N_, msg
from pricecalc.serialize import canonical_request

#: The fields of a request envelope (SPEC §8).
ENVELOPE_FIELDS = ("kind", "request_id", "merchant_id", "campaign", "input")
_FIELD_NAMES = frozenset(ENVELOPE_FIELDS)
#: ``merchant_id`` and ``campaign`` are text of at most this many characters (SPEC §8).
MAX_LABEL = 128
CONTENT_KEY_PREFIX = "content-"


def content_key(canonical: Mapping[str, Any]) -> str:
    """The key derived from a request's canonical content (module docstring)."""
    digest = hashlib.sha256(canonical_bytes(canonical)).hexdigest()
    return f"{CONTENT_KEY_PREFIX}{digest[:32]}"


def _text(name: str, value: Any, limit: int) -> str:
    """An envelope text field: text, not blank."""
    if not isinstance(value, str):
        raise InvalidInput(name, value, N_("must be text"))
    text = str(value)
    if not text.strip():
        raise InvalidInput(name, value, N_("must not be empty"))
    if len(text) > limit:
        raise InvalidInput(
            name,
            value,
            msg(TOO_LONG, limit=limit, count=len(text)),
        )
    return text


def _label(name: str, value: Any) -> str:
    """``merchant_id`` (text, an identifier per SPEC §1) or ``campaign`` (text)."""
    text = _text(name, value, MAX_LABEL)
    return identifier(text, name) if name == "merchant_id" else text


@attrs.frozen
class Envelope:
    """One parsed request. ``input`` is the request's own ``input`` (the rule reads it);
    ``canonical`` is the plain-JSON copy of ``kind``, ``input`` and the optional
    ``merchant_id``/``campaign`` — the request as a decision records it and as idempotency
    compares it. ``aliases`` are earlier keys under which the same request may already be
    recorded (the line-number keys of batch files decided by pricecalc 0.1)."""

    kind: str
    input: Mapping[str, Any]
    canonical: Mapping[str, Any]
    request_id: str | None = None
    merchant_id: str | None = None
    campaign: str | None = None
    aliases: tuple[str, ...] = ()
    #: True when ``request_id`` was derived from the content (:meth:`keyed`): the
    #: calculator then keys it by meaning (``content-v2-``, :mod:`pricecalc.sameness`),
    #: the raw-spelling key an alias.
    content_keyed: bool = False
    #: The request as its rule reads it (:func:`pricecalc.sameness.normal_form`), once
    #: the calculator has worked it out.
    normal: Mapping[str, Any] | None = None

    @classmethod
    def parse(cls, request: Any) -> Envelope:
        """Check a SPEC §8 request once. Raises :class:`~pricecalc.errors.InvalidInput`
        naming the field (``TypeError`` for a Python float anywhere)."""
        if isinstance(request, Envelope):
            return request
        if type(request) is not dict and not isinstance(request, Mapping):
            raise InvalidInput("request", request, N_("must be an object with kind and input"))
        data = canonical_request(request)
        kind = data.get("kind")
        if kind is None:
            raise MissingField("kind")
        if not isinstance(kind, str) or not kind.strip():
            raise InvalidInput("kind", kind, N_("must be the name of a decision kind"))
        request_id = data.get("request_id")
        if request_id is not None:
            # Text or a JSON integer (its decimal text), an identifier per SPEC §1, §8: the
            # walk above wrote a JSON number 1.5 as text, so the given value is checked.
            given = request.get("request_id")
            if not isinstance(given, str) and (
                isinstance(given, bool) or not isinstance(given, int)
            ):
                raise InvalidInput(
                    "request_id", given, N_("must be text or a whole number (a JSON integer)")
                )
            request_id = identifier(request_id, "request_id")
        if data.get("input") is None:
            raise MissingField("input")
        if not _FIELD_NAMES.issuperset(data):
            name = next(name for name in data if name not in _FIELD_NAMES)
            raise InvalidInput(
                name,
                data[name],
                N_(
                    "is not a request field (expected kind, request_id, merchant_id, "
                    "campaign, input)"
                ),
            )
        labels = {}
        if "merchant_id" in data or "campaign" in data:
            for name in ("merchant_id", "campaign"):
                value = data.get(name)
                if value is not None:
                    labels[name] = _label(name, value)
        raw_input = request["input"]
        if type(raw_input) is not dict and not isinstance(raw_input, Mapping):
            raise InvalidInput("input", data["input"], N_("must be an object"))
        kind = kind.strip()
        canonical: dict[str, Any] = {"kind": kind, "input": data["input"], **labels}
        return cls(
            kind=kind,
            input=raw_input,
            canonical=canonical,
            request_id=request_id,
            merchant_id=labels.get("merchant_id"),
            campaign=labels.get("campaign"),
        )

    def keyed(self, *, aliases: tuple[str, ...] = ()) -> Envelope:
        """This request with a key: its own ``request_id``, else its :func:`content_key`
        (the command line's rule, SPEC §7); ``aliases`` are earlier keys to look up too."""
        if self.request_id is not None:
            return self
        return attrs.evolve(
            self, request_id=content_key(self.canonical), aliases=aliases, content_keyed=True
        )

    def with_labels(self, merchant_id: str | None, campaign: str | None) -> Envelope:
        """This request with ``merchant_id``/``campaign`` filled in where it names none
        (a batch file's ``--merchant``/``--campaign``); one it names differently is
        refused, naming the field."""
        changes: dict[str, Any] = {}
        canonical = dict(self.canonical)
        for name, given in (("merchant_id", merchant_id), ("campaign", campaign)):
            if given is None:
                continue
            value = _label(name, given)
            own = getattr(self, name)
            if own is None:
                changes[name] = canonical[name] = value
            elif own != value:
                option = "--merchant" if name == "merchant_id" else "--campaign"
                said = msg("differs from {option} {value!r}", option=option, value=value)
                raise InvalidInput(name, own, said)
        if not changes:
            return self
        return attrs.evolve(self, canonical=canonical, normal=None, **changes)

    def describe_difference(self, recorded: Mapping[str, Any]) -> str | None:
        """What differs between this request and a recorded one (their canonical forms,
        compared as canonical JSON: ``1`` is not ``true``), or None when they are the same
        request."""
        if canonical_bytes(recorded) == canonical_bytes(self.canonical):
            return None
        if recorded.get("kind") != self.kind:
            return f"kind {recorded.get('kind')!r} recorded, {self.kind!r} asked"
        for name in ("merchant_id", "campaign"):
            if recorded.get(name) != self.canonical.get(name):
                return f"{name} {recorded.get(name)!r} recorded, {self.canonical.get(name)!r} asked"
        return "another input"


__all__ = ["CONTENT_KEY_PREFIX", "ENVELOPE_FIELDS", "MAX_LABEL", "Envelope", "content_key"]
