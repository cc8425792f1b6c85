"""Helpers for rule authors: policy values, input metrics and how numbers are shown.

Public API for plugins (first-party and third-party alike): a plugin is its own
distribution and can only share code through pricecalc, so the helpers every rule set
needs live here rather than copied into each plugin.

Policy values come from a TOML file (numbers arrive as ``Decimal`` or ``int``) or from the
defaults (strings such as ``"0.54%"``); a value of the wrong shape is a
:class:`pricecalc.PolicyError` naming ``section.key``. Metrics in the input are read with
:class:`pricecalc.fields.Fields`, so every error names the field path.

Nothing here rounds: numbers are shown exactly as they are.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from pricecalc.errors import InvalidInput, PolicyError
from pricecalc.fields import Fields
from pricecalc.i18n import N_, msg
from pricecalc.money import HUNDRED, parse_amount, parse_rate, to_decimal
from pricecalc.policy import PolicyView

ONE = Decimal(1)


def _refused(where: str, value: Any, problem: str, **more: Any) -> PolicyError:
    """The error for the policy value at ``where`` (``section.key``): ``problem`` is a
    marked template naming ``{key}`` and ``{value!r}`` (and any of ``more``)."""
    return PolicyError(msg(problem, key=where, value=value, **more))


# -- policy values -------------------------------------------------------------------------
def policy_number(policy: PolicyView, section: str, key: str, *, positive: bool = False) -> Decimal:
    """A non-negative number (a score, seconds, hours) from the policy."""
    value = policy.get(section, key)
    try:
        number = to_decimal(value, f"{section}.{key}")
    except (InvalidInput, TypeError) as exc:
        raise _refused(
            f"{section}.{key}", value, N_("policy: {key} must be a number, got {value!r}")
        ) from exc
    if number < 0:
        raise _refused(
            f"{section}.{key}", value, N_("policy: {key} must not be negative, got {value!r}")
        )
    if positive and number == 0:
        raise _refused(
            f"{section}.{key}", value, N_("policy: {key} must be greater than 0, got {value!r}")
        )
    return number


def as_rate(value: Any, where: str) -> Decimal:
    """A policy rate: a fraction (``"0.0054"``) or a percentage (``"0.54%"``), at most 100%."""
    try:
        rate = parse_rate(value, where)
    except (InvalidInput, TypeError) as exc:
        raise _refused(
            where,
            value,
            N_('policy: {key} must be a rate such as "0.54%" or "0.0054", got {value!r}'),
        ) from exc
    if rate > ONE:
        raise _refused(where, value, N_("policy: {key} must be at most 100%, got {value!r}"))
    return rate


def policy_rate(policy: PolicyView, section: str, key: str) -> Decimal:
    return as_rate(policy.get(section, key), f"{section}.{key}")


def policy_names(policy: PolicyView, section: str, key: str) -> tuple[str, ...]:
    """A list of non-empty names from the policy."""
    value = policy.get(section, key)
    if (
        isinstance(value, str | bytes)
        or not isinstance(value, list | tuple)
        or not all(isinstance(v, str) and v.strip() for v in value)
    ):
        raise _refused(
            f"{section}.{key}", value, N_("policy: {key} must be a list of names, got {value!r}")
        )
    return tuple(v.strip() for v in value)


# -- input metrics -------------------------------------------------------------------------
def score(fields: Fields, name: str) -> Decimal:
    """A plain non-negative number (a score, seconds): a percentage sign is refused."""
    raw = fields.raw(name)
    if isinstance(raw, str) and raw.strip().endswith("%"):
        raise InvalidInput(fields.at(name), raw, N_("must be a plain number, not a percentage"))
    return fields.number(name)


def rate(fields: Fields, name: str) -> Decimal:
    """A rate: a fraction (``"0.0054"``) or a percentage (``"0.54%"``), at most 100%."""
    value = fields.rate(name)
    if value > ONE:
        raise InvalidInput(fields.at(name), fields.raw(name), N_("must be at most 100% (1)"))
    return value


# -- text ----------------------------------------------------------------------------------
def norm(name: str) -> str:
    """How names are compared: surrounding space removed, case folded (``Flagship``)."""
    return name.strip().casefold()


def number_text(number: Decimal) -> str:
    """A number as people write it, exactly: ``70``, ``69.99``, ``0.5``."""
    text = format(number.normalize(), "f")
    return text


def plain(number: Decimal) -> str:
    """:func:`number_text` under its old name, kept for plugins until 0.4 ("plain" meant
    five things across the tree)."""
    warnings.warn(
        "pricecalc.toolkit.plain is now pricecalc.toolkit.number_text in pricecalc 0.3; "
        "the old name goes in 0.4",
        DeprecationWarning,
        stacklevel=2,
    )
    return number_text(number)


def percent(value: Decimal) -> str:
    """A rate as an exact percentage: ``0.0054`` → ``0.54%``."""
    return f"{number_text(value * HUNDRED)}%"


def fraction(value: Decimal) -> str:
    """A rate for output: a fraction with at least four decimals, never rounded."""
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -4:
        return f"{value:.4f}"  # exact: the value has at most four decimals
    return number_text(value)


# -- more policy shapes ----------------------------------------------------------------------
def policy_rate_table(policy: PolicyView, section: str, key: str) -> dict[str, Decimal]:
    """A ``{name: rate}`` table from the policy, keyed by :func:`norm` of each name."""
    value = policy.get(section, key)
    if not isinstance(value, Mapping):
        raise _refused(
            f"{section}.{key}",
            value,
            N_("policy: {key} must be a table of name = rate, got {value!r}"),
        )
    return {
        norm(str(name)): as_rate(rate, f"{section}.{key}.{name}") for name, rate in value.items()
    }


def policy_count(policy: PolicyView, section: str, key: str, *, minimum: int = 0) -> int:
    """A whole number from the policy (a count of reviews or closures)."""
    value = policy.get(section, key)
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _refused(
            f"{section}.{key}",
            value,
            N_("policy: {key} must be a whole number of at least {minimum}, got {value!r}"),
            minimum=minimum,
        )
    return value


def policy_amount(policy: PolicyView, section: str, key: str) -> Decimal:
    """An amount in yuan from the policy (at most two decimals, not negative)."""
    value = policy.get(section, key)
    try:
        return parse_amount(value, f"{section}.{key}")
    except (InvalidInput, TypeError) as exc:
        raise _refused(
            f"{section}.{key}",
            value,
            N_('policy: {key} must be an amount such as "500.00", got {value!r}'),
        ) from exc


def policy_bool(policy: PolicyView, section: str, key: str) -> bool:
    value = policy.get(section, key)
    if not isinstance(value, bool):
        raise _refused(
            f"{section}.{key}", value, N_("policy: {key} must be true or false, got {value!r}")
        )
    return value
