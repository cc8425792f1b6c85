"""``pricecalc audit …``: verify, search, export, summarise, create and migrate the store."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import click

import audit
from audit.merkle import ProofError, verify_consistency
from audit.note import NoteError, load_verifier_key, open_checkpoint
from audit.protocol import AuditStore, Checkpoint
from pricecalc.books.once_only import once_only_violations
from pricecalc.books.selection import Filters, voids_of
from pricecalc.cli.app import App, Interrupted, bad_file, hmac_key
from pricecalc.cli.console import echo_json, show
from pricecalc.cli.main import CONTEXT_SETTINGS, cli
from pricecalc.cli.options import (
    OutputOptions,
    json_option,
    known_kind,
    output_options,
    period_option,
    read_text_file,
    record_text,
)
from pricecalc.cli.render import records_table, stats_table
from pricecalc.files.columns import RowLayout
from pricecalc.files.rows import Stats, record_row
from pricecalc.files.target import OutputProblem, write_file
from pricecalc.files.writing import headings_of
from pricecalc.i18n import _, language
from pricecalc.messages import describe, foreign


@cli.group(name="audit", context_settings=CONTEXT_SETTINGS)
def audit_group() -> None:
    """Verify, search, export and summarise the audit store.

    Example:

    \b
        pricecalc --audit campaign-audit.jsonl audit verify
        pricecalc audit show --kind price_protection --since 2026-11-11
    """


FILTER_NAMES = (
    "order_id", "kind", "status", "since", "until", "operator", "merchant", "campaign",
)  # fmt: skip


_FILTER_OPTIONS: dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]] = {
    "order_id": click.option(
        "--order-id", metavar="ID", callback=record_text, help="Only this order's records."
    ),
    "kind": click.option("--kind", metavar="KIND", help="Only this kind (subsidy_split, …)."),
    "status": click.option(
        "--status", type=click.Choice(["approved", "rejected"]), help="Only this status."
    ),
    "since": click.option(
        "--since", metavar="WHEN", help="Recorded at or after (date or ISO time, Beijing)."
    ),
    "until": click.option(
        "--until", metavar="WHEN", help="Recorded up to (a date includes the whole day)."
    ),
    "operator": click.option(
        "--operator", metavar="NAME", callback=record_text, help="Only decisions by this operator."
    ),
    "merchant": click.option(
        "--merchant", metavar="ID", callback=record_text, help="Only this merchant's records."
    ),
    "campaign": click.option(
        "--campaign", metavar="NAME", callback=record_text, help="Only this campaign's records."
    ),
}


def filter_options_for(
    *names: str,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The record filters ``names`` (of :data:`FILTER_NAMES`) as options, handed over as
    one ``filters`` (:class:`~pricecalc.books.selection.Filters`); ``report`` takes four."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def with_filters(*args: Any, **kwargs: Any) -> Any:
            given = dict.fromkeys(FILTER_NAMES)
            given.update({name: kwargs.pop(name) for name in names})
            if given["kind"] is not None:
                known_kind(click.get_current_context().find_object(App), given["kind"])
            kwargs["filters"] = Filters(
                order_id=given["order_id"],
                kind=given["kind"],
                status=given["status"],
                since=period_option(given["since"], end=False, option="--since"),
                until=period_option(given["until"], end=True, option="--until"),
                operator=given["operator"],
                merchant_id=given["merchant"],
                campaign=given["campaign"],
            )
            return func(*args, **kwargs)

        wrapped: Callable[..., Any] = with_filters
        for name in reversed([n for n in FILTER_NAMES if n in names]):
            wrapped = _FILTER_OPTIONS[name](wrapped)
        return wrapped

    return decorate


#: The record filters of ``audit show/export/stats``, handed over as one ``filters``.
filter_options = filter_options_for(*FILTER_NAMES)


def _read_checkpoint(path: str) -> Checkpoint | str:
    """A saved head (JSON ``{"seq", "hash"}``) or a signed checkpoint (a note), told apart
    by form: the note's text is returned as it is, to be opened with a verifier key."""
    text = read_text_file(path, "--checkpoint")
    if not text.lstrip().startswith("{") and "\u2014 " in text:  # CR ends: refused later
        return text
    try:
        data = json.loads(text)
        seq, digest = data["seq"], data["hash"]
        if isinstance(seq, bool) or not isinstance(seq, int) or not isinstance(digest, str):
            raise TypeError
    except (ValueError, KeyError, TypeError) as exc:
        raise bad_file(
            "'--checkpoint'",
            _(
                '{path} is not a checkpoint (expected {{"seq": 12, "hash": "…"}} or a signed '
                "checkpoint)"
            ).format(path=path),
        ) from exc
    return Checkpoint(seq, digest)


