"""Sameness by meaning (SPEC §7): the request as the rule reads it.

Two requests are the same request when their rule reads them the same: ``199``,
``"199.00"``, ``"¥199.00"`` and ``" 199.00"`` are one amount, ``2026-11-11 10:00`` and
``2026-11-11T02:00:00Z`` one instant, an optional field absent or given as its fixed
default alike. The **normal form** of a request is what its rule's parser read, field by
field, in the order it read them:

* an amount as two-decimal text (``"199.00"``), a rate or plain number as its exact
  decimal text, a count as an integer, a flag as ``true``/``false``;
* a time as the UTC instant in ISO text (``"2026-11-11T02:00:00Z"``), a date as ISO text;
* text and identifiers as the reader returns them (surrounding whitespace removed);
* objects field by field, lists in order;
* a field dropped when it equals the **fixed** default its reader was given (``quantity``
  1, ``merchant_refused`` false): a Fields accessor's ``default=`` is by contract a fixed
  SPEC default. A configurable default (``claim_days``) or a clock default
  (``claimed_at``) is read as optional and resolved by the rule, so a value given equal to
  it is kept.

A field the parser did not read through a :class:`~pricecalc.fields.Fields` accessor (a
plugin's own reading of ``raw()``, the keys of a mapping) is kept as given, and a request
the parser refuses (or a kind nobody registers) falls back to its canonical JSON as given:
the parser cannot say, so spelling decides, as in 0.2.

The content key (:func:`content_key_v2`) is ``content-v2-`` and the SHA-256 hex of the
normal form's canonical JSON; the replay / conflict comparison (:func:`difference`)
compares normal forms and names the first field that differs, in the order the rule read
them, with both values.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import attrs

from audit.canonical import canonical_bytes
from pricecalc.beijing import utc_text
from pricecalc.engine import Engine
from pricecalc.envelope import Envelope
from pricecalc.errors import InvalidInput
from pricecalc.fields import _MISSING, _ZERO_FRACTION, Fields, SheetText
from pricecalc.history import NO_HISTORY
from pricecalc.i18n import N_, msg
from pricecalc.money import fmt
from pricecalc.policy import Policy
from pricecalc.registry import Registry, RuleContext
from pricecalc.serialize import canonical_request, map_json

CONTENT_V2_PREFIX = "content-v2-"


def content_key_v2(normal: Mapping[str, Any]) -> str:
    """``content-v2-`` + SHA-256 hex of the normal form's canonical JSON (SPEC §7)."""
    return CONTENT_V2_PREFIX + hashlib.sha256(canonical_bytes(normal)).hexdigest()


def number_text(value: Decimal) -> str:
    """An exact decimal as its plain text without trailing zeros (``0.0054``, ``12``)."""
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    return text


