"""Option bundles and request reading shared by the commands.

Two bundles carry the file options, each handed to the command as one value:

* the **output bundle** (:func:`output_options` → :class:`OutputOptions`): ``--output/-o``,
  ``--format``, ``--headers``, ``--excel``, ``--quiet``. One rule everywhere: ``--format``
  wins over the file's extension; ``-`` is standard output (JSON Lines unless
  ``--format csv``); an Excel workbook never goes to standard output (exit 2).
* the **input bundle** (:func:`input_options` → :class:`InputOptions`): ``--kind``,
  ``--merchant``, ``--campaign``, ``--encoding``, ``--input-format``. A ``--kind`` no
  loaded plugin decides and an encoding Python does not know are refused at once.
"""

from __future__ import annotations

import codecs
import difflib
import functools
import json
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar, cast

import attrs
import click

from pricecalc.books.selection import period_bound
from pricecalc.cli.app import App, InvalidRequest, bad_file
from pricecalc.decision import Decision
from pricecalc.envelope import Envelope
from pricecalc.errors import InvalidInput
from pricecalc.files.reading import INPUT_SUFFIXES, InputFormat, json_problem
from pricecalc.files.sheets import is_workbook
from pricecalc.files.target import OutputProblem, writable_target
from pricecalc.files.writing import (
    DEFAULT_HEADINGS,
    OUTPUT_SUFFIXES,
    Headers,
    Headings,
    Output,
    OutputFormat,
)
from pricecalc.i18n import _, language
from pricecalc.messages import describe, field_label, os_reason, shown
from pricecalc.plugins import load_registry
from pricecalc.serialize import loads, text_problem

F = TypeVar("F", bound=Callable[..., Any])
OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("jsonl", "csv", "xlsx")


# -- kinds -------------------------------------------------------------------------------
def known_kind(app: App | None, kind: str, option: str = "--kind") -> None:
    """Refuse a kind that no loaded plugin decides (a misspelling must not silently match
    nothing, nor make every line of a file fail): exit 2, naming the closest kind."""
    registry = app.registry() if app is not None else None
    if registry is None:
        registry = load_registry()
    if kind not in registry.rules:
        close = difflib.get_close_matches(kind, registry.kinds(), n=1)
        hint = _("did you mean {kind!r}? ").format(kind=close[0]) if close else ""
        raise click.BadParameter(
            _("{kind!r} is not a kind pricecalc decides ({hint}known: {known})").format(
                kind=kind, hint=hint, known=", ".join(registry.kinds())
            ),
            param_hint=f"'{option}'",
        )


# -- files read as text ---------------------------------------------------------------------
def read_text_file(path: str, option: str | None = None) -> str:
    """A file a command reads whole as UTF-8 text (a checkpoint, a proof document), or a
    usage error (exit 2) in one sentence naming it and, when given, its ``option``.

    Read as bytes and decoded as they are: no newline translation, so a checkpoint with
    CRLF or CR line ends reaches the note reader as written and is refused there (C2SP
    signed-note allows only LF; Go's note package refuses CR too) rather than silently
    repaired into a different text than the one that was signed."""
    hint = f"'{option}'" if option else None
    try:
        return Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        reason = (os_reason(exc) if exc.strerror else str(exc)).lower()
        said = _("cannot read {path}: {reason}").format(path=path, reason=reason)
        raise bad_file(hint, said) from exc
    except UnicodeDecodeError as exc:
        raise bad_file(hint, _("{path} is not UTF-8 text").format(path=path)) from exc


