"""void — corrections without edits (SPEC §7).

A decision is never edited. A clerk who finds an approved decision wrong records a
**void**: a decision of its own (input ``{"seq", "reason", "target"}``, an operator
named), which withdraws record ``seq``. ``target`` names that record: its ``request_id``
as is, or ``sha256:`` and at least the first 8 hex digits of its hash — a void run
against the wrong store or the wrong seq is rejected ``VOID_TARGET_MISMATCH`` instead of
withdrawing an unrelated payout. A void without ``target`` is invalid input (a 0.2 void
line without one, already recorded, replays before it is read). The withdrawn record
stays in the log; statements show it with a reversal row so totals net out (SPEC §10);
and the once-only rules of SPEC §3–§5 no longer count it, so the corrected request can
then be decided.

Rejected (recorded like any decision, nothing withdrawn): a seq with no record
(``NO_SUCH_RECORD``), a target that is not that record (``VOID_TARGET_MISMATCH``), a
void of a void (``CANNOT_VOID_A_VOID``), of a rejected decision (``NOT_APPROVED``), of a
record already voided (``ALREADY_VOIDED``, naming the void; two voids racing for one
record: the one recorded first wins, under the store's writer lock).

The rule reads the record it withdraws through the history (``ctx.history.decision``);
its result names it (``seq``, ``voided_kind``, ``voided_request_id``, ``order_id``, and
the ``merchant_id``/``campaign`` it was for) and an approved void is tagged
``voids:<seq>`` — and with the order, merchant and campaign of what it withdraws, so that
history, statements and filters find it beside the record it withdraws.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

from pricecalc.decision import Outcome, Reason
from pricecalc.errors import InvalidInput
from pricecalc.fields import (
    Declared,
    Fields,
    check_keys,
    count_field,
    result_field,
    shape,
    stored_identifier,
    text_field,
)
from pricecalc.history import PastDecision, campaign_tag, merchant_tag, voids_tag
from pricecalc.i18n import N_, msg
from pricecalc.registry import ReasonCode, Rule, RuleContext

VOID_KIND = "void"
RULE_SET = "pricecalc-corrections"
VERSION = "1.0.0"
MAX_REASON = 500
#: A target is a request_id (at most a successor key's length) or ``sha256:`` + hex.
MAX_TARGET = 300
HASH_TARGET_PREFIX = "sha256:"
_HASH_TARGET = re.compile(r"[0-9a-f]{8,64}")

NO_SUCH_RECORD = "NO_SUCH_RECORD"
CANNOT_VOID_A_VOID = "CANNOT_VOID_A_VOID"
NOT_APPROVED = "NOT_APPROVED"
ALREADY_VOIDED = "ALREADY_VOIDED"
VOID_TARGET_MISMATCH = "VOID_TARGET_MISMATCH"
CODES = (NO_SUCH_RECORD, VOID_TARGET_MISMATCH, CANNOT_VOID_A_VOID, NOT_APPROVED, ALREADY_VOIDED)
_TARGET_HELP = msg(
    "names the record to withdraw: its request_id as is, or sha256: and at least the "
    "first 8 hex digits of its hash (pricecalc audit show SEQ shows both)"
)


#: The input as :meth:`VoidInput.from_fields` reads it (SPEC §7).
INPUT = shape(
    ("seq", count_field(minimum=1)),
    (
        "reason",
        Declared(
            "string",
            {
                "anyOf": [
                    {"type": "string", "pattern": r"\S"},
                    {"type": "integer"},
                ]
            },
            checks=f"Why the decision is withdrawn: text, at most {MAX_REASON} characters.",
        ),
    ),
    ("target", text_field()),
    description="A void needs an operator: the service records its token's.",
)


def voided_seq(result: Any) -> int | None:
    """The seq a void's result withdraws (the void's own layout), or None."""
    if isinstance(result, Mapping):
        seq = result.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool):
            return seq
    return None


@attrs.frozen
class VoidInput:
    """A validated void: the record to withdraw, why, and who decided it."""

    seq: int
    reason: str
    operator: str
    target: str = ""

    @classmethod
    def from_fields(cls, fields: Fields, ctx: RuleContext) -> VoidInput:
        check_keys(fields, {"seq", "reason", "target"})
        seq = fields.integer("seq", minimum=1)
        reason = fields.string("reason")
        if len(reason) > MAX_REASON:
            raise InvalidInput(
                fields.at("reason"),
                reason,
                msg("must be at most {limit} characters", limit=MAX_REASON),
            )
        target = _target(fields)
        if ctx.operator is None:
            raise InvalidInput(
                "operator",
                None,
                N_(
                    "is required for a void: a correction names who made it "
                    "(pricecalc --operator NAME void …, or Calculator(operator=...))"
                ),
                shown="no operator named",
            )
        return cls(seq=seq, reason=reason, operator=ctx.operator, target=target)


def _target(fields: Fields) -> str:
    if not fields.has("target"):
        raise InvalidInput(
            fields.at("target"),
            None,
            msg("is required: it {help}", help=_TARGET_HELP),
            shown="missing",
        )
    value = fields.raw("target")
    if isinstance(value, bool) or not isinstance(value, str | int):
        said = msg("must be text that {help}", help=_TARGET_HELP)
        raise InvalidInput(fields.at("target"), value, said)
    target = str(value).strip()
    if not target or len(target) > MAX_TARGET:
        raise InvalidInput(
            fields.at("target"),
            value,
            msg(
                "must be at most {limit} characters that {help}",
                limit=MAX_TARGET,
                help=_TARGET_HELP,
            ),
        )
    if target.lower().startswith(HASH_TARGET_PREFIX):
        digits = target[len(HASH_TARGET_PREFIX) :].lower()
        if not _HASH_TARGET.fullmatch(digits):
            raise InvalidInput(
                fields.at("target"),
                value,
                N_("must be sha256: followed by 8 to 64 hex digits of the record's hash"),
            )
        return HASH_TARGET_PREFIX + digits
    return target


def target_matches(target: str, record: PastDecision) -> bool:
    """Whether a void's ``target`` names ``record``: its request_id (as is, or as SPEC §1
    reads it), or a prefix of its hash."""
    if target.startswith(HASH_TARGET_PREFIX):
        return record.hash is not None and record.hash.startswith(target[len(HASH_TARGET_PREFIX) :])
    return record.request_id is not None and (
        target == record.request_id
        or stored_identifier(target) == stored_identifier(record.request_id)
    )


def _parse(fields: Fields, ctx: RuleContext) -> VoidInput:
    return VoidInput.from_fields(fields, ctx)


def _why_not(seq: int, target: PastDecision | None, named: str = "") -> Reason | None:
    if target is None:
        return Reason(NO_SUCH_RECORD, f"there is no record {seq} in the audit store")
    if named and not target_matches(named, target):
        if named.startswith(HASH_TARGET_PREFIX):  # named as it was named
            digits = len(named) - len(HASH_TARGET_PREFIX)
            shown = f"hash sha256:{(target.hash or '')[:digits]}"
        else:
            shown = f"request_id {target.request_id!r}"
        return Reason(
            VOID_TARGET_MISMATCH,
            f"record {seq} is the {target.kind} decision with {shown}, not the target "
            f"{named!r}: is this the right store and the right seq? Nothing was withdrawn",
        )
    if target.kind == VOID_KIND:
        withdrawn = voided_seq(target.result)
        return Reason(
            CANNOT_VOID_A_VOID,
            f"record {seq} is itself a void (of record {withdrawn}); a void is not withdrawn",
        )
    if target.status != "approved":
        return Reason(
            NOT_APPROVED,
            f"record {seq} is a rejected {target.kind} decision: it paid nothing, "
            "so there is nothing to withdraw",
        )
    if target.voided_by is not None:
        return Reason(
            ALREADY_VOIDED, f"record {seq} was already voided by record {target.voided_by}"
        )
    return None


def void(inp: VoidInput, ctx: RuleContext) -> Outcome:
    """Withdraw record ``inp.seq`` (SPEC §7). Pure: the record comes from the history."""
    target = ctx.history.decision(inp.seq)
    order_id = None if target is None else target.result.get("order_id")
    result: dict[str, Any] = {
        "seq": inp.seq,
        "voided_kind": None if target is None else target.kind,
        "voided_request_id": None if target is None else target.request_id,
        "order_id": order_id if isinstance(order_id, str) else None,
        "merchant_id": None if target is None else target.merchant_id,
        "campaign": None if target is None else target.campaign,
        "reason": inp.reason,
        "target": inp.target,
    }
    refused = _why_not(inp.seq, target, inp.target)
    if refused is not None:
        return Outcome(result=result, reasons=(refused,))
    assert target is not None
    tags = [voids_tag(inp.seq)]
    if target.merchant_id is not None:
        tags.append(merchant_tag(target.merchant_id))
    if target.campaign is not None:
        tags.append(campaign_tag(target.campaign))
    return Outcome(result=result, tags=tuple(tags))


EXPLAINED = (
    ReasonCode(
        NO_SUCH_RECORD, "审计存储中没有该记录", "there is no such record in the audit store"
    ),
    ReasonCode(CANNOT_VOID_A_VOID, "作废记录本身不能被作废", "a void cannot itself be voided"),
    ReasonCode(
        NOT_APPROVED, "被拒绝的决定没有可撤回的款项", "a rejected decision paid nothing to withdraw"
    ),
    ReasonCode(ALREADY_VOIDED, "该记录已被作废过", "the record was already voided"),
)

_TEXT_OR_NULL = {"type": ["string", "null"]}
#: The result as :func:`void` writes it (SPEC §7): the record it names, as recorded.
RESULT = shape(
    ("seq", result_field({"type": "integer", "minimum": 1})),
    ("voided_kind", result_field(_TEXT_OR_NULL)),
    ("voided_request_id", result_field(_TEXT_OR_NULL)),
    ("order_id", result_field(_TEXT_OR_NULL)),
    ("merchant_id", result_field(_TEXT_OR_NULL)),
    ("campaign", result_field(_TEXT_OR_NULL)),
    ("reason", result_field({"type": "string"})),
    ("target", result_field({"type": "string"})),
)


RULE = Rule(
    kind=VOID_KIND,
    rule_set=RULE_SET,
    version=VERSION,
    parse=_parse,
    decide=void,
    description="void: withdraw an approved decision, with a reason (SPEC §7)",
    input_fields=frozenset({"seq", "reason", "target"}),
    inputs=INPUT,
    results=RESULT,
    codes=EXPLAINED,
    withdraws=voided_seq,
    label="作废",
)

__all__ = ["CODES", "RULE", "VOID_KIND", "VoidInput", "target_matches", "void", "voided_seq"]
