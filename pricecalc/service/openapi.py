"""The OpenAPI 3.1 document (``GET /openapi.json``), built from the installed rules.

Each rule's ``input`` and result come from its own declarations
(:attr:`pricecalc.registry.Rule.inputs` / ``results``, :class:`pricecalc.fields.Shape`):
the same declaration whose field names the engine checks a request's ``input`` against,
and whose types mirror the :class:`pricecalc.fields.Fields` accessor the parser calls
(tests/service/test_service_openapi.py holds the two together). A kind that declares no shape —
a stranger's plugin written before declarations — is shown as an open object, and says
so. What JSON Schema cannot express (exact fen, NFKC look-alikes, nesting depth) is in
the descriptions.
"""

from __future__ import annotations

from typing import Any

from pricecalc.envelope import MAX_LABEL
from pricecalc.fields import MAX_IDENTIFIER, REQUEST_CHECKS
from pricecalc.plugins import core_version
from pricecalc.registry import Registry, Rule
from pricecalc.service.problems import MEDIA_TYPE, problem_schema

_UNDECLARED = "This kind's rule does not declare its fields; its parser checks them."


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _label(limit: int, what: str) -> dict[str, Any]:
    return {
        "anyOf": [
            {"type": "string", "pattern": r"\S", "maxLength": limit},
            {"type": "null"},
        ],
        "description": what,
    }


def _request_id(allow_null: bool = True) -> dict[str, Any]:
    options: list[dict[str, Any]] = [
        {"type": "string", "pattern": r"\S", "maxLength": MAX_IDENTIFIER},
        {"type": "integer"},
    ]
    if allow_null:
        options.append({"type": "null"})
    return {
        "anyOf": options,
        "description": "The idempotency key (SPEC §7), unless the Idempotency-Key header "
        "gives it; both given must be equal after SPEC §1 normalisation.",
    }


def _kind_pattern(kind: str) -> str:
    escaped = "".join("\\" + c if not (c.isalnum() or c == "_") else c for c in kind)
    return rf"^\s*{escaped}\s*$"


def _name(kind: str) -> str:
    return "".join(part.capitalize() for part in kind.replace("-", "_").split("_"))


def kind_schemas(kind: str, rule: Rule) -> dict[str, dict[str, Any]]:
    """The input, result, request and decision schemas of one kind."""
    name = _name(kind)
    if rule.inputs is not None:
        inputs = rule.inputs.json_schema()
    else:
        inputs = {"type": "object", "description": _UNDECLARED}
    if rule.results is not None:
        results = rule.results.json_schema()
        results["additionalProperties"] = True  # a newer rule version may add figures
    else:
        results = {"type": "object", "description": _UNDECLARED}
    request = {
        "type": "object",
        "required": ["kind", "input"],
        "properties": {
            "kind": {"type": "string", "pattern": _kind_pattern(kind)},
            "request_id": _request_id(),
            "merchant_id": _label(MAX_LABEL, "The merchant (recorded, searchable)."),
            "campaign": _label(MAX_LABEL, "The campaign (recorded, searchable)."),
            "input": _ref(f"{name}Input"),
        },
        "additionalProperties": False,
        "description": f"{rule.description} {REQUEST_CHECKS}".strip(),
    }
    decision = {
        "type": "object",
        "required": ["request_id", "kind", "status", "result", "reasons"],
        "properties": {
            "request_id": {"type": "string"},
            "kind": {"const": kind},
            "status": {"enum": ["approved", "rejected"]},
            "result": _ref(f"{name}Result"),
            "reasons": {"type": "array", "items": _ref("Reason")},
            "audit": _ref("AuditRef"),
            "replayed": {"const": True},
            "voided_by": {"type": "integer"},
            "merchant_id": {"type": "string"},
            "campaign": {"type": "string"},
        },
    }
    return {
        f"{name}Input": inputs,
        f"{name}Result": results,
        f"{name}Request": request,
        f"{name}Decision": decision,
    }


