"""pricecalc plugins for Douyin's Select Alliance (精选联盟) rules (SPEC §6; seeds 000, 004).

Three plugins, each its own entry point in the ``pricecalc`` group so any can be
disabled by name:

``select_alliance_admission`` (:mod:`pricecalc_select_alliance.admission`)
    May the shop open Select Alliance, and which version: full or trial?
``select_alliance_product`` (:mod:`pricecalc_select_alliance.product`)
    May this product be promoted, given its category's quality-return threshold?
``select_alliance_review`` (:mod:`pricecalc_select_alliance.review`)
    The daily check: nothing, a warning, a Wednesday closure, or a ban.
"""

from __future__ import annotations

from importlib import metadata

DISTRIBUTION = "chaozhigou-pricecalc-select-alliance"

try:
    __version__ = metadata.version(DISTRIBUTION)
except metadata.PackageNotFoundError:  # imported from a source tree, not installed
    __version__ = "0+unknown"

__all__ = ["DISTRIBUTION", "__version__"]
