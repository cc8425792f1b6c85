"""The house's layout (issue 20 point 3): rules import only the plugin contract, and the old
module paths docs and plugins named keep working — the same objects — until 0.4."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

import pricecalc
from pricecalc import _moved

PACKAGE = Path(pricecalc.__file__).resolve().parent

#: The plugin contract: flat modules a rule (the core's or a plugin's) may import.
CONTRACT = frozenset(
    f"pricecalc.{name}"
    for name in (
        "decision",
        "errors",
        "fields",
        "history",
        "hookspecs",
        "i18n",
        "money",
        "offers",
        "policy",
        "registry",
        "toolkit",
    )
)


def _imports(path: Path, package: str) -> list[tuple[int, str]]:
    """Every module a file imports (``from a import b`` counts as ``a.b`` when ``a`` is the
    ``pricecalc`` package itself), with its line, relative imports resolved."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            if base == "pricecalc" or not node.module:  # from pricecalc (or .) import x
                found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, base))
    return found


def _outside_contract(module: str) -> bool:
    if module != "pricecalc" and not module.startswith("pricecalc."):
        return False  # the standard library, attrs, …
    return module not in CONTRACT and not module.startswith("pricecalc.rules.")


def test_rules_import_only_the_contract() -> None:
    """Issue 20 point 3: a module under pricecalc/rules/ imports only the flat plugin contract
    (decision, errors, fields, history, hookspecs, money, offers, policy, registry, toolkit)
    or another rule module — never the files, the books, the store or the command line."""
    rules = sorted((PACKAGE / "rules").glob("*.py"))
    assert {p.stem for p in rules} >= {"subsidy", "protection", "void", "offer_types"}
    wrong = [
        f"{path.relative_to(PACKAGE)}:{line}: {module}"
        for path in rules
        for line, module in _imports(path, "pricecalc.rules")
        if _outside_contract(module)
    ]
    assert wrong == []


def test_the_contract_check_catches_a_rule_reaching_past_it(tmp_path: Path) -> None:
    """The check above can fail: each way of importing a non-contract module is caught."""
    rule = tmp_path / "rule.py"
    rule.write_text(
        "import pricecalc.calculator\n"
        "from pricecalc import serialize, money\n"
        "from pricecalc.books.settlement import movement_of\n"
        "from ..files import rows\n"
        "from . import subsidy\n"
        "import decimal\n",
        encoding="utf-8",
    )
    assert [m for _, m in _imports(rule, "pricecalc.rules") if _outside_contract(m)] == [
        "pricecalc.calculator",
        "pricecalc.serialize",
        "pricecalc.books.settlement",
        "pricecalc.files",
    ]


