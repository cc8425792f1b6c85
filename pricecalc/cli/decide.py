"""``pricecalc decide``: one SPEC §8 request in, its recorded decision out (JSON)."""

from __future__ import annotations

from typing import IO

import click

from pricecalc.cli.app import App
from pricecalc.cli.console import echo_json
from pricecalc.cli.main import cli
from pricecalc.cli.options import (
    decide_keyed,
    read_request,
    replay_note,
    request_file_option,
    request_id_option,
)
from pricecalc.files.rows import as_recorded
from pricecalc.i18n import N_


@cli.command()
@request_file_option("Read the request from FILE instead of standard input.")
@request_id_option
@click.pass_obj
def decide(app: App, request_file: IO[bytes], request_id: str | None) -> None:
    """Decide one request (SPEC §8 JSON) and print the decision as JSON.

    The decision (approved or rejected) is recorded in the audit store before it is
    printed, with its place in the chain: "audit": {"seq", "hash"}. A request without
    request_id is keyed by its content: the same request again is replayed ("replayed":
    true), never recorded twice. Exit 0 when a decision was recorded or replayed, 2 for
    invalid input (the field is named; nothing recorded), 1 when the request_id is already
    recorded for another request (nothing recorded) or the audit store cannot be used.

    Example:

    \b
        echo '{"kind": "counterfeit_compensation", "request_id": "cc-1",
               "input": {"order_id": "O-77", "confirmed": true,
                         "lines": [{"line_id": "L1", "paid_amount": "68.00"}]}}' \\
          | pricecalc decide
    """
    request = read_request(request_file, N_("the request"))
    if request_id is not None and isinstance(request, dict):
        request = {**request, "request_id": request_id}
    decision = decide_keyed(app, request).to_dict()
    echo_json(as_recorded(decision))
    if decision.get("replayed"):
        click.echo(replay_note(decision), err=True)