def _checkpoint_dict(head: Checkpoint) -> dict[str, Any]:
    return {"seq": head.seq, "hash": head.hash}


def _signed_extension(
    app: App, store: AuditStore, note: str, vkey: str, root: bytes, size: int
) -> str:
    """Prove the verified log (``size`` records, ``root``) extends a signed checkpoint."""
    try:
        signed = open_checkpoint(note, load_verifier_key(vkey))
    except (NoteError, OSError) as exc:
        raise click.ClickException(
            _("the signed checkpoint does not verify: {reason}").format(reason=describe(exc))
        ) from exc
    if signed.size > size:
        raise click.ClickException(
            _(
                "the audit store {path} failed verification: it holds {size} records but "
                "the signed checkpoint names {signed}: records were cut off (truncated)"
            ).format(path=app.audit, size=size, signed=signed.size)
        )
    with app.store_errors():
        path = store.consistency_proof(signed.size, size)
    try:
        verify_consistency(signed.size, size, signed.root, root, path)
    except ProofError as exc:
        raise click.ClickException(
            _(
                "the audit store {path} failed verification: it is not an extension of "
                "the signed checkpoint of size {signed} ({reason}): the log was rewritten"
            ).format(path=app.audit, signed=signed.size, reason=describe(exc))
        ) from exc
    return _(" (signed checkpoint of size {size}: the log is an extension of it)").format(
        size=signed.size
    )


@audit_group.command()
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Also check the store against a saved head (JSON {seq, hash}) or a signed checkpoint.",
)
@click.option(
    "--verifier-key",
    "vkey",
    metavar="VKEY",
    help="The log's verifier key (or a file with it), to check a signed --checkpoint.",
)
@click.option(
    "--deep",
    is_flag=True,
    help="Also re-derive every record's canonical form, cross-check the file store's index "
    "against its log and report once-only violations (a line paid twice, a key recorded "
    "twice, a seq voided twice).",
)
@click.option(
    "--save-checkpoint",
    type=click.Path(dir_okay=False, writable=True),
    metavar="FILE",
    help="After a successful check, save the head to FILE (JSON).",
)
@click.pass_obj
def verify(
    app: App,
    checkpoint_file: str | None,
    vkey: str | None,
    deep: bool,
    save_checkpoint: str | None,
) -> None:
    """Check the whole hash chain and the Merkle tree; exit 1 naming the first bad record.

    With --checkpoint, also check that the chain still passes through a head saved
    earlier, or — given a signed checkpoint and --verifier-key — that the log is an
    extension of it (a consistency proof from its size): nothing was cut off or
    rewritten since. --deep also re-derives every record's canonical form and, once the
    chain is intact, runs the deep checks (a full read each): the file store's index
    cross-checked against its log, then the once-only violations already in the log: two
    approved, not voided payouts for one order line, a key recorded twice, a seq voided
    twice (exit 1, naming the records).

    Example:

    \b
        pricecalc audit verify --save-checkpoint head-2026-11-11.json
        pricecalc audit verify --checkpoint head-2026-11-11.json
        pricecalc audit verify --checkpoint cp.txt --verifier-key finance.vkey
    """
    given = _read_checkpoint(checkpoint_file) if checkpoint_file else None
    checkpoint = given if isinstance(given, Checkpoint) else None
    if isinstance(given, str) and vkey is None:
        raise click.UsageError(_("a signed --checkpoint needs --verifier-key VKEY to check it"))
    store = app.store()
    with app.store_errors():
        report = store.verify(checkpoint, deep=deep)
    if not report.ok:
        where = (
            _("record {seq}").format(seq=report.bad_seq)
            if report.bad_seq is not None
            else _("the store")
        )
        raise click.ClickException(
            _("the audit store {path} failed verification at {where}: {problem}").format(
                path=app.audit, where=where, problem=foreign(report.problem or "")
            )
        )
    if deep:
        with app.store_errors():
            problems = [problem for check in DEEP_CHECKS for problem in check(store)]
        if problems:
            raise click.ClickException(
                _("the audit store {path} failed the deep checks: {problems}").format(
                    path=app.audit, problems="; ".join(problems)
                )
            )
        with app.store_errors():
            violations = once_only_violations(store.query())
        if violations:
            raise click.ClickException(
                _("the audit store {path} holds {count} once-only violation(s) (SPEC §7): "
                  "{violations}").format(
                    path=app.audit, count=len(violations),
                    violations="; ".join(str(v) for v in violations),
                )
            )  # fmt: skip
    extra = _(" (checkpoint seq {seq} found)").format(seq=checkpoint.seq) if checkpoint else ""
    if isinstance(given, str):
        assert report.root is not None and vkey is not None
        extra = _signed_extension(app, store, given, vkey, report.root, report.count)
    click.echo(
        _("OK: {count} records, chain intact; head seq {seq} hash {hash}").format(
            count=report.count, seq=report.head.seq, hash=report.head.hash
        )
        + extra
    )
    if save_checkpoint:
        try:
            write_file(
                save_checkpoint, json.dumps(_checkpoint_dict(report.head)) + "\n", store=app.audit
            )
        except OutputProblem as exc:
            raise click.BadParameter(describe(exc), param_hint="'--save-checkpoint'") from exc
        click.echo(_("checkpoint saved to {path}").format(path=save_checkpoint))


