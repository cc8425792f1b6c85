"""Declarations: what a rule reads, as its parser reads it and as JSON Schema shows it.

A rule declares its ``input`` (and ``result``) as a :class:`Shape` of :class:`Declared`
fields — ``amount_field()``, ``count_field()``, ``time_field()`` … — each naming the
:class:`pricecalc.fields.Fields` accessor that reads it; ``pricecalc rules --schema`` and
the service's OpenAPI document show them. Rules and plugins import these names from
:mod:`pricecalc.fields`, the contract, as before; reading a request is there, its
description here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

#: Whole numbers (quantities, counts) beyond this are refused as implausible input.
MAX_INTEGER = 1_000_000_000
#: Text a JSON Schema ``pattern`` accepts as an amount (SPEC §1): everything
#: :func:`pricecalc.money.parse_amount` reads and a little more (a sign, a spreadsheet's
#: ``¥`` and grouping); the rest is checked by the parser and said in the description.
AMOUNT_PATTERN = r"^\s*[+-]?[¥￥]?(?:[0-9]+(?:,[0-9]{3})*(?:\.[0-9]*)?|\.[0-9]+)\s*$"
#: Integer text (SPEC §1 counts): ASCII digits with an optional sign.
INTEGER_PATTERN = r"^\s*[+-]?[0-9]+\s*$"
_NOT_BLANK = r"\S"
_TRUE_FALSE = r"^\s*(?:[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])\s*$"
#: What JSON Schema cannot say about any request, said once (SPEC §1).
REQUEST_CHECKS = (
    "Checked by the server beyond this schema (SPEC §1): text holds no U+0000 and no lone "
    "surrogate, a request nests at most 32 levels, JSON numbers are exact decimals "
    "(never an exponent such as 1e3)."
)


@attrs.frozen
class Declared:
    """One field as a rule's parser reads it (through the
    :class:`~pricecalc.fields.Fields` accessor named by ``reader``) and as JSON Schema
    shows it (:meth:`json_schema`). ``checks`` says what the parser checks that JSON
    Schema cannot express (exact fen, NFKC look-alikes, a bound on text that holds a
    number); it becomes the field's ``description``."""

    reader: str
    schema: Mapping[str, Any]
    required: bool = True
    checks: str = ""

    def also(self, checks: str) -> Declared:
        """This field with one more sentence of what the parser checks (``time_field(
        required=False).also("Not before paid_at.")``)."""
        return attrs.evolve(self, checks=f"{self.checks} {checks}" if self.checks else checks)

    def json_schema(self) -> dict[str, Any]:
        schema = dict(self.schema)
        if not self.required:  # the parser reads a null field as an absent one
            schema = {"anyOf": [schema, {"type": "null"}]}
        if self.checks:
            schema["description"] = self.checks
        return schema


@attrs.frozen
class Shape:
    """The fields of one object a rule reads (its ``input``) or writes (its ``result``),
    in the rule's declared order. ``closed``: any other key is refused (a rule's
    ``input``: :attr:`pricecalc.registry.Rule.input_fields` is :attr:`names`)."""

    fields: tuple[tuple[str, Declared], ...]
    closed: bool = True
    description: str = ""

    @property
    def names(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.fields)

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {name: field.json_schema() for name, field in self.fields},
        }
        required = [name for name, field in self.fields if field.required]
        if required:
            schema["required"] = required
        if self.closed:
            schema["additionalProperties"] = False
        if self.description:
            schema["description"] = self.description
        return schema


def shape(*fields: tuple[str, Declared], closed: bool = True, description: str = "") -> Shape:
    """A :class:`Shape` of ``(name, declared)`` pairs, in order."""
    return Shape(tuple(fields), closed, description)


def amount_field(*, positive: bool = False, required: bool = True) -> Declared:
    """An amount in yuan (:meth:`~pricecalc.fields.Fields.amount`): a JSON number or
    decimal text."""
    bound = "exclusiveMinimum" if positive else "minimum"
    return Declared(
        "amount",
        {
            "anyOf": [
                {"type": "number", bound: 0},
                {"type": "string", "pattern": AMOUNT_PATTERN},
            ]
        },
        required,
        "Yuan with at most two decimals (exact fen: 199.001 is refused), "
        + ("greater than 0" if positive else "not negative")
        + ", at most 999999999999.99; ASCII digits only (SPEC §1).",
    )


def count_field(*, minimum: int | None = None, required: bool = True) -> Declared:
    """A count (:meth:`~pricecalc.fields.Fields.integer`): a JSON integer or integer text."""
    low = -MAX_INTEGER if minimum is None else minimum
    return Declared(
        "integer",
        {
            "anyOf": [
                {"type": "integer", "minimum": low, "maximum": MAX_INTEGER},
                {"type": "string", "pattern": INTEGER_PATTERN},
            ]
        },
        required,
        f"A whole number from {low} to {MAX_INTEGER}, as a JSON integer or its text in "
        "ASCII digits (2.0 and 1e2 are refused; the bounds apply to the text too).",
    )


