"""``pricecalc statement``: a merchant's settlement statement for a period (SPEC §10).

The rows and totals come from :func:`pricecalc.books.statement.build_statement`; this module
only reads the options, checks them all before anything is written, and writes the
statement (and, with ``--prove``, one inclusion proof per seq it names) — see
docs/report.md "The settlement statement" for the shape of each format.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
from pathlib import Path
from typing import Any

import click

from audit.note import NoteError, VerifierKey, load_verifier_key, open_checkpoint
from audit.proofdoc import inclusion_document
from pricecalc.books.settlement import SETTLEMENT_COLUMNS
from pricecalc.books.statement import (
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
from pricecalc.cli.app import App, DataError, Interrupted, bad_file, hmac_key
from pricecalc.cli.main import cli
from pricecalc.cli.options import (
    OutputOptions,
    output_options,
    period_option,
    read_text_file,
    record_text,
)
from pricecalc.cli.proofs import SIGNING_KEY_ENV, load_signing_key, sign_store
from pricecalc.files.columns import column_label
from pricecalc.files.target import write_file
from pricecalc.files.writing import CsvWriter, Heading, Output, SummarySheet, text_cell
from pricecalc.i18n import _
from pricecalc.messages import describe

#: What ends a statement's JSON Lines: its totals line and its checkpoint line.
TOTALS_LINE = "totals"
CHECKPOINT_LINE = "checkpoint"
#: The facts of the totals line other than the sums, in order.
PERIOD_FIELDS = ("merchant_id", "recorded_from", "recorded_before", "rows")


def proofs_folder(output: str) -> Path:
    """Where ``--prove`` puts the proofs of the statement ``output``: beside it, named
    after it (``statement-M1-2026-11.xlsx`` → ``statement-M1-2026-11.proofs/``)."""
    return Path(output).with_suffix(".proofs")


def totals_file(output: str) -> Path:
    """Where a CSV statement's totals and checkpoint go: beside it, named after it
    (``statement-M1.csv`` → ``statement-M1.totals.csv``) — never in its data columns,
    so a plain SUM of a money column is the statement's total (SPEC §10)."""
    return Path(output).with_suffix(".totals.csv")


def proof_name(seq: int) -> str:
    return f"seq-{seq}.json"


#: What ``--prove --verifier-key`` adds to the proofs folder, for a merchant checking alone.
VERIFIER_KEY_FILE = "verifier-key.txt"
CHECKPOINT_FILE = "checkpoint.txt"
README_FILE = "README.txt"


