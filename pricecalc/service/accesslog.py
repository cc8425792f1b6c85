"""The access log: one JSON object per line per request, never a body or a token.

Each line: ``time`` (UTC ISO 8601), ``method``, ``path`` (without the query string),
``status``, ``ms`` (time to the response), ``token`` (the token entry's *name*, when one
was accepted), ``client`` (address) and ``problem`` (the problem type's name, when the
answer was one).
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import UTC, datetime
from typing import IO, Any

import orjson


class AccessLog:
    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._lock = threading.Lock()

    def write(self, **fields: Any) -> None:
        line = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), **fields}
        try:
            text = orjson.dumps(line).decode("utf-8") + "\n"
        except TypeError:  # text orjson will not write (a lone surrogate): escaped
            text = json.dumps(line, separators=(",", ":")) + "\n"
        with self._lock:
            try:
                self._stream.write(text)
                self._stream.flush()
            except (OSError, ValueError):  # a closed log must not fail the request
                pass
