"""pricecalc plugin: the food-safety law as a 假一赔十 compensation standard (SPEC §4).

One plugin, entry point ``food_safety_law`` (:mod:`pricecalc_food_safety.law`), adding the
standard ``food_safety_law_art148`` to ``counterfeit_compensation``.
"""

from __future__ import annotations

from importlib import metadata

DISTRIBUTION = "chaozhigou-pricecalc-food-safety"

try:
    __version__ = metadata.version(DISTRIBUTION)
except metadata.PackageNotFoundError:  # imported from a source tree, not installed
    __version__ = "0+unknown"

__all__ = ["DISTRIBUTION", "__version__"]
