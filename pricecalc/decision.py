"""Value objects: reasons, rule outcomes and decisions (SPEC §7, §8).

A rule returns an :class:`Outcome`; :func:`pricecalc.engine.evaluate` turns it into a
:class:`Decision`, which the calculator appends to the audit store and then returns with
its :class:`AuditRef`. Serialisation lives in :mod:`pricecalc.serialize`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Literal

import attrs

Status = Literal["approved", "rejected"]
APPROVED: Status = "approved"
REJECTED: Status = "rejected"


def _copy(value: Any) -> Any:
    """A deep copy of JSON data (what decisions hold); other values by ``copy.deepcopy``."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is dict:
        return {k: _copy(v) for k, v in value.items()}
    if kind is list:
        return [_copy(v) for v in value]
    return copy.deepcopy(value)


@attrs.frozen
class Reason:
    """Why a request was rejected: a stable code and a sentence naming value and bound."""

    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@attrs.frozen
class Outcome:
    """What a pure rule returns: the result (strings, as the SPEC names them) and reasons.

    ``status`` is ``rejected`` exactly when there is at least one reason, unless a rule
    sets it explicitly.
    """

    result: Mapping[str, Any]
    reasons: tuple[Reason, ...] = ()

    @property
    def status(self) -> Status:
        return REJECTED if self.reasons else APPROVED


@attrs.frozen
class AuditRef:
    """Where a decision sits in the audit store."""

    seq: int
    hash: str


@attrs.frozen
class Decision:
    """One decision: what was asked, what was decided, why, and under which rules."""

    kind: str
    request_id: str | None
    status: Status
    result: Mapping[str, Any]
    reasons: tuple[Reason, ...]
    rule_set: str
    rule_version: str
    request: Mapping[str, Any]
    policy: Mapping[str, Any] = attrs.field(factory=dict)
    plugins: Mapping[str, str] = attrs.field(factory=dict)
    audit: AuditRef | None = None

    @property
    def approved(self) -> bool:
        return self.status == APPROVED

    def with_audit(self, audit: AuditRef) -> Decision:
        """This decision with its place in the audit store (what ``attrs.evolve`` would
        give, built directly: every recorded decision goes through here)."""
        return Decision(
            kind=self.kind,
            request_id=self.request_id,
            status=self.status,
            result=self.result,
            reasons=self.reasons,
            rule_set=self.rule_set,
            rule_version=self.rule_version,
            request=self.request,
            policy=self.policy,
            plugins=self.plugins,
            audit=audit,
        )

    def to_dict(self) -> dict[str, Any]:
        """The SPEC §8 decision shape (``audit`` only once the decision is recorded)."""
        out: dict[str, Any] = {
            "request_id": self.request_id,
            "kind": self.kind,
            "status": self.status,
            "result": _copy(dict(self.result)),
            "reasons": [r.to_dict() for r in self.reasons],
        }
        if self.audit is not None:
            out["audit"] = {"seq": self.audit.seq, "hash": self.audit.hash}
        return out

    def to_record(self, *, copy_data: bool = True) -> dict[str, Any]:
        """Everything the audit record holds about the decision (SPEC §7).

        With ``copy_data=False`` the request, result and policy are this decision's own
        objects, not copies: for a caller that hands the record straight to an audit store
        (which copies what it keeps) and does not change it.
        """
        copy_of = _copy if copy_data else dict
        return {
            "kind": self.kind,
            "request_id": self.request_id,
            "status": self.status,
            "request": copy_of(dict(self.request)),
            "result": copy_of(dict(self.result)),
            "reasons": [r.to_dict() for r in self.reasons],
            "rule_set": self.rule_set,
            "rule_version": self.rule_version,
            "policy": copy_of(dict(self.policy)),
            "plugins": dict(self.plugins),
        }

    @classmethod
    def from_record(cls, payload: Mapping[str, Any], audit: AuditRef | None = None) -> Decision:
        """Rebuild a decision from the payload of its audit record (idempotent replay)."""
        return cls(
            kind=payload["kind"],
            request_id=payload.get("request_id"),
            status=payload["status"],
            result=payload["result"],
            reasons=tuple(Reason(r["code"], r["message"]) for r in payload.get("reasons", ())),
            rule_set=payload["rule_set"],
            rule_version=payload["rule_version"],
            request=payload.get("request", {}),
            policy=payload.get("policy", {}),
            plugins=payload.get("plugins", {}),
            audit=audit,
        )
