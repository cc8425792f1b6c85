"""docs/plugins.md's plugin, from an empty directory to ``pricecalc plugins``.

The guide's Python blocks run in tests/test_docs.py, with the plugin object registered
directly. This module takes the guide at its word as a plugin author would: it writes the
guide's ``pyproject.toml`` block and its ``pricecalc_points_club/__init__.py`` blocks into
an empty directory, installs that with pip, and checks that the command line shows what
the guide says it shows — the plugin listed with version 1.0.0 and its hooks, the decision
of ``pricecalc decide`` and the help of ``pricecalc redeem-points``.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from filelock import FileLock
from test_third_party import HOOKS, LOCK, pip, run

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "plugins.md"
DIST = "pricecalc-points-club"
PACKAGE = "pricecalc_points_club"


def blocks(fence: str) -> list[str]:
    text = GUIDE.read_text(encoding="utf-8")
    return re.findall(rf"^```{re.escape(fence)}\n(.*?)^```", text, re.DOTALL | re.MULTILINE)


def console(after: str) -> str:
    """The console output the guide shows after ``$ <after>``, up to the next prompt."""
    text = GUIDE.read_text(encoding="utf-8")
    start = text.index(f"$ {after}\n") + len(f"$ {after}\n")
    end = min(i for i in (text.find("\n$ ", start), text.find("\n```", start)) if i != -1)
    return text[start : end + 1]


def uninstall() -> None:
    pip("uninstall", "--yes", DIST)
    importlib.invalidate_caches()


@pytest.fixture(scope="module")
def guide_plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    project = tmp_path_factory.mktemp("guide") / "points-club"
    (project / PACKAGE).mkdir(parents=True)
    (pyproject,) = [b for b in blocks("toml") if "[project.entry-points.pricecalc]" in b]
    (project / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    (project / "README.md").write_text("The guide's plugin.\n", encoding="utf-8")
    module = blocks(f'python title="{PACKAGE}/__init__.py"')
    assert len(module) >= 5
    (project / PACKAGE / "__init__.py").write_text("\n\n".join(module), encoding="utf-8")
    (project / PACKAGE / "py.typed").write_text("", encoding="utf-8")
    with FileLock(str(LOCK), timeout=600):
        try:
            uninstall()
            done = pip(
                "install", "--no-deps", "--no-build-isolation", "--no-index", "--no-cache-dir",
                str(project),
            )  # fmt: skip
            assert done.returncode == 0, f"pip install failed:\n{done.stdout}\n{done.stderr}"
            importlib.invalidate_caches()
            yield project
        finally:
            uninstall()


def test_the_guides_plugin_is_listed(guide_plugin: Path, tmp_path: Path) -> None:
    """``pricecalc plugins --json`` lists points_club 1.0.0 with all six hooks, as shown."""
    done = run(tmp_path / "audit.jsonl", "plugins", "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert rows["points_club"] == {
        "name": "points_club",
        "version": "1.0.0",
        "kinds": ["points_redemption"],
        "hooks": HOOKS,
    }
    shown = console("pricecalc plugins --json")
    assert json.dumps(rows["points_club"], indent=2).replace("\n", "\n  ") in shown
    table = run(tmp_path / "audit.jsonl", "plugins")
    assert table.returncode == 0, table.stderr
    (row,) = [line for line in console("pricecalc plugins").splitlines() if "points_club" in line]
    assert row in table.stdout


def test_the_guides_console_session(guide_plugin: Path, tmp_path: Path) -> None:
    """``pricecalc decide`` and ``pricecalc redeem-points --help`` print what the guide shows
    (the record's hash aside); the decision is recorded with the plugin's version."""
    store = tmp_path / "audit.jsonl"
    request = {
        "kind": "points_redemption",
        "request_id": "pr-1",
        "input": {"order_id": "O-7", "points": 1250, "order_total": "30.00"},
    }
    done = run(store, "decide", stdin=json.dumps(request))
    assert done.returncode == 0, done.stderr
    shown = console("echo '{\"kind\": \"points_redemption\", \"request_id\": \"pr-1\",")
    expected = shown.split("| pricecalc decide\n", 1)[1]
    strip_hash = re.compile(r'"hash": "[0-9a-f]{64}"')
    assert strip_hash.sub("HASH", done.stdout) == strip_hash.sub("HASH", expected)
    helped = run(store, "redeem-points", "--help")
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout == console("pricecalc redeem-points --help")
    rejected = run(
        store, "redeem-points", "--order-id", "O-8", "--points", "60", "--order-total", "30.00"
    )
    assert rejected.returncode == 0, rejected.stderr
    assert json.loads(rejected.stdout)["status"] == "rejected"
