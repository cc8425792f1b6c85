"""``pricecalc statement``: a merchant's settlement statement for a period (SPEC §10).

The rows and totals come from :func:`pricecalc.statement.build_statement`; this module
only reads the options, checks them all before anything is written, and writes the
statement (and, with ``--prove``, one inclusion proof per seq it names) — see
docs/report.md "The settlement statement" for the shape of each format.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

import click

from audit.proofdoc import inclusion_document
from pricecalc.cli.app import App, Interrupted, hmac_key
from pricecalc.cli.main import cli
from pricecalc.cli.options import (
    OutputOptions,
    output_options,
    period_option,
    read_text_file,
    record_text,
)
from pricecalc.cli.proofs import SIGNING_KEY_ENV, load_signing_key, sign_store
from pricecalc.rows import column_label
from pricecalc.settlement import SETTLEMENT_COLUMNS
from pricecalc.statement import (
    CUT_FIELDS,
    STATEMENT_COLUMNS,
    CheckpointProblem,
    Cut,
    Statement,
    build_statement,
    checkpoint_cut,
    head_cut,
    statement_row,
    statement_word,
)
from pricecalc.writers import CsvWriter, Heading, Output, SummarySheet

#: What ends a statement's JSON Lines: its totals line and its checkpoint line.
TOTALS_LINE = "totals"
CHECKPOINT_LINE = "checkpoint"
#: The facts of the totals line other than the sums, in order.
PERIOD_FIELDS = ("merchant_id", "recorded_from", "recorded_before", "rows")


def proofs_folder(output: str) -> Path:
    """Where ``--prove`` puts the proofs of the statement ``output``: beside it, named
    after it (``statement-M1-2026-11.xlsx`` → ``statement-M1-2026-11.proofs/``)."""
    return Path(output).with_suffix(".proofs")


def proof_name(seq: int) -> str:
    return f"seq-{seq}.json"


@cli.command()
@click.option("--merchant", "merchant_id", required=True, metavar="ID", callback=record_text,
              help="The merchant the statement is for.")  # fmt: skip
@click.option("--since", required=True, metavar="WHEN",
              help="Recorded at or after (a date: a whole Beijing day; or ISO time).")  # fmt: skip
@click.option("--until", required=True, metavar="WHEN",
              help="Recorded up to (a date includes the whole day).")  # fmt: skip
@click.option("--checkpoint", "checkpoint_file", metavar="CP.txt",
              help="Cut the statement from this published signed checkpoint (rows up to "
              "its tree size); default: the store's head.")  # fmt: skip
@click.option("--prove", is_flag=True,
              help="Also write each row's inclusion proof into OUT's .proofs folder (needs "
              "--checkpoint or --signing-key).")  # fmt: skip
@click.option("--signing-key", "key_file", envvar=SIGNING_KEY_ENV, metavar="KEYFILE",
              type=click.Path(dir_okay=False),
              help=f"With --prove and no --checkpoint: sign the store's current tree with "
              f"this key (or ${SIGNING_KEY_ENV}) and cut the statement from it.")  # fmt: skip
@output_options(what="statement rows", example="statement")
@click.pass_obj
def statement(
    app: App,
    merchant_id: str,
    since: str,
    until: str,
    checkpoint_file: str | None,
    prove: bool,
    key_file: str | None,
    out: OutputOptions,
) -> None:
    """Write a merchant's settlement statement for a period (SPEC §10).

    One row per approved decision of the merchant that moved money, recorded in the
    period (Beijing days, both ends inclusive, as `audit show` reads them), with its seq,
    hash and amount in deduct_from_payout, merchant_pays or subsidy_clawback; a reversal
    row (amounts negated, at the void's seq) for each void; then the totals and the
    checkpoint the statement was cut from. With --prove, each seq the statement names
    gets its inclusion proof (as `audit prove` writes it) in OUT's .proofs folder, for
    `audit verify-proof`; an existing proofs folder is never overwritten.

    Example:

    \b
        pricecalc statement --merchant M1 --since 2026-11-01 --until 2026-11-30 \\
            --checkpoint cp-2026-11-30.txt --prove --output statement-M1-2026-11.xlsx
        pricecalc statement --merchant M1 --since 2026-11-11 --until 2026-11-11 -o - --format csv
    """
    start = period_option(since, end=False, option="--since")
    end = period_option(until, end=True, option="--until")
    if start >= end:
        raise click.UsageError(f"--since {since} is after --until {until}: the period is empty")
    note = read_text_file(checkpoint_file, "--checkpoint") if checkpoint_file else None
    folder: Path | None = None
    if prove:
        if out.to_stdout:
            raise click.UsageError(
                "--prove writes the proofs beside the statement: give --output a file name, not -"
            )
        if note is None and key_file is None:
            raise click.UsageError(
                "--prove needs a signed checkpoint to prove the rows against: give "
                f"--checkpoint CP.txt, or --signing-key KEYFILE (or ${SIGNING_KEY_ENV}) to "
                "sign the store's current tree"
            )
        folder = proofs_folder(out.name)
        if folder.exists():
            raise click.UsageError(
                f"the proofs folder {str(folder)!r} already exists: remove it, or write the "
                "statement elsewhere (proofs are never overwritten)"
            )
    key = load_signing_key(key_file) if prove and note is None and key_file else None
    store = app.store()
    with app.store_errors():
        if key is not None:
            note = sign_store(app, store, key)[0]
        cut = _cut(store, note, checkpoint_file)
        found = build_statement(
            store, merchant_id, start, end, cut=cut, declarations=app.registry().declarations()
        )
        proofs = {
            seq: inclusion_document(
                store, seq, cut.size, checkpoint=cut.note, keyed=hmac_key() is not None
            )
            for seq in (found.proven_seqs() if prove else ())
        }
    _write(found, out, proofs, folder)
    if not out.to_stdout and not out.quiet:
        sums = ", ".join(f"{k} {v}" for k, v in found.totals.formatted().items())
        whence = (
            f"the signed checkpoint of size {cut.size}" if cut.signed
            else f"the store's head (seq {cut.size})"
        )  # fmt: skip
        click.echo(
            f"statement of merchant {merchant_id}: {found.totals.rows} rows ({sums}), cut "
            f"from {whence}, written to {out.name}"
        )
        if folder is not None:
            click.echo(f"{len(proofs)} inclusion proofs written to {folder}")


def _cut(store: Any, note: str | None, checkpoint_file: str | None) -> Cut:
    if note is None:
        return head_cut(store)
    where = f"--checkpoint {checkpoint_file}" if checkpoint_file else "the signed checkpoint"
    try:
        return checkpoint_cut(store, note, where)
    except CheckpointProblem as exc:
        raise click.UsageError(str(exc)) from exc


def _write(
    found: Statement, out: OutputOptions, proofs: dict[int, Any], folder: Path | None
) -> None:
    """The statement, then its proofs; on any failure nothing is left (the statement's
    partial file and the proofs folder are removed)."""
    output = out.open(STATEMENT_COLUMNS, title="statement")
    made = False
    try:
        jsonl = not output.writer.tabular
        for movement in found.rows:
            row = statement_row(movement)
            output.writer.write({"type": "row", **row} if jsonl else row)
        summary = _ending(found, output, out.headers)
        if folder is not None:
            folder.mkdir()
            made = True
            for seq, doc in proofs.items():
                text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
                (folder / proof_name(seq)).write_text(text, encoding="utf-8")
        output.commit(summary)
    except KeyboardInterrupt:
        _undo(output, folder if made else None)
        raise Interrupted("interrupted; nothing was written") from None
    except BaseException:
        _undo(output, folder if made else None)
        raise


def _undo(output: Output, folder: Path | None) -> None:
    output.abandon()
    if folder is not None:
        with contextlib.suppress(OSError):
            shutil.rmtree(folder)


def _ending(found: Statement, output: Output, headers: str) -> SummarySheet | None:
    """Write the statement's end (totals and checkpoint) as the format has it; a workbook
    gets it as its summary sheet (returned, for the commit)."""
    totals = found.totals_fields()
    cut = found.cut.fields()
    writer = output.writer
    if output.fmt == "jsonl":
        writer.write({"type": TOTALS_LINE, **totals})
        writer.write({"type": CHECKPOINT_LINE, **cut})
        return None

    def label(name: str) -> str:
        return statement_word(name, headers) if headers == "zh" else name

    def value(name: str, given: Any) -> Any:
        return statement_word(given, headers) if name == "source" and headers == "zh" else given

    if isinstance(writer, CsvWriter):
        writer.write({"seq": label("totals"), **found.totals.formatted()})
        for name in PERIOD_FIELDS:
            writer.write_line([label(name), totals[name]])
        for name in CUT_FIELDS:
            writer.write_line([label(name), value(name, cut[name])])
        return None

    def word(name: str) -> str:
        return statement_word(name, headers)

    rows: list[tuple[Any, ...]] = [(Heading(word("statement")),)]
    rows += [(word(name), totals[name]) for name in PERIOD_FIELDS]
    rows += [(), (Heading(word("totals")),)]
    rows += [(column_label(name, headers), found.totals.sums[name]) for name in SETTLEMENT_COLUMNS]
    rows += [(), (Heading(word("checkpoint")),)]
    rows += [
        (word(name), statement_word(cut[name], headers) if name == "source" else cut[name])
        for name in CUT_FIELDS
    ]
    return SummarySheet(tuple(rows), widths=(30, 70))
