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

A message is shown in the current language by :func:`pricecalc.messages.shown` and an error
by :func:`pricecalc.messages.describe`, which name a field by the heading a clerk reads (原价
for ``input.list_price``). This module imports nothing of pricecalc: everything may mark
its messages with it. Recorded reason messages are never
translated: they are part of the hashed record.
"""

from __future__ import annotations

import gettext
import os
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
    template and values so that it can be shown in another language
    (:func:`pricecalc.messages.shown`).

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
