"""The command line's language: English, or Chinese for a clerk (issue 21 point 4).

Messages are marked in the source with :func:`_` (translated where they are printed) or
:func:`N_` (a message made before the language is known, translated when shown), and
extracted with Babel (``babel.cfg``, ``make catalog``) into the one catalog
``pricecalc/locale/zh_CN/LC_MESSAGES/pricecalc.po``; its compiled ``.mo`` is committed
(tests/test_i18n.py checks it is exactly what Babel makes of the ``.po``), so running
needs only the standard library's :mod:`gettext`.

The language is chosen once per command: ``--lang zh|en``, else the first of
``LANGUAGE``, ``LC_ALL``, ``LC_MESSAGES`` and ``LANG`` that is set (gettext's order), a
value starting ``zh`` meaning Chinese. Library calls are English unless a caller sets it.

An :class:`~pricecalc.errors.InvalidInput` names its field by the heading a clerk reads
(原价 for ``input.list_price``): :data:`pricecalc.files.rows.COLUMN_LABELS` and
:data:`pricecalc.files.rows.INPUT_LABELS` are the one table of labels, used by sheet headings
and messages alike. Recorded reason messages are never
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
import gettext
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DOMAIN = "pricecalc"
LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("en", "zh")
#: The environment variables gettext reads, in its order.
LOCALE_VARS = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")

_ENGLISH = gettext.NullTranslations()
_state: dict[str, Any] = {"lang": "en", "catalog": _ENGLISH}


def language_from_env(environ: Mapping[str, str] | None = None) -> str:
    """``zh`` when the first locale variable set (gettext's order) is a Chinese locale
    (``zh_CN.UTF-8``, ``zh``), else ``en``."""
    env = os.environ if environ is None else environ
    for name in LOCALE_VARS:
        value = env.get(name, "")
        first = value.split(":", 1)[0].strip()
        if first:
            return "zh" if first.lower().startswith("zh") else "en"
    return "en"


def set_language(lang: str | None) -> str:
    """Use ``lang`` (``zh`` or ``en``; None: English) for messages from now on."""
    chosen = lang if lang in LANGUAGES else "en"
    catalog: gettext.NullTranslations = _ENGLISH
    if chosen == "zh":
        catalog = gettext.translation(DOMAIN, LOCALE_DIR, languages=["zh_CN"])
    _state["lang"], _state["catalog"] = chosen, catalog
    return chosen


def language() -> str:
    """The language messages are shown in now (``en`` or ``zh``)."""
    return str(_state["lang"])


def _(message: str) -> str:
    """``message`` in the current language (the msgid is the English text)."""
    translated: str = _state["catalog"].gettext(message)
    return translated


def N_(message: str) -> str:
    """Mark ``message`` for the catalog without translating it now (it is translated
    with :func:`_` where it is shown)."""
    return message


class Message(str):
    """A message made from a marked template: the English text, which also carries its
    template and values so that it can be shown in another language (:func:`shown`).

    It is a ``str`` equal to the English sentence, so scripts and records see exactly what
    they always did. A value named ``field`` is a field's path and a tuple value a list of
    field names: in Chinese each is named by its heading."""

    template: str
    values: dict[str, Any]

    def __new__(cls, template: str, /, **values: Any) -> Message:
        english = {k: ", ".join(v) if isinstance(v, tuple) else v for k, v in values.items()}
        made = super().__new__(cls, template.format(**english) if values else template)
        made.template = template
        made.values = values
        return made

    def __reduce__(self) -> tuple[Any, ...]:  # crosses to worker processes intact
        return (_rebuild, (self.template, self.values))


def _rebuild(template: str, values: dict[str, Any]) -> Message:
    return Message(template, **values)


def msg(template: str, /, **values: Any) -> Message:
    """A message from a marked template (``{name}`` placeholders, values by name)."""
    return Message(template, **values)


class Foreign(str):
    """Text another program wrote (the TOML reader's complaint about a policy file), kept
    as it is and shown through :func:`foreign` when it is part of a message."""

    __slots__ = ()


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
    :func:`pricecalc.files.rows.field_heading` (``input.lines[1].unit_price`` → ``明细[1].单价``;
    ``input.`` is left out, as a sheet's headings leave it out)."""
    if language() != "zh":
        return field
    from pricecalc.files.rows import field_heading

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
    from pricecalc.errors import InvalidInput, MissingField, describe_value

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


def chinese(message: str) -> str:
    """``message`` (a marked English text) in Chinese, whatever the current language: for
    a document a merchant reads in both languages (``audit verify-proof``)."""
    translated: str = _zh_catalog().gettext(message)
    return translated


def _zh_catalog() -> gettext.NullTranslations:
    if _state["lang"] == "zh":
        catalog: gettext.NullTranslations = _state["catalog"]
        return catalog
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=["zh_CN"])  # cached by gettext


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
        from pricecalc.foreign import AUDIT_MESSAGES, TOML_MESSAGES

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
    from pricecalc.foreign import OS_ERRORS

    known = OS_ERRORS.get(errno.errorcode.get(exc.errno, ""))
    return _(known) if known is not None else said
