"""The first-party plugins' READMEs: their Python examples run as written (STYLE: docs'
code examples run as tests, so they never drift)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = ("chaozhigou", "food_safety", "select_alliance")
READMES = [ROOT / "plugins" / name / "README.md" for name in FIRST_PARTY]
BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)


@pytest.mark.parametrize("readme", READMES, ids=lambda p: p.parent.name)
def test_readme_examples_run(readme: Path) -> None:
    """Every ```python block runs, in order, in one namespace per README."""
    text = readme.read_text(encoding="utf-8")
    blocks = [(text[: m.start()].count("\n") + 1, m.group(1)) for m in BLOCK.finditer(text)]
    assert blocks, f"{readme} has no Python example"
    namespace: dict[str, object] = {"__name__": f"readme:{readme.parent.name}"}
    for line, source in blocks:
        exec(compile(source, f"{readme.relative_to(ROOT)}:{line}", "exec"), namespace)
