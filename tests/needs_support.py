"""What a test needs from the machine (a server, a browser, a toolchain): without it the
test is skipped on a developer's machine, but fails under CI (``CI`` set to true, 1 or
yes), where `.ci/run` installs everything and a missing piece must never pass as a skip."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(message: str) -> NoReturn:
    """Skip with ``message``, or fail with it under CI."""
    if in_ci():
        message = f"CI=true and {message}: a missing piece must not pass as a skip"
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
