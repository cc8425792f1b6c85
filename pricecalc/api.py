"""Evaluating without recording, for scripts: :class:`Engine` and :func:`evaluate`.

They supply what :func:`pricecalc.engine.evaluate` leaves to its caller: the request is
parsed (:class:`~pricecalc.envelope.Envelope`), the registry defaults to every installed
plugin, the policy to the SPEC's defaults merged with the plugins', the time to now. An
:class:`Engine` merges its policy once and is the way to decide many requests in a loop
(a :class:`pricecalc.Calculator` holds one, and records what it decides);
:func:`evaluate` builds one for a single request.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pricecalc import engine
from pricecalc.decision import Decision
from pricecalc.envelope import Envelope
from pricecalc.history import NO_HISTORY, History
from pricecalc.plugins import default_registry
from pricecalc.policy import Policy
from pricecalc.registry import Registry


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
        return engine.evaluate(
            Envelope.parse(request),
            registry=self.registry,
            policy=self.merged_policy,
            now=now if now is not None else datetime.now(UTC),
            history=history if history is not None else NO_HISTORY,
            operator=operator,
        )


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
    """
    return Engine(registry, policy).evaluate(request, now=now, history=history)


__all__ = ["Engine", "evaluate"]
