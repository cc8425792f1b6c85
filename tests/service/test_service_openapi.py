"""The OpenAPI 3.1 document and the rules' declared shapes (SPEC §11, issue 23).

Every worked example validates against the served schema and is accepted by the parser;
every invalid input the schema can express (types, required fields, patterns, unknown
fields) is refused by both — so the schema, made from the rule's declaration, says what
the parser does.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from service_support import Env

from pricecalc.engine import Engine
from pricecalc.envelope import Envelope
from pricecalc.errors import InvalidInput
from pricecalc.plugins import load_registry
from pricecalc.policy import Policy
from pricecalc.serialize import loads
from pricecalc.service.openapi import openapi_document

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 11, 12, 0, tzinfo=UTC)
REGISTRY = load_registry(Policy(), ())
DOCUMENT = openapi_document(REGISTRY)
ENGINE = Engine(REGISTRY, Policy())

#: SPEC §2's worked example (the same as tests/test_subsidy.py's).
SPEC_SPLIT: dict[str, Any] = {
    "list_price": "199.00",
    "registration_price": "169.00",
    "subsidy_price": "149.00",
    "floor_price": "139.00",
    "cost_price": "120.00",
    "lowest_price_30d": "175.00",
    "other_platform_prices": [{"platform": "拼多多", "price": "172.00"}],
    "quantity": 2,
}


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator({**DOCUMENT, "$ref": f"#/components/schemas/{name}"})


REQUEST = validator("DecisionRequest")


def parser_accepts(request: Any) -> bool:
    try:
        ENGINE.evaluate(Envelope.parse(request), now=NOW)
    except InvalidInput:
        return False
    return True


def example_requests() -> list[Any]:
    """SPEC §2's example in each of its spellings, and every request line of the
    bundled examples the parser accepts (every kind they use)."""
    found: list[Any] = [
        {"kind": "subsidy_split", "input": SPEC_SPLIT},
        {"kind": "subsidy_split", "request_id": 7, "merchant_id": "M-1", "campaign": "双11",
         "input": {**SPEC_SPLIT, "list_price": loads("199.9"), "quantity": "2"}},
        {"kind": "subsidy_split", "input": {**SPEC_SPLIT, "subsidy_price": None,
                                            "platform_subsidy": " 20 "}},
    ]  # fmt: skip
    for name in ("campaign.jsonl", "quickstart.jsonl"):
        for line in (ROOT / "examples" / name).read_text(encoding="utf-8").splitlines():
            try:
                request = loads(line)
            except ValueError:
                continue
            if parser_accepts(request):
                found.append(request)
    return found


def test_document_is_openapi_31_with_every_kind() -> None:
    """SPEC §11: OpenAPI 3.1 with every installed kind's input and result."""
    assert DOCUMENT["openapi"] == "3.1.0"
    schemas = DOCUMENT["components"]["schemas"]
    for kind in REGISTRY.rules:
        name = "".join(part.capitalize() for part in kind.split("_"))
        assert f"{name}Input" in schemas and f"{name}Result" in schemas
    assert schemas["SubsidySplitInput"]["required"] == [
        "list_price", "registration_price", "floor_price", "cost_price"
    ]  # fmt: skip
    assert "exact fen" in schemas["SubsidySplitInput"]["properties"]["list_price"]["description"]
    assert "NFKC" in schemas["SubsidySplitInput"]["properties"]["product_id"]["description"]
    assert "32 levels" in schemas["SubsidySplitRequest"]["description"]


def test_declared_shapes_name_the_fields_the_engine_checks() -> None:
    """A rule's declared input shape is its input_fields (one declaration, not two)."""
    declared = [rule for _, rule in (REGISTRY.rule(k) for k in REGISTRY.rules) if rule]
    assert any(rule.inputs is not None for rule in declared)
    for rule in declared:
        if rule.inputs is not None:
            assert rule.input_fields == rule.inputs.names, rule.kind


@pytest.mark.parametrize("request_", example_requests())
def test_examples_validate(request_: Any) -> None:
    """Every worked example the parser accepts validates against the schema."""
    assert parser_accepts(request_)
    errors = [e.message for e in REQUEST.iter_errors(request_)]
    assert errors == []


def _without(name: str) -> dict[str, Any]:
    return {k: v for k, v in SPEC_SPLIT.items() if k != name}


INVALID_INPUTS: list[dict[str, Any]] = [
    *(_without(name) for name in ("list_price", "registration_price", "floor_price",
                                  "cost_price")),
    *({**SPEC_SPLIT, "list_price": bad}
      for bad in ([], {}, True, "", "abc", "1e3", "１０", "--1", "1.2.3")),
    {**SPEC_SPLIT, "list_price": loads("-1")},
    {**SPEC_SPLIT, "list_price": 0},
    {**SPEC_SPLIT, "quantity": 0},
    *({**SPEC_SPLIT, "quantity": bad} for bad in (True, "2.5", loads("2.5"), "two", [])),
    {**SPEC_SPLIT, "other_platform_prices": "x"},
    {**SPEC_SPLIT, "other_platform_prices": [1]},
    {**SPEC_SPLIT, "other_platform_prices": [{"platform": "x"}]},
    {**SPEC_SPLIT, "other_platform_prices": [{"platform": " ", "price": "1"}]},
    *({**SPEC_SPLIT, "product_id": bad} for bad in ([], True, "   ", {})),
    {**SPEC_SPLIT, "list_prize": "1"},
]  # fmt: skip


