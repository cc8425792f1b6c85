"""Option bundles and request reading shared by the commands."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any, TypeVar

import click

from pricecalc.cli.app import InvalidRequest
from pricecalc.errors import InvalidInput
from pricecalc.serialize import loads

F = TypeVar("F", bound=Callable[..., Any])


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(
        func
    )


def request_file_option(help_text: str) -> Callable[[F], F]:
    return click.option(
        "--request", "request_file", type=click.File("rb"), default="-", metavar="FILE",
        help=help_text,
    )  # fmt: skip


request_id_option = click.option(
    "--request-id", metavar="ID", help="Idempotency key: the same id again replays, never twice."
)


def read_request(stream: IO[bytes], what: str) -> Any:
    """Parse one JSON document (numbers as exact decimals); bad JSON is invalid input."""
    raw = stream.read()
    try:
        return loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise InvalidRequest(f"{what} is not valid JSON: {exc}") from exc


@contextmanager
def options_named(options: Mapping[str, str]) -> Iterator[None]:
    """Report invalid input in terms of the command's options (``--list-price``)."""
    try:
        yield
    except InvalidInput as exc:
        for field, option in options.items():
            if re.match(rf"^{re.escape(field)}(\[\d+\])?(\.|$)", exc.field):
                raise InvalidRequest(f"{option}: {str(exc).split(': ', 1)[1]}") from exc
        raise
