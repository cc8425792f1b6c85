"""The command line's application object, its errors and the top-level group's behaviour.

:class:`App` is what the global options select (the audit store, the policy, the operator,
disabled plugins); the calculator and store are opened on first use and closed when the
command ends. :class:`PricecalcGroup` turns domain errors into one sentence (exit 1, or 2
for invalid input) and loads plugin commands only when a command is looked up, never at
import time.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import click

import audit
from audit.errors import AuditError
from audit.protocol import AuditStore
from pricecalc.calculator import AUDIT_KEY_ENV, Calculator
from pricecalc.cli.language import speaking
from pricecalc.errors import InvalidInput, PricecalcError, guard
from pricecalc.i18n import _
from pricecalc.messages import describe, os_reason
from pricecalc.plugins import get_plugin_manager, load_registry
from pricecalc.policy import Policy
from pricecalc.registry import Registry

AUDIT_ENV = "PRICECALC_AUDIT"
DEFAULT_AUDIT = "pricecalc-audit.jsonl"
CHUNK_ENV = "PRICECALC_BATCH_CHUNK_SIZE"


# -- errors --------------------------------------------------------------------------------
class InvalidRequest(click.ClickException):
    """Invalid input: exit 2, the message names the field; nothing was recorded."""

    exit_code = 2

    def format_message(self) -> str:
        return _("invalid input, nothing recorded: {message}").format(message=self.message)

    def show(self, file: Any = None) -> None:
        click.echo(_("Error: {message}").format(message=self.format_message()), err=True)


class Failure(click.ClickException):
    """A problem with the data, a file or the store: one sentence after "Error:" in the
    user's language, never click's usage banner (that is for a wrong invocation)."""

    def show(self, file: Any = None) -> None:
        click.echo(_("Error: {message}").format(message=self.format_message()), err=True)


class DataError(Failure):
    """An unusable input file (a bad header, encoding or sheet): exit 2 as docs/cli.md
    says, without the usage banner."""

    exit_code = 2


def bad_file(option: str | None, message: str) -> DataError:
    """A file given with ``option`` that cannot be used (a checkpoint, a key, a proof):
    exit 2 naming the option, without the usage banner — the invocation was right."""
    if option is None:
        return DataError(message)
    return DataError(
        _("Invalid value for {param_hint}: {message}").format(param_hint=option, message=message)
    )


class Misuse(click.UsageError):
    """A wrong invocation (exit 2): click's usage banner, then the sentence, in the user's
    language."""

    def show(self, file: Any = None) -> None:
        if self.ctx is not None:
            usage = self.ctx.get_usage()
            if usage.startswith("Usage:"):
                usage = _("Usage:") + usage[len("Usage:") :]
            hint = _("Try '{command} {option}' for help.").format(
                command=self.ctx.command_path, option="--help"
            )
            click.echo(f"{usage}\n{hint}\n", err=True)
        click.echo(_("Error: {message}").format(message=self.format_message()), err=True)


def misuse_text(exc: click.UsageError, ctx: click.Context) -> str:
    """A usage error's sentence in the user's language (click's own words are English)."""
    if type(exc) is click.BadParameter:  # not its subclasses (a missing option…)
        hint = exc.param_hint
        if hint is None and exc.param is not None:
            hint = exc.param.get_error_hint(exc.ctx or ctx)
        if isinstance(hint, str):
            return _("Invalid value for {param_hint}: {message}").format(
                param_hint=hint, message=exc.message
            )
    return exc.format_message()


class Interrupted(Failure):
    exit_code = 130


def store_sentence(where: str, exc: BaseException) -> str:
    """One sentence about an unusable audit store (no traceback)."""
    if isinstance(exc, AuditError):
        return _("the audit store {where} cannot be used: {reason}").format(
            where=where, reason=describe(exc)
        )
    if isinstance(exc, OSError):
        reason = os_reason(exc) if exc.strerror else str(exc)
        target = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        return _("the audit store {where} cannot be used: {reason}").format(
            where=where, reason=f"{reason}{target}"
        )
    return _("the audit store {where} cannot be used: {reason}").format(
        where=where, reason=describe(exc)
    )


# -- the application object --------------------------------------------------------------
@attrs.define
class App:
    """What the global options select; the calculator and store are opened on first use."""

    audit: str
    policy_file: str | None = None
    operator: str | None = None
    disabled: tuple[str, ...] = ()
    _policy: Policy | None = None
    _registry: Registry | None = None
    _calc: Calculator | None = None
    _store: AuditStore | None = None

    @property
    def policy(self) -> Policy:
        if self._policy is None:
            self._policy = (
                Policy.from_toml(self.policy_file) if self.policy_file is not None else Policy()
            )
        return self._policy

    def registry(self) -> Registry:
        """The rules and extensions of the loaded plugins (built once per command, shared
        by option checks such as ``--kind`` and by the calculator)."""
        if self._registry is None:
            self._registry = load_registry(self.policy, self.disabled)
        return self._registry

    def calculator(self) -> Calculator:
        if self._calc is None:
            policy = self.policy  # a policy error is not a store error
            registry = self.registry()
            with self.store_errors():
                self._calc = Calculator(
                    self.audit,
                    policy,
                    self.operator,
                    registry=registry,
                    disable_plugins=self.disabled,
                    registry_from_entry_points=True,  # batch --jobs: workers load the same
                )
        return self._calc

    def store(self) -> AuditStore:
        """The audit store for reading commands; it must already exist."""
        if self._calc is not None:
            return self._calc.store
        if self._store is None:
            if not is_url(self.audit) and not Path(self.audit).exists():
                raise Failure(
                    _(
                        "there is no audit store at {path} (decide something first, "
                        "or create one with `pricecalc audit init`)"
                    ).format(path=self.audit)
                )
            with self.store_errors():
                self._store = audit.open_store(self.audit, hmac_key=hmac_key())
        return self._store

    @contextmanager
    def store_errors(self, where: str | None = None) -> Iterator[None]:
        """Turn a store failure into one sentence naming the store (``where``: another)."""
        try:
            yield
        except BrokenPipeError:  # the reader of standard output went away: not the store
            raise
        except (AuditError, OSError) as exc:
            raise Failure(store_sentence(where or self.audit, exc)) from exc

    def close(self) -> None:
        if self._calc is not None:
            self._calc.close()
        if self._store is not None:
            self._store.close()


#: The exit code when the reader of standard output went away (``| head``): a process
#: killed by SIGPIPE ends with 128 + 13 in a shell, and ``set -o pipefail`` sees it.
PIPE_CLOSED = 141


def pipe_closed() -> None:
    """Standard output's reader went away: send what is still buffered to /dev/null, so
    the interpreter's last flush does not complain, and say nothing."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a test runner)
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    except OSError:
        pass


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
            click.echo(
                _("Warning: plugin commands are not available: {reason}").format(
                    reason=describe(exc)
                ),
                err=True,
            )
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is not None:
            return command
        try:
            return self._plugin_commands(ctx).get(cmd_name)
        except PricecalcError as exc:
            raise Failure(describe(exc)) from exc

    def main(self, *args: Any, **kwargs: Any) -> Any:
        given = kwargs["args"] if "args" in kwargs else (args[0] if args else None)
        # the command's language, click's own messages included; English again afterwards
        with speaking(sys.argv[1:] if given is None else list(given)):
            return super().main(*args, **kwargs)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        """The global options' mistakes (``pricecalc --nope``) said as every other wrong
        invocation is (:class:`Misuse`: the banner and the sentence, in the language)."""
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            if isinstance(exc, (Misuse, click.exceptions.NoArgsIsHelpError)) or exc.ctx is None:
                raise
            raise Misuse(misuse_text(exc, exc.ctx), exc.ctx) from exc

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InvalidInput as exc:
            raise InvalidRequest(describe(exc)) from exc
        except PricecalcError as exc:  # policy, plugin and rule errors
            raise Failure(describe(exc)) from exc
        except AuditError as exc:
            app = ctx.find_object(App)
            raise Failure(store_sentence(app.audit if app else "", exc)) from exc
        except BrokenPipeError:  # e.g. `pricecalc audit show --nl | head -1`
            pipe_closed()
            ctx.exit(PIPE_CLOSED)
        except OSError as exc:
            raise Failure(
                (os_reason(exc) if exc.strerror else str(exc))
                + (f": {exc.filename}" if exc.filename else "")
            ) from exc
        except click.UsageError as exc:
            if isinstance(exc, (Misuse, click.exceptions.NoArgsIsHelpError)):
                raise  # a group without its command shows its help, as click does
            raise Misuse(misuse_text(exc, ctx), exc.ctx or ctx) from exc
        except click.ClickException as exc:  # a command's own: "Error:" in the language
            if isinstance(exc, Failure) or exc.exit_code != Failure.exit_code:
                raise
            raise Failure(exc.format_message()) from exc


#: Plugins the command line itself brings (name → plugin object): the rule commands
#: (``pricecalc.cli.rules``), registered by ``pricecalc.cli`` when it is imported. They
#: add their commands through ``pricecalc_register_commands``, as a stranger's plugin.
COMMAND_PLUGINS: dict[str, object] = {}


def load_plugin_commands(disable: Sequence[str], reserved: set[str]) -> dict[str, click.Command]:
    """Ask each plugin's ``pricecalc_register_commands`` for its commands, one at a time.

    Commands are collected on a scratch group, so nothing leaks between invocations; a
    plugin command may not replace a built-in one (the built-in wins). A plugin whose
    hook raises is named.
    """
    pm = get_plugin_manager(disable)
    for name, plugin in COMMAND_PLUGINS.items():
        if name not in disable and not pm.is_registered(plugin):
            pm.register(plugin, name=name)
    collected: dict[str, click.Command] = {}
    for impl in pm.hook.pricecalc_register_commands.get_hookimpls():
        scratch = click.Group("pricecalc")
        with guard(impl.plugin_name, "pricecalc_register_commands raised {error}", passing=()):
            impl.function(cli=scratch)
        for name, command in scratch.commands.items():
            if name not in reserved:
                collected.setdefault(name, command)
    return collected
