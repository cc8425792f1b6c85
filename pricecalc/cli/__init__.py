"""The ``pricecalc`` command line: a thin shell over :class:`pricecalc.Calculator`.

Every command builds SPEC §8 requests, hands them to the same Python API scripts use, and
prints what comes back. The package is split by job, as sqlite-utils and datasette split
theirs: :mod:`~pricecalc.cli.app` (the application object, errors, the group's error
mapping and plugin commands), :mod:`~pricecalc.cli.main` (the group and its global
options), :mod:`~pricecalc.cli.options` and :mod:`~pricecalc.cli.console` (shared option
bundles and console helpers), and one module per command family: ``decide``, ``batch``,
``audit``, ``proofs``, ``report``, ``statement``, ``plugin_list``, and ``rules`` (the rule
commands, registered by the built-in plugin through the ``pricecalc_register_commands``
hook a stranger's plugin uses).

Exit codes: 0 done; 1 a domain or store problem (one sentence, no traceback), or — for
``batch`` — some lines were invalid; 2 invalid input (the field is named) or a bad
invocation. Plugin commands are loaded only when the command line is asked for its
commands, never at import time, honouring ``--disable-plugin`` and the policy's
``[plugins] disabled``.
"""

from __future__ import annotations

from pricecalc.cli import (  # noqa: F401  (each module adds its commands)
    audit,
    batch,
    decide,
    plugin_list,
    proofs,
    report,
    rules,
    serve,
    statement,
)
from pricecalc.cli.app import AUDIT_ENV, COMMAND_PLUGINS, App, PricecalcGroup
from pricecalc.cli.main import cli
from pricecalc.plugins import load_registry

COMMAND_PLUGINS[rules.PLUGIN_NAME] = rules

__all__ = ["AUDIT_ENV", "App", "PricecalcGroup", "cli", "load_registry"]
