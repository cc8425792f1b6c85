"""``pricecalc batch``: decide every request of a file, one output row per input line."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from pricecalc.batch import (
    DEFAULT_CHUNK_SIZE,
    BatchStopped,
    LineResult,
    batch_row,
    flat_batch_row,
    run_batch,
)
from pricecalc.cli.app import CHUNK_ENV, App, Interrupted
from pricecalc.cli.console import console, show
from pricecalc.cli.main import cli
from pricecalc.cli.render import summary_view
from pricecalc.reading import INPUT_SUFFIXES, InputFormat, open_source, read_lines
from pricecalc.rows import BATCH_COLUMNS
from pricecalc.writers import OUTPUT_SUFFIXES, Output, OutputFormat


def _input_format(name: str, given: str | None, kind: str | None) -> InputFormat:
    if given is not None:
        fmt: InputFormat = "csv" if given == "csv" else "jsonl"
    elif name == "-":
        fmt = "jsonl"
    else:
        suffix = Path(name).suffix.lower()
        if suffix not in INPUT_SUFFIXES:
            raise click.UsageError(
                f"cannot tell the format of {name!r}: name it .jsonl or .csv, "
                "or give --input-format"
            )
        fmt = INPUT_SUFFIXES[suffix]
    if fmt == "csv" and not kind:
        raise click.UsageError("a CSV file holds one kind of request: give --kind")
    if fmt == "jsonl" and kind:
        raise click.UsageError("--kind is for CSV input; JSON Lines requests name their kind")
    return fmt


def output_format(name: str) -> OutputFormat:
    if name == "-":
        return "jsonl"
    suffix = Path(name).suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise click.UsageError(
            f"cannot tell the output format of {name!r}: name it .jsonl, .csv or .xlsx "
            "(or - for JSON Lines on standard output)"
        )
    return OUTPUT_SUFFIXES[suffix]


@contextmanager
def progress_bar(total: int, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A progress bar on standard error when it is a terminal; otherwise nothing."""
    err = console(err=True)
    if not enabled or not err.is_terminal:
        yield lambda position: None
        return
    columns = (
        TextColumn("deciding"),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("batch", total=total or None)
        yield lambda position: bar.update(task, completed=position)


@cli.command()
@click.argument(
    "input_name",
    metavar="INPUT",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
)
@click.option(
    "--output",
    "-o",
    "output_name",
    required=True,
    metavar="OUT",
    help="Where decisions go: .jsonl, .csv or .xlsx, or - for JSON Lines on stdout.",
)
@click.option(
    "--kind",
    metavar="KIND",
    help="The kind of every request in a CSV file (subsidy_split, …).",
)
@click.option(
    "--merchant",
    metavar="ID",
    help="The merchant_id of every line that names none (a line naming another is invalid).",
)
@click.option(
    "--campaign",
    metavar="NAME",
    help="The campaign of every line that names none (a line naming another is invalid).",
)
@click.option(
    "--input-format",
    type=click.Choice(["jsonl", "csv"]),
    help="The input's format when its name does not tell (standard input is jsonl).",
)
@click.option(
    "--progress/--no-progress",
    default=True,
    show_default=True,
    help="Show a progress bar (only ever on a terminal).",
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
    output_name: str,
    kind: str | None,
    merchant: str | None,
    campaign: str | None,
    input_format: str | None,
    progress: bool,
    chunk_size: int,
) -> None:
    """Decide every request of a file; write one output row per input line, in order.

    INPUT is JSON Lines (SPEC §8 requests), CSV (one kind per file, --kind; columns named
    as the SPEC's fields, see docs/cli.md), or - for standard input. Invalid lines become
    {"line": n, "status": "invalid", "error": ...} rows and the rest still runs; a line
    reusing a recorded request_id for another request is a "conflict" row; exit 1 if any
    line was invalid or conflicting. A line without request_id is keyed by its content:
    run the same (or an edited) file again and only new or changed lines are recorded —
    the rest are replayed ("replayed": true). A summary follows (on stderr when OUT is
    stdout), new and replayed decisions counted and totalled apart.

    Example:

    \b
        pricecalc batch examples/campaign.jsonl --output out/decisions.jsonl
        pricecalc batch splits.csv --kind subsidy_split --output splits-decided.xlsx
    """
    fmt_in = _input_format(input_name, input_format, kind)
    fmt_out = output_format(output_name)
    if (
        output_name != "-"
        and input_name != "-"
        and Path(output_name).resolve() == Path(input_name).resolve()
    ):
        raise click.UsageError("--output must not be the input file")
    calc = app.calculator()
    stdin = sys.stdin.buffer
    stdout = sys.stdout
    to_stdout = output_name == "-"
    with open_source(input_name, stdin) as source, source.path.open("rb") as fp:
        try:
            items = read_lines(fp, fmt_in, kind)
        except ValueError as exc:  # an unusable CSV header: the whole file is refused
            raise click.UsageError(str(exc)) from exc
        output = Output(output_name, fmt_out, BATCH_COLUMNS, stdout, title="decisions")
        row_of = flat_batch_row if output.writer.tabular else batch_row

        def emit(result: LineResult) -> None:
            output.writer.write(row_of(result))

        def advance(position: int) -> None:
            tick(position)
            output.flush()  # a consumer of stdout sees each chunk as soon as it is recorded

        try:
            with progress_bar(source.size, progress) as tick, app.store_errors():
                summary = run_batch(
                    calc,
                    items,
                    source.digest,
                    emit,
                    chunk_size=chunk_size,
                    progress=advance,
                    merchant=merchant,
                    campaign=campaign,
                )
            output.commit()
        except BatchStopped as exc:
            output.abandon()
            raise click.ClickException(
                f"stopped at line {exc.line}: {exc.cause}. The lines before it are "
                "recorded; fix the cause and run the same command again to finish."
            ) from exc
        except KeyboardInterrupt:
            output.abandon()
            raise Interrupted(
                "interrupted. Run the same command again to finish: lines already "
                "recorded are replayed from the audit store, never recorded twice."
            ) from None
        except BaseException:
            output.abandon()
            raise
    show(summary_view(summary), err=to_stdout)
    where = "standard output" if to_stdout else output_name
    if summary.conflicts:
        click.echo(
            f"{summary.conflicts} of {summary.lines} lines reuse a request_id already "
            f'recorded for another request (rows with status "conflict" in {where}); '
            "nothing was recorded for them.",
            err=True,
        )
    if summary.invalid:
        click.echo(
            f"{summary.invalid} of {summary.lines} lines were invalid "
            f'(rows with status "invalid" in {where}).',
            err=True,
        )
    if summary.invalid or summary.conflicts:
        click.get_current_context().exit(1)
