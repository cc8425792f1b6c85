"""The rule commands — ``split``, ``compensate``, ``protect``, ``clawback``, ``void`` — for
people.

This module is a plugin of the command line's own (``builtin_commands``): it adds them
through ``pricecalc_register_commands``, the same hook a stranger's plugin uses. Each
builds a SPEC §8 request from its options, has it decided and recorded, and prints a
table (or ``--json``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

import click
from rich.console import RenderableType

from pricecalc.cli.app import App, InvalidRequest
from pricecalc.cli.console import echo_json, show
from pricecalc.cli.options import (
    decide_keyed,
    json_option,
    label_options,
    options_named,
    read_request,
    replay_note,
    request_file_option,
    request_id_option,
)
from pricecalc.cli.render import LABELS, decision_view, protection_view
from pricecalc.files.columns import RowLayout
from pricecalc.files.rows import as_recorded, record_row
from pricecalc.hookspecs import hookimpl
from pricecalc.i18n import N_, _, language


def _decide_and_show(
    app: App,
    request: dict[str, Any],
    as_json: bool,
    options: Mapping[str, str],
    view: Callable[..., RenderableType] = decision_view,
) -> None:
    with options_named(options):
        decision = decide_keyed(app, request).to_dict()
    if as_json:
        echo_json(as_recorded(decision))
        return
    layout = RowLayout.of(app.registry().declarations(), language())
    show(view(decision, layout=layout, labels=RESULT_LABELS))
    if decision.get("replayed"):
        click.echo(replay_note(decision))


#: The built-in kinds' result fields for people (the rule commands show them; Chinese
#: under --lang zh).
RESULT_LABELS: dict[str, str] = {
    **LABELS,
    "quantity": N_("quantity"),
    "merchant_subsidy_total": N_("merchant subsidy total"),
    "platform_subsidy_total": N_("platform subsidy total"),
    "consumer_pays_total": N_("consumer pays total"),
    "merchant_receives_total": N_("merchant receives total"),
    "lowest_other_platform": N_("lowest other platform"),
    "category": N_("category"),
    "claim_deadline": N_("claim deadline"),
    "claimed_at": N_("claimed at"),
    "clawback": N_("clawback"),
    "compensation_total": N_("compensation total"),
    "covered_by": N_("covered by"),
    "matched_category": N_("matched category"),
    "order_id": N_("order id"),
    "payer": N_("payer"),
    "payout_total": N_("payout total"),
    "refund_total": N_("refund total"),
    "settlement": N_("settlement"),
    "line_id": N_("line id"),
    "already_refunded": N_("already refunded"),
    "already_refunded_given": N_("already refunded given"),
    "already_refunded_recorded": N_("already refunded recorded"),
    "compensation": N_("compensation"),
    "entitled": N_("entitled"),
    "lowest_at": N_("lowest at"),
    "lowest_net": N_("lowest net"),
    "lowest_offers": N_("lowest offers"),
    "paid_net": N_("paid net"),
    "refund": N_("refund"),
    "standard": N_("standard"),
    "total": N_("total"),
    "voided_kind": N_("voided kind"),
    "voided_request_id": N_("voided request id"),
    "reason": N_("reason"),
    "target": N_("target"),
}


def _other_platforms(values: Sequence[str]) -> list[dict[str, str]]:
    out = []
    for value in values:
        name, sep, price = value.rpartition("=")
        if not sep or not name.strip():
            raise click.BadParameter(
                _("{value!r} is not NAME=PRICE (e.g. 百亿补贴=172.00)").format(value=value),
                param_hint="'--other-platform'",
            )
        out.append({"platform": name.strip(), "price": price.strip()})
    return out


def _put(target: dict[str, Any], **values: Any) -> dict[str, Any]:
    target.update({k: v for k, v in values.items() if v is not None})
    return target


def _request(
    kind: str, request_id: str | None, data: dict[str, Any], labels: Mapping[str, str | None]
) -> dict[str, Any]:
    return _put({"kind": kind}, request_id=request_id, input=data, **labels)


SPLIT_OPTIONS = {
    "input.list_price": "--list-price",
    "input.registration_price": "--registration-price",
    "input.subsidy_price": "--subsidy-price",
    "input.platform_subsidy": "--platform-subsidy",
    "input.floor_price": "--floor-price",
    "input.cost_price": "--cost-price",
    "input.lowest_price_30d": "--lowest-30d",
    "input.other_platform_prices": "--other-platform",
    "input.quantity": "--quantity",
    "input.product_id": "--product-id",
    "input.category": "--category",
    "request_id": "--request-id",
}


@click.command()
@click.option("--list-price", required=True, metavar="AMOUNT", help="原价, per unit.")
@click.option("--registration-price", required=True, metavar="AMOUNT", help="报名价, per unit.")
@click.option("--subsidy-price", metavar="AMOUNT", help="补贴价 the consumer pays, per unit.")
@click.option(
    "--platform-subsidy",
    metavar="AMOUNT",
    help="The platform's subsidy per unit (instead of --subsidy-price).",
)
@click.option("--floor-price", required=True, metavar="AMOUNT", help="The merchant's floor.")
@click.option("--cost-price", required=True, metavar="AMOUNT", help="进货价 / cost, per unit.")
@click.option("--lowest-30d", metavar="AMOUNT", help="The lowest price of the last 30 days.")
@click.option(
    "--other-platform",
    multiple=True,
    metavar="NAME=PRICE",
    help="Another platform's price (repeatable), e.g. 百亿补贴=172.00.",
)
@click.option("--quantity", metavar="N", help="Units (default 1).")
@click.option("--product-id", metavar="ID")
@click.option("--category", metavar="NAME")
@request_id_option
@label_options
@json_option
@click.pass_obj
def split(
    app: App,
    list_price: str,
    registration_price: str,
    subsidy_price: str | None,
    platform_subsidy: str | None,
    floor_price: str,
    cost_price: str,
    lowest_30d: str | None,
    other_platform: tuple[str, ...],
    quantity: str | None,
    product_id: str | None,
    category: str | None,
    request_id: str | None,
    labels: dict[str, str | None],
    as_json: bool,
) -> None:
    """Split a 超值购 subsidy between merchant and platform and check the prices (SPEC §2).

    Records the decision and prints a table (or --json): merchant and platform subsidy,
    rates, margin, totals, and every failed price check.

    Example:

    \b
        pricecalc split --list-price 199 --registration-price 169 --subsidy-price 149 \\
            --floor-price 139 --cost-price 120 --lowest-30d 175 \\
            --other-platform 百亿补贴=172 --quantity 2
    """
    data = _put(
        {},
        list_price=list_price,
        registration_price=registration_price,
        subsidy_price=subsidy_price,
        platform_subsidy=platform_subsidy,
        floor_price=floor_price,
        cost_price=cost_price,
        lowest_price_30d=lowest_30d,
        other_platform_prices=_other_platforms(other_platform) if other_platform else None,
        quantity=quantity,
        product_id=product_id,
        category=category,
    )
    _decide_and_show(
        app, _request("subsidy_split", request_id, data, labels), as_json, SPLIT_OPTIONS
    )


COMPENSATE_OPTIONS = {
    "input.order_id": "--order-id",
    "input.lines[0].line_id": "--line-id",
    "input.lines[0].paid_amount": "--paid",
    "input.lines[0].category": "--category",
    "input.lines[0].loss": "--loss",
    "request_id": "--request-id",
}


@click.command()
@click.option("--paid", required=True, metavar="AMOUNT", help="What the buyer paid (the line).")
@click.option("--order-id", required=True, metavar="ID")
@click.option("--line-id", default="L1", show_default=True, metavar="ID")
@click.option("--category", metavar="NAME", help="e.g. food: the food-safety law may apply.")
@click.option("--loss", metavar="AMOUNT", help="The buyer's proven loss (food-safety law).")
@click.option("--not-confirmed", is_flag=True, help="The platform has not confirmed a counterfeit.")
@click.option(
    "--merchant-refused", is_flag=True, help="The merchant refuses: deduct from the payout."
)
@request_id_option
@label_options
@json_option
@click.pass_obj
def compensate(
    app: App,
    paid: str,
    order_id: str,
    line_id: str,
    category: str | None,
    loss: str | None,
    not_confirmed: bool,
    merchant_refused: bool,
    request_id: str | None,
    labels: dict[str, str | None],
    as_json: bool,
) -> None:
    """假一赔十: refund plus compensation for a confirmed counterfeit (SPEC §4).

    One order line; the highest applicable standard wins and is named (ten times the
    paid amount, at least 500.00; the food-safety law for food categories).

    Example:

    \b
        pricecalc compensate --paid 39.90 --order-id O-1001
        pricecalc compensate --paid 39.90 --category food --order-id O-1002 --json
    """
    line = _put({"line_id": line_id, "paid_amount": paid}, category=category, loss=loss)
    data = {
        "order_id": order_id,
        "confirmed": not not_confirmed,
        "merchant_refused": merchant_refused,
        "lines": [line],
    }
    _decide_and_show(
        app,
        _request("counterfeit_compensation", request_id, data, labels),
        as_json,
        COMPENSATE_OPTIONS,
    )


@click.command()
@request_file_option(
    "The claim: a price_protection request, or just its input object (- for stdin)."
)
@request_id_option
@label_options
@json_option
@click.pass_obj
def protect(
    app: App,
    request_file: IO[bytes],
    request_id: str | None,
    labels: dict[str, str | None],
    as_json: bool,
) -> None:
    """Decide a 价保 price-protection claim (SPEC §3) and show it line by line.

    For each order line: the net price paid, the lowest net price after payment, when it
    was reached and which offers gave it, what the buyer is entitled to, what was already
    refunded and this claim's refund. FILE holds a price_protection request (SPEC §8) or
    just its "input" object.

    Example:

    \b
        pricecalc protect --request claim-O-1.json
        pricecalc protect --request claim-O-1.json --json
    """
    raw = read_request(request_file, N_("the claim"))
    if isinstance(raw, dict) and "kind" not in raw and "input" not in raw:
        raw = {"kind": "price_protection", "input": raw}
    if isinstance(raw, dict) and raw.get("kind") != "price_protection":
        raise InvalidRequest(
            _(
                "kind: protect decides price_protection claims, not {kind!r} "
                "(use pricecalc decide for other kinds)"
            ).format(kind=raw.get("kind"))
        )
    if isinstance(raw, dict):
        raw = _put(dict(raw), request_id=request_id, **labels)
    request: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
    _decide_and_show(
        app,
        raw,
        as_json,
        {},
        view=lambda decision, layout, labels: protection_view(decision, request, layout, labels),
    )


CLAWBACK_OPTIONS = {
    "input.order_id": "--order-id",
    "input.category": "--category",
    "input.platform_subsidy": "--platform-subsidy",
    "input.quantity": "--quantity",
    "input.product_id": "--product-id",
    "request_id": "--request-id",
}


@click.command()
@click.option("--order-id", required=True, metavar="ID")
@click.option("--category", required=True, metavar="NAME", help="e.g. 手机, 酒类, 生活电器.")
@click.option(
    "--platform-subsidy", required=True, metavar="AMOUNT", help="The platform subsidy per unit."
)
@click.option("--quantity", metavar="N", help="Units (default 1).")
@click.option(
    "--forwarded/--not-forwarded",
    default=True,
    show_default=True,
    help="Whether forwarding (转寄) was detected.",
)
@click.option("--product-id", metavar="ID")
@request_id_option
@label_options
@json_option
@click.pass_obj
def clawback(
    app: App,
    order_id: str,
    category: str,
    platform_subsidy: str,
    quantity: str | None,
    forwarded: bool,
    product_id: str | None,
    request_id: str | None,
    labels: dict[str, str | None],
    as_json: bool,
) -> None:
    """禁止转寄: claw back the platform subsidy of a forwarded order (SPEC §5).

    Example:

    \b
        pricecalc clawback --order-id O-2001 --category 手机 --platform-subsidy 200 \\
            --quantity 1
    """
    data = _put(
        {"order_id": order_id, "category": category, "platform_subsidy": platform_subsidy},
        forwarded=forwarded,
        quantity=quantity,
        product_id=product_id,
    )
    _decide_and_show(
        app, _request("forwarding_clawback", request_id, data, labels), as_json, CLAWBACK_OPTIONS
    )


@click.command()
@click.argument("seq", type=click.IntRange(min=1), metavar="SEQ")
@click.option("--reason", required=True, metavar="TEXT", help="Why it is withdrawn (recorded).")
@click.option(
    "--target",
    metavar="T",
    help="The record withdrawn: its request_id as is, or sha256: and at least 8 hex digits "
    "of its hash (required when not on a terminal; on a terminal the record is shown and "
    "you are asked).",
)
@request_id_option
@json_option
@click.pass_obj
def void(
    app: App, seq: int, reason: str, target: str | None, request_id: str | None, as_json: bool
) -> None:
    """Withdraw an approved decision: record a void of record SEQ (SPEC §7).

    Nothing is edited: the void is a decision of its own, recorded like any other, and
    the withdrawn record stays in the log (statements show a reversal row). The once-only
    rules no longer count the withdrawn decision, so the corrected request can then be
    decided. A void names its operator (the global --operator) and its target: the
    record's request_id, or sha256: and the first digits of its hash, so that a void run
    against the wrong store or the wrong seq is rejected (VOID_TARGET_MISMATCH) instead
    of withdrawing an unrelated payout. On a terminal without --target, the record is
    shown and you are asked. A void of a void, of a rejected decision, of a record that
    does not exist, or of a record already voided is rejected (and recorded as such).

    Example:

    \b
        pricecalc --operator clerk-li void 12 --target cc-12 \\
            --reason "paid amount was 49.90, not 39.90"
    """
    if app.operator is None:
        raise click.UsageError(
            _(
                "a void names who made it: give the global --operator NAME "
                "(pricecalc --operator clerk-li void …)"
            )
        )
    if target is None:
        if not _on_terminal():
            raise click.UsageError(
                _(
                    "--target is required when not on a terminal: name the record to withdraw "
                    "(its request_id, or sha256: and at least 8 hex digits of its hash; "
                    "pricecalc audit show shows both)"
                ),
                ctx=click.get_current_context(),
            )
        target = _confirmed_target(app, seq)
    request = _put(
        {"kind": "void", "input": {"seq": seq, "reason": reason, "target": target}},
        request_id=request_id,
    )
    options = {"input.reason": "--reason", "input.target": "--target"}
    _decide_and_show(app, request, as_json, options)


def _on_terminal() -> bool:
    """Whether a person can be asked (standard input is a terminal)."""
    return sys.stdin.isatty()


def _confirmed_target(app: App, seq: int) -> str:
    """On a terminal: show record ``seq`` (kind, order, merchant, request_id, amounts), ask,
    and name it by its request_id (else its hash's first 16 hex digits)."""
    with app.store_errors():
        record = app.calculator().store.record(seq)
    if record is None:
        raise click.ClickException(
            _("there is no record {seq} in the audit store {path}: nothing to withdraw").format(
                seq=seq, path=app.audit
            )
        )
    layout = RowLayout.of(app.registry().declarations(), language())
    row = record_row(record, layout=layout)
    amounts = ", ".join(
        f"{name} {row[name]}" for name in layout.money_names if row.get(name) not in (None, "")
    )
    click.echo(
        _(
            "Record {seq}: {kind} {status}, order {order}, merchant {merchant}, "
            "request_id {request_id}{amounts}, hash sha256:{hash}"
        ).format(
            seq=seq,
            kind=row.get("kind"),
            status=row.get("status"),
            order=row.get("order_id"),
            merchant=row.get("merchant_id"),
            request_id=record.key,
            amounts=f", {amounts}" if amounts else "",
            hash=record.hash[:16],
        )
    )
    click.confirm(_("Withdraw record {seq}?").format(seq=seq), abort=True)
    return record.key if record.key is not None else f"sha256:{record.hash[:16]}"


#: The name this module is registered under as a plugin (``--disable-plugin`` takes it).
PLUGIN_NAME = "builtin_commands"


@hookimpl
def pricecalc_register_commands(cli: click.Group) -> None:
    """Add the rule commands to ``cli``, through the hook a stranger's plugin uses."""
    for command in (split, compensate, protect, clawback, void):
        cli.add_command(command)
