"""Helpers specific to the Select Alliance rules (DSR, closures, shared reasons).

The general helpers (policy values, rates, how numbers are shown) come from
:mod:`pricecalc.toolkit` and are re-exported here for the rule modules.
"""

from __future__ import annotations

from decimal import Decimal

from pricecalc.decision import Reason
from pricecalc.errors import InvalidInput
from pricecalc.fields import Fields
from pricecalc.i18n import msg
from pricecalc.registry import ReasonCode
from pricecalc.toolkit import (
    fraction,
    norm,
    number_text,
    percent,
    policy_bool,
    policy_count,
    policy_names,
    policy_number,
    policy_rate,
    policy_rate_table,
    rate,
    score,
)

__all__ = [
    "BANNED",
    "DSR_TOO_LOW",
    "FAVORABLE_RATE_TOO_LOW",
    "banned_reason",
    "dsr",
    "dsr_reason",
    "favorable_reason",
    "fraction",
    "norm",
    "number_text",
    "percent",
    "policy_bool",
    "policy_count",
    "policy_names",
    "policy_number",
    "policy_rate",
    "policy_rate_table",
    "rate",
    "score",
]


# -- Select Alliance specifics -------------------------------------------------------------
DSR_MAX = Decimal(5)


def dsr(fields: Fields, name: str = "dsr") -> Decimal:
    """A shop's DSR (detailed seller rating): a number from 0 to 5."""
    value = score(fields, name)
    if value > DSR_MAX:
        raise InvalidInput(fields.at(name), fields.raw(name), msg("must be at most 5"))
    return value


# -- the criteria shared by admission and review (seed 004) --------------------------------
BANNED = "BANNED"
DSR_TOO_LOW = "DSR_TOO_LOW"
FAVORABLE_RATE_TOO_LOW = "FAVORABLE_RATE_TOO_LOW"
#: The explanations of the codes the admission and the daily review share.
SHARED_EXPLAINED = (
    ReasonCode(
        BANNED,
        "权限已被关闭三次，永久不可再开通",
        "permissions were closed three times: banned for good",
    ),
    ReasonCode(DSR_TOO_LOW, "店铺评分(DSR)低于要求", "shop rating (DSR) too low"),
    ReasonCode(FAVORABLE_RATE_TOO_LOW, "好评率低于要求", "favorable rate too low"),
)


def banned_reason(closures: int, limit: int) -> Reason:
    return Reason(
        BANNED,
        f"permissions were closed {closures} times (the limit is {limit}); the shop may "
        "never open Select Alliance (精选联盟) again",
    )


def dsr_reason(value: Decimal, minimum: Decimal) -> Reason:
    return Reason(
        DSR_TOO_LOW, f"DSR {number_text(value)} is below the minimum {number_text(minimum)}"
    )


def favorable_reason(value: Decimal, minimum: Decimal) -> Reason:
    return Reason(
        FAVORABLE_RATE_TOO_LOW,
        f"favorable rate {percent(value)} is below the minimum {percent(minimum)}",
    )