class _Reading(Fields):
    """A :class:`Fields` that notes, for each field it is asked for, the value read."""

    __slots__ = ("_read",)

    def __init__(self, data: Mapping[str, Any], path: str | None = "input", **kw: Any) -> None:
        super().__init__(data, path, **kw)
        # name → normal value (a _Reading for an object, a list of them for a list), or
        # _MISSING for a field read and dropped (absent, or its fixed default).
        self._read: dict[str, Any] = {}

    def _note(self, name: str, value: Any, default: Any = _MISSING, given: Any = None) -> None:
        if name in self._read and self._read[name] is not _MISSING:
            return  # read twice: the first reading stands
        absent = self.data.get(name) is None
        if absent or (default is not _MISSING and given == default):
            self._read[name] = _MISSING
        else:
            self._read[name] = value

    # -- scalars ---------------------------------------------------------------------
    def amount(self, name: str, *, positive: bool = False) -> Decimal:
        value = super().amount(name, positive=positive)
        self._note(name, fmt(value))
        return value

    def rate(self, name: str) -> Decimal:
        value = super().rate(name)
        self._note(name, number_text(value))
        return value

    def number(self, name: str) -> Decimal:
        value = super().number(name)
        self._note(name, number_text(value))
        return value

    def string(self, name: str, default: Any = _MISSING) -> str:
        value = super().string(name, default)
        self._note(name, value, default, value)
        return value

    def identifier(self, name: str) -> str:
        value = super().identifier(name)
        self._note(name, value)  # as SPEC §1 reads it: Ｏ-1 and O-1 are one order
        return value

    def integer(self, name: str, default: Any = _MISSING, *, minimum: int | None = None) -> int:
        given = self.data.get(name)
        if type(given) is str and _ZERO_FRACTION.fullmatch(given.strip()):
            # Recorded from a spreadsheet cell (2.00 is 2 there, SPEC §1): read as it was.
            given = SheetText(given)
            self.data = {**self.data, name: given}
        value = super().integer(name, default, minimum=minimum)
        self._note(name, value, default, value)
        return value

    def boolean(self, name: str, default: Any = _MISSING) -> bool:
        value = super().boolean(name, default)
        self._note(name, value, default, value)
        return value

    def time(self, name: str, *, end: bool = False) -> datetime:
        value = super().time(name, end=end)
        self._note(name, utc_text(value))
        return value

    def date(self, name: str) -> date:
        value = super().date(name)
        self._note(name, value.isoformat())
        return value

    # -- structures ------------------------------------------------------------------
    def obj(self, name: str) -> Fields:
        child = _Reading(Fields.of(self.raw(name), self.at(name)).data, self.at(name))
        self._note(name, child)
        return child

    def items(
        self, name: str, *, required: bool = True, non_empty: bool = False
    ) -> Iterator[Fields]:
        value = self.data.get(name)
        if isinstance(value, list | tuple) and not value and not required:
            self._note(name, None, (), ())  # an empty optional list is no list
        return super().items(name, required=required, non_empty=non_empty)

    def _items(self, name: str, value: list[Any] | tuple[Any, ...]) -> Iterator[Fields]:
        children: list[_Reading] = []
        self._note(name, children)
        for index, item in enumerate(value):
            if type(item) is not dict and not isinstance(item, Mapping):
                raise InvalidInput(f"{self.at(name)}[{index}]", item, "must be an object")
            child = _Reading(item, f"{self.at(name)}[{index}]")
            children.append(child)
            yield child

    def normal(self) -> dict[str, Any]:
        """The normal form of this object: what was read, in reading order, then what was
        not read, as given."""
        out: dict[str, Any] = {}
        for name, value in self._read.items():
            if value is _MISSING:
                continue
            out[name] = _normal_value(value)
        for name, value in self.data.items():
            if name not in self._read and value is not None:
                out[name] = canonical_request(value, name)  # as given, as plain JSON
        return out


def _normal_leaf(value: Any) -> Any:
    return value.normal() if isinstance(value, _Reading) else value


def _normal_value(value: Any) -> Any:
    """A value read: an object read as its normal form, lists of them item by item."""
    return map_json(value, _normal_leaf)


def normal_form(
    canonical: Mapping[str, Any],
    *,
    registry: Registry,
    policy: Policy,
    now: datetime,
    operator: str | None = None,
) -> dict[str, Any]:
    """The normal form of a canonical request (``kind``, ``input``, ``merchant_id``?,
    ``campaign``?) as its rule reads it today; the canonical request as given when the
    rule's parser refuses it or cannot be found (module docstring). ``policy`` is the
    merged policy the rules read."""
    kind = canonical.get("kind")
    raw_input = canonical.get("input")
    found = registry.rule(kind) if isinstance(kind, str) else None
    if found is None or not isinstance(raw_input, Mapping):
        return dict(canonical)
    _, rule = found
    if rule.input_fields is not None and not rule.input_fields.issuperset(raw_input):
        return dict(canonical)
    reading = _Reading(raw_input, "input")
    context = RuleContext(now, policy.view(), registry, NO_HISTORY, operator)
    try:
        rule.parse(reading, context)
    except Exception:  # refused, or a parser that fails: it cannot say (docstring)
        return dict(canonical)
    out: dict[str, Any] = {"kind": kind, "input": reading.normal()}
    for name in ("merchant_id", "campaign"):
        if canonical.get(name) is not None:
            out[name] = canonical[name]
    return out


