"""Sameness by meaning (SPEC §7, issue 21 point 1): the normal form, content-v2 keys,
replays and conflicts compared by what the rule reads."""

from __future__ import annotations

import hashlib
import numbers
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import pricecalc
from audit.canonical import canonical_bytes
from pricecalc.calculator import Calculator
from pricecalc.envelope import Envelope, content_key
from pricecalc.errors import FloatRefused, PricecalcError
from pricecalc.plugins import default_registry
from pricecalc.policy import Policy
from pricecalc.sameness import content_key_v2, difference, normal_form, request_key

NOW = datetime(2026, 11, 12, 1, 0, tzinfo=UTC)
SPLIT_INPUT = {
    "list_price": "199.00",
    "registration_price": "169.00",
    "subsidy_price": "149.00",
    "floor_price": "139.00",
    "cost_price": "120.00",
}
CLAIM_INPUT = {
    "order_id": "O-1",
    "paid_at": "2026-11-11T10:00",
    "order_status": "paid",
    "event": {"start": "2026-11-10", "end": "2026-11-12"},
    "lines": [{"line_id": "L1", "sku": "A", "quantity": 2, "unit_price": "100.00"}],
    "offers": [
        {"type": "direct_drop", "sku": "A", "unit_price": "90.00", "at": "2026/11/11 20:00"}
    ],
}


def normal(request: dict[str, Any]) -> dict[str, Any]:
    registry = default_registry()
    policy = Policy().merged(registry.policy_defaults)
    return normal_form(request, registry=registry, policy=policy, now=NOW)


def test_the_normal_form_of_a_split() -> None:
    """SPEC §7: amounts as two-decimal text, a count as an integer, the fixed default
    quantity 1 dropped, the empty optional list dropped; merchant_id kept as given."""
    request = {
        "kind": "subsidy_split",
        "merchant_id": "M-1",
        "input": {
            "list_price": " ¥199", "registration_price": 169, "subsidy_price": "149.0",
            "floor_price": "+139", "cost_price": "120.00", "quantity": "1",
            "other_platform_prices": [],
        },
    }  # fmt: skip
    assert normal(request) == {
        "kind": "subsidy_split",
        "merchant_id": "M-1",
        "input": {
            "list_price": "199.00", "registration_price": "169.00",
            "subsidy_price": "149.00", "floor_price": "139.00", "cost_price": "120.00",
        },
    }  # fmt: skip
    key = request_key(request, now=NOW)
    digest = hashlib.sha256(canonical_bytes(normal(request))).hexdigest()
    assert key == f"content-v2-{digest}" == content_key_v2(normal(request))


def test_instants_are_utc_and_date_only_ends_the_whole_day() -> None:
    """SPEC §1, §7: times as UTC instants; a date-only event end is 23:59:59.999999
    Beijing time, a start 00:00; the clock default claimed_at is not filled in, a
    configurable claim_days given is kept even when it equals the policy default."""
    form = normal({"kind": "price_protection", "input": {**CLAIM_INPUT, "claim_days": 7}})
    assert form["input"]["paid_at"] == "2026-11-11T02:00:00Z"
    assert form["input"]["event"] == {
        "start": "2026-11-09T16:00:00Z",
        "end": "2026-11-12T15:59:59.999999Z",
    }
    assert form["input"]["offers"][0]["at"] == "2026-11-11T12:00:00Z"
    assert "claimed_at" not in form["input"]
    assert form["input"]["claim_days"] == 7


def test_a_request_its_parser_refuses_falls_back_to_its_canonical_json() -> None:
    """SPEC §7: a kind whose parser cannot say (refuses the input, or is unknown) is
    compared by its canonical JSON as given."""
    refused = {"kind": "subsidy_split", "input": {**SPLIT_INPUT, "list_price": "abc"}}
    assert normal(refused) == refused
    unknown = {"kind": "no_such_kind", "input": {"a": "1"}}
    assert normal(unknown) == unknown


def test_difference_names_the_first_field_in_reading_order() -> None:
    """SPEC §7: a conflict names the first differing field, in the order the rule reads
    its fields, with both values."""
    one = normal({"kind": "subsidy_split", "input": SPLIT_INPUT})
    other = normal(
        {"kind": "subsidy_split", "input": {**SPLIT_INPUT, "cost_price": "1", "list_price": "299"}}
    )
    assert difference(one, other) == "input.list_price '199.00' recorded, '299.00' asked"
    assert difference(one, one) is None
    more = normal({"kind": "subsidy_split", "input": {**SPLIT_INPUT, "quantity": 3}})
    assert difference(one, more) == "input.quantity absent recorded, 3 asked"


