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


#: SPEC §3's worked example: A × 2 at 100.00 paid 11-11T10:00, a coupon throughout, a
#: direct drop to 90.00 and a flash sale at 79.00, 20.00 already refunded.
SPEC_PROTECTION: dict[str, Any] = {
    "order_id": "O-1",
    "paid_at": "2026-11-11T10:00",
    "claimed_at": "2026-11-12T09:00",
    "order_status": "paid",
    "event": {"start": "2026-11-10T00:00", "end": "2026-11-12T23:59:59"},
    "lines": [{"line_id": "L1", "sku": "A", "quantity": 2, "unit_price": "100.00"}],
    "offers": [
        {"type": "coupon", "amount": "10.00", "threshold": "100.00"},
        {"type": "direct_drop", "sku": "A", "unit_price": "90.00", "at": "2026-11-11T20:00"},
        {"type": "flash_sale", "sku": "A", "unit_price": "79.00",
         "start": "2026-11-11T12:00", "end": "2026-11-11T14:00"},
    ],
    "already_refunded": {"L1": "20.00"},
}  # fmt: skip
#: SPEC §4's worked examples in one claim (food: the food-safety law's standard).
SPEC_COMPENSATION: dict[str, Any] = {
    "order_id": "O-2",
    "confirmed": True,
    "lines": [
        {"line_id": "L1", "paid_amount": "39.90"},
        {"line_id": "L2", "paid_amount": "68.00"},
        {"line_id": "L3", "paid_amount": "50.00"},
        {"line_id": "L4", "paid_amount": "39.90", "category": "food"},
    ],
    "merchant_refused": False,
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
    """SPEC §2's example in each of its spellings, SPEC §3's and §4's, and every request
    line of the bundled examples the parser accepts (every kind they use)."""
    found: list[Any] = [
        {"kind": "subsidy_split", "input": SPEC_SPLIT},
        {"kind": "subsidy_split", "request_id": 7, "merchant_id": "M-1", "campaign": "双11",
         "input": {**SPEC_SPLIT, "list_price": loads("199.9"), "quantity": "2"}},
        {"kind": "subsidy_split", "input": {**SPEC_SPLIT, "subsidy_price": None,
                                            "platform_subsidy": " 20 "}},
        {"kind": "price_protection", "input": SPEC_PROTECTION},
        {"kind": "counterfeit_compensation", "input": SPEC_COMPENSATION},
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
    """The generic cases reach every installed kind (each declares its input)."""
    kinds = {name.split(":")[0] for name, _ in GENERIC}
    assert kinds == set(REGISTRY.rules) - {"void"}  # a void has no worked example


def test_every_installed_kind_declares_input_and_result() -> None:
    """Issue 23: each rule — plugins' too — declares its input and result (no kind is
    shown as an open object), and its declared input is what its engine checks."""
    undeclared = sorted(
        kind
        for kind in REGISTRY.rules
        if (found := REGISTRY.rule(kind)) is None
        or found[1].inputs is None
        or found[1].results is None
    )
    assert undeclared == []


@pytest.mark.parametrize("request_", example_requests())
def test_example_decisions_validate(request_: Any) -> None:
    """What every worked example decides validates against its kind's Decision schema:
    the declared result is the result the rule writes."""
    decision = ENGINE.evaluate(Envelope.parse(request_), now=NOW).to_dict()
    decision.pop("audit", None)
    decision["request_id"] = decision["request_id"] or "k"  # a served one always has one
    name = "".join(part.capitalize() for part in decision["kind"].split("_"))
    errors = [e.message for e in validator(f"{name}Decision").iter_errors(decision)]
    assert errors == []
    assert validator("Decision").is_valid(decision)


def test_examples_reach_every_kind_but_void() -> None:
    """The worked examples exercise every installed kind (a void is checked apart: it
    needs a recorded decision and an operator)."""
    kinds = {request["kind"].strip() for request in example_requests()}
    assert kinds == set(REGISTRY.rules) - {"void"}


def _example(kind: str) -> dict[str, Any]:
    """The first worked example of ``kind`` (request fields but the input left out)."""
    for request in example_requests():
        if request["kind"].strip() == kind:
            return json.loads(json.dumps(request, default=str))
    raise AssertionError(f"no example of {kind}")


_DROP = object()


def _changed(kind: str, path: str, value: Any) -> dict[str, Any]:
    """``kind``'s example with the input field at ``path`` (dotted; a number indexes a
    list) set to ``value``, or left out when it is ``_DROP``."""
    request = _example(kind)
    *parents, last = path.split(".")
    target: Any = request["input"]
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is _DROP:
        del target[int(last) if last.isdigit() else last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return request


#: Invalid inputs the declared schemas express — patterns, bounds, enums, closed objects,
#: nested required fields — for each kind beyond subsidy_split's (above).
PATTERN_CASES: list[tuple[str, str, Any]] = [
    ("price_protection", "order_status", "lost"),
    ("price_protection", "order_status", 1),
    ("price_protection", "paid_at", "  "),
    ("price_protection", "claim_days", -1),
    ("price_protection", "claim_days", "7.5"),
    ("price_protection", "event.end", _DROP),
    ("price_protection", "event.middle", "2026-11-11"),
    ("price_protection", "lines", []),
    ("price_protection", "lines.0.sku", _DROP),
    ("price_protection", "lines.0.colour", "red"),
    ("price_protection", "lines.0.unit_price", 0),
    ("price_protection", "lines.0.quantity", 0),
    ("price_protection", "offers", _DROP),
    ("price_protection", "offers.0.type", _DROP),
    ("price_protection", "paid_merchant_discount", "1e3"),
    ("price_protection", "already_refunded", []),
    ("price_protection", "already_refunded", {"L1": "ten"}),
    ("price_protection", "merchant_refused", "no"),
    ("price_protection", "extra", 1),
    ("select_alliance_admission", "dsr", 6),
    ("select_alliance_admission", "dsr", "4.5%"),
    ("select_alliance_admission", "dsr", "high"),
    ("select_alliance_admission", "favorable_rate", 2),
    ("select_alliance_admission", "favorable_rate", "eighty"),
    ("select_alliance_admission", "favorable_rate", loads("-0.1")),
    ("select_alliance_admission", "closures", -1),
    ("select_alliance_admission", "effective_reviews", "many"),
    ("select_alliance_product", "quality_return_rate", "1.5 percent"),
    ("select_alliance_product", "shipping_24h_rate", loads("1.5")),
    ("select_alliance_product", "category", ""),
    ("select_alliance_review", "date", ""),
    ("select_alliance_review", "dsr", loads("5.5")),
    ("select_alliance_review", "favorable_rate", True),
    ("chaozhigou_admission", "merchant.newcomer", "yes"),
    ("chaozhigou_admission", "merchant.experience_score", "70%"),
    ("chaozhigou_admission", "merchant.shop_type", _DROP),
    ("chaozhigou_admission", "product.good_review_rate", 2),
    ("chaozhigou_admission", "product.white_background", 1),
    ("chaozhigou_admission", "product", "x"),
    ("counterfeit_compensation", "lines", []),
    ("counterfeit_compensation", "lines.0.paid_amount", "free"),
    ("forwarding_clawback", "quantity", 0),
    ("shipping_check", "paid_at", ""),
]


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    PATTERN_CASES,
    ids=[f"{k}:{p}={'(left out)' if v is _DROP else v!r}" for k, p, v in PATTERN_CASES],
)
def test_declared_patterns_refused_by_schema_and_parser(kind: str, path: str, value: Any) -> None:
    """Issue 23: every invalid input a kind's declared schema can express — a pattern, a
    bound, an enum, a closed object, a nested required field — is refused by the schema
    and by the parser alike."""
    request = _changed(kind, path, value)
    assert not REQUEST.is_valid(request)
    assert not parser_accepts(request)


def test_parser_only_checks_are_described() -> None:
    """What JSON Schema cannot express is in the field's description: a rate's bound in
    its text, an order's line ids, refunds keyed by those lines."""
    schemas = DOCUMENT["components"]["schemas"]
    protection = schemas["PriceProtectionInput"]["properties"]
    assert "Not before paid_at" in protection["claimed_at"]["description"]
    assert "each key a line_id of this order" in protection["already_refunded"]["description"]
    assert "At most the goods total" in protection["paid_merchant_discount"]["description"]
    rate = schemas["SelectAllianceAdmissionInput"]["properties"]["favorable_rate"]
    assert "the bound applies to the text too" in rate["description"]
    for kind, path, text in (
        ("price_protection", "lines.0.line_id", "L1"),  # the second line repeats it
        ("select_alliance_admission", "favorable_rate", "150%"),
        ("select_alliance_admission", "dsr", "5.5"),
    ):
        request = _changed(kind, path, text)
        if kind == "price_protection":
            lines = request["input"]["lines"]
            request["input"]["lines"] = [lines[0], {**lines[0], "sku": "other"}]
        assert REQUEST.is_valid(request), (kind, path)
        assert not parser_accepts(request), (kind, path)


def test_spec_worked_examples_decide_as_the_spec_says() -> None:
    """The SPEC §3 and §4 examples used above are the SPEC's: refund 22.00 (42.00 less the
    20.00 refunded) and compensation 500.00 / 680.00 / 500.00 / 1000.00."""
    protection = ENGINE.evaluate(
        Envelope.parse({"kind": "price_protection", "input": SPEC_PROTECTION}), now=NOW
    )
    assert protection.result["refund_total"] == "22.00"
    compensation = ENGINE.evaluate(
        Envelope.parse({"kind": "counterfeit_compensation", "input": SPEC_COMPENSATION}), now=NOW
    )
    assert [line["compensation"] for line in compensation.result["lines"]] == [
        "500.00", "680.00", "500.00", "1000.00"
    ]  # fmt: skip
