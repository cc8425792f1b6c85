"""The calculator: pure rules wired to the audit store.

``Calculator.decide`` evaluates a request and appends the decision to the audit store
*before* returning it; the returned decision carries its place in the chain
(``audit: {seq, hash}``). A ``request_id`` already recorded returns the recorded decision
and appends nothing. Invalid input raises :class:`pricecalc.InvalidInput` and records
nothing. Evaluation and append happen under the store's writer lock, so a second claim for
the same price drop pays 0 even when two processes race.

A calculator is safe to share between threads.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, overload

import attrs

from audit import open_store
from audit.canonical import to_json_value
from audit.protocol import AuditStore, Entry, Record, Transaction
from pricecalc.decision import AuditRef, Decision
from pricecalc.engine import evaluate, split_request
from pricecalc.errors import InvalidInput
from pricecalc.money import parse_amount
from pricecalc.plugins import core_version, load_registry
from pricecalc.policy import Policy
from pricecalc.registry import Registry

AUDIT_KEY_ENV = "PRICECALC_AUDIT_KEY"
PROTECTION_KIND = "price_protection"
#: The parts of a decision's record that ``evaluate`` already made plain JSON data.
_EVALUATED = ("request", "result", "policy")


def default_operator() -> str:
    """The OS user running pricecalc (the operator recorded when none is given)."""
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (some containers)
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def refund_tag(order_id: str) -> str:
    """The audit tag under which approved price-protection refunds of an order are found."""
    return f"{PROTECTION_KIND}:order:{order_id}"


class StoreHistory:
    """Answers a rule's questions about past decisions from an open store transaction."""

    def __init__(self, tx: Transaction) -> None:
        self._tx = tx

    def refunds(self, order_id: str) -> Mapping[str, Decimal]:
        paid: dict[str, Decimal] = {}
        for record in self._tx.find(refund_tag(order_id)):
            payload = record.payload
            if payload.get("kind") != PROTECTION_KIND or payload.get("status") != "approved":
                continue
            for line in payload.get("result", {}).get("lines", []):
                amount = parse_amount(line["refund"], f"audit record {record.seq} refund")
                paid[line["line_id"]] = paid.get(line["line_id"], Decimal("0.00")) + amount
        return paid