def _responses(*codes: int, ok: dict[str, Any] | None = None) -> dict[str, Any]:
    """The documented answers: ``ok`` for the 2xx codes, a problem document for the rest
    and for 503 (the store cannot be used), which any call touching it may answer."""
    out: dict[str, Any] = {}
    for code in sorted({*codes, 503}):
        if code < 300 and ok is not None:
            out[str(code)] = ok
        else:
            out[str(code)] = {
                "description": "a problem document (RFC 9457)",
                "content": {MEDIA_TYPE: {"schema": _ref("Problem")}},
            }
    return out


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def openapi_document(registry: Registry) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document for the rules in ``registry``."""
    schemas: dict[str, Any] = {
        "Problem": problem_schema(),
        "Reason": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        },
        "AuditRef": {
            "type": "object",
            "required": ["seq", "hash"],
            "properties": {"seq": {"type": "integer", "minimum": 1}, "hash": {"type": "string"}},
        },
        "BatchRow": {
            "type": "object",
            "description": "One line's answer (SPEC §8): a decision, or an invalid or "
            "conflict row naming the line.",
        },
        "Health": {"type": "object", "properties": {"status": {"type": "string"}}},
    }
    requests, decisions = [], []
    for kind in sorted(registry.rules):
        found = registry.rule(kind)
        if found is None:
            continue
        schemas.update(kind_schemas(kind, found[1]))
        requests.append(_ref(f"{_name(kind)}Request"))
        decisions.append(_ref(f"{_name(kind)}Decision"))
    schemas["DecisionRequest"] = {"anyOf": requests}
    schemas["Decision"] = {"anyOf": decisions}
    void_input = _ref(f"{_name('void')}Input") if "void" in registry.rules else {"type": "object"}
    problem = _responses
    bearer: list[dict[str, list[str]]] = [{"bearer": []}]
    key_header = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "draft-ietf-httpapi-idempotency-key-header: an RFC 8941 sf-string "
        '(a quoted string such as "order-1001-1").',
        "schema": {"type": "string"},
    }
    decided = {
        "description": "the decision (201: recorded now; 200: replayed)",
        "content": _json_content(_ref("Decision")),
    }
    json_ok = {"description": "JSON", "content": _json_content({"type": "object"})}
    paths: dict[str, Any] = {
        "/v1/decisions": {
            "post": {
                "summary": "Decide one SPEC §8 request",
                "security": bearer,
                "parameters": [key_header],
                "requestBody": {
                    "required": True,
                    "content": _json_content(_ref("DecisionRequest")),
                },
                "responses": problem(200, 201, 400, 401, 403, 409, 413, 422, ok=decided),
            }
        },
        "/v1/decisions/{request_id}": {
            "get": {
                "summary": "The recorded decision for a key",
                "security": bearer,
                "parameters": [
                    {
                        "name": "request_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": problem(
                    200,
                    401,
                    403,
                    404,
                    ok={"description": "the decision", "content": _json_content(_ref("Decision"))},
                ),
            }
        },
        "/v1/batches": {
            "post": {
                "summary": "Decide a JSON Lines body; rows stream back in order",
                "security": bearer,
                "requestBody": {
                    "required": True,
                    "content": {"application/jsonl": {"schema": {"type": "string"}}},
                },
                "responses": problem(
                    200,
                    401,
                    403,
                    413,
                    ok={
                        "description": "JSON Lines rows (SPEC §8)",
                        "content": {"application/jsonl": {"schema": {"type": "string"}}},
                    },
                ),
            }
        },
        "/v1/voids": {
            "post": {
                "summary": "Void an approved decision (SPEC §7)",
                "security": bearer,
                "parameters": [key_header],
                "requestBody": {"required": True, "content": _json_content(void_input)},
                "responses": problem(200, 201, 400, 401, 403, 404, 409, 413, 422, ok=decided),
            }
        },
        "/v1/records/{seq}/proof": {
            "get": {
                "summary": "The SPEC §9 inclusion proof of a record",
                "security": bearer,
                "parameters": [
                    {
                        "name": "seq",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 1},
                    },
                    {
                        "name": "size",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1},
                    },
                ],
                "responses": problem(200, 400, 401, 403, 404, ok=json_ok),
            }
        },
        "/v1/consistency": {
            "get": {
                "summary": "The SPEC §9 consistency proof between two tree sizes",
                "security": bearer,
                "parameters": [
                    {
                        "name": "from",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 0},
                    },
                    {
                        "name": "to",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 0},
                    },
                ],
                "responses": problem(200, 400, 401, 403, ok=json_ok),
            }
        },
        "/v1/checkpoint": {
            "get": {
                "summary": "The latest signed checkpoint (C2SP tlog-checkpoint)",
                "security": bearer,
                "responses": problem(
                    200,
                    401,
                    403,
                    404,
                    ok={
                        "description": "the signed note",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                ),
            }
        },
        "/healthz": {
            "get": {
                "summary": "Alive",
                "responses": {
                    "200": {"description": "alive", "content": _json_content(_ref("Health"))}
                },
            }
        },
        "/readyz": {
            "get": {
                "summary": "Ready: the store answers and accepts writes",
                "responses": problem(
                    200,
                    503,
                    ok={"description": "ready", "content": _json_content(_ref("Health"))},
                ),
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text format)",
                "responses": {
                    "200": {
                        "description": "metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pricecalc decision service",
            "version": core_version(),
            "description": "SPEC §11: the SPEC §8 contract over HTTP. Every decision is "
            "durable before its response. Errors are RFC 9457 problem documents.",
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
