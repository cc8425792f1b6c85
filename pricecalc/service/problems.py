"""RFC 9457 problem documents (``application/problem+json``), one per problem type.

Every error the service answers is a :class:`Problem`: ``type`` (a URI naming the
problem, relative to :data:`TYPE_BASE`), ``title`` (the same for every occurrence),
``status`` and ``detail`` (this occurrence, in a clerk's words), plus ``field`` and
``value`` for invalid input (SPEC §11). Nothing here ever carries a stack trace or a token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

#: Problem type URIs are this base plus the problem's name (docs/service.md lists them).
TYPE_BASE = "https://example.invalid/pricecalc/problems/"
MEDIA_TYPE = "application/problem+json"

#: name → (status, title): every problem the service answers (SPEC §11).
TYPES: Mapping[str, tuple[int, str]] = {
    "bad-request": (400, "The request could not be read"),
    "idempotency-key-missing": (400, "No idempotency key"),
    "idempotency-key-mismatch": (400, "Idempotency-Key and request_id differ"),
    "idempotency-key-invalid": (400, "The Idempotency-Key header is not an RFC 8941 string"),
    "unauthorized": (401, "A valid bearer token is needed"),
    "forbidden": (403, "The token lacks the right for this"),
    "not-found": (404, "Not found"),
    "method-not-allowed": (405, "Method not allowed"),
    "request-in-flight": (409, "A request with this key is in flight"),
    "payload-too-large": (413, "The request body is too large"),
    "invalid-input": (422, "Invalid input: nothing was recorded"),
    "idempotency-conflict": (422, "The key holds a different request"),
    "internal-error": (500, "The server could not answer"),
    "store-unavailable": (503, "The audit store cannot be used"),
}


@attrs.frozen
class Problem(Exception):
    """A problem to answer: its type's name (a key of :data:`TYPES`), the occurrence's
    ``detail`` and any extension members (``field``, ``value``, ``seq``)."""

    name: str
    detail: str
    extensions: Mapping[str, Any] = attrs.field(factory=dict)
    headers: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def status(self) -> int:
        return TYPES[self.name][0]

    def document(self) -> dict[str, Any]:
        """The RFC 9457 JSON object."""
        status, title = TYPES[self.name]
        return {
            "type": TYPE_BASE + self.name,
            "title": title,
            "status": status,
            "detail": self.detail,
            **self.extensions,
        }


def problem_schema() -> dict[str, Any]:
    """The JSON Schema of a problem document (for the OpenAPI document)."""
    return {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "enum": [TYPE_BASE + name for name in TYPES]},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "field": {"type": "string", "description": "invalid-input: the field's path"},
            "value": {"description": "invalid-input: the value found there, as given"},
            "seq": {"type": "integer", "description": "idempotency-conflict: the recorded seq"},
        },
    }


#: The conflict a merchant-limited token is told when the key is another's (SPEC §11).
HIDDEN_CONFLICT = Problem(
    "idempotency-conflict",
    "this idempotency key is already used for another request; send this request under a new key",
)
