"""The calculator: pure rules wired to the audit store.

``Calculator.decide`` evaluates a request and appends the decision to the audit store
*before* returning it; the returned decision carries its place in the chain
(``audit: {seq, hash}``). The rule is evaluated first without the store's lock, against
no history, and the questions it asked of history are asked again of the store under the
writer lock (:mod:`pricecalc.parallel`): the decision is recorded only if every answer is
the same, otherwise it is decided again there, with the store's history. So the rules that
read history (a second claim for the same price drop pays 0, a line is compensated once, a
record is voided once) stay right when two processes race, and the lock is held only for
what needs it; the sync that makes a group durable runs after the lock is released.

Idempotency (SPEC §7): a ``request_id`` already recorded with the same request (kind,
input, merchant_id, campaign) returns the recorded decision, ``replayed``, and records
nothing; with a different request it raises :class:`pricecalc.IdempotencyConflict` and
records nothing. Invalid input raises :class:`pricecalc.InvalidInput` and records nothing.

A calculator is safe to share between threads, and threads calling ``decide`` at once
share one transaction and one sync (group commit, :mod:`pricecalc.grouping`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast, overload

import attrs

from audit import open_store
from audit.canonical import canonical_bytes
from audit.protocol import AuditStore, Entry, Record, Transaction
from audit.records import CanonicalPayload
from pricecalc import records
from pricecalc.decision import AuditRef, Decision
from pricecalc.engine import Engine
from pricecalc.envelope import Envelope
from pricecalc.errors import IdempotencyConflict, InvalidInput
from pricecalc.grouping import GroupCommit, Waiting
from pricecalc.history import (
    AskedHistory,
    same_answers,
)
from pricecalc.parallel import Draft, Evaluated, Workers, evaluate_away
from pricecalc.plugins import core_version, load_registry
from pricecalc.policy import Policy
from pricecalc.records import (
    checked_operator,
    decision_tags,
    default_operator,
    relied_on,
    successor_key,
)
from pricecalc.registry import Registry
from pricecalc.sameness import difference, keyed_by_meaning, normal_form
from pricecalc.store_history import StoreHistory, relied_voided, voided_by

AUDIT_KEY_ENV = "PRICECALC_AUDIT_KEY"

#: A ``decide`` call ready for its group: the keyed request, the time asked for (None:
#: the calculator's clock), and its decision made away from the store.
_Prepared = tuple[Envelope, datetime | None, Evaluated]


@attrs.frozen
class BatchItem:
    """One request of a batch: its decision, or why it was not decided — invalid input
    (``error``) or an idempotency conflict (``conflict``). A worker's :class:`Draft`
    recorded as drafted has only its place in the chain (``drafted``): the decision is the
    one its worker made."""

    index: int
    decision: Decision | None = None
    error: InvalidInput | None = None
    conflict: IdempotencyConflict | None = None
    drafted: AuditRef | None = None


Request = Mapping[str, Any] | Envelope


class Calculator:
    """Evaluate requests and record every decision in an append-only audit store.

    ``audit`` is a path (TinyDB store), a store URL, or an object implementing
    :class:`audit.protocol.AuditStore`. ``policy`` defaults to the SPEC's defaults;
    ``operator`` to the OS user (a ``void`` needs an operator named here). With
    ``PRICECALC_AUDIT_KEY`` set (or ``hmac_key``), the store chain is keyed with
    HMAC-SHA256. ``registry_from_entry_points`` says a given ``registry`` is
    ``load_registry(policy, disable_plugins)``, so worker processes (``jobs`` > 1) may
    load the same plugins from their entry points.
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
        registry_from_entry_points: bool = False,
    ) -> None:
        policy = policy if policy is not None else Policy()
        #: The rules and the policy, merged once (pricecalc.Engine): every decision and
        #: every normal form goes through it, and it holds the one policy.
        self.engine = Engine(
            registry if registry is not None else load_registry(policy, disable_plugins), policy
        )
        # Worker processes can rebuild the registry only from the installed plugins: a
        # given registry may be used with them when its maker says it was loaded so
        # (``load_registry(policy, disable_plugins)``, as the command line does).
        self._plugins_from_entry_points = registry is None or registry_from_entry_points
        self._disabled = tuple(disable_plugins)
        self._workers: Workers | None = None
        self.named_operator = None if operator is None else checked_operator(operator)
        self.operator = self.named_operator or default_operator()
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
        self._group: GroupCommit[_Prepared] = GroupCommit(self._decide_group)

    @property
    def policy(self) -> Policy:
        """The policy given (the SPEC's defaults when none was): the engine's."""
        return self.engine.policy

    @property
    def rules_policy(self) -> Policy:
        """That policy merged with the plugins' defaults, as the rules read it: the engine's."""
        return self.engine.merged_policy

    @property
    def registry(self) -> Registry:
        """The rules decided by: the engine's registry."""
        return self.engine.registry

    # -- the API -------------------------------------------------------------------------
    def decide(self, request: Request, *, now: datetime | None = None) -> Decision:
        """Evaluate one request, record it durably, return the decision with its audit ref.

        A request already recorded under its ``request_id`` is replayed (nothing new is
        recorded); a different request under a recorded ``request_id`` raises
        :class:`pricecalc.IdempotencyConflict`.

        Threads calling this at once are decided and recorded together, in arrival order,
        with one sync (:mod:`pricecalc.grouping`); each gets its own decision or exception
        once the group is durable. A ``void`` request goes the same way.
        """
        return cast(Decision, self._group.submit_from(lambda: self._prepare(request, now)))

    def decide_each(
        self,
        requests: Sequence[Request],
        *,
        now: datetime | None = None,
        check: Callable[[Transaction, int], None] | None = None,
    ) -> list[Decision | Exception]:
        """Decide ``requests`` as one group from this thread — one transaction, one sync,
        in their order — each getting what its own :meth:`decide` call would have: its
        decision, or the exception it would raise (returned here, not raised). For a
        caller that gathers concurrent requests itself (``pricecalc serve`` hands each
        group from its event loop to one thread) rather than calling :meth:`decide` from
        a thread per request.

        ``check(tx, i)``, when given, runs under the store's lock just before request ``i``
        is decided, reading through ``tx`` (what the group's earlier requests recorded
        included): an exception it raises is that request's outcome, and it is not decided
        (``pricecalc serve``'s merchant checks, SPEC §11)."""
        slots: list[Waiting[_Prepared] | Exception] = []
        for request in requests:
            try:
                slots.append(Waiting(self._prepare(request, now)))
            except Exception as exc:  # this request's own error, as decide would raise it
                slots.append(exc)
        group = [slot for slot in slots if isinstance(slot, Waiting)]
        if group:
            checked = None
            if check is not None:
                at = [i for i, slot in enumerate(slots) if isinstance(slot, Waiting)]
                checked = lambda tx, n: check(tx, at[n])  # noqa: E731
            try:
                self._decide_group(group, checked)
            except Exception as exc:  # the commit failed: every request of the group hears it
                for waiting in group:
                    if waiting.error is None and waiting.value is None:
                        waiting.error = exc
        return [
            slot if isinstance(slot, Exception)
            else cast(Exception, slot.error) if slot.error is not None
            else cast(Decision, slot.value)
            for slot in slots
        ]  # fmt: skip

    def _prepare(self, request: Request, now: datetime | None) -> _Prepared:
        """A ``decide`` request read, keyed and evaluated away from the store, in the
        caller's own thread (no lock needed: the group re-checks it under the lock)."""
        envelope = self.keyed(Envelope.parse(request), now)
        moment = now or self._clock()
        return envelope, now, evaluate_away(self.engine, envelope, moment, self.named_operator)

    def _decide_group(
        self,
        group: Sequence[Waiting[_Prepared]],
        check: Callable[[Transaction, int], None] | None = None,
    ) -> None:
        """Decide a group of waiting ``decide`` calls in one transaction (the leader's work,
        :mod:`pricecalc.grouping`): each already evaluated away from the store by its
        caller, then decided in order under the lock as :meth:`decide_prepared` does;
        outcomes are set only after the commit (a failed commit is every caller's error)."""
        done: list[tuple[Waiting[_Prepared], Decision, Record]] = []
        with self.store.transaction() as tx:
            if len(group) > 1:
                tx.prefetch(_keys([waiting.request[0] for waiting in group]))
            for n, waiting in enumerate(group):
                envelope, now, evaluated = waiting.request
                try:
                    if check is not None:
                        check(tx, n)
                    decision, record = self._decide_in(tx, envelope, now, evaluated)
                except Exception as exc:  # this caller's own error; the others go on
                    waiting.error = exc
                    continue
                done.append((waiting, decision, record))
        # The transaction has committed: now, and only now, the decisions are reportable.
        for waiting, decision, record in done:
            waiting.value = decision if decision.replayed else _recorded(decision, record)

    @overload
    def decide_many(
        self,
        requests: Iterable[Request],
        *,
        now: datetime | None = ...,
        on_invalid: Literal["raise"] = ...,
        jobs: int = ...,
    ) -> list[Decision]: ...

    @overload
    def decide_many(
        self,
        requests: Iterable[Request],
        *,
        now: datetime | None = ...,
        on_invalid: Literal["collect"],
        jobs: int = ...,
    ) -> list[BatchItem]: ...

    def decide_many(
        self,
        requests: Iterable[Request],
        *,
        now: datetime | None = None,
        on_invalid: Literal["raise", "collect"] = "raise",
        jobs: int = 1,
    ) -> list[Decision] | list[BatchItem]:
        """Decide many requests with one group commit (one sync for the whole batch).

        With ``jobs`` > 1 the rules run in that many worker processes while this process
        records, in order, with the same guarantees (:mod:`pricecalc.parallel`).

        Decisions are returned only after the batch is durable. With
        ``on_invalid="raise"`` (default) an invalid request or an idempotency conflict
        aborts the batch before anything is written and raises (an invalid request's
        message starts with ``requests[i]``); with ``"collect"`` they are reported in
        their slot as :class:`BatchItem` errors or conflicts and the others are still
        decided and recorded.
        """
        parsed: list[Envelope | InvalidInput] = []
        for index, request in enumerate(requests):
            try:
                parsed.append(Envelope.parse(request))
            except InvalidInput as exc:
                if on_invalid == "raise":
                    raise _in_batch(index, exc) from exc
                parsed.append(exc)
        moment = now or self._clock()
        evaluated = self._evaluate_in_workers(parsed, moment, jobs)
        items = self.decide_prepared(parsed, evaluated, now=moment, on_invalid=on_invalid)
        if on_invalid == "raise":
            return [item.decision for item in items if item.decision is not None]
        return items

    def decide_prepared(
        self,
        parsed: Sequence[Envelope | InvalidInput | Draft],
        evaluated: Sequence[Evaluated | None] | None = None,
        *,
        now: datetime | None = None,
        on_invalid: Literal["raise", "collect"] = "collect",
        redo: Callable[[int], Envelope] | None = None,
    ) -> list[BatchItem]:
        """:meth:`decide_many` for requests already parsed (an :class:`InvalidInput` in a
        slot is reported there) and, optionally, already evaluated away from the store
        (:mod:`pricecalc.parallel`; ``evaluated[i]`` for ``parsed[i]``, or None): one
        transaction, each decision checked against the store's history before it is
        recorded. The batch runner feeds it a chunk at a time.

        A slot may hold a worker's :class:`~pricecalc.parallel.Draft`: appended as drafted
        when no record holds its keys and the store answers its rule's questions the same
        (its item has ``drafted``), else ``redo(i)`` gives the request back and it is
        decided here like any other."""
        items: list[BatchItem] = []
        done: list[tuple[int, Decision | None, Record]] = []
        parsed = [self.keyed(p, now) if isinstance(p, Envelope) else p for p in parsed]
        with self.store.transaction() as tx:
            tx.prefetch(_keys(parsed))  # one look-up for the batch's keys
            for index, envelope in enumerate(parsed):
                if isinstance(envelope, Draft):
                    drafted = self._append_draft(tx, envelope)
                    if drafted is not None:
                        done.append((len(items), None, drafted))
                        items.append(BatchItem(index))
                        continue
                    if redo is None:
                        raise TypeError("a Draft refused by the store needs redo= to decide it")
                    envelope = self.keyed(redo(index), now)
                if isinstance(envelope, InvalidInput):
                    items.append(BatchItem(index, error=envelope))
                    continue
                away = evaluated[index] if evaluated is not None else None
                try:
                    decision, record = self._decide_in(tx, envelope, now, away)
                except InvalidInput as exc:
                    if on_invalid == "raise":
                        raise _in_batch(index, exc) from exc
                    items.append(BatchItem(index, error=exc))
                    continue
                except IdempotencyConflict as exc:
                    if on_invalid == "raise":
                        raise
                    items.append(BatchItem(index, conflict=exc))
                    continue
                if decision.replayed:
                    items.append(BatchItem(index, decision=decision))
                else:
                    done.append((len(items), decision, record))
                    items.append(BatchItem(index))
        # The transaction has committed: now, and only now, the decisions are reportable.
        for slot, made, record in done:
            index = items[slot].index
            if made is None:  # a draft: its place in the chain
                items[slot] = BatchItem(index, drafted=AuditRef(record.seq, record.hash))
            else:
                items[slot] = BatchItem(index, decision=_recorded(made, record))
        return items

    def workers(self, jobs: int) -> Workers | None:
        """The worker processes for ``jobs`` > 1 (started on first use, kept until
        :meth:`close`), or None when this calculator runs in one process: ``jobs`` is 1,
        or its registry was given in-process (worker processes could not load it)."""
        if jobs <= 1 or not self._plugins_from_entry_points:
            return None
        if self._workers is None or self._workers.jobs != jobs:
            if self._workers is not None:
                self._workers.close()
            self._workers = Workers(self.policy, self._disabled, self.named_operator, jobs)
        return self._workers

    def _evaluate_in_workers(
        self, parsed: Sequence[Envelope | InvalidInput], moment: datetime, jobs: int
    ) -> list[Evaluated | None] | None:
        workers = self.workers(jobs)
        envelopes = [p for p in parsed if isinstance(p, Envelope)]
        if workers is None or len(envelopes) < 2:
            return None
        size = -(-len(envelopes) // jobs)
        futures = [
            workers.evaluate(envelopes[i : i + size], moment)
            for i in range(0, len(envelopes), size)
        ]
        results = iter([e for future in futures for e in future.result()])
        return [next(results) if isinstance(p, Envelope) else None for p in parsed]

    def evaluate(self, request: Request, *, now: datetime | None = None) -> Decision:
        """Evaluate without recording (a what-if; nothing is written, no history read)."""
        return self.engine.evaluate(request, now=now or self._clock(), operator=self.named_operator)

    def normal(self, canonical: Mapping[str, Any], now: datetime | None = None) -> dict[str, Any]:
        """A canonical request as today's rule reads it (SPEC §7, :mod:`pricecalc.sameness`)."""
        return normal_form(
            canonical,
            registry=self.registry,
            policy=self.rules_policy,
            now=now or self._clock(),
            operator=self.named_operator,
        )

    def keyed(self, envelope: Envelope, now: datetime | None = None) -> Envelope:
        """A content-keyed request (:meth:`Envelope.keyed`) keyed by its meaning:
        ``content-v2-<sha256>`` of its normal form, the raw-spelling key of 0.2 kept as
        an alias (SPEC §7). Any other request is returned as it is."""
        return keyed_by_meaning(
            envelope,
            registry=self.registry,
            policy=self.rules_policy,
            now=now or self._clock(),
            operator=self.named_operator,
        )

    def _difference(self, envelope: Envelope, recorded: Mapping[str, Any]) -> str | None:
        """What differs, by meaning, between a request and a recorded one (SPEC §7)."""
        if canonical_bytes(recorded) == canonical_bytes(envelope.canonical):
            return None  # spelt the same: the same request, whatever today's parser says
        asked = envelope.normal if envelope.normal is not None else self.normal(envelope.canonical)
        return difference(self.normal(recorded), asked)

    def now(self) -> datetime:
        """The calculator's clock (the time a decision is made at, unless one is given)."""
        return self._clock()

    def close(self) -> None:
        if self._workers is not None:
            self._workers.close()
            self._workers = None
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
        envelope: Envelope,
        now: datetime | None,
        away: Evaluated | None = None,
    ) -> tuple[Decision, Record]:
        """Replay the recorded decision of this request, or decide and append it.

        ``away`` is the decision a worker made without the store (:mod:`pricecalc.parallel`):
        it is recorded only when the store answers the rule's history questions as no
        history did; otherwise the request is decided here, with the store's history.
        """
        if envelope.request_id is not None:
            key, existing, voided_by = self._current(tx, envelope, envelope.request_id)
            if existing is None and key == envelope.request_id:
                for alias in envelope.aliases:
                    found = tx.get(alias)
                    if (
                        found is not None
                        and self._difference(envelope, records.request_of(found)) is None
                    ):
                        key, existing, voided_by = self._current(tx, envelope, alias)
                        break
            if existing is not None:
                return self._replay(existing, voided_by), existing
            if key != envelope.request_id:
                envelope = attrs.evolve(envelope, request_id=key, aliases=())
                away = None  # decided for the stale key: decide again here
        history = StoreHistory(tx)
        if (
            away is not None
            and (away.decision is not None or away.invalid is not None)
            and (not away.asked or same_answers(list(away.asked), history))
        ):
            if away.invalid is not None:
                raise away.invalid
            assert away.decision is not None
            decision = away.decision
            if decision.request_id != envelope.request_id:  # keyed by meaning here
                decision = attrs.evolve(decision, request_id=envelope.request_id)
            relied = relied_on(away.asked, decision.kind)
            return decision, self._append(tx, decision, away.moment, relied)
        moment = now or self._clock()
        asked = AskedHistory(history)
        decision = self.engine.evaluate(
            envelope, now=moment, history=asked, operator=self.named_operator
        )
        return decision, self._append(tx, decision, moment, relied_on(asked.asked, decision.kind))

    def _current(
        self, tx: Transaction, envelope: Envelope, key: str
    ) -> tuple[str, Record | None, int | None]:
        """The key this request is (or will be) recorded under, its record if any, and the
        void that withdrew that record when it is replayed withdrawn (SPEC §7).

        A key names one request: a different one under a live key is an
        :class:`IdempotencyConflict`. After a void:

        - the **same** request under the voided key replays the recorded decision marked
          ``voided_by`` and records nothing — a client's retry never undoes a void;
        - a **different** (corrected) request under it is decided under the successor key
          ``<key>~void-<seq of the void>``;
        - a *rejection* that relied on a since-voided record (its ``relied_on``) is decided
          again, under the successor key, when the same request is sent;
        - a key that already has a successor replays its latest successor (what 0.2 wrote
          after its voids), unless that successor holds another request: then the voided
          decision of this very request is replayed.
        """
        voided: tuple[Record, int] | None = None  # this request's own, withdrawn decision
        while True:
            record = tx.get(key)
            if record is None:
                return key, None, None
            difference = self._difference(envelope, records.request_of(record))
            void = voided_by(tx, record.seq)
            if difference is not None:
                if voided is not None:  # the successor holds the correction: replay ours
                    return voided[0].key or key, voided[0], voided[1]
                if void is None:
                    raise IdempotencyConflict(
                        str(envelope.request_id), record.seq, record.hash, envelope.kind, difference
                    )
                key = successor_key(key, void)  # the void released the key for a correction
                continue
            if void is not None:
                after = successor_key(key, void)
                if tx.get(after) is None:
                    return key, record, void
                voided = (record, void)
                key = after
                continue
            stale = relied_voided(tx, record)
            if stale is not None:
                key = successor_key(key, stale)
                continue
            return key, record, None

    @staticmethod
    def _append_draft(tx: Transaction, draft: Draft) -> Record | None:
        """Append a worker's draft as it is, or None when the store disagrees with it: a
        record holds one of its keys (a replay, a conflict, a void: :meth:`_current`
        decides), or its rule's questions get other answers now (SPEC §3–§5: decided
        again with the store's history)."""
        if tx.get(draft.key) is not None or any(tx.get(a) is not None for a in draft.aliases):
            return None
        if draft.asked and not same_answers(list(draft.asked), StoreHistory(tx)):
            return None
        payload = CanonicalPayload.decode(draft.canonical)
        return tx.append(Entry(payload=payload, key=draft.key, tags=draft.tags, plain=True))

    def _append(
        self, tx: Transaction, decision: Decision, moment: datetime, relied: Sequence[int] = ()
    ) -> Record:
        payload = records.payload(decision, moment, self.operator, relied, core_version())
        entry = Entry(
            payload=payload,
            key=decision.request_id,
            tags=decision_tags(decision),
            plain=True,
        )
        return tx.append(entry)

    @staticmethod
    def _replay(record: Record, voided_by: int | None = None) -> Decision:
        return records.replay(record, voided_by)


def _recorded(decision: Decision, record: Record) -> Decision:
    return decision.with_audit(AuditRef(record.seq, record.hash))


def _in_batch(index: int, exc: InvalidInput) -> InvalidInput:
    return InvalidInput(f"requests[{index}].{exc.field}", exc.value, exc.problem, shown=exc.shown)


def _keys(parsed: Sequence[Envelope | InvalidInput | Draft]) -> list[str]:
    keys: list[str] = []
    for envelope in parsed:
        if isinstance(envelope, Draft):
            keys.append(envelope.key)
            keys.extend(envelope.aliases)
        elif isinstance(envelope, Envelope) and envelope.request_id is not None:
            keys.append(envelope.request_id)
            keys.extend(envelope.aliases)
    return keys


__all__ = ["AUDIT_KEY_ENV", "BatchItem", "Calculator", "StoreHistory", "decision_tags"]
