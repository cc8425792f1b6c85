"""The old import paths of the modules docs and plugins named before 0.3 moved them
(issue 20): for one release only — they go in 0.4.

``import pricecalc.selection`` (or ``from pricecalc.report import collect``) gives the very
module now at its new path, so every object is the same one, and warns once with a
``DeprecationWarning`` naming the new path. Submodules follow: ``pricecalc.report.page`` is
``pricecalc.books.report.page``, never a second copy.

Why aliases here rather than a module left at each old path: a file at the old path turns
git's rename into an edit of that file, so a change another branch makes to the moved
module would conflict instead of following it to its new place.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

#: Old name → new name. Only paths docs or plugins named before the move.
MOVED = {
    "pricecalc.selection": "pricecalc.books.selection",
    "pricecalc.statement": "pricecalc.books.statement",
    "pricecalc.report": "pricecalc.books.report",
    "pricecalc.api": "pricecalc.engine",  # Engine and evaluate, merged into engine.py
}


def new_name(name: str) -> str | None:
    """The module's name after the move, or ``None`` when ``name`` did not move."""
    for old, new in MOVED.items():
        if name == old or name.startswith(old + "."):
            return new + name[len(old) :]
    return None


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old name and loads it as the module already imported at its new name."""

    def __init__(self) -> None:
        # The import system sets the alias's spec on the module it is handed; the module's
        # own spec (its real name and file) is put back once the import is done.
        self._specs: dict[str, importlib.machinery.ModuleSpec | None] = {}

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if new_name(fullname) is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = new_name(spec.name)
        assert new is not None  # find_spec answered for it
        warnings.warn(
            f"{spec.name} moved to {new} in pricecalc 0.3; the old name goes in 0.4",
            DeprecationWarning,
            stacklevel=2,
        )
        module = importlib.import_module(new)
        self._specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run (the module ran under its new name): only its own spec back."""
        alias = module.__spec__
        if alias is not None and alias.name in self._specs:
            module.__spec__ = self._specs.pop(alias.name)


def install() -> None:
    """Put the aliases first in ``sys.meta_path``, once (done when ``pricecalc`` is
    imported): they answer for the old names only, and must answer before the path finder
    makes a second copy of a moved package's submodule."""
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Alias())


install()
