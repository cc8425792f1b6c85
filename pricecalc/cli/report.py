"""``pricecalc report``: the campaign report (SPEC §10) as one self-contained HTML page."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from audit import GENESIS_HASH
from audit.proofdoc import CheckpointProblem, published_checkpoint
from pricecalc.beijing import wall_clock
from pricecalc.books.report import Cut, ReportHeader, collect, render_report
from pricecalc.books.selection import Filters
from pricecalc.cli.app import App, Interrupted, bad_file
from pricecalc.cli.audit import filter_options_for
from pricecalc.cli.main import CONTEXT_SETTINGS, cli
from pricecalc.cli.options import read_text_file
from pricecalc.cli.proofs import SIGNING_KEY_ENV, load_signing_key, sign_store
from pricecalc.files.target import OutputProblem, refuse_store_files, write_file
from pricecalc.i18n import _
from pricecalc.messages import describe, os_reason


def _check_output(output: str, store: str) -> Path:
    """Refuse, before anything is read, a page that could not be written, or that would
    overwrite the audit store or one of its files."""
    try:
        refuse_store_files(output, store)
    except OutputProblem as exc:
        raise click.BadParameter(describe(exc), param_hint="'--output'") from exc
    path = Path(output)
    if path.is_dir():
        raise click.BadParameter(
            _("{output} is a folder; name the page to write, e.g. {example}").format(
                output=output, example=path / "report.html"
            ),
            param_hint="'--output'",
        )
    folder = path.parent
    if not folder.is_dir():
        raise click.BadParameter(
            _("the folder {folder} does not exist").format(folder=folder), param_hint="'--output'"
        )
    return path


@cli.command(context_settings=CONTEXT_SETTINGS)
@filter_options_for("since", "until", "merchant", "campaign")
@click.option(
    "--output", "-o", required=True, metavar="FILE.html",
    help="Where to write the page (one self-contained HTML file).",
)  # fmt: skip
@click.option(
    "--signing-key", "key_file", envvar=SIGNING_KEY_ENV, metavar="KEYFILE",
    type=click.Path(dir_okay=False),
    help=f"Sign the tree the report is cut from (or ${SIGNING_KEY_ENV}).",
)  # fmt: skip
@click.option(
    "--checkpoint", "checkpoint_file", metavar="CP.txt",
    help="Cut the report from this published signed checkpoint (wins over a signing key).",
)  # fmt: skip
@click.pass_obj
def report(
    app: App,
    filters: Filters,
    output: str,
    key_file: str | None,
    checkpoint_file: str | None,
) -> None:
    """Write the campaign report: counts, rejections, subsidies, refunds, payouts,
    compensation, clawbacks and the top merchants by deductions, as one HTML page that
    opens offline and prints to PDF.

    The report covers the records up to the tree size of the checkpoint it names: a
    published --checkpoint, one signed now with --signing-key, or else the store's own
    size when it starts. Periods are Beijing days, both ends included; a voided
    decision's money is reversed on the void's day.

    Example:

    \b
        pricecalc --audit campaign-audit.jsonl report --since 2026-11-10 \\
            --until 2026-11-12 --checkpoint cp-2026-11-12.txt --output report.html
        pricecalc report --merchant M-1001 --signing-key ~/keys/audit.key -o m1001.html
    """
    given = click.get_current_context().params
    since, until = given["since"], given["until"]
    path = _check_output(output, app.audit)
    if filters.since is not None and filters.until is not None and filters.since >= filters.until:
        raise click.UsageError(
            _("--since {since} is after --until {until}: the period is empty").format(
                since=since, until=until
            )
        )
    note = read_text_file(checkpoint_file, "--checkpoint") if checkpoint_file else None
    key = load_signing_key(key_file) if key_file is not None and note is None else None
    store = app.store()
    source: str | None = None
    with app.store_errors():
        if note is not None:
            try:
                published = published_checkpoint(store, note, str(checkpoint_file))
            except CheckpointProblem as exc:
                raise bad_file("'--checkpoint'", describe(exc)) from exc
            size = published.size
            source = (
                f"已发布的检查点 published checkpoint {checkpoint_file}，"
                f"与审计库在该大小的树根一致 (it matches the store's root at size {size})"
            )
        elif key is not None:
            note, size = sign_store(app, store, key)
            source = f"由 {key.name} 的密钥现签 signed now with the key of {key.name}"
        else:
            size = store.tree_size()
        root = store.root(size).hex()
        last = store.record(size) if size else None
        try:
            figures = collect(store, Cut(filters, size), app.registry().declarations())
        except KeyboardInterrupt:
            raise Interrupted(_("interrupted; no report was written")) from None
    header = ReportHeader(
        store=app.audit,
        size=size,
        root=root,
        head_seq=last.seq if last is not None else 0,
        head_hash=last.hash if last is not None else GENESIS_HASH,
        since=since,
        until=until,
        merchant=filters.merchant_id,
        campaign=filters.campaign,
        checkpoint=note,
        checkpoint_source=source,
        checkpoint_file=checkpoint_file,
        generated_at=f"{wall_clock(datetime.now(UTC))} 北京时间",
    )
    try:
        write_file(path, render_report(figures, header), store=app.audit)
    except OSError as exc:
        raise click.ClickException(
            _("cannot write {path}: {reason}").format(path=output, reason=os_reason(exc))
        ) from exc
    click.echo(
        _("report of {count} decisions (records up to seq {size}) written to {path}").format(
            count=figures.records, size=size, path=output
        )
    )
