"""Messages and errors as the user reads them, in the current language (issue 21 point 4).

:mod:`pricecalc.i18n` marks messages and holds the language; here a :class:`Message` is
shown in it, and an :class:`~pricecalc.errors.InvalidInput` names its field by the heading
a clerk reads (原价 for ``input.list_price``): :mod:`pricecalc.headings` is the one table
of labels, used by sheet headings and messages alike. Recorded reason messages are never
translated: they are part of the hashed record.

Words pricecalc shows but does not write — the audit store's sentences (``audit`` never
imports pricecalc), the TOML reader's, the operating system's — are translated where they
are shown: :func:`foreign` matches a sentence against its template in
:mod:`pricecalc.foreign` and fills the template's translation; :func:`os_reason` names an
``OSError`` by its errno. click's own messages are looked up in this catalog while a
command runs (:mod:`pricecalc.cli.language`).
"""

from __future__ import annotations

import errno
import re

from pricecalc.errors import InvalidInput, MissingField, describe_value
from pricecalc.foreign import AUDIT_MESSAGES, OS_ERRORS, TOML_MESSAGES
from pricecalc.headings import field_heading
from pricecalc.i18n import Foreign, Message, _, language


def shown(message: str) -> str:
    """``message`` (a :class:`Message`, or a plain marked text) in the current language."""
    if isinstance(message, Foreign):
        return foreign(message)
    if isinstance(message, Message):
        values = {
            name: shown(value) if isinstance(value, Message | Foreign) else value
            for name, value in message.values.items()
        }
        if isinstance(values.get("field"), str):  # a field's path: named by its heading
            values["field"] = field_label(values["field"])
        for name, value in values.items():
            if isinstance(value, tuple):  # field names: 原价 (list_price), …
                values[name] = ", ".join(_with_heading(str(field)) for field in value)
        return _(message.template).format(**values) if values else _(message.template)
    return _(message)


def _with_heading(name: str) -> str:
    label = field_label(name)
    return name if label == name else f"{label} ({name})"


_SEGMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[(?:\d+|…)\])*)")  # […]: a path cut short


def field_label(field: str) -> str:
    """How a message names a field: its dotted path in English; in Chinese the headings of
    :func:`pricecalc.headings.field_heading` (``input.lines[1].unit_price`` → ``明细[1].单价``;
    ``input.`` is left out, as a sheet's headings leave it out)."""
    if language() != "zh":
        return field
    path = field[len("input.") :] if field.startswith("input.") else field
    if not path or path == "input":
        return field_heading("input") or field
    parts = []
    for segment in path.split("."):
        match = _SEGMENT.fullmatch(segment)
        if match is None:
            return field
        parts.append((field_heading(match[1]) or match[1]) + match[2])
    return ".".join(parts)


def describe(exc: BaseException) -> str:
    """An error as the user reads it, in the current language: an
    :class:`~pricecalc.errors.InvalidInput` names its field by label, its problem and the
    value given; other errors are their message (translated when marked)."""
    if language() != "zh":
        return str(exc)
    if isinstance(exc, MissingField):
        return _("{field}: is required but missing").format(field=field_label(exc.field))
    if isinstance(exc, InvalidInput):
        got = describe_value(exc.value) if exc.shown is None else shown(exc.shown)
        if exc.value is None and exc.shown is None:
            got = _("null (missing)")
        return _("{field}: {problem} (got {got})").format(
            field=field_label(exc.field), problem=shown(exc.problem), got=got
        )
    if exc.args and isinstance(exc.args[0], Message):
        return shown(exc.args[0])
    if isinstance(exc, OSError) and exc.strerror:
        return os_reason(exc) + (f" ({exc.filename})" if exc.filename else "")
    return foreign(str(exc))


# -- messages pricecalc shows but does not write -------------------------------------------
def foreign(text: str) -> str:
    """A message of the audit store (which never imports pricecalc, so it cannot mark its
    messages) in the current language: the English text is matched against the templates
    of :data:`pricecalc.foreign.AUDIT_MESSAGES` (and the TOML reader's), and the matching
    one's translation is filled with the values found there (each translated the same
    way, so a reason inside a reason is Chinese too). A text no template matches is
    returned as it is."""
    if language() != "zh" or not text:
        return text
    for pattern, template in _foreign_patterns():
        found = pattern.fullmatch(text)
        if found is not None:
            values = {name: foreign(value) for name, value in found.groupdict().items()}
            return _(template).format(**values)
    return text


_PLACEHOLDER = re.compile(r"{(\w+)}")
#: Placeholders that stand for a number (a seq, a size, a count): matched as one, so that
#: ``{what} {size} is not between …`` reads "old tree size 5" as what="old tree size".
_NUMBERS = frozenset(
    {"seq", "size", "count", "have", "old", "new", "index", "n", "expected", "found", "first",
     "last", "before", "links", "named", "upcoming", "offset", "head"}
)  # fmt: skip


def _pattern(template: str) -> re.Pattern[str]:
    """``template``'s ``{name}`` placeholders as named groups (a repeated name must repeat
    its text); the rest literal."""
    parts: list[str] = []
    seen: set[str] = set()
    at = 0
    for found in _PLACEHOLDER.finditer(template):
        parts.append(re.escape(template[at : found.start()]))
        name = found[1]
        value = r"-?[0-9][0-9,]*" if name in _NUMBERS else ".+?"
        parts.append(f"(?P={name})" if name in seen else f"(?P<{name}>{value})")
        seen.add(name)
        at = found.end()
    parts.append(re.escape(template[at:]))
    return re.compile("".join(parts), re.DOTALL)


_foreign_cache: list[tuple[re.Pattern[str], str]] = []


def _foreign_patterns() -> list[tuple[re.Pattern[str], str]]:
    if not _foreign_cache:
        # the template with the most words of its own first: "record {seq} is missing
        # (deleted)" before "record {seq} (hash {hash})"
        templates = (*AUDIT_MESSAGES, *TOML_MESSAGES)
        ordered = sorted(templates, key=lambda t: -len(_PLACEHOLDER.sub("", t)))
        _foreign_cache.extend((_pattern(t), t) for t in ordered)
    return _foreign_cache


def os_reason(exc: OSError) -> str:
    """What the operating system said about a file, in the current language: its own
    sentence (``No space left on device``) in English, Chinese for the errors a clerk
    meets (:data:`pricecalc.foreign.OS_ERRORS`)."""
    said = exc.strerror or str(exc)
    if language() != "zh" or exc.errno is None:
        return said
    known = OS_ERRORS.get(errno.errorcode.get(exc.errno, ""))
    return _(known) if known is not None else said
