"""A merchant's settlement statement over a period (SPEC §10), read from the audit store.

:func:`build_statement` picks the merchant's records (by their ``merchant:<id>`` tag, so
nobody else's record is read), keeps those recorded in the period (Beijing days, both ends
inclusive, as ``audit show --since/--until`` read them:
:func:`pricecalc.books.selection.period_bound`) and up to the checkpoint the statement is cut
from, and turns each into its row with
:mod:`pricecalc.books.settlement` — the one reading of a record's money the campaign report
shares:

* an approved decision whose kind declares money figures feeding a settlement column
  (:class:`pricecalc.registry.MoneyFigure`: price protection, counterfeit compensation,
  forwarding clawback, a plugin's kind) and that moved money is one row;
* an approved **void** of such a decision is a **reversal row** at the void's own seq,
  hash and time: the withdrawn decision's amounts negated, ``reverses`` naming its seq;
  a void of a decision that moved no money (a subsidy split) gives no row;
* everything else (rejections, splits, plugins' kinds) gives no row;
* a **second** approved void of a seq already voided (SPEC §7 rejects one; were one ever
  found in a store) gives no second reversal: the seq is reversed once, at its first void
  (:func:`first_void`, found by its ``voids:<seq>`` tag even outside the period), and the
  statement names the anomaly (:attr:`Statement.anomalies`, :class:`DoubleVoid`).

The statement ends with the checkpoint it was cut from (:class:`Cut`): a published signed
checkpoint (rows with ``seq`` up to its tree size only; voids recorded after it are not
seen) or, without one, the store's head. Every row can then be proven to be in that log
(``pricecalc audit prove SEQ --checkpoint CP``).

Nothing here writes a file; the command line (:mod:`pricecalc.cli.statement`) does.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import attrs

from audit.proofdoc import CheckpointProblem, published_checkpoint
from audit.protocol import GENESIS_HASH, AuditStore
from pricecalc import records
from pricecalc.beijing import beijing_iso, beijing_text
from pricecalc.books.selection import Filters
from pricecalc.books.settlement import (
    SETTLEMENT_COLUMNS,
    DoubleVoid,
    Movement,
    SettlementTotals,
    movement_of,
    reversal_of,
)
from pricecalc.history import merchant_tag, voids_tag
from pricecalc.registry import Declarations

#: The columns of a statement row, in order (JSON Lines rows carry them too, after
#: ``"type": "row"``).
STATEMENT_COLUMNS: tuple[str, ...] = (
    "seq",
    "recorded_at_beijing",
    "kind",
    "order_id",
    "request_id",
    "campaign",
    "reverses",
    *SETTLEMENT_COLUMNS,
    "hash",
)

#: What the statement's end says about the checkpoint, in order (machine names).
CUT_FIELDS: tuple[str, ...] = (
    "source", "origin", "tree_size", "root", "head_seq", "head_hash", "note",
)  # fmt: skip
SIGNED = "signed_checkpoint"
HEAD = "store_head"


@attrs.frozen
class Cut:
    """The checkpoint a statement was cut from: a tree ``size`` (= the head record's seq)
    and ``root``, the head record's ``head_hash``, and — for a published checkpoint — its
    signed ``note`` and ``origin`` (``None`` for the store's head)."""

    size: int
    root: bytes
    head_hash: str
    note: str | None = None
    origin: str | None = None

    @property
    def signed(self) -> bool:
        return self.note is not None

    def fields(self) -> dict[str, Any]:
        """:data:`CUT_FIELDS` as plain values (the root in base64, as the checkpoint
        writes it)."""
        return {
            "source": SIGNED if self.signed else HEAD,
            "origin": self.origin,
            "tree_size": self.size,
            "root": base64.b64encode(self.root).decode("ascii"),
            "head_seq": self.size,
            "head_hash": self.head_hash,
            "note": self.note,
        }


def _head_hash(store: AuditStore, size: int) -> str:
    if size == 0:
        return GENESIS_HASH
    record = store.record(size)
    assert record is not None  # size <= tree_size
    return record.hash


def head_cut(store: AuditStore) -> Cut:
    """The store's head as it is now: its tree size, root and last record's hash."""
    size = store.tree_size()
    return Cut(size, store.root(size), _head_hash(store, size))


def checkpoint_cut(store: AuditStore, note: str, where: str = "the checkpoint") -> Cut:
    """A published signed checkpoint (``note``'s text) as the statement's cut, checked
    against ``store`` (:func:`audit.proofdoc.published_checkpoint`, as ``audit prove`` and
    ``report`` check it). ``where`` names it in messages (its file). Raises
    :class:`CheckpointProblem`."""
    checkpoint = published_checkpoint(store, note, where)
    size = checkpoint.size
    return Cut(size, checkpoint.root, _head_hash(store, size), note, checkpoint.origin)


def first_void(
    store: AuditStore, seq: int, upto: int | None = None, declarations: Declarations | None = None
) -> int | None:
    """The seq of the first approved void of record ``seq`` in ``store`` (``<= upto``),
    found by its ``voids:<seq>`` tag; ``None`` when none is."""
    for record in sorted(store.find(voids_tag(seq)), key=lambda r: r.seq):
        if upto is not None and record.seq > upto:
            break
        if records.read(record, declarations).withdraws == seq:
            return record.seq
    return None


def movements(
    store: AuditStore,
    merchant_id: str,
    since: datetime | None = None,
    until: datetime | None = None,
    upto: int | None = None,
    declarations: Declarations | None = None,
    anomalies: list[DoubleVoid] | None = None,
) -> Iterator[Movement]:
    """The merchant's statement rows in seq order: each money-moving approved decision,
    and each approved void's reversal, recorded in ``[since, until)`` (aware instants, as
    :func:`~pricecalc.books.selection.period_bound` gives them) and with ``seq <= upto``.
    ``declarations``: the installed kinds' (what their figures settle; default: the
    core's own). A second void of a seq gives no row; it is added to ``anomalies``."""
    period = Filters(merchant_id=merchant_id, since=since, until=until)
    reversed_by: dict[int, int] = {}
    for record in sorted(store.find(merchant_tag(merchant_id)), key=lambda r: r.seq):
        if upto is not None and record.seq > upto:
            break
        if not period.matches(record):
            continue
        recorded = records.read(record, declarations)
        target = recorded.withdraws
        if target is None:
            moved = movement_of(recorded, declarations)
        else:
            first = reversed_by.get(target) or first_void(store, target, upto, declarations)
            if first is not None and first != recorded.seq:
                if anomalies is not None:
                    anomalies.append(DoubleVoid(recorded.seq, target, first))
                continue
            reversed_by[target] = recorded.seq
            withdrawn = store.record(target)
            moved = None if withdrawn is None else reversal_of(recorded, withdrawn, declarations)
        if moved is not None:
            yield moved


@attrs.frozen
class Statement:
    """A merchant's settlement statement: its rows (seq order), their totals, the period
    (``since`` inclusive, ``until`` exclusive; ``None``: open) and the :class:`Cut`."""

    merchant_id: str
    since: datetime | None
    until: datetime | None
    rows: tuple[Movement, ...]
    totals: SettlementTotals
    cut: Cut
    anomalies: tuple[DoubleVoid, ...] = ()

    def proven_seqs(self) -> list[int]:
        """Every seq the statement names: its rows' own and the seqs reversal rows
        reverse (each ``<= cut.size``), in order."""
        seqs = {row.seq for row in self.rows}
        seqs.update(row.reverses for row in self.rows if row.reverses is not None)
        return sorted(seqs)

    def period(self) -> dict[str, str | None]:
        """The period as exact Beijing instants: recorded at or after ``recorded_from``
        and before ``recorded_before`` (``None``: open)."""
        return {
            "recorded_from": _beijing_iso(self.since),
            "recorded_before": _beijing_iso(self.until),
        }

    def totals_fields(self) -> dict[str, Any]:
        """The statement's totals line: merchant, period, row count and the three sums —
        and, only when the store holds a seq voided twice, ``anomalies`` (one sentence
        each, :meth:`DoubleVoid.sentence`)."""
        fields: dict[str, Any] = {
            "merchant_id": self.merchant_id,
            **self.period(),
            "rows": self.totals.rows,
            **self.totals.formatted(),
        }
        if self.anomalies:
            fields["anomalies"] = [anomaly.sentence() for anomaly in self.anomalies]
        return fields


def _beijing_iso(moment: datetime | None) -> str | None:
    return None if moment is None else beijing_iso(moment)


def build_statement(
    store: AuditStore,
    merchant_id: str,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    cut: Cut | None = None,
    declarations: Declarations | None = None,
) -> Statement:
    """The statement of ``merchant_id`` for records recorded in ``[since, until)``, cut
    from ``cut`` (default: the store's head, :func:`head_cut`); ``declarations``: the
    installed kinds' (``Registry.declarations()``; default: the core's own)."""
    cut = head_cut(store) if cut is None else cut
    anomalies: list[DoubleVoid] = []
    rows = tuple(
        movements(
            store, merchant_id, since, until, upto=cut.size, declarations=declarations,
            anomalies=anomalies,
        )
    )  # fmt: skip
    totals = SettlementTotals()
    for row in rows:
        totals.add(row)
    return Statement(merchant_id, since, until, rows, totals, cut, tuple(anomalies))


def statement_row(movement: Movement) -> dict[str, Any]:
    """One row as :data:`STATEMENT_COLUMNS` (amounts as two-decimal text)."""
    return {
        "seq": movement.seq,
        "recorded_at_beijing": beijing_text(movement.recorded_at),
        "kind": movement.kind,
        "order_id": movement.order_id,
        "request_id": movement.request_id,
        "campaign": movement.campaign,
        "reverses": movement.reverses,
        **movement.cells(),
        "hash": movement.hash,
    }


#: The statement's words, machine name → (English, Chinese): the Excel summary sheet's
#: titles and the CSV end lines' labels.
STATEMENT_WORDS: Mapping[str, tuple[str, str]] = {
    "statement": ("Settlement statement", "结算单"),
    "merchant_id": ("merchant", "商家"),
    "recorded_from": ("recorded from (Beijing)", "记录时间起(北京时间)"),
    "recorded_before": ("recorded before (Beijing)", "记录时间止于(不含，北京时间)"),
    "rows": ("rows", "行数"),
    "anomaly": ("anomaly", "异常"),
    "totals": ("totals", "合计"),
    "checkpoint": ("checkpoint", "检查点"),
    "source": ("cut from", "截取自"),
    SIGNED: ("a published signed checkpoint", "已发布的签名检查点"),
    HEAD: ("the store's head (unsigned)", "存储当前链头(未签名)"),
    "origin": ("log (origin)", "日志名"),
    "tree_size": ("tree size", "树大小(记录数)"),
    "root": ("root (base64)", "根哈希(base64)"),
    "head_seq": ("head seq", "链头记录号"),
    "head_hash": ("head hash", "链头哈希"),
    "note": ("signed checkpoint", "签名检查点全文"),
}


def statement_word(name: str, headers: str) -> str:
    english, chinese = STATEMENT_WORDS[name]
    return chinese if headers == "zh" else english


__all__ = [
    "CUT_FIELDS",
    "STATEMENT_COLUMNS",
    "STATEMENT_WORDS",
    "CheckpointProblem",
    "Cut",
    "Statement",
    "build_statement",
    "checkpoint_cut",
    "first_void",
    "head_cut",
    "movements",
    "statement_row",
    "statement_word",
]
