"""Pure evaluation: request → validated input → rule → :class:`Decision`.

``evaluate`` touches no file and no store. The only ambient thing it may read is the
clock, and only when the caller passes no ``now``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pricecalc.decision import APPROVED, REJECTED, Decision, Outcome, Reason
from pricecalc.errors import InvalidInput, MissingField, PluginError, PricecalcError, UnknownKind
from pricecalc.fields import Fields
from pricecalc.money import FloatRefused
from pricecalc.plugins import BUILTIN, default_registry
from pricecalc.policy import Policy
from pricecalc.registry import History, NoHistory, Registry, RuleContext
from pricecalc.serialize import jsonable


def _check_result(plugin: str, value: Any, path: str = "result") -> None:
    """A rule's result must be JSON data with money as strings: no floats, no objects."""
    if isinstance(value, float):
        raise PluginError(plugin, f"{path} is a float ({value!r}); amounts must be strings")
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise PluginError(plugin, f"{path} has a non-text key {key!r}")
            _check_result(plugin, item, f"{path}.{key}")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_result(plugin, item, f"{path}[{index}]")
        return
    raise PluginError(plugin, f"{path} holds a {type(value).__name__}, not JSON data")


class _NotPlain(Exception):
    """Raised by :func:`_plain_result` on anything it does not take; the checked walk follows."""


def _plain_result(value: Any) -> Any:
    """A copy of a result made only of exact dict, list, str, int, bool and None, or
    :class:`_NotPlain` (for anything else, including floats and Decimals)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlain
            out[key] = _plain_result(item)
        return out
    if kind is list:
        return [_plain_result(item) for item in value]
    raise _NotPlain


def _result_copy(plugin: str, result: Any) -> Any:
    """The outcome's result checked (:func:`_check_result`) and copied as JSON data."""
    try:
        return _plain_result(result)
    except _NotPlain:  # tuples, other mappings — or a mistake, named by the checked walk
        _check_result(plugin, result)
        return jsonable(result, "result")


def _check_outcome(plugin: str, outcome: Any) -> Outcome:
    if not isinstance(outcome, Outcome):
        raise PluginError(plugin, f"rule returned {type(outcome).__name__}, expected Outcome")
    if type(outcome.result) is not dict and not isinstance(outcome.result, Mapping):
        raise PluginError(plugin, "rule result must be a mapping")
    for reason in outcome.reasons:
        if not isinstance(reason, Reason) or not reason.code or not isinstance(reason.message, str):
            raise PluginError(plugin, f"rule returned an unusable reason {reason!r}")
    return outcome


_DEFAULT_POLICY: Policy | None = None
_EFFECTIVE: dict[tuple[int, int], tuple[Policy, Registry, Policy]] = {}
_EFFECTIVE_MAX = 64


def effective_policy(policy: Policy | None, registry: Registry) -> Policy:
    """``policy`` (default: the SPEC's defaults) over the registry's plugin defaults, with
    every key checked (:meth:`Policy.check_known`).

    Policies and registries are immutable, so the merged policy is kept per pair (by
    identity: a script holding one policy and one registry merges and checks once).
    """
    global _DEFAULT_POLICY
    if policy is None:
        if _DEFAULT_POLICY is None:
            _DEFAULT_POLICY = Policy()
        policy = _DEFAULT_POLICY
    key = (id(policy), id(registry))
    hit = _EFFECTIVE.get(key)
    if hit is not None and hit[0] is policy and hit[1] is registry:
        return hit[2]
    effective = policy.with_defaults(registry.policy_defaults)
    effective.check_known()
    if len(_EFFECTIVE) >= _EFFECTIVE_MAX:
        _EFFECTIVE.clear()
    _EFFECTIVE[key] = (policy, registry, effective)
    return effective


def split_request(request: Any) -> tuple[str, str | None, Any]:
    """Check the SPEC §8 envelope and return ``(kind, request_id, input)``."""
    if type(request) is not dict and not isinstance(request, Mapping):
        raise InvalidInput("request", request, "must be an object with kind and input")
    kind = request.get("kind")
    if kind is None:
        raise MissingField("kind")
    if not isinstance(kind, str) or not kind.strip():
        raise InvalidInput("kind", kind, "must be the name of a decision kind")
    request_id = request.get("request_id")
    if request_id is not None and (
        isinstance(request_id, bool) or not isinstance(request_id, str | int)
    ):
        raise InvalidInput("request_id", request_id, "must be text")
    if request_id is not None:
        request_id = str(request_id)
        if not request_id.strip():
            raise InvalidInput("request_id", request_id, "must not be empty")
    if "input" not in request or request["input"] is None:
        raise MissingField("input")
    unknown = set(request) - {"kind", "request_id", "input"}
    if unknown:
        name = sorted(unknown)[0]
        raise InvalidInput(
            name, request[name], "is not a request field (expected kind, request_id, input)"
        )
    return kind.strip(), request_id, request["input"]


def evaluate(
    request: Mapping[str, Any],
    *,
    now: datetime | None = None,
    policy: Policy | None = None,
    registry: Registry | None = None,
    history: History | None = None,
) -> Decision:
    """Decide one SPEC §8 request. Pure: no I/O; ``now`` defaults to the current UTC time.

    Raises :class:`pricecalc.InvalidInput` (naming the field and value) when the request
    cannot be decided; ``TypeError`` when a Python float is passed.
    """
    canonical = jsonable(request)  # refuses floats anywhere, before anything else
    kind, request_id, raw_input = split_request(request)
    registry = registry if registry is not None else default_registry()
    found = registry.rule(kind)
    if found is None:
        raise UnknownKind("kind", kind, f"is not a known kind ({', '.join(registry.kinds())})")
    plugin, rule = found
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        raise InvalidInput("now", now, "must be a time with a UTC offset")
    view = effective_policy(policy, registry).view()
    context = RuleContext(now=now, policy=view, registry=registry, history=history or NoHistory())
    fields = Fields.of(raw_input, "input")
    # What pricecalc.plugins.guard does, without building its message on every call.
    step = "input parser"
    try:
        parsed = rule.parse(fields, context)
        step = "rule"
        decided = rule.decide(parsed, context)
    except (PricecalcError, FloatRefused):
        raise
    except Exception as exc:
        raise PluginError(plugin, f"the {kind} {step} raised {type(exc).__name__}: {exc}") from exc
    outcome = _check_outcome(plugin, decided)
    result = _result_copy(plugin, outcome.result)
    participants = {plugin, *context.participants}
    return Decision(
        kind=kind,
        request_id=request_id,
        status=REJECTED if outcome.reasons else APPROVED,
        result=result,
        reasons=tuple(outcome.reasons),
        rule_set=rule.rule_set,
        rule_version=rule.version,
        request=canonical,
        policy=jsonable(view.used, "policy"),
        plugins={
            name: registry.plugin_versions.get(name, "0+unversioned")
            for name in sorted(participants)
        },
    )


__all__ = ["BUILTIN", "evaluate", "split_request"]