# -- periods -----------------------------------------------------------------------------
def record_text(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """An option's text as a record can hold it (SPEC §1): no U+0000 and valid Unicode.
    Bytes that are not UTF-8 reach Python as lone surrogates; they are refused here,
    naming the option (exit 2), before any store is opened or any file written. Used as
    ``callback=`` by every text option that reaches a record or a lookup."""
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            raise click.BadParameter(f"{value!r} {shown(problem)}", ctx=ctx, param=param)
    return value


def period_option(value: str | None, *, end: bool, option: str) -> Any:
    """``--since``/``--until`` read as finance reads them
    (:func:`pricecalc.books.selection.period_bound`: a date is a whole Beijing day, an ISO time
    is Beijing time, an end is inclusive); a value that is neither is exit 2 naming it."""
    try:
        return period_bound(value, end=end)
    except InvalidInput as exc:
        said = _("{value!r}: {problem}").format(value=value, problem=shown(exc.problem))
        raise click.BadParameter(said if language() == "zh"
                                 else exc.problem.replace("is not", f"{value!r} is not"),
                                 param_hint=f"'{option}'") from exc  # fmt: skip


# -- the output bundle -------------------------------------------------------------------
@attrs.frozen
class OutputOptions:
    """Where a command's rows go and how (the output bundle, checked)."""

    name: str
    format: OutputFormat
    headers: Headers
    excel: bool = False
    quiet: bool = False

    @property
    def to_stdout(self) -> bool:
        return self.name == "-"

    def open(
        self,
        columns: Sequence[str],
        title: str,
        store: str | None = None,
        headings: Headings = DEFAULT_HEADINGS,
    ) -> Output:
        """Create the output now — before anything is decided — or refuse it naming the
        path as typed (exit 2): a folder, a missing or read-only folder, the audit store
        at ``store`` or one of its files."""
        try:
            return Output(
                self.name, self.format, columns, sys.stdout, title,
                headers=self.headers, excel=self.excel, store=store, headings=headings,
            )  # fmt: skip
        except OutputProblem as exc:
            raise click.BadParameter(describe(exc), param_hint="'--output'") from exc


FormatName = TypeVar("FormatName", bound=str)


def format_by_name(
    name: str, suffixes: Mapping[str, FormatName], refusal: str
) -> FormatName:
    """A file's format from its name: ``-`` (a standard stream) is JSON Lines, else its
    extension in ``suffixes``; an unknown extension is the usage error ``refusal``."""
    if name == "-":
        return cast(FormatName, "jsonl")
    found = suffixes.get(Path(name).suffix.lower())
    if found is None:
        raise click.UsageError(refusal)  # translated by the caller
    return found


def output_format(name: str, given: str | None = None) -> OutputFormat:
    """The output's format: ``--format`` when given, else the name's extension (``-``:
    JSON Lines). Excel to standard output is a usage error."""
    if given is not None:
        fmt = cast(OutputFormat, given)
    else:
        fmt = format_by_name(
            name,
            OUTPUT_SUFFIXES,
            _(
                "cannot tell the output format of {name!r}: name it .jsonl, .csv or .xlsx, "
                "or give --format jsonl|csv|xlsx"
            ).format(name=name),
        )
    if fmt == "xlsx" and name == "-":
        raise click.UsageError(
            _(
                "an Excel workbook cannot be written to standard output: give a file name "
                "(--output decisions.xlsx), or --format csv or jsonl for standard output"
            )
        )
    return fmt


def output_options(*, what: str, example: str) -> Callable[[F], F]:
    """The output bundle (module docstring), handed over as one ``out``
    (:class:`OutputOptions`). ``what`` names the rows in the help (``decisions``);
    ``example`` is the file name suggested for a folder (``decisions``)."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def with_output(*args: Any, **kwargs: Any) -> Any:
            name = kwargs.pop("output_name")
            given = kwargs.pop("output_format")
            headers = kwargs.pop("headers")
            excel = kwargs.pop("excel")
            if name != "-":  # a folder, or a folder that is not there, before the format
                guess = given or OUTPUT_SUFFIXES.get(Path(name).suffix.lower(), "jsonl")
                try:
                    writable_target(name, f"{example}.{guess}")
                except OutputProblem as exc:
                    raise click.BadParameter(describe(exc), param_hint="'--output'") from exc
            fmt = output_format(name, given)
            if excel and fmt != "csv":
                raise click.UsageError(
                    _(
                        "--excel is a CSV flavour (UTF-8 with a byte-order mark, CRLF line "
                        "ends) for Excel on Windows; an .xlsx workbook opens in Excel as it is"
                    )
                )
            if headers is not None and fmt == "jsonl":
                raise click.UsageError(
                    _(
                        "--headers is for CSV and Excel output: JSON Lines keys are always "
                        "the field names"
                    )
                )
            kwargs["out"] = OutputOptions(
                name,
                fmt,
                headers or ("zh" if fmt == "xlsx" else "en"),
                excel=excel,
                quiet=kwargs.pop("quiet"),
            )
            return func(*args, **kwargs)

        decorators = [
            click.option(
                "--output", "-o", "output_name", required=True, metavar="OUT",
                help=f"Where the {what} go: a .jsonl, .csv or .xlsx file, or - for standard "
                "output (JSON Lines, or CSV with --format csv).",
            ),
            click.option(
                "--format", "output_format", type=click.Choice(OUTPUT_FORMATS),
                help="The output's format; wins over OUT's extension. Excel never goes to "
                "standard output.",
            ),
            click.option(
                "--headers", type=click.Choice(["zh", "en"]),
                help="Column headings: zh (中文, what finance reads; the default for .xlsx) "
                "or en (the field names; the default for CSV).",
            ),
            click.option(
                "--excel", is_flag=True,
                help="CSV for Excel on Windows: UTF-8 with a byte-order mark, CRLF line ends.",
            ),
            click.option(
                "--quiet", "-q", is_flag=True,
                help="Print no summary and no progress (warnings and errors still go to "
                "standard error).",
            ),
        ]  # fmt: skip
        wrapped: Callable[..., Any] = with_output
        for decorator in reversed(decorators):
            wrapped = decorator(wrapped)
        return cast(F, wrapped)

    return decorate


# -- the input bundle --------------------------------------------------------------------
@attrs.frozen
class InputOptions:
    """How to read a batch file (the input bundle, checked): the kind of a CSV file's
    requests, the merchant/campaign of lines that name none, the CSV text encoding."""

    kind: str | None = None
    merchant: str | None = None
    campaign: str | None = None
    encoding: str | None = None
    input_format: str | None = None
    #: A sheet's reading (CSV and xlsx): the xlsx sheet, the header's row, columns to skip.
    sheet: str | None = None
    header_row: int | None = None
    ignore_columns: tuple[str, ...] = ()

    def format_of(self, name: str) -> InputFormat:
        """The input's format (``--input-format``, else its name; standard input is JSON
        Lines), checked against ``--kind`` and ``--encoding``."""
        if self.input_format is not None:
            fmt = cast(InputFormat, self.input_format)
        else:
            fmt = format_by_name(
                name,
                INPUT_SUFFIXES,
                _(
                    "cannot tell the format of {name!r}: name it .jsonl, .csv or .xlsx, "
                    "or give --input-format"
                ).format(name=name),
            )
        if fmt == "csv" and name != "-" and is_workbook(Path(name)):
            fmt = "xlsx"  # an Excel workbook named .csv: read as the workbook it is
        if fmt in ("csv", "xlsx") and not self.kind:
            raise click.UsageError(
                _("a CSV file holds one kind of request: give --kind")
                if fmt == "csv"
                else _("an Excel sheet holds one kind of request: give --kind")
            )
        if fmt == "jsonl" and (self.sheet or self.header_row or self.ignore_columns):
            raise click.UsageError(
                _("--sheet, --header-row and --ignore-column are for CSV and Excel input")
            )
        if fmt == "xlsx" and name == "-":
            raise click.UsageError(_("an Excel workbook cannot be read from standard input"))
        if fmt == "jsonl" and self.kind:
            raise click.UsageError(
                _("--kind is for CSV input; JSON Lines requests name their kind")
            )
        if fmt == "jsonl" and self.encoding not in (None, "utf-8", "utf-8-sig"):
            raise click.UsageError(
                _("JSON Lines are always UTF-8 (RFC 8259): --encoding is for CSV input")
            )
        return fmt


def text_encoding(name: str) -> str:
    """An encoding Python knows for text, by its canonical name (``GBK`` → ``gbk``)."""
    try:
        info = codecs.lookup(name)
    except LookupError:
        info = None
    if info is None or not getattr(info, "_is_text_encoding", True):
        raise click.BadParameter(
            _(
                "{name!r} is not a text encoding pricecalc knows (Excel on Chinese Windows "
                "saves gb18030 or gbk; otherwise files are utf-8)"
            ).format(name=name),
            param_hint="'--encoding'",
        )
    return info.name


def input_options(func: F) -> F:
    """The input bundle (module docstring), handed over as one ``source``
    (:class:`InputOptions`)."""

    @functools.wraps(func)
    def with_input(*args: Any, **kwargs: Any) -> Any:
        kind = kwargs.pop("kind")
        if kind is not None:
            known_kind(click.get_current_context().find_object(App), kind)
        encoding = kwargs.pop("encoding")
        kwargs["source"] = InputOptions(
            kind=kind,
            merchant=kwargs.pop("merchant"),
            campaign=kwargs.pop("campaign"),
            encoding=text_encoding(encoding) if encoding is not None else None,
            input_format=kwargs.pop("input_format"),
            sheet=kwargs.pop("sheet"),
            header_row=kwargs.pop("header_row"),
            ignore_columns=tuple(kwargs.pop("ignore_columns")),
        )
        return func(*args, **kwargs)

    decorators = [
        click.option(
            "--kind", metavar="KIND",
            help="The kind of every request in a CSV file (subsidy_split, …).",
        ),
        click.option(
            "--merchant", metavar="ID", callback=record_text,
            help="The merchant_id of every line that names none (a line naming another is "
            "invalid).",
        ),
        click.option(
            "--campaign", metavar="NAME", callback=record_text,
            help="The campaign of every line that names none (a line naming another is "
            "invalid).",
        ),
        click.option(
            "--encoding", "-e", metavar="ENCODING",
            help="The CSV file's text encoding: utf-8 (the default; a byte-order mark is "
            "read as UTF-8 always), gb18030 or gbk (Excel on Chinese Windows).",
        ),
        click.option(
            "--input-format", type=click.Choice(["jsonl", "csv", "xlsx"]),
            help="The input's format when its name does not tell (standard input is jsonl).",
        ),
        click.option(
            "--sheet", metavar="NAME",
            help="The Excel input's sheet to read (default: the first).",
        ),
        click.option(
            "--header-row", type=click.IntRange(min=1), metavar="N",
            help="The row holding the headings (default: the first row whose headings are "
            "all known, below any title rows).",
        ),
        click.option(
            "--ignore-column", "ignore_columns", multiple=True, metavar="NAME",
            help="A column of the sheet to skip (remarks such as 备注); repeatable.",
        ),
    ]  # fmt: skip
    wrapped: Callable[..., Any] = with_input
    for decorator in reversed(decorators):
        wrapped = decorator(wrapped)
    return cast(F, wrapped)


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
        "--campaign", metavar="NAME", callback=record_text,
        help="The campaign the decision belongs to (recorded).",
    )(with_labels)
    wrapped = click.option(
        "--merchant", metavar="ID", callback=record_text,
        help="The merchant the decision concerns (recorded).",
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
    voided = decision.get("voided_by")
    withdrawn = (
        _(", since withdrawn by void record {seq}").format(seq=voided) if voided is not None else ""
    )
    return _(
        "(already recorded as record {seq}: request {request_id} — this is the recorded "
        "decision, replayed{withdrawn}; nothing new was recorded)"
    ).format(seq=seq, request_id=decision.get("request_id"), withdrawn=withdrawn)


def read_request(stream: IO[bytes], what: str) -> Any:
    """Parse one JSON document (numbers as exact decimals); bad JSON is invalid input, and
    so is JSON nested too deeply to read or a number of thousands of digits (SPEC §1)."""
    raw = stream.read()
    try:
        return loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            _("{what} is not valid JSON: {problem} (line {line}, column {column})").format(
                what=_(what), problem=_(exc.msg), line=exc.lineno, column=exc.colno
            )
        ) from exc
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise InvalidRequest(
            _("{what} is not valid JSON: {problem}").format(
                what=_(what), problem=shown(json_problem(exc))
            )
        ) from exc


@contextmanager
def options_named(options: Mapping[str, str]) -> Iterator[None]:
    """Report invalid input in terms of the command's options (``--list-price``)."""
    try:
        yield
    except InvalidInput as exc:
        for field, option in options.items():
            if re.match(rf"^{re.escape(field)}(\[\d+\])?(\.|$)", exc.field):
                said = describe(exc)  # "<field>: <problem> (got …)", the field as labelled
                raise InvalidRequest(option + said[len(field_label(exc.field)) :]) from exc
        raise
