"""What the service runs on: its :class:`Settings` and the :class:`Service` behind the
routes of :mod:`pricecalc.service.app`.

A :class:`Service` holds what the command line's :class:`pricecalc.cli.app.App` builds
for the same global options — the policy, the registry of rules and plugins, the audit
store — and one :class:`pricecalc.Calculator` per operator named by a token, all on that
one store; the tokens (re-read on SIGHUP), the keys in flight, the metrics and the log.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, cast

import attrs

from audit.note import SigningKey, read_signing_key, sign_checkpoint
from audit.protocol import AuditStore, Record, Transaction
from pricecalc import records
from pricecalc.calculator import AUDIT_KEY_ENV, Calculator
from pricecalc.decision import Decision
from pricecalc.envelope import Envelope
from pricecalc.errors import InvalidInput, PricecalcError
from pricecalc.fields import identifier
from pricecalc.grouping import MAX_GROUP
from pricecalc.history import order_tag
from pricecalc.plugins import load_registry
from pricecalc.policy import Policy
from pricecalc.rules.void import VOID_KIND, voided_seq
from pricecalc.service import tokens as tokens_file
from pricecalc.service.accesslog import AccessLog
from pricecalc.service.groups import LoopGroups
from pricecalc.service.keys import InFlight, normal_key
from pricecalc.service.metrics import Metrics
from pricecalc.service.problems import HIDDEN_CONFLICT, Problem
from pricecalc.service.tokens import Token, Tokens

#: Where a check reads the records: the store, or the transaction deciding the request.
Reads = AuditStore | Transaction

#: SPEC §11: a body over 1 MiB is answered 413.
MAX_BODY = 1024 * 1024
#: The default limit of a /v1/batches body (``--max-batch-bytes``).
MAX_BATCH = 64 * 1024 * 1024
#: Lines of a /v1/batches body recorded with one commit (each group's rows are sent once
#: it is durable).
BATCH_GROUP = 200
#: Groups of requests being decided at once (pricecalc.service.groups): two, so the next
#: group is prepared and decided while the last one syncs (the store syncs after its lock
#: is let go). With one, a group's sync left the process idle and every request waited
#: through it: at 500 requests/s in the open loop, p50 11-13 ms against 4-6 ms with two;
#: at 64 connections, 1,548 against 2,304 decisions/s (docs/performance.md).
DECIDE_THREADS = 2
#: Why a void is refused anywhere but POST /v1/voids (which checks the void right and,
#: for a merchant-limited token, whose record it withdraws).
VOIDS_APART = "a void is made through POST /v1/voids (it needs the void right)"


@attrs.frozen
class Settings:
    """What ``pricecalc serve`` was given (the global options and its own)."""

    audit: str
    tokens: str
    policy_file: str | None = None
    disabled: tuple[str, ...] = ()
    signing_key: str | None = None
    max_body: int = MAX_BODY
    max_batch: int = MAX_BATCH
    access_log: str | None = None  # a file; None: standard error; "-": none


class Service:
    """The calculators, tokens, limits, metrics and log behind the application."""

    def __init__(
        self,
        settings: Settings,
        *,
        log_stream: IO[str] | None = None,
        ready: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        # Built as the command line's App builds its calculator: the policy file, the
        # registry of the plugins it and --disable-plugin leave enabled, the store.
        self.policy = Policy.from_toml(settings.policy_file) if settings.policy_file else Policy()
        self.registry = load_registry(self.policy, settings.disabled)
        self._base = Calculator(settings.audit, self.policy, None, registry=self.registry)
        self.store: AuditStore = self._base.store
        self._calcs: dict[str, Calculator] = {}
        self._calc_lock = threading.Lock()
        self.tokens: Tokens = tokens_file.load(settings.tokens)
        self.signing_key: SigningKey | None = (
            read_signing_key(settings.signing_key) if settings.signing_key else None
        )
        self._checkpoint: tuple[int, str] | None = None
        self.in_flight = InFlight()
        self.metrics = Metrics()
        self.keyed = bool(os.environ.get(AUDIT_KEY_ENV))
        self._ready = ready
        self._log_file: IO[str] | None = None
        if log_stream is None and settings.access_log not in (None, "-"):
            assert settings.access_log is not None
            self._log_file = open(settings.access_log, "a", encoding="utf-8")  # noqa: SIM115
            log_stream = self._log_file
        self.log = None if settings.access_log == "-" else AccessLog(log_stream)
        #: The threads decisions are made in, a group of concurrent requests at a time (up
        #: to the store's group bound): :meth:`decide_group`.
        self.groups: LoopGroups[tuple[Token, Envelope], Decision] = LoopGroups(
            self.decide_group, MAX_GROUP, depth=DECIDE_THREADS
        )

    # -- the pieces --------------------------------------------------------------------
    def calculator(self, operator: str) -> Calculator:
        """The calculator recording ``operator`` (one per operator, all on one store)."""
        with self._calc_lock:
            calc = self._calcs.get(operator)
            if calc is None:
                calc = Calculator(self.store, self.policy, operator, registry=self.registry)
                self._calcs[operator] = calc
            return calc

    def reload_tokens(self) -> None:
        """Re-read the tokens file (SIGHUP). A file that is gone or cannot be read refuses
        every token until it is back and re-read: removing it revokes, as with
        ``--workers`` (whose restarted workers cannot start without it)."""
        try:
            self.tokens = tokens_file.load(self.settings.tokens)
        except PricecalcError as exc:
            self.tokens = Tokens()
            print(
                f"pricecalc serve: tokens not reloaded, every token refused until they are: {exc}",
                file=sys.stderr,
            )

    def check_ready(self) -> None:
        """Raise unless the store answers and can write (SPEC §11 ``/readyz``)."""
        if self._ready is not None:
            self._ready()
            return
        self.store.head()
        if "://" not in self.settings.audit:
            folder = Path(self.settings.audit).resolve().parent
            fd, name = tempfile.mkstemp(prefix=".pricecalc-ready-", dir=folder)
            try:
                os.write(fd, b"ready\n")
                os.fsync(fd)
            finally:
                os.close(fd)
                os.unlink(name)

    def checkpoint(self, size: int | None = None) -> str | None:
        """The signed checkpoint of the tree at ``size`` (default: now), or None without a
        signing key."""
        if self.signing_key is None:
            return None
        size = self.store.tree_size() if size is None else size
        cached = self._checkpoint
        if cached is not None and cached[0] == size:
            return cached[1]
        note = sign_checkpoint(self.signing_key, size, self.store.root(size))
        self._checkpoint = (size, note)
        return note

    def merchant_of(self, record: Record) -> str | None:
        """The merchant a record concerns: its own; for a void, the merchant of the record
        it names (its result shows that record's request_id and kind, even when the void
        is rejected), whatever merchant_id the void itself was labelled with — followed
        only to earlier seqs, so a chain of voids (of voids …) ends."""
        recorded = records.read(record)
        while True:
            target = recorded.withdraws
            if target is None and recorded.kind == VOID_KIND:
                target = voided_seq(recorded.result)  # a rejected void names it too
            withdrawn = None
            if target is not None and 1 <= target < recorded.seq:
                withdrawn = self.store.record(target)
            if withdrawn is None:
                break
            recorded = records.read(withdrawn)
        merchant = recorded.request.get("merchant_id")
        return merchant if isinstance(merchant, str) else None

    def visible(self, token: Token, record: Record | None) -> Record | None:
        """``record`` when ``token`` may see it (SPEC §11: a merchant-limited token sees
        only its merchant's records and the voids of them), else None (404 as if absent)."""
        if record is None or token.merchant_id is None:
            return record
        return record if self.merchant_of(record) == token.merchant_id else None

    def may_use(self, token: Token, held: Record | None) -> bool:
        """Whether ``token`` may decide under the key of ``held`` (the record the key
        names, or None when it is free). A key another merchant's record holds stays
        theirs even once that record is voided: deciding under it would record a
        successor ``<key>~void-<seq>`` and tell the other merchant's void seq (SPEC §11:
        a hidden 422 instead)."""
        return held is None or self.visible(token, held) is not None

    def foreign_order(
        self, token: Token, input_: object, reads: Reads | None = None
    ) -> str | None:
        """The request's ``order_id`` when ``token`` is limited to a merchant and the
        order has records of another merchant, else None. The once-only rules (SPEC
        §3–§5) read every decision about an order and show what they counted, so such a
        decision would tell what another merchant was decided (SPEC §11)."""
        if token.merchant_id is None or not isinstance(input_, Mapping):
            return None
        given = input_.get("order_id")
        if given is None:
            return None
        try:
            order_id = identifier(given, "input.order_id")
        except InvalidInput:
            return None  # the rule refuses it, naming the field
        for record in (self.store if reads is None else reads).find(order_tag(order_id)):
            if self.merchant_of(record) != token.merchant_id:
                return order_id
        return None

    # -- deciding, in the decide threads -----------------------------------------------
    def decide_group(self, group: Sequence[tuple[Token, Envelope]]) -> list[Decision | Exception]:
        """In a decide thread (:class:`~pricecalc.service.groups.LoopGroups`): a group of
        requests, each its decision or its own exception. A merchant-limited token's
        checks come first; then each run of requests for one operator is decided by that
        operator's calculator as one group — one transaction, one sync
        (``Calculator.decide_each``)."""
        outcomes: list[Decision | Exception | None] = [None] * len(group)
        run: list[tuple[int, Token, Envelope]] = []
        operator = None
        for index, (token, envelope) in enumerate(group):
            if token.operator != operator and run:
                self._decide_run(operator, run, outcomes)
                run = []
            operator = token.operator
            run.append((index, token, envelope))
        if run:
            self._decide_run(operator, run, outcomes)
        return cast(list[Decision | Exception], outcomes)

    def _decide_run(
        self,
        operator: str | None,
        run: list[tuple[int, Token, Envelope]],
        outcomes: list[Decision | Exception | None],
    ) -> None:
        assert operator is not None
        self.metrics.decision_groups.observe(len(run))

        def check(tx: Transaction, n: int) -> None:
            # Under the lock, just before the request is decided: what the group's earlier
            # requests (and other threads' and processes' groups) recorded is seen.
            _, token, envelope = run[n]
            if token.merchant_id is not None:
                self.check_merchant(token, envelope, tx)

        decided: list[Decision | Exception]
        try:
            decided = self.calculator(operator).decide_each(
                [envelope for _, _, envelope in run], check=check
            )
        except Exception as exc:  # this run's requests hear of it; the group's others go on
            decided = [exc] * len(run)
        for (index, _, _), outcome in zip(run, decided, strict=True):
            outcomes[index] = outcome

    def check_merchant(
        self, token: Token, envelope: Envelope, reads: Reads | None = None
    ) -> None:
        """Raise the problem a merchant-limited ``token`` gets for ``envelope``: a key
        another merchant's record holds (:meth:`may_use`, the hidden 422) or an order with
        another merchant's records (:meth:`foreign_order`, 403) — read through ``reads``
        (the deciding transaction, under the lock), else the store."""
        if envelope.request_id is not None and not self.may_use(
            token, self.find(envelope.request_id, reads)
        ):
            raise HIDDEN_CONFLICT
        order_id = self.foreign_order(token, envelope.input, reads)
        if order_id is not None:
            raise Problem(
                "forbidden",
                f"order_id {order_id!r} has decisions recorded for another merchant: the "
                f"token {token.name!r} decides only orders of merchant_id {token.merchant_id!r}",
            )

    def find(self, key: str, reads: Reads | None = None) -> Record | None:
        """The decision recorded under ``key`` (as given, else in its SPEC §1 form), or
        None; read through ``reads`` (a transaction), else the store."""
        store = self.store if reads is None else reads
        record = store.get(key)
        if record is None and normal_key(key) != key:
            record = store.get(normal_key(key))
        if record is None or not records.read(record).is_decision:
            return None
        return record

    def close(self) -> None:
        self.groups.close()
        for calc in self._calcs.values():
            calc.close()
        self._base.close()
        if self._log_file is not None:
            self._log_file.close()
