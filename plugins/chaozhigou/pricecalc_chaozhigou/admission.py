"""chaozhigou_admission — may this merchant enter 超值购 with this product? (SPEC §6)

Seed 002, 第五条 2 (merchant) and 3 (product). Every criterion is checked and every one
that fails is its own reason, naming the value and the bound; the decision is approved
(``admitted: true``) only when all pass. Bounds are inclusive: an experience score of
exactly 70 passes, a quality return rate of exactly 0.54% passes.

Input ``merchant``: ``newcomer``, ``seven_day_returns``, ``shipping_insurance``,
``authenticity_guarantee``, ``experience_score``, ``logistics_score``,
``avg_response_seconds``, ``shop_type``, ``accepts_inspection``.
Input ``product``: ``good_review_rate``, ``quality_return_rate``, ``negative_review_rate``,
``complaint_rate``, ``shipping_mode``, ``white_background``, ``product_type``.
Rates are fractions (``"0.0054"``) or percentages (``"0.54%"``), at most 100%.

Choices where the SPEC is silent:

* ``shop_type``, ``shipping_mode`` and ``product_type`` take the English ids or the
  Chinese names (``旗舰店`` → ``flagship``, ``预售`` → ``presale``, ``虚拟商品`` →
  ``virtual``); a value that is none of the known ones is not invalid input but simply not
  allowed (a shop type nobody allowed is refused with a reason that lists the allowed ones).
* A personal shop (``personal``, 个人店) is never admitted: a policy that lists it among
  ``allowed_shop_types`` is refused.
* The result lists every check, passed or not, with its value, operator and bound.

Policy section ``chaozhigou_admission`` (see :data:`POLICY_DEFAULTS`) holds every bound.

This module is the plugin (the ``chaozhigou_admission`` entry point): the rule and its
hooks. Its parts, each a module of its own job:

* :mod:`pricecalc_chaozhigou.applicant` — the merchant and the product, read from the
  request (:class:`AdmissionInput`), and the input as declared (:data:`INPUT`);
* :mod:`pricecalc_chaozhigou.limits` — the policy section and its bounds (:class:`Limits`);
* :mod:`pricecalc_chaozhigou.criteria` — one :class:`Check` per criterion, the reason
  codes and their explanations;
* :mod:`pricecalc_chaozhigou.names` — the campaign's vocabulary, English and Chinese.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from pricecalc import hookimpl
from pricecalc.decision import Outcome, Reason
from pricecalc.fields import Fields, result_field, shape
from pricecalc.registry import Rule, RuleContext
from pricecalc_chaozhigou import DISTRIBUTION, __version__
from pricecalc_chaozhigou.applicant import INPUT, AdmissionInput, MerchantInput, ProductInput
from pricecalc_chaozhigou.criteria import (
    CHECK_SCHEMA,
    CODES,
    COMPLAINT_RATE_HIGH,
    EXPERIENCE_SCORE_LOW,
    EXPLAINED,
    GOOD_REVIEW_RATE_LOW,
    LOGISTICS_SCORE_LOW,
    NEGATIVE_REVIEW_RATE_HIGH,
    NEWCOMER,
    NO_INSPECTION,
    NO_WHITE_BACKGROUND,
    NOT_SPOT_GOODS,
    PRODUCT_TYPE_EXCLUDED,
    QUALITY_RETURN_RATE_HIGH,
    RESPONSE_TOO_SLOW,
    SERVICE_NOT_ENABLED,
    SHOP_TYPE_NOT_ALLOWED,
    Check,
    merchant_checks,
    product_checks,
)
from pricecalc_chaozhigou.limits import POLICY_DEFAULTS, SECTION, Limits

KIND = "chaozhigou_admission"


# -- the rule ------------------------------------------------------------------------------
def chaozhigou_admission(inp: AdmissionInput, ctx: RuleContext) -> Outcome:
    """Admit when every criterion passes; otherwise one reason per failing criterion."""
    limits = Limits.from_policy(ctx.policy)
    merchant = merchant_checks(inp.merchant, limits)
    product = product_checks(inp.product, limits)
    reasons = tuple(Reason(c.code, c.message) for c in (*merchant, *product) if not c.passed)
    return Outcome(
        result={
            "admitted": not reasons,
            "merchant_passed": all(c.passed for c in merchant),
            "product_passed": all(c.passed for c in product),
            "checks": [c.to_dict() for c in (*merchant, *product)],
        },
        reasons=reasons,
    )


def _parse(fields: Fields, ctx: RuleContext) -> AdmissionInput:
    return AdmissionInput.from_fields(fields)


#: The result as :func:`chaozhigou_admission` writes it.
RESULT = shape(
    ("admitted", result_field({"type": "boolean"})),
    ("merchant_passed", result_field({"type": "boolean"})),
    ("product_passed", result_field({"type": "boolean"})),
    ("checks", result_field({"type": "array", "items": CHECK_SCHEMA})),
)


RULE = Rule(
    kind=KIND,
    rule_set=DISTRIBUTION,
    version=__version__,
    parse=_parse,
    decide=chaozhigou_admission,
    description="超值购 admission: merchant and product criteria (SPEC §6; seed 002 第五条 2, 3).",
    # merchant_id is not read: files written before it became an envelope field (SPEC §8)
    # carry it in input, the bundled campaign among them.
    input_fields=INPUT.names,
    inputs=INPUT,
    results=RESULT,
    codes=EXPLAINED,
    label="超值购准入",
)


# -- hooks ---------------------------------------------------------------------------------
@hookimpl
def pricecalc_rules() -> Iterable[Rule]:
    return [RULE]


@hookimpl
def pricecalc_policy_defaults() -> Mapping[str, Mapping[str, Any]]:
    return copy.deepcopy(POLICY_DEFAULTS)


# Every name this module held before its parts moved out stays importable from it.
__all__ = [
    "CODES",
    "COMPLAINT_RATE_HIGH",
    "EXPERIENCE_SCORE_LOW",
    "EXPLAINED",
    "GOOD_REVIEW_RATE_LOW",
    "INPUT",
    "KIND",
    "LOGISTICS_SCORE_LOW",
    "NEGATIVE_REVIEW_RATE_HIGH",
    "NEWCOMER",
    "NOT_SPOT_GOODS",
    "NO_INSPECTION",
    "NO_WHITE_BACKGROUND",
    "POLICY_DEFAULTS",
    "PRODUCT_TYPE_EXCLUDED",
    "QUALITY_RETURN_RATE_HIGH",
    "RESPONSE_TOO_SLOW",
    "RESULT",
    "RULE",
    "SECTION",
    "SERVICE_NOT_ENABLED",
    "SHOP_TYPE_NOT_ALLOWED",
    "AdmissionInput",
    "Check",
    "Limits",
    "MerchantInput",
    "ProductInput",
    "chaozhigou_admission",
    "merchant_checks",
    "product_checks",
]
