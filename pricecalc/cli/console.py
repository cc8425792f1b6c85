"""Console helpers: rich tables laid out for a terminal or a pipe, JSON on stdout, warnings
on stderr and the batch progress bar."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from pricecalc.i18n import _
from pricecalc.serialize import jsonable

PIPE_WIDTH = 160


def console(err: bool = False) -> Console:
    """A rich console on stdout or stderr. Not on a terminal (a pipe, a file, a test) and
    without ``COLUMNS`` set, tables are laid out 160 characters wide."""
    out = Console(file=sys.stderr if err else sys.stdout, highlight=False, soft_wrap=False)
    if not out.is_terminal and not os.environ.get("COLUMNS"):
        out.width = PIPE_WIDTH
    return out


def echo_json(value: Any, *, indent: int | None = 2) -> None:
    click.echo(json.dumps(jsonable(value), ensure_ascii=False, indent=indent))


def show(renderable: RenderableType, *, err: bool = False) -> None:
    """Print a table. One too wide for the screen is laid out at the width it needs (the
    terminal wraps its lines) rather than cut: an amount is never cropped. Off a terminal
    (a pipe, a file) lines carry no trailing padding."""
    out = console(err)
    needed = Measurement.get(out, out.options.update_width(10_000), renderable).minimum
    width = needed if needed > out.width else None
    if out.is_terminal:
        out.print(renderable, width=width, crop=width is None)
        return
    with out.capture() as captured:
        out.print(renderable, width=width, crop=width is None)
    lines = captured.get().split("\n")
    stream = sys.stderr if err else sys.stdout
    for index, line in enumerate(lines):  # a line at a time: `| head` stops it at once
        stream.write(line.rstrip() + ("\n" if index < len(lines) - 1 else ""))


def warn(message: str) -> None:
    """A warning on standard error (``--quiet`` does not silence it): something the user
    should know, though nothing failed."""
    click.echo(_("Warning: {message}").format(message=message), err=True)


class _LinesPerSecond(ProgressColumn):
    """``1,234 lines/s``: lines decided per second of the run so far."""

    def render(self, task: Task) -> Text:
        lines = int(task.fields.get("lines", 0))
        elapsed = task.elapsed or 0.0
        rate = f"{lines / elapsed:,.0f}" if elapsed > 0 and lines else "–"
        return Text(_("{rate} lines/s").format(rate=rate))


class BatchProgress:
    """What the progress bar is told: input lines done, and bytes read (for the ETA)."""

    def __init__(self, bar: Progress | None = None, task: Any = None) -> None:
        self._bar = bar
        self._task = task
        self.lines = 0

    def line_done(self) -> None:
        self.lines += 1

    def at(self, position: int) -> None:
        """The input has been read up to byte ``position`` and its lines written."""
        if self._bar is not None:
            self._bar.update(self._task, completed=position, lines=self.lines)


@contextmanager
def progress_bar(total: int, enabled: bool) -> Iterator[BatchProgress]:
    """A progress bar on standard error — lines done, lines per second, and the time left
    (from the bytes of the input read so far) — when it is a terminal; else nothing."""
    err = console(err=True)
    if not enabled or not err.is_terminal:
        yield BatchProgress()
        return
    columns = (
        TextColumn(_("deciding")),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn(_("{task.fields[lines]:,} lines")),
        _LinesPerSecond(),
        TextColumn(_("ETA")),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("batch", total=total or None, lines=0)
        yield BatchProgress(bar, task)