def test_a_respelt_request_under_its_request_id_replays(tmp_path: Path) -> None:
    """Issue 21: " 199.00", "+199.00", 199 and "¥199.00" under one request_id are one
    request: replayed, not a conflict, nothing recorded; the record keeps the first
    spelling as given."""
    with Calculator(tmp_path / "a.jsonl", clock=lambda: NOW) as calc:
        first = calc.decide({"kind": "subsidy_split", "request_id": "s-1", "input": SPLIT_INPUT})
        for spelling in (" 199.00", "+199.00", 199, "¥199.00", "199"):
            again = calc.decide({"kind": "subsidy_split", "request_id": "s-1",
                                 "input": {**SPLIT_INPUT, "list_price": spelling}})  # fmt: skip
            assert again.replayed and again.audit == first.audit
        assert calc.store.head().seq == 1
        record = calc.store.record(1)
        assert record is not None
        assert record.payload["input"]["list_price"] == "199.00"


def test_content_keys_by_meaning_and_the_raw_key_of_0_2(tmp_path: Path) -> None:
    """SPEC §7: a content-keyed request (the command line's) is keyed content-v2-<sha256>
    of its normal form; one recorded by 0.2 under its raw-spelling key replays."""
    request = {"kind": "subsidy_split", "input": SPLIT_INPUT}
    with Calculator(tmp_path / "a.jsonl", clock=lambda: NOW) as calc:
        decided = calc.decide(Envelope.parse(request).keyed())
        assert decided.request_id == request_key(request, now=NOW)
        respelt = {"kind": "subsidy_split", "input": {**SPLIT_INPUT, "cost_price": "120"}}
        assert calc.decide(Envelope.parse(respelt).keyed()).replayed
    with Calculator(tmp_path / "old.jsonl", clock=lambda: NOW) as calc:
        old_key = content_key(Envelope.parse(request).canonical)
        calc.decide({**request, "request_id": old_key})  # as 0.2 recorded it
        again = calc.decide(Envelope.parse(request).keyed())
        assert again.replayed and again.request_id == old_key
        assert calc.store.head().seq == 1


class Int64:
    """A stand-in for numpy.int64 (numpy is not a dev dependency): an Integral that is no
    int subclass."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __int__(self) -> int:
        return self.value

    def __index__(self) -> int:
        return self.value


numbers.Integral.register(Int64)


def test_a_script_s_integers_of_any_integral_type(tmp_path: Path) -> None:
    """Issue 21 point 6: a numbers.Integral (numpy.int64) count or amount is its exact
    integer; merchant_id and campaign are in to_dict (SPEC §8)."""
    decision = pricecalc.evaluate(
        {"kind": "subsidy_split", "merchant_id": "M-1", "campaign": "双11",
         "input": {**SPLIT_INPUT, "quantity": Int64(2), "cost_price": Int64(120)}},
        now=NOW,
    )  # fmt: skip
    out = decision.to_dict()
    assert out["result"]["quantity"] == 2
    assert (out["merchant_id"], out["campaign"]) == ("M-1", "双11")
    assert list(out)[:7] == [
        "request_id", "kind", "status", "result", "reasons", "merchant_id", "campaign",
    ]  # fmt: skip


def _missing(name: str, module: str) -> Any:
    kind = type(name, (), {"__repr__": lambda self: name})
    kind.__module__ = module
    return kind()


@pytest.mark.parametrize(
    "value",
    [_missing("NAType", "pandas._libs.missing"), _missing("NaTType", "pandas._libs.tslibs")],
)
def test_pandas_missing_values_are_refused_as_missing(value: Any) -> None:
    """Issue 21 point 6: pd.NA / NaT are refused as missing, naming the field (without
    importing pandas)."""
    with pytest.raises(
        pricecalc.InvalidInput,
        match=r"^input\.quantity: is a missing value \(pandas NA/NaT\): leave the field "
        r"out, or give a value",
    ):
        pricecalc.evaluate(
            {"kind": "subsidy_split", "input": {**SPLIT_INPUT, "quantity": value}}, now=NOW
        )


def test_float_refused_is_a_pricecalc_error() -> None:
    """Issue 21 point 6: FloatRefused is a TypeError and a PricecalcError."""
    with pytest.raises(PricecalcError, match="a float"):
        pricecalc.evaluate(
            {"kind": "subsidy_split", "input": {**SPLIT_INPUT, "list_price": 199.0}}, now=NOW
        )
    assert issubclass(FloatRefused, TypeError)


def test_what_a_parser_reads_its_own_way_is_kept_as_given() -> None:
    """SPEC §7: a field a plugin's parser reads its own way (raw()) or not at all is
    kept as given, as plain JSON (a Decimal as its text): the parser cannot say."""
    from decimal import Decimal

    from pricecalc.decision import Outcome
    from pricecalc.registry import Registry, Rule

    rule = Rule(
        kind="raw_reader", rule_set="t", version="1",
        parse=lambda fields, ctx: fields.raw("note"),
        decide=lambda parsed, ctx: Outcome(result={}),
    )  # fmt: skip
    registry = Registry(rules={"raw_reader": pricecalc.registry.Contributed("t", rule)})
    form = normal_form(
        {"kind": "raw_reader", "input": {"note": Decimal("1.50"), "other": " x "}},
        registry=registry,
        policy=Policy(),
        now=NOW,
    )
    assert form == {"kind": "raw_reader", "input": {"note": "1.50", "other": " x "}}
