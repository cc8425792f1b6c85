"""Pure evaluation: envelope → validated input → rule → :class:`Decision`.

:func:`evaluate` touches no file, no store, no clock and no global: the caller hands it
the parsed request (:class:`~pricecalc.envelope.Envelope`), the plugin registry, the policy
already merged with the registry's defaults (:meth:`~pricecalc.policy.Policy.merged`), the
time and the history. :func:`pricecalc.evaluate` is the convenience that supplies the
defaults for a script.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from audit.errors import AuditError
from pricecalc.decision import APPROVED, REJECTED, Decision, Outcome, Reason
from pricecalc.envelope import Envelope
from pricecalc.errors import FloatRefused, InvalidInput, PluginError, PricecalcError, UnknownKind
from pricecalc.fields import Fields, check_keys
from pricecalc.history import NO_HISTORY, History
from pricecalc.i18n import N_, msg
from pricecalc.policy import Policy
from pricecalc.registry import Registry, RuleContext
from pricecalc.serialize import jsonable, plain_result


def _check_outcome(plugin: str, outcome: Any) -> Outcome:
    if not isinstance(outcome, Outcome):
        raise PluginError(plugin, f"rule returned {type(outcome).__name__}, expected Outcome")
    for reason in outcome.reasons:
        if not isinstance(reason, Reason) or not reason.code or not isinstance(reason.message, str):
            raise PluginError(plugin, f"rule returned an unusable reason {reason!r}")
    if outcome.tags and not all(isinstance(tag, str) and tag for tag in outcome.tags):
        raise PluginError(plugin, f"rule returned unusable tags {outcome.tags!r}")
    return outcome


def evaluate(
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
    # What pricecalc.errors.guard does, without building its message on every call.
    step = "input parser"
    try:
        parsed = rule.parse(fields, context)
        step = "rule"
        decided = rule.decide(parsed, context)
    except (PricecalcError, FloatRefused, AuditError):  # the history's store errors: its own
        raise
    except Exception as exc:
        raise PluginError(
            plugin, f"the {envelope.kind} {step} raised {type(exc).__name__}: {exc}"
        ) from exc
    outcome = _check_outcome(plugin, decided)
    result = plain_result(plugin, outcome.result)
    if type(result) is not dict:
        raise PluginError(plugin, "rule result must be a mapping")
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


__all__ = ["evaluate"]
