"""Fixtures of the command-line tests: a CliRunner bound to a fresh audit store."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import CLEAN_ENV, Invoke
from click.testing import CliRunner, Result

from pricecalc.cli import cli


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """The path of a fresh audit store (created on first decision)."""
    return tmp_path / "audit.jsonl"


@pytest.fixture
def invoke(store: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Invoke:
    """Run ``pricecalc --audit <store> ARGS`` in-process; returns click's Result."""
    monkeypatch.chdir(tmp_path)

    def run(*args: str, input: str | bytes | None = None, audit: bool = True) -> Result:
        runner = CliRunner()
        prefix = ["--audit", str(store)] if audit else []
        return runner.invoke(cli, [*prefix, *args], input=input, env=CLEAN_ENV)

    return run