def proofs_readme(verifier: VerifierKey, size: int, seqs: list[int]) -> str:
    """The proofs folder's README.txt: how a merchant checks one row alone, in Chinese and
    English (one command, or the standalone script), and that the key must be compared
    with the one the platform publishes."""
    proof = proof_name(seqs[0]) if seqs else "seq-N.json"
    key = f"{verifier.name}+{verifier.key_id:08x}"
    log = f"log {verifier.name}, tree size {size}"
    one = (
        f"pricecalc audit verify-proof {proof} --checkpoint {CHECKPOINT_FILE} "
        f"--verifier-key {VERIFIER_KEY_FILE}"
    )
    return f"""对账单证明 Statement proofs
=============================

本文件夹 This folder
  seq-<记录号>.json  对账单每个记录号的包含证明 the inclusion proof of each seq the statement names
  {CHECKPOINT_FILE}     对账单所依据的签名检查点（日志 {verifier.name}，树大小 {size}）
                     the signed checkpoint the statement was cut from ({log})
  {VERIFIER_KEY_FILE}   该日志的验证公钥 the log's verifier key ({key})

1. 先核对公钥 First, compare the key
   {VERIFIER_KEY_FILE} 必须与平台公开发布的验证公钥逐字相同。只随这些文件一起收到的公钥
   什么也证明不了：做这些文件的人也能做一把公钥。
   {VERIFIER_KEY_FILE} must be, character for character, the verifier key the platform
   publishes. A key that only came with these files proves nothing: whoever made the
   files could have made the key too.

2. 核对一行 Check one row (例如 e.g. {proof})
   用 pricecalc With pricecalc:
     {one}
   或者只用 Python 3 和 cryptography（pip install cryptography），运行 pricecalc 文档
   docs/audit.md「The merchant's side, step by step」里的独立脚本 verify_proof.py：
   Or, with only Python 3 and cryptography, the standalone script verify_proof.py from
   pricecalc's docs/audit.md, "The merchant's side, step by step":
     python3 verify_proof.py {proof} {CHECKPOINT_FILE} "$(cat {VERIFIER_KEY_FILE})"
   （Windows：把 "$(cat …)" 换成加引号的公钥文本 put the key's text in quotes instead）
   输出以 OK 开头即证明该记录在日志中且未被改动；否则说明哪一项不符。
   A line starting with OK proves the record is in the log, unchanged; anything else
   names what failed.
   pricecalc 随后列出该记录的决定（类型、订单、各金额及其名称、结算方式、北京时间），
   与对账单的这一行逐项核对。 pricecalc then lists what the record decided (kind,
   order, each amount by its name, settlement, Beijing time): compare it with the row.

3. 以后 Later
   拿到平台更新的检查点后，可要求一致性证明（pricecalc audit prove --consistency {size}），
   证明日志只增不改。 With a newer published checkpoint, ask for a consistency proof
   (pricecalc audit prove --consistency {size}): it proves the log only grew.
"""


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
@click.option("--verifier-key", "vkey", metavar="VKEY",
              help="With --prove: the log's verifier key (or a file with it), checked "
              "against the checkpoint and put in the proofs folder with a README.txt on "
              "how the merchant checks a row.")  # fmt: skip
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
    vkey: str | None,
    out: OutputOptions,
) -> None:
    """Write a merchant's settlement statement for a period (SPEC §10).

    One row per approved decision of the merchant that moved money, recorded in the
    period (Beijing days, both ends inclusive, as `audit show` reads them), with its seq,
    hash and amount in deduct_from_payout, merchant_pays or subsidy_clawback; a reversal
    row (amounts negated, at the void's seq) for each void; then the totals and the
    checkpoint the statement was cut from (a CSV file's in NAME.totals.csv beside it, so
    a SUM of a CSV column is its total). With --prove, each seq the statement names
    gets its inclusion proof (as `audit prove` writes it) in OUT's .proofs folder, for
    `audit verify-proof`; an existing proofs folder is never overwritten. --verifier-key
    adds the log's verifier key, the checkpoint and a README.txt (中文 and English) that
    tells the merchant how to check a row alone.

    Example:

    \b
        pricecalc statement --merchant M1 --since 2026-11-01 --until 2026-11-30 \\
            --checkpoint cp-2026-11-30.txt --prove --verifier-key finance.vkey \\
            --output statement-M1-2026-11.xlsx
        pricecalc statement --merchant M1 --since 2026-11-11 --until 2026-11-11 -o - --format csv
    """
    start = period_option(since, end=False, option="--since")
    end = period_option(until, end=True, option="--until")
    if start >= end:
        raise click.UsageError(
            _("--since {since} is after --until {until}: the period is empty").format(
                since=since, until=until
            )
        )
    note = read_text_file(checkpoint_file, "--checkpoint") if checkpoint_file else None
    folder: Path | None = None
    if prove:
        if out.to_stdout:
            raise click.UsageError(
                _(
                    "--prove writes the proofs beside the statement: give --output a file name, "
                    "not -"
                )
            )
        if note is None and key_file is None:
            raise click.UsageError(
                _(
                    "--prove needs a signed checkpoint to prove the rows against: give "
                    "--checkpoint CP.txt, or --signing-key KEYFILE (or ${env}) to "
                    "sign the store's current tree"
                ).format(env=SIGNING_KEY_ENV)
            )
        folder = proofs_folder(out.name)
        if folder.exists():
            raise click.UsageError(
                _(
                    "the proofs folder {folder!r} already exists: remove it, or write the "
                    "statement elsewhere (proofs are never overwritten)"
                ).format(folder=str(folder))
            )
    verifier: VerifierKey | None = None
    if vkey is not None:
        if not prove:
            raise click.UsageError(
                _("--verifier-key goes into the proofs folder: give it with --prove")
            )
        try:
            verifier = load_verifier_key(vkey)
        except (NoteError, OSError) as exc:
            raise bad_file("'--verifier-key'", describe(exc)) from exc
    key = load_signing_key(key_file) if prove and note is None and key_file else None
    store = app.store()
    with app.store_errors():
        if key is not None:
            note = sign_store(app, store, key)[0]
        cut = _cut(store, note, checkpoint_file)
        extras = _for_the_merchant(verifier, cut) if verifier is not None else {}
        found = build_statement(
            store, merchant_id, start, end, cut=cut, declarations=app.registry().declarations()
        )
        proofs = {
            seq: inclusion_document(
                store, seq, cut.size, checkpoint=cut.note, keyed=hmac_key() is not None
            )
            for seq in (found.proven_seqs() if prove else ())
        }
    if verifier is not None:
        extras[README_FILE] = proofs_readme(verifier, cut.size, sorted(proofs))
    for anomaly in found.anomalies:  # SPEC §7: reversed once, and said
        click.echo(_("warning: {sentence}").format(sentence=anomaly.sentence()), err=True)
    _write(found, out, proofs, folder, app.audit, extras)
    if not out.to_stdout and not out.quiet:
        sums = ", ".join(f"{k} {v}" for k, v in found.totals.formatted().items())
        whence = (
            _("the signed checkpoint of size {size}") if cut.signed
            else _("the store's head (seq {size})")
        ).format(size=cut.size)  # fmt: skip
        click.echo(
            _(
                "statement of merchant {merchant}: {rows} rows ({sums}), cut from {whence}, "
                "written to {path}"
            ).format(
                merchant=merchant_id, rows=found.totals.rows, sums=sums, whence=whence,
                path=out.name,
            )
        )  # fmt: skip
        if folder is not None:
            click.echo(
                _("{count} inclusion proofs written to {folder}").format(
                    count=len(proofs), folder=folder
                )
            )
        if extras:
            click.echo(
                _(
                    "the verifier key, the checkpoint and {readme} (how to check a row) "
                    "written to {folder}"
                ).format(readme=README_FILE, folder=folder)
            )


