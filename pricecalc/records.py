"""The stored decision record, both ways (SPEC §7; docs/audit.md, "What pricecalc records").

One module owns the layout of a decision's audit record: :func:`payload` writes it,
:func:`decision_tags` names the tags it is found by, :func:`read` hands every reader a
frozen :class:`RecordedDecision`. Nobody else reads ``record.payload``: the calculator, the
history rules ask, record filters, the settlement, rows, stats, the statement and the
report all go through here, so "which order is this", "is this an approved void" and "which
seq does it withdraw" have one answer each.

What depends on a kind is asked of its rule's declarations
(:class:`pricecalc.registry.Declarations`): what an approved record of it withdraws (a
``void``'s ``seq``) and, for the books, its money figures. Without a registry at hand the
core's own declarations answer (:func:`pricecalc.builtin.builtin_declarations`).

Records of pricecalc 0.1 (the whole request under ``request``, ``request_id`` in the
payload) and 0.2 read the same as today's.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeGuard

import attrs

from audit.protocol import Record
from pricecalc.builtin import builtin_declarations
from pricecalc.decision import APPROVED, AuditRef, Decision, Reason
from pricecalc.errors import InvalidInput
from pricecalc.history import (
    PastDecision,
    campaign_tag,
    kind_tag,
    merchant_tag,
    order_tag,
)
from pricecalc.money import stored_amount
from pricecalc.plugins import core_version
from pricecalc.registry import Declarations, MoneyFigure
from pricecalc.serialize import text_problem


def _is_map(value: Any) -> TypeGuard[Mapping[str, Any]]:
    """A mapping (a plain dict, as stored payloads are, checked first: the ABC check is
    slow and every reader reads every record)."""
    return type(value) is dict or isinstance(value, Mapping)


# -- writing ------------------------------------------------------------------------------
def payload(
    decision: Decision,
    moment: datetime,
    operator: str,
    relied: Sequence[int] = (),
    version: str | None = None,
) -> dict[str, Any]:
    """The audit record's payload (docs/audit.md, "What pricecalc records").

    Plain JSON data throughout: the canonical request and the checked result come from
    the envelope and the engine, the rest is text made here. The request id is the
    record's key and is not repeated in the payload. ``relied`` names the past decisions
    a rule counted (:func:`relied_on`); ``version`` is pricecalc's (default: installed).
    """
    request = decision.request
    out: dict[str, Any] = {"kind": decision.kind, "input": request["input"]}
    if decision.merchant_id is not None:
        out["merchant_id"] = decision.merchant_id
    if decision.campaign is not None:
        out["campaign"] = decision.campaign
    out["status"] = decision.status
    out["result"] = decision.result
    out["reasons"] = [r.to_dict() for r in decision.reasons]
    out["rule_set"] = decision.rule_set
    out["rule_version"] = decision.rule_version
    if decision.policy:  # the policy values the rule read (none read: none recorded)
        out["policy"] = decision.policy
    out["plugins"] = dict(decision.plugins)
    out["operator"] = operator
    out["decided_at"] = moment.isoformat()
    if version is None:
        version = core_version()
    out["pricecalc_version"] = version
    if relied:
        out["relied_on"] = list(relied)
    return out


def order_id_of(request: Mapping[str, Any], result: Mapping[str, Any]) -> str | None:
    """The order a decision is about — one answer for its tag and its display: the rule's
    own (normalised) ``order_id`` in the result, else the request input's, without its
    surrounding whitespace (``" O1 "`` is tagged ``order:O1`` and shown ``O1``)."""
    order_id = result.get("order_id")
    if order_id is None:
        raw_input = request.get("input")
        raw = raw_input.get("order_id") if _is_map(raw_input) else None
        order_id = (
            str(raw).strip() if isinstance(raw, str | int) and not isinstance(raw, bool) else None
        )
    return order_id if isinstance(order_id, str) and order_id else None


def decision_tags(decision: Decision) -> tuple[str, ...]:
    """The lookup tags of a decision's record: its kind, order, merchant and campaign, and
    whatever its rule added (a void: the record it withdraws)."""
    tags = [kind_tag(decision.kind)]
    order_id = order_id_of(decision.request, decision.result)
    if order_id is not None:
        tags.append(order_tag(order_id))
    if decision.merchant_id is not None:
        tags.append(merchant_tag(decision.merchant_id))
    if decision.campaign is not None:
        tags.append(campaign_tag(decision.campaign))
    if decision.tags:
        tags.extend(tag for tag in decision.tags if tag not in tags)
    return tuple(tags)


def successor_key(key: str, void: int) -> str:
    """The key a request is decided again under once void ``void`` made its decision stale."""
    return f"{key}~void-{void}"


def relied_on(asked: Iterable[tuple[Any, Any]], kind: str) -> list[int]:
    """The past decisions of ``kind`` a rule was shown that counted (approved, not voided):
    if one of them is withdrawn later, this decision is stale (:meth:`Calculator._current`).
    (The once-only rules of SPEC §3–§5 read the decisions of their own kind.)"""
    seqs: set[int] = set()
    for (question, _), answer in asked:
        if question == "decisions":
            seqs.update(past.seq for past in answer if past.counts and past.kind == kind)
    return sorted(seqs)


# -- reading ------------------------------------------------------------------------------
def recorded_request(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical request a decision's record holds: ``kind``, ``input`` and the
    optional ``merchant_id``/``campaign`` (SPEC §7, §8).

    Records of pricecalc 0.2 keep them at the top of the payload (the key is the record's
    ``key``); records of 0.1 kept the whole request, ``request_id`` included, under
    ``request``. Both read the same.
    """
    old = payload.get("request")
    if "input" not in payload and _is_map(old):
        source: Mapping[str, Any] = old
    else:
        source = payload
    out: dict[str, Any] = {
        "kind": source.get("kind", payload.get("kind")),
        "input": source.get("input"),
    }
    for name in ("merchant_id", "campaign"):
        if source.get(name) is not None:
            out[name] = source[name]
    return out


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _reasons(raw: Any) -> tuple[Reason, ...]:
    if not raw or not isinstance(raw, list | tuple):
        return ()
    return tuple(Reason(str(r.get("code")), str(r.get("message", ""))) for r in raw if _is_map(r))


