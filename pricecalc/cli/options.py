"""Option bundles and request reading shared by the commands."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any, TypeVar

import click

from pricecalc.cli.app import App, InvalidRequest
from pricecalc.decision import Decision
from pricecalc.envelope import Envelope
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
    "--request-id",
    metavar="ID",
    help="Idempotency key (default: one derived from the request's content). The same "
    "request again replays; another id records a new decision.",
)


def label_options(func: F) -> F:
    """``--merchant`` and ``--campaign`` (SPEC §8), handed over as one ``labels`` dict."""

    @functools.wraps(func)
    def with_labels(*args: Any, **kwargs: Any) -> Any:
        kwargs["labels"] = {
            "merchant_id": kwargs.pop("merchant"),
            "campaign": kwargs.pop("campaign"),
        }
        return func(*args, **kwargs)

    wrapped = click.option(
        "--campaign", metavar="NAME", help="The campaign the decision belongs to (recorded)."
    )(with_labels)
    wrapped = click.option(
        "--merchant", metavar="ID", help="The merchant the decision concerns (recorded)."
    )(wrapped)
    return wrapped  # type: ignore[return-value]


def decide_keyed(app: App, request: Any) -> Decision:
    """Decide one request from the command line and record it: a request without
    ``request_id`` is keyed by its content (SPEC §7), so the same command run twice records
    once. An idempotency conflict propagates (one sentence, exit 1)."""
    envelope = Envelope.parse(request).keyed()
    calc = app.calculator()
    with app.store_errors():
        return calc.decide(envelope)


def replay_note(decision: Mapping[str, Any]) -> str:
    """What a one-shot command says when it replays instead of recording."""
    seq = (decision.get("audit") or {}).get("seq")
    return (
        f"(already recorded as record {seq}: request {decision.get('request_id')} — this is "
        "the recorded decision, replayed; nothing new was recorded)"
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
