"""Evaluating without recording, for scripts: :class:`Engine` and :func:`evaluate`.

They supply what :func:`pricecalc.engine.evaluate` leaves to its caller: the request is
parsed (:class:`~pricecalc.envelope.Envelope`), the registry defaults to every installed
plugin, the policy to the SPEC's defaults merged with the plugins', the time to now. An
:class:`Engine` merges its policy once and is the way to decide many requests in a loop
(a :class:`pricecalc.Calculator` holds one, and records what it decides);
:func:`evaluate` uses one default :class:`Engine` (every installed plugin, the SPEC's
default policy), built on first use and then shared, unless given its own policy or
registry.
"""

from __future__ import annotations

import threading
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


__all__ = ["Engine", "default_engine", "evaluate"]