@pytest.mark.parametrize("input_", INVALID_INPUTS)
def test_invalid_input_refused_by_schema_and_parser(input_: dict[str, Any]) -> None:
    """Every invalid input JSON Schema can express is refused by the schema and by the
    parser alike (types, required fields, patterns, bounds, unknown fields)."""
    request = {"kind": "subsidy_split", "input": input_}
    assert not REQUEST.is_valid(request)
    assert not parser_accepts(request)


INVALID_ENVELOPES: list[Any] = [
    {"input": SPEC_SPLIT},
    {"kind": "subsidy_split"},
    {"kind": "subsidy_split", "input": []},
    {"kind": "subsidy_split", "input": SPEC_SPLIT, "extra": 1},
    {"kind": "subsidy_split", "input": SPEC_SPLIT, "request_id": True},
    {"kind": "subsidy_split", "input": SPEC_SPLIT, "request_id": ["a"]},
    {"kind": "subsidy_split", "input": SPEC_SPLIT, "merchant_id": "m" * 129},
    {"kind": "no_such_kind", "input": {}},
]


@pytest.mark.parametrize("request_", INVALID_ENVELOPES)
def test_invalid_envelope_refused_by_both(request_: Any) -> None:
    """SPEC §8's envelope: what the schema refuses, the parser refuses."""
    assert not REQUEST.is_valid(request_)
    with pytest.raises(InvalidInput, match=r"^(kind|request_id|merchant_id|input|extra): "):
        ENGINE.evaluate(Envelope.parse(request_), now=NOW)


def test_served_document_is_the_generated_one(env: Env) -> None:
    """GET /openapi.json serves the document for the service's registry."""
    served = env.client.get("/openapi.json")
    assert served.status_code == 200
    assert json.loads(served.text) == json.loads(json.dumps(openapi_document(env.service.registry)))


def test_responses_validate(env: Env) -> None:
    """A decision and a problem document validate against their schemas."""
    body = {"kind": "subsidy_split", "merchant_id": "M-1", "input": SPEC_SPLIT}
    decided = env.client.post("/v1/decisions", json=body, headers=env.auth("all", "k"))
    assert validator("Decision").is_valid(decided.json())
    refused = env.client.post("/v1/decisions", json=body, headers=env.auth("reader", "k"))
    assert validator("Problem").is_valid(refused.json())
    assert not validator("Decision").is_valid({**decided.json(), "status": "maybe"})


def _generic_cases() -> list[tuple[str, dict[str, Any]]]:
    """For each kind that declares its input and has an accepted example: each required
    field left out, and each field given a value of the wrong JSON type."""
    examples: dict[str, dict[str, Any]] = {}
    for request in example_requests():
        kind = request["kind"].strip()
        if set(request) <= {"kind", "input", "request_id", "merchant_id", "campaign"}:
            examples.setdefault(kind, request)
    cases: list[tuple[str, dict[str, Any]]] = []
    for kind, request in sorted(examples.items()):
        found = REGISTRY.rule(kind)
        assert found is not None
        shape = found[1].inputs
        if shape is None:
            continue
        for name, field in shape.fields:
            given = dict(request["input"])
            if field.required:
                cases.append(
                    (
                        f"{kind}: without {name}",
                        {**request, "input": {k: v for k, v in given.items() if k != name}},
                    )
                )
            if field.reader == "raw":  # a field the rule does not read takes anything
                continue
            wrong = "x" if field.reader in ("items", "obj") else {"not": "this"}
            cases.append(
                (f"{kind}: {name} of the wrong type", {**request, "input": {**given, name: wrong}})
            )
    return cases


GENERIC = _generic_cases()


@pytest.mark.parametrize("request_", [c for _, c in GENERIC], ids=[n for n, _ in GENERIC])
def test_every_declared_kind_refuses_alike(request_: dict[str, Any]) -> None:
    """Every kind that declares its shape: a required field left out, or a field of the
    wrong type, is refused by the schema and by the parser."""
    assert not REQUEST.is_valid(request_)
    assert not parser_accepts(request_)


def test_generic_cases_cover_the_declared_kinds() -> None:
    """The generic cases reach every built-in kind that declares its input."""
    kinds = {name.split(":")[0] for name, _ in GENERIC}
    assert {
        "subsidy_split",
        "counterfeit_compensation",
        "forwarding_clawback",
        "shipping_check",
    } <= kinds
