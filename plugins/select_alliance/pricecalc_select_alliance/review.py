"""select_alliance_review — the daily check of a Select Alliance shop (SPEC §6; seed 004).

Every day the platform checks the shop's DSR and favorable rate. Below DSR 4.5 or a
favorable rate of 80%:

* on any day but Wednesday: ``warn``;
* on a Wednesday (the **Beijing** calendar date): ``close`` — permissions are closed and
  ``closures`` goes up by one;
* if that closure is the third: ``ban`` — the shop may never open Select Alliance again.

Otherwise ``none``. Input ``date`` (a date ``"2026-11-11"``, or a date-time, which is first
converted to Beijing time: ``2026-11-10T16:30Z`` is Wednesday 11-11 00:30 in Beijing),
``dsr``, ``favorable_rate``, ``closures`` (closures so far).

Result: ``action``, ``date`` and ``weekday`` (Beijing), ``closure_day``, ``dsr``,
``favorable_rate``, ``closures_before`` and ``closures`` (the new count). Reasons: one per
criterion below its bound (``DSR_TOO_LOW``, ``FAVORABLE_RATE_TOO_LOW``), and ``BANNED`` when
the action is ``ban``; ``none`` is the only approved outcome.

Choices where the SPEC is silent:

* A shop whose ``closures`` already reached the limit is banned already: ``ban`` again,
  ``closures`` unchanged, with ``BANNED`` naming the count.
* The closure weekday is policy ``closure_weekday`` (``"wednesday"``; an English day name
  or ISO number 1–7); the bounds are this section's own (``min_dsr``,
  ``min_favorable_rate``, ``ban_after_closures``), so the review still works when the
  admission plugin is disabled.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import attrs

from pricecalc import hookimpl
from pricecalc.decision import Outcome, Reason
from pricecalc.errors import InvalidInput, PolicyError
from pricecalc.fields import (
    BEIJING,
    Fields,
    count_field,
    date_field,
    parse_time,
    rate_field,
    result_field,
    score_field,
    shape,
)
from pricecalc.i18n import msg
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
    norm,
    number_text,
    policy_count,
    policy_number,
    policy_rate,
    rate,
)

KIND = "select_alliance_review"
SECTION = "select_alliance_review"
CODES: tuple[str, ...] = (DSR_TOO_LOW, FAVORABLE_RATE_TOO_LOW, BANNED)

NONE = "none"
WARN = "warn"
CLOSE = "close"
BAN = "ban"
ACTIONS: tuple[str, ...] = (NONE, WARN, CLOSE, BAN)

WEEKDAYS: tuple[str, ...] = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)

POLICY_DEFAULTS: dict[str, dict[str, Any]] = {
    SECTION: {
        "min_dsr": "4.5",
        "min_favorable_rate": "80%",
        # the day shops still below the bounds lose their permissions (Beijing date).
        "closure_weekday": "wednesday",
        # the closure that makes this count is a ban (seed 004: three chances).
        "ban_after_closures": 3,
    }
}


def beijing_date(f: Fields, name: str) -> date:
    """A calendar date as given, or the Beijing date of a date-time (SPEC §1 times)."""
    raw = f.raw(name)
    if isinstance(raw, date) and not isinstance(raw, datetime):
        return raw
    if isinstance(raw, str):
        try:
            return date.fromisoformat(raw.strip())
        except ValueError:
            pass
    if isinstance(raw, str | datetime):
        try:
            return parse_time(raw, f.at(name)).astimezone(BEIJING).date()
        except InvalidInput:
            pass
    raise InvalidInput(
        f.at(name),
        raw,
        msg('must be a date such as "2026-11-11" or a time such as "2026-11-11T10:00"'),
    )


def _weekday(policy: PolicyView) -> int:
    """Policy ``closure_weekday`` as an ISO weekday (Monday 1 … Sunday 7)."""
    value = policy.get(SECTION, "closure_weekday")
    if isinstance(value, str) and norm(value) in WEEKDAYS:
        return WEEKDAYS.index(norm(value)) + 1
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 7:
        return value
    raise PolicyError(
        msg(
            'policy: {section}.closure_weekday must be a day name such as "wednesday" or '
            "an ISO weekday 1-7, got {value!r}",
            section=SECTION, value=value,
        )
    )  # fmt: skip


@attrs.frozen
class Limits:
    """The bounds, read from the policy (and so recorded in the decision)."""

    min_dsr: Decimal
    min_favorable_rate: Decimal
    closure_weekday: int
    ban_after_closures: int

    @classmethod
    def from_policy(cls, policy: PolicyView) -> Limits:
        return cls(
            min_dsr=policy_number(policy, SECTION, "min_dsr"),
            min_favorable_rate=policy_rate(policy, SECTION, "min_favorable_rate"),
            closure_weekday=_weekday(policy),
            ban_after_closures=policy_count(policy, SECTION, "ban_after_closures", minimum=1),
        )


@attrs.frozen
class ReviewInput:
    """A validated select_alliance_review request; ``date`` is already the Beijing date."""

    date: date
    dsr: Decimal
    favorable_rate: Decimal
    closures: int

    @classmethod
    def from_fields(cls, f: Fields) -> ReviewInput:
        return cls(
            date=beijing_date(f, "date"),
            dsr=dsr(f),
            favorable_rate=rate(f, "favorable_rate"),
            closures=f.integer("closures", minimum=0),
        )


def select_alliance_review(inp: ReviewInput, ctx: RuleContext) -> Outcome:
    """none / warn / close / ban, and the new closure count."""
    limits = Limits.from_policy(ctx.policy)
    closure_day = inp.date.isoweekday() == limits.closure_weekday
    below: list[Reason] = []
    if inp.dsr < limits.min_dsr:
        below.append(dsr_reason(inp.dsr, limits.min_dsr))
    if inp.favorable_rate < limits.min_favorable_rate:
        below.append(favorable_reason(inp.favorable_rate, limits.min_favorable_rate))

    closures = inp.closures
    reasons = list(below)
    if inp.closures >= limits.ban_after_closures:
        action = BAN  # banned already: no permission left to close
        reasons.append(banned_reason(inp.closures, limits.ban_after_closures))
    elif not below:
        action = NONE
    elif not closure_day:
        action = WARN
    else:
        closures = inp.closures + 1
        action = BAN if closures >= limits.ban_after_closures else CLOSE
        if action == BAN:
            reasons.append(banned_reason(closures, limits.ban_after_closures))
    return Outcome(
        result={
            "action": action,
            "date": inp.date.isoformat(),
            "weekday": WEEKDAYS[inp.date.isoweekday() - 1],
            "closure_day": closure_day,
            "dsr": number_text(inp.dsr),
            "favorable_rate": fraction(inp.favorable_rate),
            "closures_before": inp.closures,
            "closures": closures,
        },
        reasons=tuple(reasons),
    )


def _parse(fields: Fields, ctx: RuleContext) -> ReviewInput:
    return ReviewInput.from_fields(fields)


#: The input as :meth:`ReviewInput.from_fields` reads it (SPEC §6).
INPUT = shape(
    ("date", date_field()),
    ("dsr", score_field(maximum=5)),
    ("favorable_rate", rate_field()),
    ("closures", count_field(minimum=0)),
)
#: The result as :func:`select_alliance_review` writes it.
RESULT = shape(
    ("action", result_field({"type": "string"})),
    ("date", result_field({"type": "string"})),
    ("weekday", result_field({"type": "string"})),
    ("closure_day", result_field({"type": "boolean"})),
    ("dsr", result_field({"type": "string"})),
    ("favorable_rate", result_field({"type": "string"})),
    ("closures_before", result_field({"type": "integer", "minimum": 0})),
    ("closures", result_field({"type": "integer", "minimum": 0})),
)


RULE = Rule(
    kind=KIND,
    rule_set=DISTRIBUTION,
    version=__version__,
    parse=_parse,
    decide=select_alliance_review,
    description="Select Alliance daily review: warn, close on Wednesdays, ban on the third.",
    input_fields=INPUT.names,
    inputs=INPUT,
    results=RESULT,
    codes=tuple(c for c in SHARED_EXPLAINED if c.code in CODES),
    label="精选联盟考核",
)


@hookimpl
def pricecalc_rules() -> Iterable[Rule]:
    return [RULE]


@hookimpl
def pricecalc_policy_defaults() -> Mapping[str, Mapping[str, Any]]:
    return copy.deepcopy(POLICY_DEFAULTS)


__all__ = [
    "ACTIONS",
    "CODES",
    "POLICY_DEFAULTS",
    "RULE",
    "Limits",
    "ReviewInput",
    "beijing_date",
    "select_alliance_review",
]
