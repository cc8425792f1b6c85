"""select_alliance_admission — may the shop open Select Alliance, full or trial? (SPEC §6)

Seeds 004 and 000. Input ``effective_reviews`` (a whole number), ``dsr`` (0–5),
``favorable_rate`` (a fraction or a percentage) and ``closures`` (how many times the shop's
permissions were closed before).

* **full** version: more than 20 effective reviews, DSR ≥ 4.5 and favorable rate ≥ 80%;
* **trial** version: 20 reviews or fewer (20 itself, by default) with DSR ≥ 4.5;
* ``BANNED``: permissions closed 3 times — never again, whatever the numbers.

Every failing criterion is its own reason (``BANNED``, ``DSR_TOO_LOW``,
``FAVORABLE_RATE_TOO_LOW``), naming the value and the bound.

Result: ``admitted``; ``version`` (``full``, ``trial``, or ``null`` when not admitted);
``judged_for`` (the version the review count points to, even when not admitted);
and the inputs as read (rates as fractions, at least four decimals).

Choices where the SPEC is silent:

* The trial version asks only for DSR ≥ 4.5, as the SPEC and seed 004 say; policy
  ``trial_requires_favorable_rate = true`` makes it ask for the favorable rate too.
* The review count that still means trial is policy ``full_reviews_above`` (20): full
  needs strictly more effective reviews than that.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import attrs

from pricecalc import hookimpl
from pricecalc.decision import Outcome, Reason
from pricecalc.fields import Fields, count_field, rate_field, result_field, score_field, shape
from pricecalc.policy import PolicyView
from pricecalc.registry import Rule, RuleContext
from pricecalc_select_alliance import DISTRIBUTION, __version__
from pricecalc_select_alliance._support import (
    BANNED,
    DSR_TOO_LOW,
    FAVORABLE_RATE_TOO_LOW,
    SHARED_EXPLAINED,
    banned_reason,
    dsr,
    dsr_reason,
    favorable_reason,
    fraction,
    number_text,
    policy_bool,
    policy_count,
    policy_number,
    policy_rate,
    rate,
)

KIND = "select_alliance_admission"
SECTION = "select_alliance_admission"

CODES: tuple[str, ...] = (BANNED, DSR_TOO_LOW, FAVORABLE_RATE_TOO_LOW)

FULL = "full"
TRIAL = "trial"

POLICY_DEFAULTS: dict[str, dict[str, Any]] = {
    SECTION: {
        # full version needs strictly more effective reviews than this (seed 004: "> 20").
        "full_reviews_above": 20,
        "min_dsr": "4.5",
        "min_favorable_rate": "80%",
        # permissions closed this many times: never again (seed 004: three chances).
        "ban_after_closures": 3,
        # does the trial version also need the favorable rate? (seed 004: DSR only)
        "trial_requires_favorable_rate": False,
    }
}


@attrs.frozen
class Limits:
    """The bounds, read from the policy (and so recorded in the decision)."""

    full_reviews_above: int
    min_dsr: Decimal
    min_favorable_rate: Decimal
    ban_after_closures: int
    trial_requires_favorable_rate: bool

    @classmethod
    def from_policy(cls, policy: PolicyView) -> Limits:
        return cls(
            full_reviews_above=policy_count(policy, SECTION, "full_reviews_above"),
            min_dsr=policy_number(policy, SECTION, "min_dsr"),
            min_favorable_rate=policy_rate(policy, SECTION, "min_favorable_rate"),
            ban_after_closures=policy_count(policy, SECTION, "ban_after_closures", minimum=1),
            trial_requires_favorable_rate=policy_bool(
                policy, SECTION, "trial_requires_favorable_rate"
            ),
        )


@attrs.frozen
class AllianceAdmissionInput:
    """A validated select_alliance_admission request."""

    effective_reviews: int
    dsr: Decimal
    favorable_rate: Decimal
    closures: int

    @classmethod
    def from_fields(cls, f: Fields) -> AllianceAdmissionInput:
        return cls(
            effective_reviews=f.integer("effective_reviews", minimum=0),
            dsr=dsr(f),
            favorable_rate=rate(f, "favorable_rate"),
            closures=f.integer("closures", minimum=0),
        )


def select_alliance_admission(inp: AllianceAdmissionInput, ctx: RuleContext) -> Outcome:
    """Full, trial, or not at all; one reason per failing criterion."""
    limits = Limits.from_policy(ctx.policy)
    judged_for = FULL if inp.effective_reviews > limits.full_reviews_above else TRIAL
    reasons: list[Reason] = []
    if inp.closures >= limits.ban_after_closures:
        reasons.append(banned_reason(inp.closures, limits.ban_after_closures))
    if inp.dsr < limits.min_dsr:
        reasons.append(dsr_reason(inp.dsr, limits.min_dsr))
    needs_favorable = judged_for == FULL or limits.trial_requires_favorable_rate
    if needs_favorable and inp.favorable_rate < limits.min_favorable_rate:
        reasons.append(favorable_reason(inp.favorable_rate, limits.min_favorable_rate))
    return Outcome(
        result={
            "admitted": not reasons,
            "version": None if reasons else judged_for,
            "judged_for": judged_for,
            "effective_reviews": inp.effective_reviews,
            "dsr": number_text(inp.dsr),
            "favorable_rate": fraction(inp.favorable_rate),
            "favorable_rate_checked": needs_favorable,
            "closures": inp.closures,
        },
        reasons=tuple(reasons),
    )


def _parse(fields: Fields, ctx: RuleContext) -> AllianceAdmissionInput:
    return AllianceAdmissionInput.from_fields(fields)


#: The input as :meth:`AllianceAdmissionInput.from_fields` reads it (SPEC §6).
INPUT = shape(
    ("effective_reviews", count_field(minimum=0)),
    ("dsr", score_field(maximum=5)),
    ("favorable_rate", rate_field()),
    ("closures", count_field(minimum=0)),
)
#: The result as :func:`select_alliance_admission` writes it.
RESULT = shape(
    ("admitted", result_field({"type": "boolean"})),
    ("version", result_field({"enum": [FULL, TRIAL, None]})),
    ("judged_for", result_field({"enum": [FULL, TRIAL]})),
    ("effective_reviews", result_field({"type": "integer", "minimum": 0})),
    ("dsr", result_field({"type": "string"})),
    ("favorable_rate", result_field({"type": "string"})),
    ("favorable_rate_checked", result_field({"type": "boolean"})),
    ("closures", result_field({"type": "integer", "minimum": 0})),
)


RULE = Rule(
    kind=KIND,
    rule_set=DISTRIBUTION,
    version=__version__,
    parse=_parse,
    decide=select_alliance_admission,
    description="Select Alliance admission: full or trial version, or banned (SPEC §6).",
    input_fields=INPUT.names,
    inputs=INPUT,
    results=RESULT,
    codes=tuple(c for c in SHARED_EXPLAINED if c.code in CODES),
    label="精选联盟准入",
)


@hookimpl
def pricecalc_rules() -> Iterable[Rule]:
    return [RULE]


@hookimpl
def pricecalc_policy_defaults() -> Mapping[str, Mapping[str, Any]]:
    return copy.deepcopy(POLICY_DEFAULTS)


__all__ = [
    "CODES",
    "POLICY_DEFAULTS",
    "RULE",
    "AllianceAdmissionInput",
    "Limits",
    "select_alliance_admission",
]