def keyed_by_meaning(
    envelope: Envelope,
    *,
    registry: Registry,
    policy: Policy,
    now: datetime,
    operator: str | None = None,
) -> Envelope:
    """A content-keyed request (:meth:`Envelope.keyed`) keyed by its meaning:
    ``content-v2-<sha256>`` of its normal form, 0.2's raw-spelling key kept as an alias
    (SPEC §7). Any other request, or one keyed so already, is returned as it is."""
    if not envelope.content_keyed or envelope.normal is not None:
        return envelope
    normal = normal_form(
        {**envelope.canonical, "input": envelope.input},
        registry=registry,
        policy=policy,
        now=now,
        operator=operator,
    )
    return attrs.evolve(
        envelope,
        request_id=content_key_v2(normal),
        aliases=(str(envelope.request_id), *envelope.aliases),
        normal=normal,
    )


def request_key(
    request: Mapping[str, Any],
    *,
    registry: Registry | None = None,
    policy: Policy | None = None,
    now: datetime | None = None,
) -> str:
    """The content key (``content-v2-…``) the command line gives a SPEC §8 request
    without ``request_id``: what a script computes to find a decision the command line
    recorded. ``registry`` defaults to every installed plugin, ``policy`` to the SPEC's."""
    engine = Engine(registry, policy)
    envelope = Envelope.parse(request)
    return content_key_v2(
        normal_form(
            {**envelope.canonical, "input": envelope.input},
            registry=engine.registry,
            policy=engine.merged_policy,
            now=now or datetime.now(UTC),
        )
    )


def difference(recorded: Mapping[str, Any], asked: Mapping[str, Any]) -> str | None:
    """What differs between two normal forms — the first field, in the order the asked
    request's rule read them, with both values — or None when they are the same request
    (compared as canonical JSON: ``1`` is not ``true``)."""
    if canonical_bytes(recorded) == canonical_bytes(asked):
        return None
    for name in ("kind", "merchant_id", "campaign"):
        if recorded.get(name) != asked.get(name):
            return msg(
                "{field} {recorded} recorded, {asked} asked",
                field=name, recorded=repr(recorded.get(name)), asked=repr(asked.get(name)),
            )  # fmt: skip
    found = _first_difference("input", recorded.get("input"), asked.get("input"))
    return found or N_("another input")


def _first_difference(path: str, recorded: Any, asked: Any) -> str | None:
    if canonical_bytes({"v": recorded}) == canonical_bytes({"v": asked}):
        return None
    if isinstance(recorded, Mapping) and isinstance(asked, Mapping):
        for name in [*asked, *(n for n in recorded if n not in asked)]:
            found = _first_difference(f"{path}.{name}", recorded.get(name), asked.get(name))
            if found is not None:
                return found
        return None
    if (
        isinstance(recorded, list)
        and isinstance(asked, list)
        and len(recorded) == len(asked)
    ):
        for index, (one, other) in enumerate(zip(recorded, asked, strict=True)):
            found = _first_difference(f"{path}[{index}]", one, other)
            if found is not None:
                return found
        return None
    return msg(
        "{field} {recorded} recorded, {asked} asked",
        field=path, recorded=_shown(recorded), asked=_shown(asked),
    )  # fmt: skip


def _shown(value: Any) -> str:
    if value is None:
        return msg("absent")
    if isinstance(value, str):
        return repr(value)
    return canonical_bytes({"v": value}).decode("utf-8")[5:-1]


__all__ = [
    "CONTENT_V2_PREFIX",
    "content_key_v2",
    "difference",
    "keyed_by_meaning",
    "normal_form",
    "request_key",
    "utc_text",
]
