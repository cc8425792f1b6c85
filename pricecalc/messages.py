"""Messages and errors as the user reads them, in the current language (issue 21 point 4).

:mod:`pricecalc.i18n` marks messages and holds the language; here a :class:`Message` is
shown in it, and an :class:`~pricecalc.errors.InvalidInput` names its field by the heading
a clerk reads (原价 for ``input.list_price``): :data:`pricecalc.files.columns.COLUMN_LABELS`
and :data:`pricecalc.files.columns.INPUT_LABELS` are the one table of labels, used by sheet
headings and messages alike. Recorded reason messages are never translated: they are part
of the hashed record.
"""

from __future__ import annotations

import re

from pricecalc.errors import InvalidInput, MissingField, describe_value
from pricecalc.files.columns import field_heading
from pricecalc.i18n import Message, _, language


def shown(message: str) -> str:
    """``message`` (a :class:`Message`, or a plain marked text) in the current language."""
    if isinstance(message, Message):
        values = {
            name: shown(value) if isinstance(value, Message) else value
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


_SEGMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")


def field_label(field: str) -> str:
    """How a message names a field: its dotted path in English; in Chinese the headings of
    :func:`pricecalc.files.columns.field_heading` (``input.lines[1].unit_price`` → ``明细[1].单价``;
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
        got = describe_value(exc.value) if exc.shown is None else exc.shown
        if exc.value is None and exc.shown is None:
            got = _("null (missing)")
        return _("{field}: {problem} (got {got})").format(
            field=field_label(exc.field), problem=shown(exc.problem), got=got
        )
    text = str(exc)
    return shown(exc.args[0]) if exc.args and isinstance(exc.args[0], Message) else text
