"""``pricecalc batch``: decide every request of a file, one output row per input line.

Everything that can be wrong with the invocation is found before the calculator (and the
audit store) is opened, so nothing is decided for a command that cannot finish: the
input's format and kind, its encoding (the whole file is decoded as it is hashed), an
unknown CSV column, and the output — a folder, a folder that does not exist or cannot be
written, Excel to standard output. An empty input is not an error: a warning, an empty
output and exit 0.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import click

from pricecalc.batch import (
    DEFAULT_CHUNK_SIZE,
    BatchStopped,
    LineResult,
    Origin,
    batch_row,
    flat_batch_row,
    run_batch,
    stream_batch,
)
from pricecalc.cli.app import CHUNK_ENV, App, DataError, Failure, Interrupted, is_url
from pricecalc.cli.console import progress_bar, show, warn
from pricecalc.cli.main import cli
from pricecalc.cli.options import (
    InputOptions,
    OutputOptions,
    input_options,
    output_format,
    output_options,
)
from pricecalc.cli.render import summary_view
from pricecalc.files.columns import RowLayout, round_trip_column
from pricecalc.files.reading import Ahead, FileLine, read_jsonl
from pricecalc.files.rows import Summary
from pricecalc.files.sheets import SheetHeader, read_csv_sheet, read_xlsx_sheet
from pricecalc.files.source import EncodingProblem, Source, open_source
from pricecalc.files.writing import JsonlWriter, Output, TooManyRows, headings_of
from pricecalc.i18n import _, language
from pricecalc.messages import describe, shown

__all__ = ["batch", "output_format"]


def _same_file(a: str, b: str) -> bool:
    return a != "-" and b != "-" and Path(a).resolve() == Path(b).resolve()


@cli.command()
@click.argument(
    "input_name",
    metavar="INPUT",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
)
@output_options(what="decisions", example="decisions")
@input_options
@click.option(
    "--progress/--no-progress",
    default=True,
    show_default=True,
    help="Show a progress bar (only ever on a terminal; never with --quiet).",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Worker processes deciding while one records, in order (default: 2 on two "
    "cores, the cores but one above, for a file of 10,000 lines or more when at least "
    "1.5 cores are free (cores less the load average); else 1: one process). A file "
    "of one chunk (500 lines) is decided in one.",
)
@click.option(
    "--stream",
    is_flag=True,
    help="Answer each line as soon as it is recorded, reading standard input as it "
    "comes (JSON Lines in and out): keep one pricecalc running as a co-process.",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=DEFAULT_CHUNK_SIZE,
    envvar=CHUNK_ENV,
    hidden=True,
    help="Lines per group commit.",
)
@click.pass_obj
def batch(
    app: App,
    input_name: str,
    out: OutputOptions,
    source: InputOptions,
    progress: bool,
    jobs: int | None,
    chunk_size: int,
    stream: bool = False,
) -> None:
    """Decide every request of a file; write one output row per input line, in order.

    INPUT is JSON Lines (SPEC §8 requests), CSV or an Excel .xlsx sheet (one kind per sheet,
    --kind; headings the SPEC's fields or pricecalc's own labels such as 请求号, see
    docs/cli.md; --encoding gb18030 for Excel's Chinese CSV), or - for standard input. A CSV
    or Excel output of a sheet repeats its columns beside the results: edit a cell, run it
    again, and only that row is recorded. Invalid lines become {"line": n, "status":
    "invalid", "error": ...} rows and the rest still runs; a line reusing a recorded
    request_id for another request is a "conflict" row; exit 1 if any line was invalid or
    conflicting. A line without request_id is keyed by its content: run the same (or an
    edited) file again and only new or changed lines are recorded — the rest are replayed
    ("replayed": true). A summary follows (on stderr when OUT is stdout), new and replayed
    decisions counted and totalled apart; an .xlsx output has it as its summary sheet.

    Example:

    \b
        pricecalc batch examples/campaign.jsonl --output out/decisions.jsonl
        pricecalc batch splits.csv --kind subsidy_split --encoding gb18030 -o splits.xlsx
        pricecalc batch in.xlsx --kind subsidy_split --ignore-column 备注 -o out.xlsx
        pricecalc batch requests.jsonl -o - --format csv > decisions.csv
        my-checkout | pricecalc batch - -o - --stream | my-checkout-reader
    """
    if stream:
        _stream(app, input_name, out, source)
        return
    fmt_in = source.format_of(input_name)
    if _same_file(out.name, input_name):
        raise click.UsageError(_("--output must not be the input file"))
    if not is_url(app.audit) and _same_file(out.name, app.audit):
        raise click.UsageError(
            _("--output must not be the audit store ({path})").format(path=app.audit)
        )
    fields = None
    if source.kind is not None:
        found = app.registry().rule(source.kind)
        fields = found[1].input_fields if found is not None else None
    display = _("standard input") if input_name == "-" else input_name
    tabular = out.format in ("csv", "xlsx")
    try:
        opened = open_source(
            input_name, sys.stdin.buffer, encoding=source.encoding or "utf-8"
        ) if fmt_in == "csv" else open_source(input_name, sys.stdin.buffer)  # fmt: skip
        with opened as src, src.path.open("rb") as fp:
            if src.note is not None:
                warn(shown(src.note))
            header: SheetHeader | None = None
            read: Iterator[tuple[FileLine, int]]
            try:
                if fmt_in == "jsonl":
                    read = read_jsonl(fp, parse=False)  # read where it is decided
                else:
                    header, read = _read_sheet(
                        fp, src.path, fmt_in, source, fields, display, src.encoding
                    )
                lines = Ahead(_counting_blanks(read, blanks := [0]))
                empty = lines.ahead(1) == 0  # an unreadable first row is refused here
            except ValueError as exc:  # an unusable header or sheet: the whole file is refused
                raise DataError(describe(exc)) from exc
            layout = RowLayout.of(app.registry().declarations(), language())
            columns, row_of = _layout(header, fields, tabular, layout)
            output = out.open(
                columns, title="decisions", store=app.audit, headings=headings_of(layout)
            )
            if empty:
                output.commit(Summary(layout, blank=blanks[0]))
                what = (
                    _("{name} is empty: nothing was decided.")
                    if src.empty
                    else _("{name} has a header row but no requests: nothing was decided.")
                )
                warn(what.format(name=display))
                return
            summary = _run(app, output, out, lines, src, source, progress, chunk_size,
                           jobs, row_of, layout)  # fmt: skip
            summary.blank = blanks[0]
    except EncodingProblem as exc:
        raise DataError(describe(exc)) from exc
    if not out.quiet:
        show(summary_view(summary), err=out.to_stdout)
    where = _("standard output") if out.to_stdout else out.name
    if summary.conflicts:
        click.echo(
            _(
                "{count} of {lines} lines reuse a request_id already recorded for another "
                'request (rows with status "conflict" in {where}); nothing was recorded '
                "for them."
            ).format(count=summary.conflicts, lines=summary.lines, where=where),
            err=True,
        )
    if summary.invalid:
        click.echo(
            _(
                '{count} of {lines} lines were invalid (rows with status "invalid" in {where}).'
            ).format(count=summary.invalid, lines=summary.lines, where=where),
            err=True,
        )
    if summary.invalid or summary.conflicts:
        click.get_current_context().exit(1)


def _stream(app: App, input_name: str, out: OutputOptions, source: InputOptions) -> None:
    """``--stream``: JSON Lines from INPUT (usually -) answered group by group as each is
    durable (:func:`pricecalc.batch.stream_batch`), JSON Lines to standard output."""
    if out.format != "jsonl":
        raise click.UsageError(_("--stream writes JSON Lines (--format jsonl)"))
    if source.format_of(input_name) != "jsonl":
        raise click.UsageError(_("--stream reads JSON Lines"))
    calc = app.calculator()
    layout = RowLayout.of(calc.registry.declarations(), language())
    output = out.open(layout.batch_columns(), title="decisions")
    try:
        with app.store_errors(), click.open_file(input_name, "rb") as fp:
            summary = stream_batch(
                calc,
                fp,
                lambda result: output.writer.write(batch_row(result)),
                output.flush,
                merchant=source.merchant,
                campaign=source.campaign,
            )
        output.commit(summary)
    except BatchStopped as exc:
        output.abandon()
        raise Failure(
            _("stopped at line {line}: {cause}. The lines before it are recorded.").format(
                line=exc.line, cause=exc.cause
            )
        ) from exc
    except BaseException:
        output.abandon()
        raise
    if not out.quiet:
        show(summary_view(summary), err=True)
    if summary.invalid or summary.conflicts:
        click.get_current_context().exit(1)


def _read_sheet(
    fp: BinaryIO,
    path: Path,
    fmt_in: str,
    source: InputOptions,
    fields: Collection[str] | None,
    display: str,
    encoding: str,
) -> tuple[SheetHeader | None, Iterator[tuple[FileLine, int]]]:
    """A CSV file or an Excel sheet: its header and its rows (SPEC §1, docs/cli.md)."""
    kind = str(source.kind)
    row, ignore = source.header_row, source.ignore_columns
    if fmt_in == "xlsx":
        return read_xlsx_sheet(
            path, kind, sheet=source.sheet, display=display, fields=fields, header_row=row,
            ignore=ignore,
        )  # fmt: skip
    if source.sheet is not None:
        raise ValueError(_("--sheet is for Excel input; a CSV file has one table"))
    return read_csv_sheet(
        fp, kind, encoding=encoding, fields=fields, header_row=row,
        ignore=ignore,
    )  # fmt: skip


def _counting_blanks(
    lines: Iterator[tuple[FileLine, int]], count: list[int]
) -> Iterator[tuple[FileLine, int]]:
    """The lines without a sheet's blank rows, counted in ``count[0]`` (SPEC §1: skipped,
    never invalid)."""
    for line, position in lines:
        if line.blank:
            count[0] += 1
            continue
        yield line, position


def _layout(
    header: SheetHeader | None,
    fields: Collection[str] | None,
    tabular: bool,
    layout: RowLayout,
) -> tuple[list[str], Callable[[LineResult], dict[str, Any]]]:
    """The output's columns and rows: for a sheet written to a sheet, the input's columns
    as the clerk wrote them, then the result columns (``layout.round_trip_columns()``) —
    fed back, pricecalc skips its own columns, so an edited cell records exactly its row."""
    if header is None or not tabular:
        return list(layout.batch_columns()), lambda result: flat_batch_row(result, layout)
    echo: list[tuple[int, str]] = []
    for index, text in enumerate(header.written):
        if text and not round_trip_column(text, fields) and text not in {t for _, t in echo}:
            echo.append((index, text))
    results = [c for c in layout.round_trip_columns() if c not in {t for _, t in echo}]

    def row_of(result: LineResult) -> dict[str, Any]:
        flat = flat_batch_row(result, layout)
        cells = result.line.cells or ()
        row: dict[str, Any] = {
            text: cells[index] if index < len(cells) else None for index, text in echo
        }
        for column in results:
            row[column] = flat.get("request_id") if column == "content_key" else flat[column]
        return row

    return [text for _, text in echo] + results, row_of


def _run(
    app: App,
    output: Output,
    out: OutputOptions,
    lines: Ahead,
    src: Source,
    source: InputOptions,
    progress: bool,
    chunk_size: int,
    jobs: int | None,
    row_of: Callable[[LineResult], dict[str, Any]],
    layout: RowLayout,
) -> Summary:
    """Decide the lines into ``output`` and commit it; on any failure the partial output
    is dropped (decisions already recorded stay recorded: a re-run replays them)."""
    try:
        calc = app.calculator()
        if not output.writer.tabular:
            row_of = batch_row
        with progress_bar(src.size, progress and not out.quiet) as bar, app.store_errors():

            def emit(result: LineResult) -> None:
                output.writer.write(row_of(result))
                bar.line_done()

            writer = output.writer
            emit_row = None
            if isinstance(writer, JsonlWriter):

                def emit_row(text: str) -> None:  # a row a worker wrote
                    writer.write_text(text)
                    bar.line_done()

            def advance(position: int) -> None:
                bar.at(position)
                output.flush()  # a consumer of stdout sees each chunk once it is recorded

            summary = run_batch(
                calc,
                lines,
                Origin(src.digest, source.merchant, source.campaign),
                emit,
                chunk_size=chunk_size,
                progress=advance,
                jobs=jobs,
                layout=layout,
                emit_row=emit_row,
            )
        output.commit(summary)
    except TooManyRows as exc:
        output.abandon()
        raise Failure(
            _(
                "{problem}. The lines decided so far are recorded: run the same command with "
                "--format csv (or a .csv or .jsonl --output) to finish; they are replayed, "
                "never recorded twice."
            ).format(problem=describe(exc))
        ) from exc
    except BatchStopped as exc:
        output.abandon()
        raise Failure(
            _(
                "stopped at line {line}: {cause}. The lines before it are recorded; fix the "
                "cause and run the same command again to finish."
            ).format(line=exc.line, cause=exc.cause)
        ) from exc
    except KeyboardInterrupt:
        output.abandon()
        raise Interrupted(
            _(
                "interrupted. Run the same command again to finish: lines already "
                "recorded are replayed from the audit store, never recorded twice."
            )
        ) from None
    except BaseException:
        output.abandon()
        raise
    return summary
