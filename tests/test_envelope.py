"""The request envelope (SPEC §1, §7, §8): parsed once, hostile input refused by name,
content keys stable.

Hostile input — found by fuzzing — gets ``InvalidInput`` naming the field, never a crash:
a lone surrogate anywhere, nesting of hundreds of levels, an integer of thousands of
digits, U+0000, full-width digits, counts written ``1e2`` or ``2.0``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import pricecalc
from pricecalc.calculator import Calculator
from pricecalc.envelope import Envelope, content_key
from pricecalc.serialize import loads

NOW = datetime(2026, 11, 20, tzinfo=UTC)
SPLIT: dict[str, Any] = {
    "kind": "subsidy_split",
    "input": {
        "list_price": "199.00",
        "registration_price": "169.00",
        "subsidy_price": "149.00",
        "floor_price": "139.00",
        "cost_price": "120.00",
        "quantity": 2,
    },
}


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (
            {**SPLIT, "request_id": "s\ud800"},
            "request_id: is not valid Unicode text (a lone surrogate U+D800 at character 2) "
            "(got 's\\ud800')",
        ),
        (
            {**SPLIT, "input": {**SPLIT["input"], "product_id": "P\udfff1"}},
            "input.product_id: is not valid Unicode text (a lone surrogate U+DFFF at "
            "character 2) (got 'P\\udfff1')",
        ),
        (
            {**SPLIT, "input": {**SPLIT["input"], "category": "食品\x00"}},
            "input.category: must not contain the character U+0000 (got '食品\\x00')",
        ),
        (
            {**SPLIT, "input": {**SPLIT["input"], "quantity": 10**5000}},
            "input.quantity: is too large a number (at most 9223372036854775807) (got an "
            "integer of thousands of digits)",
        ),
        (
            {**SPLIT, "input": {**SPLIT["input"], "quantity": 2**64}},
            "input.quantity: is too large a number (at most 9223372036854775807) (got an "
            "integer of 20 digits)",
        ),
        (
            {**SPLIT, "input": {**SPLIT["input"], "quantity": "１０"}},
            "input.quantity: must be written with ASCII digits 0-9 (such as 2) (got '１０')",
        ),
        (
            {**SPLIT, "input": {**SPLIT["input"], "list_price": "１９９.００"}},
            'input.list_price: must be written with ASCII digits 0-9 (such as "199.90") '
            "(got '１９９.００')",
        ),
        (
            {**SPLIT, "input": {**SPLIT["input"], "quantity": Decimal("2.0")}},
            "input.quantity: must be a whole number (a JSON integer such as 2) (got 2.0)",
        ),
        (
            {**SPLIT, "merchant_id": "M" * 129},
            "merchant_id: must be at most 128 characters (it has 129) (got 'MMMMMMMMMMMMMMMMMMMM"
            "MMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMM...')",
        ),
        ({**SPLIT, "campaign": ""}, "campaign: must not be empty (got '')"),
        ({**SPLIT, "campaign": 11}, "campaign: must be text (got 11)"),
    ],
)
def test_hostile_input_is_refused_naming_the_field(request_: Any, message: str) -> None:
    """SPEC §1: each is invalid input naming the field and the value."""
    with pytest.raises(pricecalc.InvalidInput) as caught:
        pricecalc.evaluate(request_, now=NOW)
    assert str(caught.value) == message


def test_counts_written_1e2_are_refused() -> None:
    """SPEC §1: counts are JSON integers or integer text: 1e2 (parsed exactly) is not."""
    request = loads('{"kind": "subsidy_split", "input": {"quantity": 1e2}}')
    request["input"] = {**SPLIT["input"], **request["input"]}
    with pytest.raises(pricecalc.InvalidInput) as caught:
        pricecalc.evaluate(request, now=NOW)
    assert str(caught.value) == (
        "input.quantity: must be a whole number (a JSON integer such as 2) (got 1E+2)"
    )


@pytest.mark.parametrize("depth", [33, 600, 5000])
def test_deep_nesting_is_invalid_input_not_a_crash(depth: int) -> None:
    """SPEC §1: a request nested deeper than 32 levels is invalid input — never a crash."""
    request = {**SPLIT, "input": {**SPLIT["input"], "extra": nested(depth)}}
    with pytest.raises(pricecalc.InvalidInput) as caught:
        pricecalc.evaluate(request, now=NOW)
    assert caught.value.field.startswith("input.extra[0]")
    assert str(caught.value).endswith(
        "is nested deeper than 32 levels of objects and lists (got more levels)"
    )


def test_nesting_of_32_levels_is_fine() -> None:
    """The request object itself is level 1; 32 levels in all are accepted."""
    request = {**SPLIT, "input": {**SPLIT["input"], "notes": nested(30)}}
    assert Envelope.parse(request).kind == "subsidy_split"


def test_a_float_anywhere_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"request\.input\.lines\[0\]\.paid: a float"):
        Envelope.parse({"kind": "x", "input": {"lines": [{"paid": 1.5}]}})


def test_hostile_input_records_nothing(tmp_path: Path) -> None:
    """Invalid input is not a decision: nothing is recorded, on either backend's contract."""
    with Calculator(tmp_path / "a.jsonl") as calc:
        with pytest.raises(
            pricecalc.InvalidInput,
            match=r"^request_id: is not valid Unicode text \(a lone surrogate U\+D800 at",
        ):
            calc.decide({**SPLIT, "request_id": "s\ud800"})
        with pytest.raises(
            pricecalc.InvalidInput,
            match=r"^input\.product_id: must not contain the character U\+0000 \(got 'a\\x00'\)$",
        ):
            calc.decide({**SPLIT, "input": {**SPLIT["input"], "product_id": "a\x00"}})
        assert calc.store.head().seq == 0