@attrs.frozen
class RecordedDecision:
    """A decision as its audit record holds it, read once (:func:`read`).

    ``seq``, ``hash``, ``recorded_at``, ``tags`` and ``key`` (the idempotency key: the
    decision's ``request_id``) are the ``record``'s own; ``request`` is the canonical
    request as recorded (``kind``, ``input``, ``merchant_id``/``campaign`` when given);
    ``order_id`` the one normalised order id (:func:`order_id_of`); ``withdraws`` the seq
    an **approved void** withdraws (``None`` for every other record); ``relied_on`` the
    past decisions a rejection counted. ``is_decision`` is false for a record whose
    payload names no kind (not written by pricecalc). The fields every reader uses are
    read at once; the rest (``reasons``, ``rule_set``, ``policy``, ``operator`` …) on use,
    from the record the value keeps (reading every record of a store stays cheap).
    """

    record: Record = attrs.field(repr=False)
    kind: str
    status: str
    request: Mapping[str, Any]
    result: Mapping[str, Any]
    order_id: str | None = None
    withdraws: int | None = None

    @property
    def _raw(self) -> Mapping[str, Any]:
        return self.record.payload

    @property
    def seq(self) -> int:
        return self.record.seq

    @property
    def hash(self) -> str:
        return self.record.hash

    @property
    def recorded_at(self) -> str:
        return self.record.recorded_at

    @property
    def key(self) -> str | None:
        """The idempotency key (records of 0.1 also kept it in the payload)."""
        key = self.record.key
        return key if key is not None else _text(self._raw.get("request_id"))

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(self.record.tags)

    @property
    def is_decision(self) -> bool:
        return isinstance(self._raw.get("kind"), str)

    @property
    def reasons(self) -> tuple[Reason, ...]:
        return _reasons(self._raw.get("reasons"))

    @property
    def rule_set(self) -> str | None:
        return _text(self._raw.get("rule_set"))

    @property
    def rule_version(self) -> str | None:
        return _text(self._raw.get("rule_version"))

    @property
    def policy(self) -> Mapping[str, Any]:
        value = self._raw.get("policy")
        return value if _is_map(value) else {}

    @property
    def plugins(self) -> Mapping[str, str]:
        value = self._raw.get("plugins")
        return value if _is_map(value) else {}

    @property
    def operator(self) -> str | None:
        return _text(self._raw.get("operator"))

    @property
    def decided_at(self) -> str | None:
        return _text(self._raw.get("decided_at"))

    @property
    def pricecalc_version(self) -> str | None:
        return _text(self._raw.get("pricecalc_version"))

    @property
    def relied_on(self) -> tuple[int, ...]:
        relied = self._raw.get("relied_on")
        if not isinstance(relied, list):
            return ()
        return tuple(s for s in relied if isinstance(s, int) and not isinstance(s, bool))

    @property
    def request_id(self) -> str | None:
        return self.key

    @property
    def approved(self) -> bool:
        return self.status == APPROVED

    @property
    def is_void(self) -> bool:
        """An approved void (or any correcting kind): it withdraws :attr:`withdraws`."""
        return self.withdraws is not None

    @property
    def input(self) -> Mapping[str, Any]:
        raw = self.request.get("input")
        return raw if _is_map(raw) else {}

    @property
    def merchant_id(self) -> str | None:
        """The merchant it was for: the request's, else (a void) the result's."""
        return _text(self.request.get("merchant_id")) or _text(self.result.get("merchant_id"))

    @property
    def campaign(self) -> str | None:
        return _text(self.request.get("campaign")) or _text(self.result.get("campaign"))

    @property
    def reason_codes(self) -> list[str]:
        return [r.code for r in self.reasons]

    @property
    def audit(self) -> AuditRef:
        return AuditRef(self.seq, self.hash)

    def field(self, name: str) -> Any:
        """A top-level payload field by name (``audit show``'s filters match on
        ``kind``, ``status`` and ``operator``)."""
        return getattr(self, name) if name in _FIELDS else None

    def amount(self, field: str) -> Decimal | None:
        """The result field ``field`` as an exact amount (``None`` when absent or not an
        amount in fen)."""
        return stored_amount(self.result.get(field))

    def figures(
        self, declarations: Declarations | None = None
    ) -> tuple[tuple[MoneyFigure, Decimal], ...]:
        """The money figures its kind declares, with their amounts, when approved (a
        rejected decision pays nothing: none; an amount that is absent or not in fen is
        left out)."""
        if not self.approved:
            return ()
        books = declarations if declarations is not None else builtin_declarations()
        out = []
        for figure in books.figures_of(self.kind):
            value = self.amount(figure.field)
            if value is not None:
                out.append((figure, value))
        return tuple(out)

    def decision(self, *, replayed: bool = False, voided_by: int | None = None) -> Decision:
        """The :class:`~pricecalc.decision.Decision` it records (an idempotent replay)."""
        return Decision(
            kind=self.kind,
            request_id=self.key,
            status=self.status,  # type: ignore[arg-type]
            result=self.result,
            reasons=self.reasons,
            rule_set=str(self.rule_set),
            rule_version=str(self.rule_version),
            request=dict(self.request),
            policy=self.policy,
            plugins=self.plugins,
            audit=self.audit,
            merchant_id=self.request.get("merchant_id"),
            campaign=self.request.get("campaign"),
            replayed=replayed,
            voided_by=voided_by,
        )

    def past(self, voided_by: int | None = None) -> PastDecision:
        """It as a rule sees it in history (:class:`pricecalc.history.PastDecision`)."""
        return PastDecision(
            seq=self.seq,
            kind=self.kind,
            status=self.status,
            result=self.result,
            voided_by=voided_by,
            request_id=self.key,
            merchant_id=self.request.get("merchant_id"),
            campaign=self.request.get("campaign"),
            hash=self.hash,
        )


