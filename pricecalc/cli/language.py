"""The command's language, chosen before click reads the command line, and click's own
messages in it.

click builds the sentence of a command line it cannot parse (``No such option``, ``Missing
argument``, a bad ``--format`` choice) with :func:`gettext.gettext`, the process's global
domain, as it raises. While a pricecalc command runs in Chinese, :func:`speaking` answers
those lookups from pricecalc's catalog — only for the messages listed in
:data:`pricecalc.foreign.CLICK_MESSAGES` (click's help texts stay English, as pricecalc's
do) — and gives click back its own lookups when the command ends. The audit store's
warnings (its logger) are shown through the same templates as its errors.
"""

from __future__ import annotations

import gettext
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType

import click.core
import click.decorators
import click.exceptions
import click.parser
import click.types

from pricecalc.foreign import CLICK_MESSAGES
from pricecalc.i18n import LANGUAGES, _, language, language_from_env, set_language
from pricecalc.messages import foreign

#: click's modules that build the messages of a command line it cannot parse.
_CLICK_MODULES: tuple[ModuleType, ...] = (
    click.core,
    click.decorators,
    click.exceptions,
    click.parser,
    click.types,
)


def _click_gettext(message: str) -> str:
    if language() == "zh" and message in CLICK_MESSAGES:
        return _(message)
    return gettext.gettext(message)


def _click_ngettext(singular: str, plural: str, n: int) -> str:
    if language() == "zh" and singular in CLICK_MESSAGES:
        return _(singular if n == 1 else plural)
    return gettext.ngettext(singular, plural, n)


class _AuditWords(logging.Filter):
    """The audit store's warnings (its logger, ``audit``: an index rebuilt, a torn last
    line cut off) in the command's language, as its errors are."""

    def filter(self, record: logging.LogRecord) -> bool:
        if language() == "zh":
            record.msg, record.args = foreign(record.getMessage()), ()
        return True


_AUDIT_WORDS = _AuditWords()


def chosen_language(args: Sequence[str]) -> str:
    """The language of a command line before click parses it: its global ``--lang zh|en``
    (so that click's own complaint about the rest of it is in that language), else the
    locale's (:func:`~pricecalc.i18n.language_from_env`)."""
    for index, arg in enumerate(args):
        if arg == "--":
            break
        value = None
        if arg == "--lang" and index + 1 < len(args):
            value = args[index + 1]
        elif arg.startswith("--lang="):
            value = arg[len("--lang=") :]
        if value in LANGUAGES:
            return value
    return language_from_env()


@contextmanager
def speaking(args: Sequence[str]) -> Iterator[None]:
    """Run a command in its language (:func:`chosen_language`), click's messages included;
    afterwards English again and click's lookups its own (a script in the same process is
    not changed by a command it ran)."""
    saved = [(m, m.__dict__.get("_"), m.__dict__.get("ngettext")) for m in _CLICK_MODULES]
    set_language(chosen_language(args))
    logging.getLogger("audit").addFilter(_AUDIT_WORDS)
    for module, said, plural in saved:
        if said is not None:
            module._ = _click_gettext  # type: ignore[attr-defined]
        if plural is not None:
            module.ngettext = _click_ngettext  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module, said, plural in saved:
            if said is not None:
                module._ = said  # type: ignore[attr-defined]
            if plural is not None:
                module.ngettext = plural  # type: ignore[attr-defined]
        logging.getLogger("audit").removeFilter(_AUDIT_WORDS)
        set_language(None)
