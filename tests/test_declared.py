"""A declared field's description says what the parser checks beyond JSON Schema (issue 23);
a rule adds its own sentence to a standard field's without restating the field."""

from __future__ import annotations

from pricecalc.declared import Declared, amount_field, time_field


def test_also_adds_one_sentence_to_what_the_parser_checks() -> None:
    """SPEC §3's claimed_at: an optional time, "not before paid_at" — the same field as
    time_field() spelled out, with the sentence after the standard ones."""
    field = time_field(required=False).also("Not before paid_at; absent, it is now.")
    assert field == Declared(
        "time",
        time_field().schema,
        required=False,
        checks=time_field().checks + " Not before paid_at; absent, it is now.",
    )
    assert field.json_schema()["description"] == (
        "An ISO 8601 date-time such as 2026-11-11T10:00; without an offset it is Beijing "
        "time (+08:00) (SPEC §1). Not before paid_at; absent, it is now."
    )
    assert amount_field().also("At most 500.00.").required is True
    assert Declared("raw", {}, False).also("Not read by the rule.").checks == (
        "Not read by the rule."
    )