def test_messages_name_fields_from_the_contract_not_the_files() -> None:
    """Issue 20 point 3: the flat contract never reaches up into a package: messages.py
    names a field by :mod:`pricecalc.headings` (which imports nothing of pricecalc), not by
    files/columns.py; the sheets' wider table holds the same headings and more."""
    from pricecalc.files import columns
    from pricecalc.headings import FIXED_COLUMN_LABELS, INPUT_LABELS, field_heading

    below = ("pricecalc.files", "pricecalc.books", "pricecalc.cli", "pricecalc.service")
    reached = [
        f"{name}:{line}: {module}"
        for name in ("messages", "headings")
        for line, module in _imports(PACKAGE / f"{name}.py", "pricecalc")
        if module.startswith(below)
    ]
    assert reached == []
    own = [module for _, module in _imports(PACKAGE / "headings.py", "pricecalc")]
    assert [module for module in own if module.startswith("pricecalc")] == []
    assert columns.INPUT_LABELS is INPUT_LABELS
    assert columns.COLUMN_LABELS.items() >= FIXED_COLUMN_LABELS.items()
    assert field_heading("operator") == columns.field_heading("operator") == "操作员"
    assert field_heading("list_price") == columns.field_heading("list_price") == "原价"
    assert field_heading("price_protection_refunds") is None  # a declared money column
    assert columns.field_heading("price_protection_refunds") == "价保退款"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("pricecalc.selection", "pricecalc.books.selection"),
        ("pricecalc.statement", "pricecalc.books.statement"),
        ("pricecalc.report", "pricecalc.books.report"),
        ("pricecalc.report.page", "pricecalc.books.report.page"),
        ("pricecalc.api", "pricecalc.engine"),
    ],
)
def test_an_old_module_path_is_the_moved_module(
    old: str, new: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 20 point 3: the paths docs named before the move (``from pricecalc.selection
    import Filters``, ``from pricecalc.report import collect``, …) give the very module now
    at its new path — the same objects, its own name and spec — with a DeprecationWarning
    naming the new path."""
    monkeypatch.delitem(sys.modules, old, raising=False)  # imported afresh, so it warns
    with pytest.warns(DeprecationWarning) as caught:
        aliased = importlib.import_module(old)
    moved = importlib.import_module(new)
    assert aliased is moved
    assert moved.__name__ == new and moved.__spec__ is not None and moved.__spec__.name == new
    assert [str(w.message) for w in caught] == [
        f"{old} moved to {new} in pricecalc 0.3; the old name goes in 0.4"
    ]


def test_old_names_give_the_same_objects() -> None:
    """The names docs/report.md imported before the move are the moved module's objects."""
    from pricecalc.report import Cut, ReportHeader, collect, render_report
    from pricecalc.selection import Filters, period_bound
    from pricecalc.statement import build_statement, statement_row

    from pricecalc.books import report, selection, statement

    assert (Cut, ReportHeader, collect, render_report) == (
        report.Cut,
        report.ReportHeader,
        report.collect,
        report.render_report,
    )
    assert Filters is selection.Filters and period_bound is selection.period_bound
    assert build_statement is statement.build_statement
    assert statement_row is statement.statement_row


def test_only_moved_names_are_aliased() -> None:
    """An old name maps to its new one (submodules too); nothing else is answered for."""
    assert _moved.new_name("pricecalc.report.charts") == "pricecalc.books.report.charts"
    assert _moved.new_name("pricecalc.reporting") is None
    assert _moved.new_name("pricecalc.rules.subsidy") is None
    with pytest.raises(ModuleNotFoundError, match=r"No module named 'pricecalc\.rows'"):
        importlib.import_module("pricecalc.rows")


def test_engine_holds_engine_and_pure_evaluation_each_name_once() -> None:
    """Issue 20 point 3: ``Engine`` and the pure evaluation live in one module, no two
    functions of one name in it; ``pricecalc.evaluate`` is its convenience."""
    from pricecalc import engine

    tree = ast.parse((PACKAGE / "engine.py").read_text(encoding="utf-8"))
    names = [node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.ClassDef)]
    assert sorted(names) == sorted(set(names))
    assert {"Engine", "evaluate", "evaluate_envelope", "default_engine"} <= set(names)
    assert pricecalc.evaluate is engine.evaluate and pricecalc.Engine is engine.Engine
    assert not (PACKAGE / "api.py").exists()


def test_a_calculator_decides_through_its_engine_and_holds_one_policy(tmp_path: Path) -> None:
    """Issue 20 point 3: ``Calculator`` keeps its policy, the merged policy and the registry
    once, in its engine; ``policy``, ``rules_policy`` and ``registry`` read them there."""
    policy = pricecalc.Policy.from_mapping({"price_protection": {"claim_days": 3}})
    with pricecalc.Calculator(tmp_path / "audit.jsonl", policy) as calc:
        assert calc.policy is calc.engine.policy is policy
        assert calc.rules_policy is calc.engine.merged_policy
        assert calc.registry is calc.engine.registry
        kept = {k for k, v in vars(calc).items() if isinstance(v, pricecalc.Policy)}
        assert kept == set()
        with pytest.raises(AttributeError, match="has no setter"):
            calc.policy = pricecalc.Policy()  # type: ignore[misc]