def _cut(store: Any, note: str | None, checkpoint_file: str | None) -> Cut:
    if note is None:
        return head_cut(store)
    where = f"--checkpoint {checkpoint_file}" if checkpoint_file else "the signed checkpoint"
    try:
        return checkpoint_cut(store, note, where)
    except CheckpointProblem as exc:
        raise DataError(describe(exc)) from exc


def _for_the_merchant(verifier: VerifierKey, cut: Cut) -> dict[str, str]:
    """The verifier key and checkpoint files of the proofs folder, once the key is seen to
    verify the checkpoint the statement was cut from (else exit 2: a merchant must never
    be handed a key that does not check its proofs)."""
    assert cut.note is not None  # --prove always cuts from a signed checkpoint
    try:
        open_checkpoint(cut.note, verifier)
    except NoteError as exc:
        raise bad_file(
            "'--verifier-key'",
            _("{key} does not verify the statement's checkpoint ({reason})").format(
                key=f"{verifier.name}+{verifier.key_id:08x}", reason=describe(exc)
            ),
        ) from exc
    return {VERIFIER_KEY_FILE: f"{verifier}\n", CHECKPOINT_FILE: cut.note}


def _write(
    found: Statement,
    out: OutputOptions,
    proofs: dict[int, Any],
    folder: Path | None,
    store: str | None = None,
    extras: dict[str, str] | None = None,
) -> None:
    """The statement, then its proofs; on any failure nothing is left (the statement's
    partial file and the proofs folder are removed)."""
    output = out.open(STATEMENT_COLUMNS, title="statement", store=store)
    made = False
    written: Path | None = None
    try:
        jsonl = not output.writer.tabular
        for movement in found.rows:
            row = statement_row(movement)
            output.writer.write({"type": "row", **row} if jsonl else row)
        summary, totals_text = _ending(found, output, out.headers)
        if totals_text is not None and not out.to_stdout:
            write_file(totals_file(out.name), totals_text, store=store)
            written = totals_file(out.name)
        if folder is not None:
            folder.mkdir()
            made = True
            for seq, doc in proofs.items():
                text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
                write_file(folder / proof_name(seq), text)
            for name, content in (extras or {}).items():  # bytes as they are: no CR added
                write_file(folder / name, content)
        output.commit(summary)
    except KeyboardInterrupt:
        _undo(output, folder if made else None, written)
        raise Interrupted(_("interrupted; nothing was written")) from None
    except BaseException:
        _undo(output, folder if made else None, written)
        raise


