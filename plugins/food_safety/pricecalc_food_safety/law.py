"""食品安全法 第一百四十八条 — the higher legal standard for food (SPEC §4, §6).

For food that does not meet the food-safety standards the buyer may claim ten times the
price paid or three times the loss, and at least 1,000 yuan. As a 假一赔十 compensation
standard for a line in a food category:

    compensation = max(10 × paid, 3 × loss, 1000.00)        (loss: 0 when not given)

It competes with the platform's ``platform_10x`` (max(10 × paid, 500.00)); the higher wins
and is named. Example: food, paid 39.90 → 1000.00, total 1039.90, standard
``food_safety_law_art148``. A line of another category, or without one, is not its
business (``None``). Disabling the plugin (``--disable-plugin food_safety_law``) leaves
the platform's standards alone.

Policy section ``food_safety_law``: ``categories`` (food, 食品, fresh, 生鲜, alcohol, 酒类,
health_food, 保健食品; matched without regard to case or surrounding space),
``multiplier`` 10, ``loss_multiplier`` 3, ``minimum`` "1000.00". The minimum applies to
each line whatever the core's ``minimum_per`` says: it is the law's, not the platform's.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from pricecalc import hookimpl
from pricecalc.money import ZERO, fen
from pricecalc.policy import PolicyView
from pricecalc.registry import CompensationLine, CompensationStandard
from pricecalc.toolkit import norm, policy_amount, policy_names, policy_number

NAME = "food_safety_law_art148"
SECTION = "food_safety_law"

FOOD_CATEGORIES: tuple[str, ...] = (
    "food",
    "食品",
    "fresh",
    "生鲜",
    "alcohol",
    "酒类",
    "health_food",
    "保健食品",
)

POLICY_DEFAULTS: dict[str, dict[str, Any]] = {
    SECTION: {
        "categories": list(FOOD_CATEGORIES),
        "multiplier": 10,  # × the price paid
        "loss_multiplier": 3,  # × the loss
        "minimum": "1000.00",
    }
}


def _categories(policy: PolicyView) -> frozenset[str]:
    return frozenset(norm(v) for v in policy_names(policy, SECTION, "categories"))


def is_food(line: CompensationLine, policy: PolicyView) -> bool:
    """Is the line's category one of the policy's food categories?"""
    return line.category is not None and norm(line.category) in _categories(policy)


def food_safety_law_art148(line: CompensationLine, policy: PolicyView) -> Decimal | None:
    """``max(10 × paid, 3 × loss, 1000.00)`` for a food line; ``None`` for any other."""
    if not is_food(line, policy):
        return None
    loss = line.loss if line.loss is not None else ZERO
    # A fractional policy multiplier may leave sub-fen digits: rounded to the fen,
    # ROUND_HALF_UP, at this one named step (pricecalc.money.fen).
    by_price = fen(policy_number(policy, SECTION, "multiplier") * line.paid)
    by_loss = fen(policy_number(policy, SECTION, "loss_multiplier") * loss)
    return max(by_price, by_loss, policy_amount(policy, SECTION, "minimum"))


STANDARD = CompensationStandard(
    name=NAME,
    compute=food_safety_law_art148,
    description="食品安全法 第一百四十八条: max(10 × paid, 3 × loss, 1000.00) for food categories",
    label="食品安全法第148条",
)


@hookimpl
def pricecalc_compensation_standards() -> Iterable[CompensationStandard]:
    return [STANDARD]


@hookimpl
def pricecalc_policy_defaults() -> Mapping[str, Mapping[str, Any]]:
    return copy.deepcopy(POLICY_DEFAULTS)


__all__ = [
    "FOOD_CATEGORIES",
    "NAME",
    "POLICY_DEFAULTS",
    "STANDARD",
    "food_safety_law_art148",
    "is_food",
]