_FIELDS = frozenset({"kind", "status", "operator", "rule_set", "rule_version"})


def read(record: Record, declarations: Declarations | None = None) -> RecordedDecision:
    """The decision ``record`` holds (``declarations``: whose rules say what a kind
    withdraws; default the core's own)."""
    raw = record.payload
    kind = raw.get("kind")
    status = raw.get("status")
    result = raw.get("result")
    result = result if _is_map(result) else {}
    request = recorded_request(raw)
    withdraws = None
    if status == APPROVED and isinstance(kind, str):
        books = declarations if declarations is not None else builtin_declarations()
        withdraws = books.withdrawn_by(kind, result)
    return RecordedDecision(
        record,
        str(kind),
        str(status),
        request,
        result,
        order_id_of(request, result),
        withdraws,
    )


def from_payload(
    raw: Mapping[str, Any],
    *,
    seq: int = 0,
    hash: str = "",
    recorded_at: str = "",
    key: str | None = None,
    declarations: Declarations | None = None,
) -> RecordedDecision:
    """:func:`read` for a bare payload (what a test or a plugin holds without a record)."""
    bare = Record(
        seq=seq, id="", recorded_at=recorded_at, key=key, tags=(), payload=raw, prev_hash="",
        hash=hash,
    )  # fmt: skip
    return read(bare, declarations)


