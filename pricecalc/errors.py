"""The error hierarchy of pricecalc.

Every error a caller should handle derives from :class:`PricecalcError`.
:class:`InvalidInput` is raised before any rule runs: nothing is decided and nothing is
recorded. The audit store has its own hierarchy (``audit.AuditError``) because it knows
nothing about prices.
"""

from __future__ import annotations

from decimal import Decimal
from types import TracebackType
from typing import Any

from audit.errors import AuditError
from pricecalc.i18n import msg


class PricecalcError(Exception):
    """Base class of every pricecalc error."""


def describe_value(value: Any) -> str:
    """Show a bad value the way the user wrote it (JSON-ish), briefly."""
    if isinstance(value, str):
        shown = repr(value) if len(value) <= 60 else repr(value[:57] + "...")
        return shown
    if value is None:
        return "null (missing)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return str(value)  # as a number, the way JSON wrote it: 1E+3, 199.9
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class InvalidInput(PricecalcError):
    """The request cannot be decided: a field is missing, malformed or out of range.

    ``field`` is the dotted path of the offending field (``input.lines[1].unit_price``)
    and ``value`` the value found there. The message names both.
    """

    def __init__(self, field: str, value: Any, problem: str, *, shown: str | None = None) -> None:
        self.field = field
        self.value = value
        self.problem = problem
        self.shown = shown
        got = describe_value(value) if shown is None else shown
        super().__init__(f"{field}: {problem} (got {got})")

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its parts (not its message), so it crosses to and from the worker
        # processes of a parallel batch intact.
        return (_rebuild_invalid, (type(self), self.field, self.value, self.problem, self.shown))


class MissingField(InvalidInput):
    """A required field is absent."""

    def __init__(self, field: str) -> None:
        self.field = field
        self.value = None
        self.problem = "is required"
        self.shown = None
        PricecalcError.__init__(self, f"{field}: is required but missing")


class UnknownKind(InvalidInput):
    """The request names a kind no loaded rule decides."""


def _rebuild_invalid(
    cls: type[InvalidInput], field: str, value: Any, problem: str, shown: str | None
) -> InvalidInput:
    if issubclass(cls, MissingField):
        return cls(field)
    return cls(field, value, problem, shown=shown)


class PluginError(PricecalcError):
    """A plugin raised or returned something unusable. The message names the plugin."""

    def __init__(self, plugin: str, problem: str) -> None:
        self.plugin = plugin
        self.problem = problem
        from pricecalc.i18n import msg  # errors is imported by everything: no cycle

        super().__init__(msg("plugin {plugin!r}: {problem}", plugin=plugin, problem=problem))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.plugin, self.problem))


class PolicyError(PricecalcError):
    """The policy file or a policy value is unusable. The message names the key."""


class IdempotencyConflict(PricecalcError):
    """A ``request_id`` already names another request (SPEC §7): nothing is recorded.

    ``request_id`` is the key, ``seq`` and ``hash`` the record that holds the request it
    names, ``kind`` the kind of the request that was refused, and ``difference`` says what
    differs (the kind, the input, the merchant or the campaign).
    """

    def __init__(
        self, request_id: str, seq: int, hash: str, kind: str | None, difference: str
    ) -> None:
        self.request_id = request_id
        self.seq = seq
        self.hash = hash
        self.kind = kind
        self.difference = difference
        super().__init__(
            msg(
                "request_id {request_id!r} is already recorded as record {seq} for a "
                "different request ({difference}); nothing was recorded — a new request "
                "needs a new request_id",
                request_id=request_id, seq=seq, difference=difference,
            )
        )  # fmt: skip

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.request_id, self.seq, self.hash, self.kind, self.difference))


class FloatRefused(TypeError, PricecalcError):
    """A Python float was passed where an exact amount is needed (SPEC §1): a
    ``TypeError`` (as Python's own refusals are) and a :class:`PricecalcError`, so a
    script's one ``except PricecalcError`` catches it too."""


class guard:  # lower case: it reads as a statement word, ``with guard(...):``
    """Around every call into a plugin: its unexpected exception becomes a
    :class:`PluginError` naming the plugin, the message built only then::

        with guard(plugin, "the {!r} offer parser raised {error}", name):
            offer = offer_type.parse(fields)

    ``what`` is a :meth:`str.format` template filled with ``args`` and ``error`` (the
    exception's type and text) on failure only, so a call made thousands of times a request
    formats nothing while it succeeds. pricecalc's own errors (a refused float among them)
    and the audit store's pass through unchanged: they are the caller's or the store's, not
    the plugin's. ``passing=()`` wraps those too (a hook run while plugins are loaded).
    """

    __slots__ = ("args", "passing", "plugin", "what")

    def __init__(
        self,
        plugin: str,
        what: str,
        *args: Any,
        passing: tuple[type[BaseException], ...] = (PricecalcError, AuditError),
    ) -> None:
        self.plugin = plugin
        self.what = what
        self.args = args
        self.passing = passing

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None or not isinstance(exc, Exception) or isinstance(exc, self.passing):
            return
        error = f"{type(exc).__name__}: {exc}"
        raise PluginError(self.plugin, self.what.format(*self.args, error=error)) from exc
