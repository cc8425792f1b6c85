"""Meta-tests of the plugin contract, after datasette's (STYLE: "every hook is documented
in docs/, and every hook has a test").

The hook names come from pricecalc/hookspecs.py itself (as pluggy reads them), so a new
hook fails these tests until it has a section in docs/plugins.md — a heading naming it,
with its signature below — and a test: a ``# hook: NAME`` comment inside a ``test_*``
function of a test module under tests/ (this module excepted).
"""

from __future__ import annotations

import ast
import inspect
import io
import re
import tokenize
from pathlib import Path

import pluggy
import pytest

from pricecalc import hookspecs

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
GUIDE = ROOT / "docs" / "plugins.md"
MARKER = re.compile(r"#\s*hook:\s*(\S+)")
HEADING = re.compile(r"^(#{1,6})\s+(.*)$", re.MULTILINE)


def hook_names() -> list[str]:
    """The hooks as pluggy sees them, checked against the module's marked functions."""
    pm = pluggy.PluginManager("pricecalc")
    pm.add_hookspecs(hookspecs)
    seen_by_pluggy = sorted(name for name in vars(pm.hook) if not name.startswith("_"))
    marked = sorted(
        name
        for name, obj in vars(hookspecs).items()
        if inspect.isfunction(obj) and hasattr(obj, "pricecalc_spec")
    )
    assert seen_by_pluggy == marked
    return marked


HOOKS = hook_names()


def sections(text: str) -> list[tuple[str, str]]:
    """``(heading, body)`` for every Markdown heading (the body runs to the next heading
    of the same or a higher level). Fenced code is skipped when looking for headings."""
    unfenced = re.sub(r"^```.*?^```", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text,
                      flags=re.DOTALL | re.MULTILINE)  # fmt: skip
    found = list(HEADING.finditer(unfenced))
    out = []
    for i, match in enumerate(found):
        level = len(match.group(1))
        end = len(text)
        for later in found[i + 1 :]:
            if len(later.group(1)) <= level:
                end = later.start()
                break
        out.append((match.group(2), text[match.end() : end]))
    return out


def hook_markers() -> dict[str, list[str]]:
    """``# hook: NAME`` comments inside test functions: hook name → ``path::test``."""
    found: dict[str, list[str]] = {}
    for path in sorted(TESTS.rglob("test_*.py")):
        if path.resolve() == Path(__file__).resolve():
            continue
        source = path.read_text(encoding="utf-8")
        functions = [
            node
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name.startswith("test_")
        ]
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type != tokenize.COMMENT:
                continue
            match = MARKER.match(token.string)
            if match is None:
                continue
            line = token.start[0]
            inside = [f for f in functions if f.lineno <= line <= (f.end_lineno or f.lineno)]
            assert inside, f"{path.relative_to(ROOT)}:{line}: a hook marker outside a test"
            where = f"{path.relative_to(ROOT)}::{inside[-1].name}"
            found.setdefault(match.group(1), []).append(where)
    return found


def test_the_hooks_are_found() -> None:
    """The contract's six hooks are read from the module, each an empty function with a
    docstring (STYLE); nothing here could pass over an empty list."""
    assert HOOKS == [
        "pricecalc_clawback_categories",
        "pricecalc_compensation_standards",
        "pricecalc_offer_types",
        "pricecalc_policy_defaults",
        "pricecalc_register_commands",
        "pricecalc_rules",
    ]
    for name in HOOKS:
        assert inspect.getdoc(getattr(hookspecs, name)), f"{name} has no docstring"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook: str) -> None:
    """docs/plugins.md has a section whose heading names the hook, with its signature."""
    text = GUIDE.read_text(encoding="utf-8")
    bodies = [body for heading, body in sections(text) if re.search(rf"\b{hook}\b", heading)]
    assert bodies, f"docs/plugins.md has no heading naming {hook}"
    assert any(f"def {hook}(" in body for body in bodies), (
        f"the {hook} section of docs/plugins.md does not show its signature (def {hook}(...))"
    )


def test_no_heading_documents_a_hook_that_does_not_exist() -> None:
    """A hook renamed or removed must not linger in the guide's headings."""
    text = GUIDE.read_text(encoding="utf-8")
    named = {m for heading, _ in sections(text) for m in re.findall(r"pricecalc_\w+", heading)}
    assert named <= set(HOOKS), f"headings name unknown hooks: {sorted(named - set(HOOKS))}"


MARKERS = hook_markers()


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook: str) -> None:
    """Some test function under tests/ carries ``# hook: <name>`` for this hook."""
    assert MARKERS.get(hook), f"no test is marked '# hook: {hook}'"


def test_every_marker_names_a_hook() -> None:
    """A misspelt or stale ``# hook:`` marker is an error, not a silent pass."""
    assert set(MARKERS) <= set(HOOKS), f"markers name unknown hooks: {set(MARKERS) - set(HOOKS)}"