def decision_of(
    raw: Mapping[str, Any],
    audit: AuditRef | None = None,
    *,
    key: str | None = None,
    replayed: bool = False,
    voided_by: int | None = None,
) -> Decision:
    """A decision rebuilt from the payload of its audit record (idempotent replay): what
    ``Decision.from_record`` was before 0.3. ``key`` is the record's idempotency key (the
    decision's ``request_id``; records of pricecalc 0.1 also carry it in the payload),
    ``voided_by`` the void that has since withdrawn it (SPEC §7)."""
    recorded = from_payload(
        raw,
        seq=audit.seq if audit is not None else 0,
        hash=audit.hash if audit is not None else "",
        key=key,
    )
    decision = recorded.decision(replayed=replayed, voided_by=voided_by)
    return decision if audit is not None else attrs.evolve(decision, audit=None)


def field_of(record: Record, name: str) -> Any:
    """One top-level field of a decision's record as stored — ``kind``, ``status`` or
    ``operator`` (what ``audit show`` filters on) — without reading the whole record."""
    if name not in _FIELDS:
        raise ValueError(f"not a filterable record field: {name!r}")
    return record.payload.get(name)


def withdraws_records(kind: str, declarations: Declarations | None = None) -> bool:
    """Is ``kind`` a correcting kind (its approved records withdraw another: ``void``)?
    Its records are no decision about an order's money, so history leaves them out."""
    books = declarations if declarations is not None else builtin_declarations()
    return kind in books.withdrawals


def replay(record: Record, voided_by: int | None = None) -> Decision:
    """The recorded decision of ``record``, marked ``replayed`` (SPEC §7), and
    ``voided_by`` the void that has since withdrawn it, if any."""
    return read(record).decision(replayed=True, voided_by=voided_by)


def request_of(record: Record) -> dict[str, Any]:
    """The canonical request ``record`` holds (what a replay compares, SPEC §7)."""
    return recorded_request(record.payload)


#: The longest operator name a record holds (SPEC §1's identifier bound).
MAX_OPERATOR = 128


def default_operator() -> str:
    """The OS user running pricecalc (the operator recorded when none is given)."""
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (some containers)
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def checked_operator(name: str) -> str:
    """``name`` as the operator a decision records, or :class:`InvalidInput` naming it."""
    problem = text_problem(name) if isinstance(name, str) else "must be text"
    if problem is None and not name.strip():
        problem = "must not be empty"
    if problem is None and len(name) > MAX_OPERATOR:
        problem = f"must be at most {MAX_OPERATOR} characters"
    if problem is not None:
        raise InvalidInput("operator", name, problem)
    return name


__all__ = [
    "MAX_OPERATOR",
    "RecordedDecision",
    "checked_operator",
    "decision_of",
    "decision_tags",
    "default_operator",
    "field_of",
    "from_payload",
    "order_id_of",
    "payload",
    "read",
    "recorded_request",
    "relied_on",
    "replay",
    "request_of",
    "successor_key",
    "withdraws_records",
]