def _undo(output: Output, folder: Path | None, written: Path | None = None) -> None:
    output.abandon()
    if written is not None:
        written.unlink(missing_ok=True)
    if folder is not None:
        with contextlib.suppress(OSError):
            shutil.rmtree(folder)


def _ending(
    found: Statement, output: Output, headers: str
) -> tuple[SummarySheet | None, str | None]:
    """The statement's end (totals and checkpoint) as the format has it: JSON Lines ends
    with its totals and checkpoint lines; a workbook gets it as its summary sheet and CSV
    as a separate totals file (both returned, for the commit) — never rows in the data
    columns, so a plain SUM of a money column is the statement's total (SPEC §10)."""
    totals = found.totals_fields()
    cut = found.cut.fields()
    writer = output.writer
    if output.fmt == "jsonl":
        writer.write({"type": TOTALS_LINE, **totals})
        writer.write({"type": CHECKPOINT_LINE, **cut})
        return None, None

    def label(name: str) -> str:
        return statement_word(name, headers) if headers == "zh" else name

    def value(name: str, given: Any) -> Any:
        return statement_word(given, headers) if name == "source" and headers == "zh" else given

    if isinstance(writer, CsvWriter):
        text = io.StringIO()
        lines = csv.writer(text, lineterminator="\r\n")
        lines.writerow([label("totals"), ""])
        for name in PERIOD_FIELDS:
            lines.writerow([label(name), text_cell("", totals[name])])
        for name in SETTLEMENT_COLUMNS:
            lines.writerow([column_label(name, headers), found.totals.formatted()[name]])
        for anomaly in found.anomalies:
            lines.writerow([label("anomaly"), text_cell("", anomaly.sentence())])
        for name in CUT_FIELDS:
            lines.writerow([label(name), text_cell("", value(name, cut[name]))])
        return None, ("\ufeff" if output.excel else "") + text.getvalue()

    def word(name: str) -> str:
        return statement_word(name, headers)

    rows: list[tuple[Any, ...]] = [(Heading(word("statement")),)]
    rows += [(word(name), totals[name]) for name in PERIOD_FIELDS]
    rows += [(word("anomaly"), anomaly.sentence()) for anomaly in found.anomalies]
    rows += [(), (Heading(word("totals")),)]
    rows += [(column_label(name, headers), found.totals.sums[name]) for name in SETTLEMENT_COLUMNS]
    rows += [(), (Heading(word("checkpoint")),)]
    rows += [
        (word(name), statement_word(cut[name], headers) if name == "source" else cut[name])
        for name in CUT_FIELDS
    ]
    return SummarySheet(tuple(rows), widths=(30, 70)), None
