"""The one-call API for scripts: :func:`evaluate` a request without recording it.

It supplies what :func:`pricecalc.engine.evaluate` leaves to its caller: the request is
parsed (:class:`~pricecalc.envelope.Envelope`), the registry defaults to every installed
plugin, the policy to the SPEC's defaults merged with the plugins', the time to now. A
script deciding many requests keeps a :class:`pricecalc.Calculator` (which records them)
or merges the policy once itself and calls the engine.
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
    envelope = Envelope.parse(request)
    registry = registry if registry is not None else default_registry()
    merged = (policy if policy is not None else Policy()).merged(registry.policy_defaults)
    return engine.evaluate(
        envelope,
        registry=registry,
        policy=merged,
        now=now if now is not None else datetime.now(UTC),
        history=history if history is not None else NO_HISTORY,
    )


__all__ = ["evaluate"]
