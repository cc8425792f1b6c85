"""forwarding_clawback — 禁止转寄 (SPEC §5; seed 002, 第五条 1(5)).

For platform-subsidised orders in the listed categories, a detected forwarding ends the
subsidy: the platform claws back ``platform_subsidy × quantity``.

Covered categories are the built-in :data:`CATEGORIES`, those plugins add through the
``pricecalc_clawback_categories`` hook, and the policy's
``forwarding_clawback.extra_categories``. Choices where the SPEC is silent:

* Each listed name is **one** category, slashes included: ``电玩/配件/游戏/攻略`` is the
  platform's name for a single category (as on Taobao/Douyin category trees), so a bare
  ``配件`` (accessories of anything) is *not* covered. Add such names through the policy.
* Matching is on the whole name after normalising: Unicode NFKC (full-width ``／`` and
  letters become ASCII), case folded (``平板电脑/mid`` as in the seed matches
  ``平板电脑/MID``), surrounding space removed and space around ``/`` ignored.
* Built-in and plugin categories are checked first (``covered_by`` names the plugin; the
  built-in list is the ``builtin`` plugin), then the policy (``covered_by: "policy"``).
* A ``platform_subsidy`` of 0 is accepted (the clawback is then 0.00).
* A rejected request claws back nothing: ``clawback`` is ``"0.00"``.
* **Once per order** (SPEC §5): an order an approved, not voided clawback already clawed
  back is rejected ``ALREADY_CLAWED_BACK`` naming that record (read from the store through
  ``ctx.history``); a void is the way to decide again.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import attrs

from pricecalc.decision import Outcome, Reason
from pricecalc.fields import (
    MONEY_OUT,
    Fields,
    amount_field,
    boolean_field,
    count_field,
    result_field,
    shape,
    text_field,
)
from pricecalc.history import PastDecision
from pricecalc.money import ZERO, fmt
from pricecalc.registry import SUBSIDY_CLAWBACK, MoneyFigure, ReasonCode, Rule, RuleContext
from pricecalc.toolkit import policy_names

KIND = "forwarding_clawback"
SECTION = "forwarding_clawback"
POLICY = "policy"

CATEGORY_NOT_COVERED = "CATEGORY_NOT_COVERED"
NOT_FORWARDED = "NOT_FORWARDED"
ALREADY_CLAWED_BACK = "ALREADY_CLAWED_BACK"

#: The categories seed 002 lists (第五条 1(5)), exactly as SPEC §5 names them.
CATEGORIES: tuple[str, ...] = (
    "手机",
    "笔记本电脑",
    "酒类",
    "电玩/配件/游戏/攻略",
    "影音电器",
    "个人保健/护理电器",
    "平板电脑/MID",
    "生活电器",
)

_SPACE_AROUND_SLASH = re.compile(r"\s*/\s*")
_SPACES = re.compile(r"\s+")


def normalize_category(name: str) -> str:
    """The form categories are compared in: NFKC, case folded, spaces tidied."""
    text = unicodedata.normalize("NFKC", name).casefold().strip()
    text = _SPACE_AROUND_SLASH.sub("/", text)
    return _SPACES.sub(" ", text)


@attrs.frozen
class ForwardingInput:
    """A validated forwarding_clawback request; ``platform_subsidy`` is per unit."""

    order_id: str
    category: str
    platform_subsidy: Decimal
    forwarded: bool
    quantity: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    product_id: str | None = None

    @classmethod
    def from_fields(cls, f: Fields) -> ForwardingInput:
        """Parse the ``input`` object; :class:`pricecalc.InvalidInput` names the field."""
        return cls(
            order_id=f.identifier("order_id"),
            category=f.string("category"),
            platform_subsidy=f.amount("platform_subsidy"),
            forwarded=f.boolean("forwarded"),
            quantity=f.integer("quantity", 1, minimum=1),
            product_id=f.optional_identifier("product_id"),
        )


#: The input as :meth:`ForwardingInput.from_fields` reads it (SPEC §5).
INPUT = shape(
    ("order_id", text_field(identifier=True)),
    ("category", text_field()),
    ("platform_subsidy", amount_field()),
    ("forwarded", boolean_field()),
    ("quantity", count_field(minimum=1, required=False)),
    ("product_id", text_field(required=False, identifier=True)),
)


def _parse(fields: Fields, ctx: RuleContext) -> ForwardingInput:
    return ForwardingInput.from_fields(fields)


def _policy_categories(ctx: RuleContext) -> tuple[str, ...]:
    return policy_names(ctx.policy, SECTION, "extra_categories")


def covering(
    category: str, registered: Iterable[tuple[str, str]], extra: Iterable[str]
) -> tuple[str, str] | None:
    """``(listed name, covered_by)`` for the first listed category matching, else None.

    ``registered`` gives ``(category, plugin)`` pairs in registration order; ``extra``
    the policy's names.
    """
    wanted = normalize_category(category)
    for name, plugin in registered:
        if normalize_category(name) == wanted:
            return name, plugin
    for name in extra:
        if normalize_category(name) == wanted:
            return name, POLICY
    return None


def forwarding_clawback(inp: ForwardingInput, ctx: RuleContext) -> Outcome:
    """Claw back the platform subsidy of a forwarded order in a covered category."""
    found = covering(
        inp.category, ctx.registry.clawback_categories.items(), _policy_categories(ctx)
    )
    reasons: list[Reason] = []
    if found is None:
        reasons.append(
            Reason(
                CATEGORY_NOT_COVERED,
                f"category {inp.category!r} is not one of the categories covered by the "
                "forwarding clawback",
            )
        )
    if not inp.forwarded:
        reasons.append(
            Reason(
                NOT_FORWARDED,
                f"order {inp.order_id} was not forwarded (forwarded is false); "
                "the platform subsidy stands",
            )
        )
    earlier = clawed_back(ctx.history.decisions(inp.order_id))
    if earlier is not None:
        reasons.append(
            Reason(
                ALREADY_CLAWED_BACK,
                f"order {inp.order_id} was already clawed back by record {earlier.seq}"
                f" (clawback {earlier.result.get('clawback')}); to decide it again, void "
                f"record {earlier.seq} first",
            )
        )
    clawback = ZERO if reasons else inp.platform_subsidy * inp.quantity
    result: dict[str, Any] = {
        "order_id": inp.order_id,
        "category": inp.category,
        "matched_category": found[0] if found else None,
        "covered_by": found[1] if found else None,
        "platform_subsidy": fmt(inp.platform_subsidy),
        "quantity": inp.quantity,
        "clawback": fmt(clawback),
    }
    used = frozenset() if found is None or found[1] == POLICY else frozenset({found[1]})
    return Outcome(result=result, reasons=tuple(reasons), plugins=used)


def clawed_back(past: Iterable[PastDecision]) -> PastDecision | None:
    """The approved, not voided clawback already recorded for the order, if any (SPEC §5)."""
    return next((d for d in past if d.kind == KIND and d.counts), None)


def _decide(inp: ForwardingInput, ctx: RuleContext) -> Outcome:
    return forwarding_clawback(inp, ctx)


#: SPEC §10: the platform subsidy clawed back from the merchant.
FIGURES = (
    MoneyFigure(
        "subsidy_clawback",
        "转寄追回补贴",
        "subsidy clawback",
        "clawback",
        feeds=SUBSIDY_CLAWBACK,
    ),
)
EXPLAINED = (
    ReasonCode(
        CATEGORY_NOT_COVERED,
        "该类目不在禁止转寄范围内",
        "the category is not covered by the forwarding ban",
    ),
    ReasonCode(NOT_FORWARDED, "未检测到转寄", "no forwarding was detected"),
    ReasonCode(
        ALREADY_CLAWED_BACK, "该订单的补贴已追回过", "this order's subsidy was already clawed back"
    ),
)

#: The result as :func:`forwarding_clawback` writes it (SPEC §5).
RESULT = shape(
    ("order_id", result_field({"type": "string"})),
    ("category", result_field({"type": "string"})),
    ("matched_category", result_field({"type": ["string", "null"]})),
    ("covered_by", result_field({"type": ["string", "null"]})),
    ("platform_subsidy", result_field(MONEY_OUT)),
    ("quantity", result_field({"type": "integer", "minimum": 1})),
    ("clawback", result_field(MONEY_OUT)),
)


RULE = Rule(
    kind=KIND,
    rule_set="chaozhigou-standard",
    version="1.0.0",
    parse=_parse,
    decide=_decide,
    description="禁止转寄: claw back the platform subsidy of a forwarded order (SPEC §5).",
    input_fields=frozenset(
        {"order_id", "category", "platform_subsidy", "forwarded", "quantity", "product_id"}
    ),
    inputs=INPUT,
    results=RESULT,
    figures=FIGURES,
    codes=EXPLAINED,
    label="禁止转寄追回",
)