def text_field(*, required: bool = True, identifier: bool = False) -> Declared:
    """Text (:meth:`~pricecalc.fields.Fields.string`): a JSON string that is not blank,
    or an integer."""
    checks = (
        "Text that is not blank (surrounding whitespace is removed); a JSON integer "
        "is read as its decimal text."
    )
    if identifier:
        checks += (
            " An identifier (SPEC §1): Unicode NFKC applied, no invisible or control "
            "character, no dash other than ASCII '-', at most 128 characters, never a "
            "number in Excel's scientific notation."
        )
    return Declared(
        "string",
        {"anyOf": [{"type": "string", "pattern": _NOT_BLANK}, {"type": "integer"}]},
        required,
        checks,
    )


def time_field(*, required: bool = True) -> Declared:
    """A time (:meth:`~pricecalc.fields.Fields.time`): ISO 8601 text."""
    return Declared(
        "time",
        {"type": "string", "pattern": _NOT_BLANK},
        required,
        "An ISO 8601 date-time such as 2026-11-11T10:00; without an offset it is "
        "Beijing time (+08:00) (SPEC §1).",
    )


def boolean_field(*, required: bool = True) -> Declared:
    """true or false (:meth:`~pricecalc.fields.Fields.boolean`), or that text."""
    return Declared(
        "boolean",
        {"anyOf": [{"type": "boolean"}, {"type": "string", "pattern": _TRUE_FALSE}]},
        required,
    )


#: Plain number text (a score, seconds): what :func:`pricecalc.money.to_decimal` reads.
NUMBER_PATTERN = r"^\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*$"
#: A rate's text: a plain number (a fraction) or one with a percentage sign
#: (:func:`pricecalc.money.parse_rate`).
RATE_PATTERN = r"^\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*%?\s*$"


def rate_field(*, required: bool = True) -> Declared:
    """A rate (:func:`pricecalc.toolkit.rate`, :meth:`Fields.rate`): a fraction or a
    percentage, from 0 to 1 (100%)."""
    return Declared(
        "rate",
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": 1},
                {"type": "string", "pattern": RATE_PATTERN},
            ]
        },
        required,
        'A fraction such as 0.0054 or a percentage such as "0.54%", from 0 to 1 (100%): '
        "the bound applies to the text too; exact (no exponent); ASCII digits only.",
    )


def score_field(*, maximum: int | None = None, required: bool = True) -> Declared:
    """A plain number that is not negative (:func:`pricecalc.toolkit.score`,
    :meth:`Fields.number`): a score, seconds; never a percentage."""
    number: dict[str, Any] = {"type": "number", "minimum": 0}
    bound = ""
    if maximum is not None:
        number["maximum"] = maximum
        bound = f" at most {maximum} (the bound applies to the text too),"
    return Declared(
        "number",
        {"anyOf": [number, {"type": "string", "pattern": NUMBER_PATTERN}]},
        required,
        f"A plain number, not negative,{bound} exact (no exponent, no percentage sign); "
        "ASCII digits only.",
    )


def choice_field(choices: Sequence[str], *, required: bool = True) -> Declared:
    """One of ``choices`` (:meth:`Fields.choice`), surrounding whitespace allowed."""
    names = "|".join(re.escape(choice) for choice in choices)
    return Declared(
        "choice",
        {"type": "string", "pattern": rf"^\s*(?:{names})\s*$"},
        required,
        "One of: " + ", ".join(choices) + ".",
    )


def date_field(*, required: bool = True) -> Declared:
    """A calendar date (ISO 8601 text)."""
    return Declared(
        "date",
        {"type": "string", "pattern": _NOT_BLANK},
        required,
        "An ISO 8601 date such as 2026-11-02 (a date-time is read as its Beijing date).",
    )


def mapping_field(values: Declared, *, required: bool = False, checks: str = "") -> Declared:
    """An object of names to values (:meth:`Fields.mapping`), each value as ``values``."""
    return Declared(
        "mapping",
        {"type": "object", "additionalProperties": values.json_schema()},
        required,
        checks,
    )


def items_field(of: Shape, *, required: bool = False, non_empty: bool = False) -> Declared:
    """A list of objects (:meth:`~pricecalc.fields.Fields.items`), each of shape ``of``."""
    schema: dict[str, Any] = {"type": "array", "items": of.json_schema()}
    if non_empty:
        schema["minItems"] = 1
    return Declared("items", schema, required)


def object_field(of: Shape | None = None, *, required: bool = True, checks: str = "") -> Declared:
    """An object (:meth:`~pricecalc.fields.Fields.obj`), of shape ``of`` when it is declared."""
    return Declared("obj", of.json_schema() if of else {"type": "object"}, required, checks)


def result_field(schema: Mapping[str, Any], *, required: bool = True) -> Declared:
    """A field of a rule's result, as the rule writes it."""
    return Declared("result", schema, required)


#: A result's amount: exactly two decimals, possibly negative (SPEC §1 output).
MONEY_OUT = {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2}$"}
#: A result's rate: four decimals (SPEC §1).
RATE_OUT = {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{4}$"}