def _request_ids(requests: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """The request ids of the requests that have one (invalid ones are skipped here and
    reported when they are decided)."""
    for request in requests:
        try:
            _, request_id, _ = split_request(request)
        except InvalidInput:
            continue
        if request_id is not None:
            yield request_id


@attrs.frozen
class BatchItem:
    """One line of a batch: its decision, or why it could not be decided."""

    index: int
    decision: Decision | None = None
    error: InvalidInput | None = None


class Calculator:
    """Evaluate requests and record every decision in an append-only audit store.

    ``audit`` is a path (TinyDB store), a store URL, or an object implementing
    :class:`audit.protocol.AuditStore`. ``policy`` defaults to the SPEC's defaults;
    ``operator`` to the OS user. With ``PRICECALC_AUDIT_KEY`` set (or ``hmac_key``), the
    store chain is keyed with HMAC-SHA256.
    """

    def __init__(
        self,
        audit: str | os.PathLike[str] | AuditStore,
        policy: Policy | None = None,
        operator: str | None = None,
        *,
        registry: Registry | None = None,
        disable_plugins: Iterable[str] = (),
        hmac_key: bytes | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.policy = policy if policy is not None else Policy()
        self.registry = (
            registry if registry is not None else load_registry(self.policy, disable_plugins)
        )
        self.policy.with_defaults(self.registry.policy_defaults).check_known()
        self.operator = operator or default_operator()
        self._clock = clock or (lambda: datetime.now(UTC))
        if isinstance(audit, str | os.PathLike):
            if hmac_key is None and os.environ.get(AUDIT_KEY_ENV):
                hmac_key = os.environ[AUDIT_KEY_ENV].encode("utf-8")
            self.store: AuditStore = open_store(
                str(Path(audit)) if isinstance(audit, os.PathLike) else audit, hmac_key=hmac_key
            )
            self._owns_store = True
        else:
            self.store = audit
            self._owns_store = False

    # -- the API -------------------------------------------------------------------------
    def decide(self, request: Mapping[str, Any], *, now: datetime | None = None) -> Decision:
        """Evaluate one request, record it durably, return the decision with its audit ref."""
        _, request_id, _ = split_request(request)
        with self.store.transaction() as tx:
            decision, record = self._decide_in(tx, request, request_id, now)
        return decision.with_audit(AuditRef(record.seq, record.hash))

    @overload
    def decide_many(
        self,
        requests: Iterable[Mapping[str, Any]],
        *,
        now: datetime | None = ...,
        on_invalid: Literal["raise"] = ...,
    ) -> list[Decision]: ...

    @overload
    def decide_many(
        self,
        requests: Iterable[Mapping[str, Any]],
        *,
        now: datetime | None = ...,
        on_invalid: Literal["collect"],
    ) -> list[BatchItem]: ...

    def decide_many(
        self,
        requests: Iterable[Mapping[str, Any]],
        *,
        now: datetime | None = None,
        on_invalid: Literal["raise", "collect"] = "raise",
    ) -> list[Decision] | list[BatchItem]:
        """Decide many requests with one group commit (one sync for the whole batch).

        Decisions are returned only after the batch is durable. With
        ``on_invalid="raise"`` (default) an invalid request aborts the batch before
        anything is written and raises its :class:`InvalidInput` (the message starts with
        ``requests[i]``); with ``"collect"`` invalid requests are reported in their slot
        as :class:`BatchItem` errors and the others are still decided and recorded.
        """
        requests = list(requests)
        items: list[BatchItem] = []
        refs: list[tuple[int, int, Decision, Record]] = []  # (slot, index, decision, record)
        with self.store.transaction() as tx:
            tx.prefetch(_request_ids(requests))  # one look-up for the batch's keys
            for index, request in enumerate(requests):
                try:
                    _, request_id, _ = split_request(request)
                    decision, record = self._decide_in(tx, request, request_id, now)
                except InvalidInput as exc:
                    if on_invalid == "raise":
                        raise InvalidInput(
                            f"requests[{index}].{exc.field}", exc.value, exc.problem
                        ) from exc
                    items.append(BatchItem(index, error=exc))
                    continue
                refs.append((len(items), index, decision, record))
                items.append(BatchItem(index))
        # The transaction has committed: now, and only now, the decisions are reportable.
        for slot, index, decision, record in refs:
            done = decision.with_audit(AuditRef(record.seq, record.hash))
            items[slot] = BatchItem(index, decision=done)
        if on_invalid == "raise":
            return [item.decision for item in items if item.decision is not None]
        return items

    def evaluate(self, request: Mapping[str, Any], *, now: datetime | None = None) -> Decision:
        """Evaluate without recording (a what-if; nothing is written)."""
        return evaluate(
            request, now=now or self._clock(), policy=self.policy, registry=self.registry
        )

    def close(self) -> None:
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Calculator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- inside the writer lock -------------------------------------------------------
    def _decide_in(
        self,
        tx: Transaction,
        request: Mapping[str, Any],
        request_id: str | None,
        now: datetime | None,
    ) -> tuple[Decision, Record]:
        if request_id is not None:
            existing = tx.get(request_id)
            if existing is not None:
                return Decision.from_record(existing.payload), existing
        moment = now or self._clock()
        decision = evaluate(
            request,
            now=moment,
            policy=self.policy,
            registry=self.registry,
            history=StoreHistory(tx),
        )
        entry = Entry(
            payload=self._payload(decision, moment),
            key=request_id,
            tags=self._tags(decision),
            plain=True,
        )
        return decision, tx.append(entry)

    def _payload(self, decision: Decision, moment: datetime) -> dict[str, Any]:
        """The audit record's payload as plain JSON data, so the store need not walk it.

        ``evaluate`` made the request, result and policy plain JSON data (its own checked
        copies, held only by this decision); the rest is converted here, with the store's
        own conversion and its errors.
        """
        data = decision.to_record(copy_data=False)
        rest = {name: value for name, value in data.items() if name not in _EVALUATED}
        rest["operator"] = self.operator
        rest["decided_at"] = moment.isoformat()
        rest["pricecalc_version"] = core_version()
        payload = to_json_value(rest)
        assert isinstance(payload, dict)
        for name in _EVALUATED:
            payload[name] = data[name]
        return payload

    @staticmethod
    def _tags(decision: Decision) -> tuple[str, ...]:
        tags: list[str] = [f"kind:{decision.kind}"]
        # The rule's own (normalised) order id, so tags match what history looks up.
        order_id = decision.result.get("order_id")
        if order_id is None:
            raw = decision.request.get("input", {}).get("order_id")
            order_id = str(raw).strip() if isinstance(raw, str | int) else None
        if isinstance(order_id, str) and order_id:
            tags.append(f"order:{order_id}")
            if decision.kind == PROTECTION_KIND and decision.approved:
                tags.append(refund_tag(str(order_id)))
        return tuple(tags)
