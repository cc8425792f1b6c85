"""Serving the application with uvicorn: one process, or ``--workers N`` on one store.

The settings travel to uvicorn's worker processes in the environment
(:data:`SETTINGS_ENV`, JSON), and each worker builds its own :class:`Service` through
:func:`app_from_environment`. uvicorn stops accepting on SIGTERM, lets the requests in
flight (and so their groups) finish, and exits 0; SIGHUP re-reads the tokens file
(:meth:`Service.reload_tokens`; with several workers uvicorn restarts them, and each
reads the file anew).
"""

from __future__ import annotations

import gc
import json
import os
import signal
from types import FrameType
from typing import Any

import attrs
import uvicorn
from starlette.applications import Starlette

from pricecalc.service.app import Service, Settings, create_app
from pricecalc.service.protocols import HTTP

SETTINGS_ENV = "PRICECALC_SERVE_SETTINGS"
APP = "pricecalc.service.server:app_from_environment"


#: The cyclic garbage collector's thresholds in a serving process (Python's: 700, 10, 10).
#: Every decision adds objects that live on (the store's index of keys), so with Python's
#: thresholds the collector ran its oldest generation over the whole, growing heap every
#: second or so under load: 10-13 full collections in a 15 s bench run, pauses of up to
#: 45 ms idle and 290 ms on the loaded machine, each one stalling every request in the
#: process (p99). 10,000 young objects before a collection: a handful in the same run,
#: none over 3 ms. Garbage cycles are still collected, later; plain garbage (most of it)
#: is freed by reference counting at once, as always.
GC_THRESHOLDS = (10_000, 10, 10)


def tune_gc() -> None:
    """Set :data:`GC_THRESHOLDS` and freeze what is alive now (modules, rules, registry,
    the store's index so far) out of the collector's sight: it is never garbage, and the
    collections of a serving process need not walk it again."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def app_from_environment() -> Starlette:
    """The application for the settings in :data:`SETTINGS_ENV` (uvicorn's factory), in a
    process tuned for serving (:func:`tune_gc`)."""
    data = json.loads(os.environ[SETTINGS_ENV])
    data["disabled"] = tuple(data.get("disabled", ()))
    app = create_app(Service(Settings(**data)))
    tune_gc()
    return app


def serve(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    certfile: str | None = None,
    keyfile: str | None = None,
) -> None:
    """Run until SIGTERM or SIGINT. The settings were checked by the caller (it built one
    :class:`Service` and closed it), so a worker fails only on what changed since."""
    os.environ[SETTINGS_ENV] = json.dumps(attrs.asdict(settings))
    options: dict[str, Any] = {
        "factory": True,
        "host": host,
        # uvicorn's HTTP/1.1 protocol with a problem document for a malformed request
        "http": HTTP,
        "port": port,
        "ssl_certfile": certfile,
        "ssl_keyfile": keyfile,
        "access_log": False,  # pricecalc's own JSON Lines log (no bodies, no tokens)
        "log_level": "warning",
        "server_header": False,
        "timeout_graceful_shutdown": None,  # in-flight requests (and groups) finish
    }
    if workers > 1:
        uvicorn.run(APP, workers=workers, **options)
        return
    _Server(uvicorn.Config(APP, **options)).run()


class _Server(uvicorn.Server):
    """uvicorn's server, exiting 0 after a graceful stop on SIGTERM (uvicorn raises the
    signal again once it has stopped, which would end the process by the signal)."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if sig == signal.SIGTERM and sig in self._captured_signals:
            self._captured_signals.remove(sig)
