"""Console helpers: rich tables laid out for a terminal or a pipe, and JSON on stdout."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click
from rich.console import Console, RenderableType
from rich.measure import Measurement

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
    text = "\n".join(line.rstrip() for line in captured.get().split("\n"))
    (sys.stderr if err else sys.stdout).write(text)
