"""Every command has help with a real example, and every command is documented in
docs/cli.md (STYLE: "a test checks every command has help")."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import click
from cli_support import ROOT, Invoke

from pricecalc import __version__
from pricecalc.cli import cli


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command and subcommand, as the words typed after `pricecalc`."""
    ctx = click.Context(group, info_name="pricecalc")
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from command_paths(command, (*prefix, name))


PATHS = list(command_paths(cli))


def test_the_commands_of_the_issue_are_all_there() -> None:
    """The command names are a contract (issue 4)."""
    assert set(PATHS) >= {
        ("decide",), ("batch",), ("split",), ("compensate",), ("protect",), ("clawback",),
        ("plugins",), ("audit",), ("audit", "verify"), ("audit", "head"), ("audit", "show"),
        ("audit", "export"), ("audit", "stats"), ("audit", "init"), ("audit", "migrate"),
    }  # fmt: skip


def test_every_command_has_help_with_an_example(invoke: Invoke) -> None:
    """`pricecalc [group] command --help` works and shows an example invocation."""
    top = invoke("--help")
    assert top.exit_code == 0 and "Example" in top.stdout
    for path in PATHS:
        result = invoke(*path, "--help")
        assert result.exit_code == 0, (path, result.output)
        assert "Example" in result.stdout, path
        assert "pricecalc " in result.stdout.split("Example", 1)[1], path


def test_every_command_is_documented_in_docs_cli_md() -> None:
    """docs/cli.md has a section per command and subcommand."""
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    headings = {line.strip("# ").strip("`") for line in text.splitlines() if line.startswith("#")}
    missing = [" ".join(p) for p in PATHS if f"pricecalc {' '.join(p)}" not in headings]
    assert missing == []


def test_version(invoke: Invoke) -> None:
    assert invoke("--version").stdout == f"pricecalc {__version__}\n"


def test_importing_the_cli_loads_no_plugin() -> None:
    """Plugins are loaded when commands are looked up, never at import time."""
    code = (
        "import sys, pricecalc.cli; "
        "print(sorted(m for m in sys.modules if m.startswith('pricecalc_')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "[]\n"