def _index_problems(store: AuditStore) -> list[str]:
    """The file store's index cross-checked against its log (issue 19); a disagreeing
    index is rebuilt by the store, and reported here."""
    check = getattr(store, "check_index", None)
    if check is None:  # a backend without a sidecar index
        return []
    return [
        _("its index {problem} (the index was rebuilt from the log)").format(problem=foreign(p))
        for p in check()
    ]


#: What ``audit verify --deep`` runs after the chain checked out, in order: each takes the
#: store and returns its problems as sentences (empty: none).
DEEP_CHECKS: list[Callable[[AuditStore], list[str]]] = [_index_problems]


@audit_group.command()
@json_option
@click.pass_obj
def head(app: App, as_json: bool) -> None:
    """Print the chain head: the last record's seq and hash (0 for an empty store).

    Example:

    \b
        pricecalc audit head
        pricecalc audit head --json > head.json
    """
    store = app.store()
    with app.store_errors():
        current = store.head()
    if as_json:
        echo_json(_checkpoint_dict(current), indent=None)
    else:
        click.echo(f"seq {current.seq} hash {current.hash}")


@audit_group.command(name="show")
@filter_options
@click.option("--json", "as_json", is_flag=True, help="A JSON array of rows.")
@click.option("--nl", "as_nl", is_flag=True, help="Newline-delimited JSON, one row a line.")
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="At most N records.")
@click.pass_obj
def show_records(
    app: App,
    filters: Filters,
    as_json: bool,
    as_nl: bool,
    limit: int | None,
) -> None:
    """Show recorded decisions, filtered; a table, or --json / --nl rows.

    Rows carry seq, recorded_at, kind, request_id, status, reason codes, order_id,
    operator, the main amounts, rule set and hash — the same rows `audit export` writes.

    Example:

    \b
        pricecalc audit show --order-id O-1001
        pricecalc audit show --kind subsidy_split --status rejected --since 2026-11-11 --json
    """
    store = app.store()
    layout = RowLayout.of(app.registry().declarations(), language())
    with app.store_errors():
        voids = voids_of(store)
        rows = (record_row(r, voids.get(r.seq), layout) for r in filters.records(store))
        if limit is not None:
            rows = (row for _, row in zip(range(limit), rows, strict=False))
        if as_json or as_nl:
            out = sys.stdout
            if as_nl:
                for row in rows:
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
            else:
                out.write("[")
                for n, row in enumerate(rows):
                    out.write(("," if n else "") + "\n  " + json.dumps(row, ensure_ascii=False))
                out.write("\n]\n")
            return
        table_rows = list(rows)
    if not table_rows:
        click.echo(_("no matching records"))
        return
    show(records_table(table_rows, layout))