def test_the_content_key_is_pinned() -> None:
    """SPEC §7: the key derived from a request's content is stable across versions of
    pricecalc — pinned here, so a change to the rule cannot pass unnoticed."""
    canonical = (
        b'{"input":{"cost_price":"120.00","floor_price":"139.00","list_price":"199.00",'
        b'"quantity":2,"registration_price":"169.00","subsidy_price":"149.00"},'
        b'"kind":"subsidy_split"}'
    )  # the documented rule, by hand: sorted keys, no whitespace, UTF-8
    assert hashlib.sha256(canonical).hexdigest().startswith("4ffa1f2c8a52a0a74a0870d0aad4c48f")
    assert Envelope.parse(SPLIT).keyed().request_id == "content-4ffa1f2c8a52a0a74a0870d0aad4c48f"
    # JSON numbers with a fraction are their text; an int stays an int: "2" is not 2.
    parsed = loads(json.dumps(SPLIT).replace('"199.00"', "199.00"))
    assert Envelope.parse(parsed).keyed().request_id == content_key(Envelope.parse(SPLIT).canonical)
    text_count = {**SPLIT, "input": {**SPLIT["input"], "quantity": "2"}}
    assert Envelope.parse(text_count).keyed().request_id != Envelope.parse(SPLIT).keyed().request_id
    labelled = {**SPLIT, "merchant_id": "shop-1"}
    assert Envelope.parse(labelled).keyed().request_id != Envelope.parse(SPLIT).keyed().request_id


def test_a_given_request_id_is_kept() -> None:
    assert Envelope.parse({**SPLIT, "request_id": 42}).keyed().request_id == "42"


# -- fuzz ------------------------------------------------------------------------------------
JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(alphabet=st.characters(exclude_categories=()), max_size=8),  # surrogates, U+0000
    st.decimals(allow_nan=True, allow_infinity=True, places=None),
    st.sampled_from(["199.00", "1e3", "-1", "１０", "2.0", "", " ", "0.001", "NaN"]),
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
KINDS = st.sampled_from(
    ["subsidy_split", "price_protection", "counterfeit_compensation", "forwarding_clawback",
     "void", "nosuch", ""]
)  # fmt: skip
FIELDS = {
    "subsidy_split": [*SPLIT["input"], "other_platform_prices", "platform_subsidy"],
    "price_protection": ["order_id", "paid_at", "claimed_at", "order_status", "event",
                         "lines", "offers", "already_refunded", "merchant_refused"],
    "counterfeit_compensation": ["order_id", "confirmed", "lines", "merchant_refused"],
    "forwarding_clawback": ["order_id", "category", "platform_subsidy", "forwarded", "quantity"],
    "void": ["seq", "reason", "target"],
}  # fmt: skip


@st.composite
def requests(draw: st.DrawFn) -> Any:
    """Requests of the whole shape: envelope fields of any type, inputs with the rules'
    field names holding anything, and the occasional valid split."""
    if draw(st.booleans()):
        kind = draw(KINDS)
        names = FIELDS.get(kind, ["x"])
        body = draw(st.dictionaries(st.sampled_from(names), JSON_VALUES, max_size=6))
        request: dict[str, Any] = {"kind": kind, "input": body}
        for name in ("request_id", "merchant_id", "campaign"):
            if draw(st.booleans()):
                request[name] = draw(JSON_LEAVES)
        return request
    if draw(st.booleans()):
        return {**SPLIT, "input": {**SPLIT["input"], **draw(st.dictionaries(
            st.sampled_from(FIELDS["subsidy_split"]), JSON_VALUES, max_size=2))}}  # fmt: skip
    return draw(JSON_VALUES)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=st.lists(requests(), min_size=1, max_size=6))
def test_fuzz_only_invalid_input_escapes_and_nothing_is_recorded_for_it(
    tmp_path_factory: pytest.TempPathFactory, batch: list[Any]
) -> None:
    """Issue 12: over the whole request shape, only InvalidInput or TypeError escape the
    API; nothing is recorded for them, and the valid requests around them are recorded."""
    path = tmp_path_factory.mktemp("fuzz") / "a.jsonl"
    with Calculator(path, operator="fuzz") as calc:
        items = calc.decide_many(batch, now=NOW, on_invalid="collect")
        for request in batch:
            before = calc.store.head().seq
            try:
                decision = calc.decide(request, now=NOW)
            except (pricecalc.InvalidInput, TypeError):
                assert calc.store.head().seq == before
            else:
                assert decision.audit is not None
        recorded = calc.store.verify()
    decided = [item for item in items if item.decision is not None]
    assert recorded.ok
    assert len(
        {i.decision.audit.seq for i in decided if i.decision and not i.decision.replayed}
    ) == len([i for i in decided if i.decision and not i.decision.replayed])


@settings(max_examples=300, deadline=None)
@given(value=st.dictionaries(st.text(max_size=4), JSON_VALUES, max_size=5))
def test_the_fast_pass_of_the_walk_is_the_walk(value: dict[str, Any]) -> None:
    """The walk's fast pass (exact JSON types, inline) gives exactly what the full walk
    gives, or steps aside for it: the same copy, or the same refusal."""
    from pricecalc import serialize

    def outcome(walk: Any) -> Any:
        try:
            return ("copy", walk())
        except (pricecalc.InvalidInput, TypeError) as exc:
            return ("refused", type(exc), str(exc))

    full = outcome(lambda: serialize._walk(value, serialize._REQUEST, "", 0))
    assert outcome(lambda: serialize.canonical_request(value)) == full
    try:
        fast = serialize._fast_object(value, True, 0)
    except serialize._Refused:
        return
    assert full == ("copy", fast)
