"""The ``pricecalc`` command line: a thin shell over :class:`pricecalc.Calculator`.

Every command builds SPEC §8 requests, hands them to the same Python API scripts use, and
prints what comes back. Batch files are read and written by :mod:`pricecalc.batchio`,
rows and totals come from :mod:`pricecalc.report`, tables from :mod:`pricecalc.render`.

Exit codes: 0 done; 1 a domain or store problem (one sentence, no traceback), or — for
``batch`` — some lines were invalid; 2 invalid input (the field is named) or a bad
invocation. Plugin commands (the ``pricecalc_register_commands`` hook) are loaded only
when the command line is asked for its commands, never at import time, honouring
``--disable-plugin`` and the policy's ``[plugins] disabled``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import IO, Any, TypeVar

import attrs
import click
from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

import audit
from audit.errors import AuditError
from audit.protocol import AuditStore, Checkpoint, Record
from pricecalc import __version__
from pricecalc.batchio import (
    DEFAULT_CHUNK_SIZE,
    INPUT_SUFFIXES,
    OUTPUT_SUFFIXES,
    BatchStopped,
    InputFormat,
    Line,
    Output,
    OutputFormat,
    batch_row,
    flat_batch_row,
    open_source,
    read_lines,
    run_batch,
)
from pricecalc.calculator import AUDIT_KEY_ENV, Calculator
from pricecalc.errors import InvalidInput, PricecalcError
from pricecalc.fields import BEIJING, parse_time
from pricecalc.plugins import get_plugin_manager, load_registry
from pricecalc.policy import Policy
from pricecalc.render import (
    decision_view,
    plugins_table,
    protection_view,
    records_table,
    stats_table,
    summary_view,
)
from pricecalc.report import BATCH_COLUMNS, RECORD_COLUMNS, Stats, as_recorded, record_row
from pricecalc.serialize import jsonable, loads

AUDIT_ENV = "PRICECALC_AUDIT"
DEFAULT_AUDIT = "pricecalc-audit.jsonl"
CHUNK_ENV = "PRICECALC_BATCH_CHUNK_SIZE"
CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

F = TypeVar("F", bound=Callable[..., Any])


# -- errors --------------------------------------------------------------------------------
class InvalidRequest(click.ClickException):
    """Invalid input: exit 2, the message names the field; nothing was recorded."""

    exit_code = 2

    def format_message(self) -> str:
        return f"invalid input, nothing recorded: {self.message}"


class Interrupted(click.ClickException):
    exit_code = 130


def store_sentence(where: str, exc: BaseException) -> str:
    """One sentence about an unusable audit store (no traceback)."""
    if isinstance(exc, AuditError):
        return f"the audit store {where} cannot be used: {exc}"
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        target = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        return f"the audit store {where} cannot be used: {reason}{target}"
    return f"the audit store {where} cannot be used: {exc}"


# -- the application object --------------------------------------------------------------
@attrs.define
class App:
    """What the global options select; the calculator and store are opened on first use."""

    audit: str
    policy_file: str | None = None
    operator: str | None = None
    disabled: tuple[str, ...] = ()
    _policy: Policy | None = None
    _calc: Calculator | None = None
    _store: AuditStore | None = None

    @property
    def policy(self) -> Policy:
        if self._policy is None:
            self._policy = (
                Policy.from_toml(self.policy_file) if self.policy_file is not None else Policy()
            )
        return self._policy

    def calculator(self) -> Calculator:
        if self._calc is None:
            policy = self.policy  # a policy error is not a store error
            with self.store_errors():
                self._calc = Calculator(
                    self.audit, policy, self.operator, disable_plugins=self.disabled
                )
        return self._calc

    def store(self) -> AuditStore:
        """The audit store for reading commands; it must already exist."""
        if self._calc is not None:
            return self._calc.store
        if self._store is None:
            if not is_url(self.audit) and not Path(self.audit).exists():
                raise click.ClickException(
                    f"there is no audit store at {self.audit} (decide something first, "
                    "or create one with `pricecalc audit init`)"
                )
            with self.store_errors():
                self._store = audit.open_store(self.audit, hmac_key=hmac_key())
        return self._store

    @contextmanager
    def store_errors(self, where: str | None = None) -> Iterator[None]:
        """Turn a store failure into one sentence naming the store (``where``: another)."""
        try:
            yield
        except (AuditError, OSError) as exc:
            raise click.ClickException(store_sentence(where or self.audit, exc)) from exc

    def close(self) -> None:
        if self._calc is not None:
            self._calc.close()
        if self._store is not None:
            self._store.close()


def is_url(name: str) -> bool:
    return "://" in name


def hmac_key() -> bytes | None:
    key = os.environ.get(AUDIT_KEY_ENV)
    return key.encode("utf-8") if key else None


# -- the group: error mapping and lazily loaded plugin commands -------------------------
class PricecalcGroup(click.Group):
    """The top-level group: turns domain errors into one sentence and loads plugin commands
    only when a command is looked up (never at import time)."""

    def _plugin_commands(self, ctx: click.Context) -> dict[str, click.Command]:
        root = ctx.find_root()
        disabled = set(root.params.get("disable_plugin") or ())
        policy_file = root.params.get("policy")
        if policy_file:
            disabled.update(Policy.from_toml(policy_file).disabled_plugins())
        cache: dict[frozenset[str], dict[str, click.Command]] = root.meta.setdefault(
            "pricecalc.plugin_commands", {}
        )
        key = frozenset(disabled)
        if key not in cache:
            cache[key] = load_plugin_commands(sorted(disabled), reserved=set(self.commands))
        return cache[key]

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(self.commands)
        try:
            names.update(self._plugin_commands(ctx))
        except PricecalcError as exc:
            click.echo(f"Warning: plugin commands are not available: {exc}", err=True)
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is not None:
            return command
        try:
            return self._plugin_commands(ctx).get(cmd_name)
        except PricecalcError as exc:
            raise click.ClickException(str(exc)) from exc

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InvalidInput as exc:
            raise InvalidRequest(str(exc)) from exc
        except PricecalcError as exc:  # policy, plugin and rule errors
            raise click.ClickException(str(exc)) from exc
        except AuditError as exc:
            app = ctx.find_object(App)
            raise click.ClickException(store_sentence(app.audit if app else "", exc)) from exc
        except BrokenPipeError:  # e.g. `pricecalc audit show | head`
            sys.stderr.close()
            ctx.exit(1)
        except OSError as exc:
            raise click.ClickException(
                f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
            ) from exc


def load_plugin_commands(disable: Sequence[str], reserved: set[str]) -> dict[str, click.Command]:
    """Ask each plugin's ``pricecalc_register_commands`` for its commands, one at a time.

    Commands are collected on a scratch group, so nothing leaks between invocations; a
    plugin command may not replace a built-in one (the built-in wins). A plugin whose
    hook raises is named.
    """
    from pricecalc.errors import PluginError

    pm = get_plugin_manager(disable)
    collected: dict[str, click.Command] = {}
    for impl in pm.hook.pricecalc_register_commands.get_hookimpls():
        scratch = click.Group("pricecalc")
        try:
            impl.function(cli=scratch)
        except Exception as exc:
            raise PluginError(
                impl.plugin_name,
                f"pricecalc_register_commands raised {type(exc).__name__}: {exc}",
            ) from exc
        for name, command in scratch.commands.items():
            if name not in reserved:
                collected.setdefault(name, command)
    return collected


# -- output helpers ------------------------------------------------------------------------
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


# -- the group -----------------------------------------------------------------------------
@click.group(cls=PricecalcGroup, context_settings=CONTEXT_SETTINGS)
@click.option(
    "--audit",
    "audit_path",
    envvar=AUDIT_ENV,
    default=DEFAULT_AUDIT,
    show_default=True,
    metavar="PATH",
    help=f"The audit store: a file path or a store URL (env {AUDIT_ENV}).",
)
@click.option(
    "--policy",
    type=click.Path(exists=True, dir_okay=False),
    metavar="FILE.toml",
    help="A policy file overriding the SPEC's configurable defaults.",
)
@click.option("--operator", metavar="NAME", help="Who is deciding (default: the OS user).")
@click.option(
    "--disable-plugin",
    multiple=True,
    metavar="NAME",
    help="Do not load this plugin (repeatable).",
)
@click.version_option(__version__, prog_name="pricecalc", message="%(prog)s %(version)s")
@click.pass_context
def cli(
    ctx: click.Context,
    audit_path: str,
    policy: str | None,
    operator: str | None,
    disable_plugin: tuple[str, ...],
) -> None:
    """pricecalc — settle the money rules of the 超值购 campaign, with an audit trail.

    Every decision is recorded in an append-only, hash-chained audit store before it is
    printed. Amounts are exact, with two decimals.

    Example:

    \b
        pricecalc split --list-price 199 --registration-price 169 \\
            --subsidy-price 149 --floor-price 139 --cost-price 120
    """
    app = App(audit_path, policy, operator, tuple(disable_plugin))
    ctx.obj = app
    ctx.call_on_close(app.close)


# -- decide --------------------------------------------------------------------------------
@cli.command()
@request_file_option("Read the request from FILE instead of standard input.")
@click.pass_obj
def decide(app: App, request_file: IO[bytes]) -> None:
    """Decide one request (SPEC §8 JSON) and print the decision as JSON.

    The decision (approved or rejected) is recorded in the audit store before it is
    printed, with its place in the chain: "audit": {"seq", "hash"}. Exit 0 when a decision
    was recorded, 2 for invalid input (the field is named; nothing recorded), 1 when the
    audit store cannot be used.

    Example:

    \b
        echo '{"kind": "counterfeit_compensation", "request_id": "cc-1",
               "input": {"order_id": "O-77", "confirmed": true,
                         "lines": [{"line_id": "L1", "paid_amount": "68.00"}]}}' \\
          | pricecalc decide
    """
    request = read_request(request_file, "the request")
    calc = app.calculator()
    with app.store_errors():
        decision = calc.decide(request)
    echo_json(as_recorded(decision.to_dict()))


# -- batch ---------------------------------------------------------------------------------
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
    input_format: str | None,
    progress: bool,
    chunk_size: int,
) -> None:
    """Decide every request of a file; write one output row per input line, in order.

    INPUT is JSON Lines (SPEC §8 requests), CSV (one kind per file, --kind; columns named
    as the SPEC's fields, see docs/cli.md), or - for standard input. Invalid lines become
    {"line": n, "status": "invalid", "error": ...} rows and the rest still runs; exit 1
    if any line was invalid. Run again after an interruption: nothing is recorded twice
    (requests without request_id get an id from the file's hash and line number) and the
    rest is finished. A summary table follows (on stderr when OUT is stdout).

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

        def emit(line: Line, decision: Mapping[str, Any] | None, error: str | None) -> None:
            output.writer.write(row_of(line, decision, error))

        def advance(position: int) -> None:
            tick(position)
            output.flush()  # a consumer of stdout sees each chunk as soon as it is recorded

        try:
            with progress_bar(source.size, progress) as tick, app.store_errors():
                summary = run_batch(
                    calc, items, source.digest, emit, chunk_size=chunk_size, progress=advance
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
    if summary.invalid:
        where = "standard output" if to_stdout else output_name
        click.echo(
            f"{summary.invalid} of {summary.lines} lines were invalid "
            f'(rows with status "invalid" in {where}).',
            err=True,
        )
        click.get_current_context().exit(1)


# -- human commands ------------------------------------------------------------------------
def _decide_and_show(
    app: App,
    request: dict[str, Any],
    as_json: bool,
    options: Mapping[str, str],
    view: Callable[[Mapping[str, Any]], RenderableType] = decision_view,
) -> None:
    calc = app.calculator()
    with options_named(options), app.store_errors():
        before = calc.store.head().seq
        decision = calc.decide(request).to_dict()
    if as_json:
        echo_json(as_recorded(decision))
        return
    show(view(decision))
    if decision["audit"]["seq"] <= before:
        click.echo(
            f"(request {decision['request_id']} was already recorded: this is the recorded "
            "decision, replayed; nothing new was recorded)"
        )


def _other_platforms(values: Sequence[str]) -> list[dict[str, str]]:
    out = []
    for value in values:
        name, sep, price = value.rpartition("=")
        if not sep or not name.strip():
            raise click.BadParameter(
                f"{value!r} is not NAME=PRICE (e.g. 百亿补贴=172.00)",
                param_hint="'--other-platform'",
            )
        out.append({"platform": name.strip(), "price": price.strip()})
    return out


def _put(target: dict[str, Any], **values: Any) -> dict[str, Any]:
    target.update({k: v for k, v in values.items() if v is not None})
    return target


def _request(kind: str, request_id: str | None, data: dict[str, Any]) -> dict[str, Any]:
    return _put({"kind": kind}, request_id=request_id, input=data)


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


@cli.command()
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
    _decide_and_show(app, _request("subsidy_split", request_id, data), as_json, SPLIT_OPTIONS)


COMPENSATE_OPTIONS = {
    "input.order_id": "--order-id",
    "input.lines[0].line_id": "--line-id",
    "input.lines[0].paid_amount": "--paid",
    "input.lines[0].category": "--category",
    "input.lines[0].loss": "--loss",
    "request_id": "--request-id",
}


@cli.command()
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
        _request("counterfeit_compensation", request_id, data),
        as_json,
        COMPENSATE_OPTIONS,
    )


@cli.command()
@request_file_option(
    "The claim: a price_protection request, or just its input object (- for stdin)."
)
@json_option
@click.pass_obj
def protect(app: App, request_file: IO[bytes], as_json: bool) -> None:
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
    raw = read_request(request_file, "the claim")
    if isinstance(raw, dict) and "kind" not in raw and "input" not in raw:
        raw = {"kind": "price_protection", "input": raw}
    if isinstance(raw, dict) and raw.get("kind") != "price_protection":
        raise InvalidRequest(
            f"kind: protect decides price_protection claims, not {raw.get('kind')!r} "
            "(use pricecalc decide for other kinds)"
        )
    request: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
    _decide_and_show(
        app, raw, as_json, {}, view=lambda decision: protection_view(decision, request)
    )


CLAWBACK_OPTIONS = {
    "input.order_id": "--order-id",
    "input.category": "--category",
    "input.platform_subsidy": "--platform-subsidy",
    "input.quantity": "--quantity",
    "input.product_id": "--product-id",
    "request_id": "--request-id",
}


@cli.command()
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
        app, _request("forwarding_clawback", request_id, data), as_json, CLAWBACK_OPTIONS
    )


# -- plugins -------------------------------------------------------------------------------
@cli.command()
@json_option
@click.pass_obj
def plugins(app: App, as_json: bool) -> None:
    """List the plugins loaded: name, version, the kinds they decide and their hooks.

    Example:

    \b
        pricecalc plugins
        pricecalc --disable-plugin food_safety_law plugins --json
    """
    registry = load_registry(app.policy, app.disabled)
    kinds: dict[str, list[str]] = {}
    for kind, contributed in sorted(registry.rules.items()):
        kinds.setdefault(contributed.plugin, []).append(kind)
    rows = [
        {
            "name": name,
            "version": version,
            "kinds": kinds.get(name, []),
            "hooks": list(registry.hooks_by_plugin.get(name, ())),
        }
        for name, version in sorted(registry.plugin_versions.items())
    ]
    if as_json:
        echo_json(rows)
    else:
        show(plugins_table(rows))


# -- audit ---------------------------------------------------------------------------------
@cli.group(name="audit", context_settings=CONTEXT_SETTINGS)
def audit_group() -> None:
    """Verify, search, export and summarise the audit store.

    Example:

    \b
        pricecalc --audit campaign-audit.jsonl audit verify
        pricecalc audit show --kind price_protection --since 2026-11-11
    """


def _moment(value: str | None, *, end_of_day: bool) -> datetime | None:
    """A filter bound: a date (a Beijing day) or an ISO time (Beijing time by default)."""
    if value is None:
        return None
    text = value.strip()
    try:
        day = date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        day = None
    if day is not None:
        start = datetime.combine(day, time(0), tzinfo=BEIJING)
        return start + timedelta(days=1) if end_of_day else start
    try:
        moment = parse_time(text, "time")
    except InvalidInput as exc:
        raise click.BadParameter(
            f"{value!r} is not a date (2026-11-11) or an ISO time (2026-11-11T10:00)"
        ) from exc
    return moment + timedelta(microseconds=1) if end_of_day else moment


@attrs.frozen
class Filters:
    order_id: str | None = None
    kind: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None  # exclusive
    operator: str | None = None

    def where(self) -> dict[str, Any]:
        wanted = {"kind": self.kind, "status": self.status, "operator": self.operator}
        return {k: v for k, v in wanted.items() if v is not None}

    def records(self, store: AuditStore) -> Iterator[Record]:
        """The matching records in chain order (streamed, except an order's few records)."""
        if self.order_id is not None:
            found: Any = sorted(store.find(f"order:{self.order_id}"), key=lambda r: r.seq)
        else:
            found = store.query(self.where() or None, since=self.since, until=self.until)
        for record in found:
            if self.matches(record):
                yield record

    def matches(self, record: Record) -> bool:
        payload = record.payload
        if self.order_id is not None and record_row(record)["order_id"] != self.order_id:
            return False
        for field, wanted in self.where().items():
            if payload.get(field) != wanted:
                return False
        if self.since is not None or self.until is not None:
            moment = datetime.fromisoformat(record.recorded_at.replace("Z", "+00:00"))
            if self.since is not None and moment < self.since:
                return False
            if self.until is not None and moment >= self.until:
                return False
        return True


FILTER_NAMES = ("order_id", "kind", "status", "since", "until", "operator")


def filter_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The record filters of ``audit show/export/stats``, handed over as one ``filters``."""

    @functools.wraps(func)
    def with_filters(*args: Any, **kwargs: Any) -> Any:
        given = {name: kwargs.pop(name) for name in FILTER_NAMES}
        kwargs["filters"] = Filters(
            order_id=given["order_id"],
            kind=given["kind"],
            status=given["status"],
            since=_moment(given["since"], end_of_day=False),
            until=_moment(given["until"], end_of_day=True),
            operator=given["operator"],
        )
        return func(*args, **kwargs)

    decorators = [
        click.option("--order-id", metavar="ID", help="Only this order's records."),
        click.option("--kind", metavar="KIND", help="Only this kind (subsidy_split, …)."),
        click.option(
            "--status", type=click.Choice(["approved", "rejected"]), help="Only this status."
        ),
        click.option(
            "--since", metavar="WHEN", help="Recorded at or after (date or ISO time, Beijing)."
        ),
        click.option(
            "--until", metavar="WHEN", help="Recorded up to (a date includes the whole day)."
        ),
        click.option("--operator", metavar="NAME", help="Only decisions by this operator."),
    ]
    wrapped: Callable[..., Any] = with_filters
    for decorator in reversed(decorators):
        wrapped = decorator(wrapped)
    return wrapped


def _read_checkpoint(path: str) -> Checkpoint:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        seq, digest = data["seq"], data["hash"]
        if isinstance(seq, bool) or not isinstance(seq, int) or not isinstance(digest, str):
            raise TypeError
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise click.BadParameter(
            f'{path} is not a checkpoint (expected {{"seq": 12, "hash": "…"}})'
        ) from exc
    return Checkpoint(seq, digest)


def _checkpoint_dict(head: Checkpoint) -> dict[str, Any]:
    return {"seq": head.seq, "hash": head.hash}


@audit_group.command()
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Also check the store still contains this saved head (JSON {seq, hash}).",
)
@click.option(
    "--save-checkpoint",
    type=click.Path(dir_okay=False, writable=True),
    metavar="FILE",
    help="After a successful check, save the head to FILE (JSON).",
)
@click.pass_obj
def verify(app: App, checkpoint_file: str | None, save_checkpoint: str | None) -> None:
    """Check the whole hash chain; exit 1 naming the first bad record.

    With --checkpoint, also check that the chain still passes through a head saved
    earlier (so records cannot have been cut off or rewritten since).

    Example:

    \b
        pricecalc audit verify --save-checkpoint head-2026-11-11.json
        pricecalc audit verify --checkpoint head-2026-11-11.json
    """
    checkpoint = _read_checkpoint(checkpoint_file) if checkpoint_file else None
    store = app.store()
    with app.store_errors():
        report = store.verify(checkpoint)
    if not report.ok:
        where = f"record {report.bad_seq}" if report.bad_seq is not None else "the store"
        raise click.ClickException(
            f"the audit store {app.audit} failed verification at {where}: {report.problem}"
        )
    click.echo(
        f"OK: {report.count} records, chain intact; head seq {report.head.seq} "
        f"hash {report.head.hash}"
        + (f" (checkpoint seq {checkpoint.seq} found)" if checkpoint else "")
    )
    if save_checkpoint:
        Path(save_checkpoint).write_text(
            json.dumps(_checkpoint_dict(report.head)) + "\n", encoding="utf-8"
        )
        click.echo(f"checkpoint saved to {save_checkpoint}")


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
    with app.store_errors():
        rows = (record_row(r) for r in filters.records(store))
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
        click.echo("no matching records")
        return
    show(records_table(table_rows))


@audit_group.command()
@click.option(
    "--output",
    "-o",
    "output_name",
    required=True,
    metavar="FILE",
    help="FILE.csv, FILE.jsonl or FILE.xlsx (- for JSON Lines on stdout).",
)
@filter_options
@click.pass_obj
def export(
    app: App,
    output_name: str,
    filters: Filters,
) -> None:
    """Export recorded decisions as flat rows to CSV, JSON Lines or Excel.

    Columns: seq, recorded_at, kind, request_id, status, reason_codes, order_id, operator,
    merchant/platform subsidy totals, refund_total, compensation_total, clawback,
    rule_set, rule_version, hash. Money has two decimals; text cells are escaped against
    formula injection. Filters as for `audit show`.

    Example:

    \b
        pricecalc audit export --output refunds-1111.csv --kind price_protection \\
            --since 2026-11-11 --until 2026-11-11
    """
    fmt = output_format(output_name)
    store = app.store()
    output = Output(output_name, fmt, RECORD_COLUMNS, sys.stdout, title="audit")
    count = 0
    try:
        with app.store_errors():
            for record in filters.records(store):
                output.writer.write(record_row(record))
                count += 1
        output.commit()
    except BaseException:
        output.abandon()
        raise
    if output_name != "-":
        click.echo(f"exported {count} records to {output_name}")


@audit_group.command()
@filter_options
@json_option
@click.pass_obj
def stats(
    app: App,
    filters: Filters,
    as_json: bool,
) -> None:
    """Counts and approved money totals per day (Beijing) and kind.

    Example:

    \b
        pricecalc audit stats
        pricecalc audit stats --since 2026-11-10 --until 2026-11-12 --json
    """
    store = app.store()
    with app.store_errors():
        rows = Stats.of(filters.records(store)).to_list()
    if as_json:
        echo_json(rows)
    elif not rows:
        click.echo("no matching records")
    else:
        show(stats_table(rows))


def _audit_function(name: str) -> Callable[..., Any]:
    function = getattr(audit, name, None)
    if function is None:
        raise click.ClickException(
            f"`{name}` is not available in this version of the audit package"
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
    click.echo(str(done))


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
    with app.store_errors(f"{source} (migrating to {target})"):
        copied, checkpoint = migrate_store(source, target, hmac_key=hmac_key())
    click.echo(
        f"copied {copied} records from {source} to {target}; "
        f"head seq {checkpoint.seq} hash {checkpoint.hash}"
    )


__all__ = ["App", "PricecalcGroup", "cli"]
