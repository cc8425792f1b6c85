"""Value objects: reasons, rule outcomes and decisions (SPEC §7, §8).

A rule returns an :class:`Outcome`; :func:`pricecalc.engine.evaluate_envelope` turns it into a
:class:`Decision`, which the calculator appends to the audit store and then returns with
its :class:`AuditRef`. The layout of a decision's audit record, both ways, is
:mod:`pricecalc.records` (``records.read(record).decision()`` rebuilds a decision,
``records.recorded_request(payload)`` gives back its request); JSON in and out is
:mod:`pricecalc.serialize`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

from pricecalc.serialize import copy_json

Status = Literal["approved", "rejected"]
APPROVED: Status = "approved"
REJECTED: Status = "rejected"


@attrs.frozen
class Reason:
    """Why a request was rejected: a stable code and a sentence naming value and bound."""

    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@attrs.frozen
class Outcome:
    """What a pure rule returns: the result (strings, as the SPEC names them), the
    reasons, the plugins whose contributions it used (beyond the rule's own plugin) and
    extra lookup tags its record should carry (a void names the record it withdraws).

    ``status`` is ``rejected`` exactly when there is at least one reason.
    """

    result: Mapping[str, Any]
    reasons: tuple[Reason, ...] = ()
    plugins: frozenset[str] = frozenset()
    tags: tuple[str, ...] = ()

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
    """One decision: what was asked, what was decided, why, and under which rules.

    ``request`` is the canonical request (``kind``, ``input`` and, when given,
    ``merchant_id`` and ``campaign``: what idempotency compares, SPEC §7); ``replayed`` is
    true for a decision read back from the store for a request already recorded, and
    ``voided_by`` the seq of the void that has since withdrawn it (``"voided_by"`` in
    :meth:`to_dict`): a client's retry is answered, never decided again.
    """

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
    merchant_id: str | None = None
    campaign: str | None = None
    tags: tuple[str, ...] = ()
    replayed: bool = False
    #: For a replayed decision a void has since withdrawn: that void's seq (SPEC §7).
    voided_by: int | None = None

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
            merchant_id=self.merchant_id,
            campaign=self.campaign,
            tags=self.tags,
            replayed=self.replayed,
            voided_by=self.voided_by,
        )

    def to_dict(self) -> dict[str, Any]:
        """The SPEC §8 decision shape (``audit`` once recorded; ``replayed`` when true).

        A fresh dict each call; the result inside is a copy (JSON data, cheap to copy).
        """
        out: dict[str, Any] = {
            "request_id": self.request_id,
            "kind": self.kind,
            "status": self.status,
            "result": copy_json(self.result),
            "reasons": [r.to_dict() for r in self.reasons] if self.reasons else [],
        }
        if self.merchant_id is not None:  # SPEC §8: a script totals an output per merchant
            out["merchant_id"] = self.merchant_id
        if self.campaign is not None:
            out["campaign"] = self.campaign
        if self.audit is not None:
            out["audit"] = {"seq": self.audit.seq, "hash": self.audit.hash}
        if self.replayed:
            out["replayed"] = True
        if self.voided_by is not None:
            out["voided_by"] = self.voided_by
        return out