@audit_group.command()
@output_options(what="records", example="audit")
@filter_options
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="At most N records.")
@click.pass_obj
def export(
    app: App,
    out: OutputOptions,
    filters: Filters,
    limit: int | None,
) -> None:
    """Export recorded decisions as flat rows to CSV, JSON Lines or Excel.

    Columns: seq, recorded_at (UTC) and recorded_at_beijing, kind, request_id, status,
    reason_codes and their explanations, order_id, merchant_id, campaign, operator, one
    column per money figure by its name (price_protection_refunds, …: approved, not
    voided decisions only, so a column's SUM is `audit stats`' total), result (JSON),
    settlement, voids, rule_set, rule_version, hash. Money has two decimals; CSV text
    cells are escaped against formula injection; an .xlsx file has Chinese headings (or
    --headers en), numbers 0.00 and Beijing times as date cells. Filters as for `audit
    show`; --format wins over the extension.

    Example:

    \b
        pricecalc audit export --output refunds-1111.xlsx --kind price_protection \\
            --since 2026-11-11 --until 2026-11-11
        pricecalc audit export -o - --format csv --limit 100 | head
    """
    layout = RowLayout.of(app.registry().declarations(), language())
    output = out.open(  # before the store
        layout.record_columns(), title="audit", store=app.audit, headings=headings_of(layout)
    )
    count = 0
    try:
        store = app.store()
        with app.store_errors():
            voids = voids_of(store)
            for record in filters.records(store):
                if limit is not None and count >= limit:
                    break
                output.writer.write(record_row(record, voids.get(record.seq), layout))
                count += 1
        output.commit()
    except KeyboardInterrupt:
        output.abandon()
        raise Interrupted(_("interrupted; nothing was written (the store is unchanged)")) from None
    except BaseException:
        output.abandon()
        raise
    if not out.to_stdout and not out.quiet:
        click.echo(_("exported {count} records to {path}").format(count=count, path=out.name))


@audit_group.command()
@filter_options
@json_option
@click.pass_obj
def stats(
    app: App,
    filters: Filters,
    as_json: bool,
) -> None:
    """Counts and money totals (approved, not voided) per day (Beijing) and kind.

    Example:

    \b
        pricecalc audit stats
        pricecalc audit stats --since 2026-11-10 --until 2026-11-12 --json
    """
    store = app.store()
    layout = RowLayout.of(app.registry().declarations(), language())
    with app.store_errors():
        rows = Stats.of(filters.records(store), layout, voids_of(store)).to_list()
    if as_json:
        echo_json(rows)
    elif not rows:
        click.echo(_("no matching records"))
    else:
        show(stats_table(rows, layout))


def _audit_function(name: str) -> Callable[..., Any]:
    function = getattr(audit, name, None)
    if function is None:
        raise click.ClickException(
            _("`{name}` is not available in this version of the audit package").format(name=name)
        )
    return function  # type: ignore[no-any-return]


@audit_group.command()
@click.argument("url", required=False, metavar="[URL]")
@click.option(
    "--app-role",
    metavar="ROLE",
    help="PostgreSQL only: the role the application connects as (granted append and read).",
)
@click.pass_obj
def init(app: App, url: str | None, app_role: str | None) -> None:
    """Create an empty audit store (a file path or a database URL; default: --audit).

    Running it again changes nothing that is already in place.

    Example:

    \b
        pricecalc audit init campaign-audit.jsonl
        pricecalc audit init postgresql://owner@db/pricecalc --app-role pricecalc_app
    """
    target = url or app.audit
    init_store = _audit_function("init_store")
    options = {"app_role": app_role} if app_role is not None else {}
    with app.store_errors(target):
        done = init_store(target, **options)
    click.echo(foreign(str(done)))


@audit_group.command(name="accept-rollback")
@click.pass_obj
def accept_rollback(app: App) -> None:
    """Accept a file store whose log is behind its high-water mark (restored from an older
    copy), so that decisions can be recorded again.

    Appends to such a log are refused, naming the lost record. Run this only once you know
    why the log went back: what the lost records decided may be decided again. It records
    nothing; it says which record it gives up.

    Example:

    \b
        pricecalc --audit campaign-audit.jsonl audit accept-rollback
    """
    accept = _audit_function("accept_rollback")
    app.store()  # says so when there is no store there (never creates one)
    with app.store_errors():
        done = accept(app.audit, hmac_key=hmac_key())
    click.echo(foreign(str(done)))


@audit_group.command()
@click.option("--from", "source", required=True, metavar="PATH", help="The store to copy.")
@click.option("--to", "target", required=True, metavar="URL", help="The new store.")
@click.pass_obj
def migrate(app: App, source: str, target: str) -> None:
    """Copy every record to another store, chain and hashes unchanged, then verify it.

    Example:

    \b
        pricecalc audit migrate --from pricecalc-audit.jsonl \\
            --to postgresql://finance@db/pricecalc
    """
    migrate_store = _audit_function("migrate_store")
    with app.store_errors(
        _("{source} (migrating to {target})").format(source=source, target=target)
    ):
        copied, checkpoint = migrate_store(source, target, hmac_key=hmac_key())
    click.echo(
        _("copied {count} records from {source} to {target}; head seq {seq} hash {hash}").format(
            count=copied, source=source, target=target, seq=checkpoint.seq, hash=checkpoint.hash
        )
    )
