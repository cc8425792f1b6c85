"""Evaluation without recording: the pure rule step and the :class:`Engine` that feeds it.

:func:`evaluate_envelope` is the pure step — envelope → validated input → rule →
:class:`Decision` — and touches no file, no store, no clock and no global: the caller hands
it the parsed request (:class:`~pricecalc.envelope.Envelope`), the plugin registry, the
policy already merged with the registry's defaults (:meth:`~pricecalc.policy.Policy.merged`),
the time and the history.

:class:`Engine` and :func:`evaluate` supply what it leaves to its caller, for scripts: the
request is parsed, the registry defaults to every installed plugin, the policy to the
SPEC's defaults merged with the plugins', the time to now. An :class:`Engine` merges its
policy once and is the way to decide many requests in a loop (a :class:`pricecalc.Calculator`
holds one, decides through it, and records what it decides); :func:`evaluate`
(``pricecalc.evaluate``) uses one default :class:`Engine` (every installed plugin, the
SPEC's default policy), built on first use and then shared, unless given its own policy or
registry.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pricecalc.decision import APPROVED, REJECTED, Decision, Outcome, Reason
from pricecalc.envelope import Envelope
from pricecalc.errors import InvalidInput, PluginError, UnknownKind, guard
from pricecalc.fields import Fields, check_keys
from pricecalc.history import NO_HISTORY, History
from pricecalc.i18n import N_, msg
from pricecalc.plugins import default_registry
from pricecalc.policy import Policy
from pricecalc.registry import Registry, RuleContext
from pricecalc.serialize import checked_result, jsonable


def _check_outcome(plugin: str, outcome: Any) -> Outcome:
    if not isinstance(outcome, Outcome):
        raise PluginError(
            plugin, msg("rule returned {type}, expected Outcome", type=type(outcome).__name__)
        )
    for reason in outcome.reasons:
        if not isinstance(reason, Reason) or not reason.code or not isinstance(reason.message, str):
            raise PluginError(
                plugin, msg("rule returned an unusable reason {reason!r}", reason=reason)
            )
    if outcome.tags and not all(isinstance(tag, str) and tag for tag in outcome.tags):
        raise PluginError(plugin, msg("rule returned unusable tags {tags!r}", tags=outcome.tags))
    return outcome


def evaluate_envelope(
    envelope: Envelope,
    *,
    registry: Registry,
    policy: Policy,
    now: datetime,
    history: History = NO_HISTORY,
    operator: str | None = None,
) -> Decision:
    """Decide one parsed request. Pure: the same arguments always give the same decision.

    ``policy`` must already hold the registry's plugin defaults (``Policy.merged``).
    Raises :class:`pricecalc.InvalidInput` (naming the field and value) when the request
    cannot be decided, :class:`pricecalc.PluginError` naming a plugin that misbehaves.
    """
    found = registry.rule(envelope.kind)
    if found is None:
        raise UnknownKind(
            "kind",
            envelope.kind,
            msg("is not a known kind ({known})", known=", ".join(registry.kinds())),
        )
    plugin, rule = found
    if now.tzinfo is None:
        raise InvalidInput("now", now, N_("must be a time with a UTC offset"))
    fields = Fields.of(envelope.input, "input")
    if rule.input_fields is not None and not rule.input_fields.issuperset(envelope.input):
        check_keys(fields, rule.input_fields)  # names the first unknown key
    view = policy.view()
    context = RuleContext(now, view, registry, history, operator)
    with guard(plugin, "the {} input parser raised {error}", envelope.kind):
        parsed = rule.parse(fields, context)
    with guard(plugin, "the {} rule raised {error}", envelope.kind):
        decided = rule.decide(parsed, context)
    outcome = _check_outcome(plugin, decided)
    result = checked_result(plugin, outcome.result)
    if type(result) is not dict:
        raise PluginError(plugin, msg("rule result must be a mapping"))
    versions = registry.plugin_versions
    if outcome.plugins and outcome.plugins != {plugin}:
        participants = sorted({plugin, *outcome.plugins})
        plugins = {name: versions.get(name, "0+unversioned") for name in participants}
    else:  # the usual case: the rule's own plugin alone
        plugins = {plugin: versions.get(plugin, "0+unversioned")}
    return Decision(
        kind=envelope.kind,
        request_id=envelope.request_id,
        status=REJECTED if outcome.reasons else APPROVED,
        result=result,
        reasons=tuple(outcome.reasons),
        rule_set=rule.rule_set,
        rule_version=rule.version,
        request=envelope.canonical,
        policy=jsonable(view.used, "policy") if view.used else {},
        plugins=plugins,
        merchant_id=envelope.merchant_id,
        campaign=envelope.campaign,
        tags=tuple(outcome.tags),
    )


class Engine:
    """The rules of one registry under one policy, merged once: ``engine.evaluate(request)``
    decides a request, recording nothing. Immutable and safe to share between threads."""

    def __init__(self, registry: Registry | None = None, policy: Policy | None = None) -> None:
        self.registry = registry if registry is not None else default_registry()
        self.policy = policy if policy is not None else Policy()
        #: The policy merged with the plugins' defaults: what every rule reads.
        self.merged_policy = self.policy.merged(self.registry.policy_defaults)

    def evaluate(
        self,
        request: Mapping[str, Any] | Envelope,
        *,
        now: datetime | None = None,
        history: History | None = None,
        operator: str | None = None,
    ) -> Decision:
        """Decide one SPEC §8 request (see :func:`evaluate`)."""
        return evaluate_envelope(
            Envelope.parse(request),
            registry=self.registry,
            policy=self.merged_policy,
            now=now if now is not None else datetime.now(UTC),
            history=history if history is not None else NO_HISTORY,
            operator=operator,
        )


_default_engine: Engine | None = None
_default_lock = threading.Lock()


def default_engine() -> Engine:
    """The :class:`Engine` of every installed plugin under the SPEC's default policy,
    built on first use and then shared (it is immutable, so safe across threads)."""
    global _default_engine
    engine_ = _default_engine
    if engine_ is None:
        with _default_lock:
            if _default_engine is None:
                _default_engine = Engine()
            engine_ = _default_engine
    return engine_


def evaluate(
    request: Mapping[str, Any] | Envelope,
    *,
    now: datetime | None = None,
    policy: Policy | None = None,
    registry: Registry | None = None,
    history: History | None = None,
) -> Decision:
    """Decide one SPEC §8 request. Nothing is recorded; ``now`` defaults to the current
    UTC time, ``registry`` to every installed plugin, ``policy`` to the SPEC's defaults.

    Raises :class:`pricecalc.InvalidInput` (naming the field and value) when the request
    cannot be decided; ``TypeError`` when a Python float is passed.

    Without ``policy`` and ``registry`` it reuses the default engine
    (:func:`default_engine`); with either it builds an :class:`Engine` for this call —
    build one yourself to decide many requests under another policy or registry.
    """
    if policy is None and registry is None:
        return default_engine().evaluate(request, now=now, history=history)
    return Engine(registry, policy).evaluate(request, now=now, history=history)


__all__ = ["Engine", "default_engine", "evaluate", "evaluate_envelope"]
