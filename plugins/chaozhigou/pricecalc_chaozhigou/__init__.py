"""pricecalc plugins for the 超值购 campaign's entry rules (SPEC §6; seed 002 第五条).

Two plugins, each its own entry point in the ``pricecalc`` group so either can be
disabled by name:

``chaozhigou_admission`` (:mod:`pricecalc_chaozhigou.admission`)
    Is this merchant with this product admitted to 超值购? (第五条 2, 3)
``shipping_check`` (:mod:`pricecalc_chaozhigou.shipping`)
    Was the order shipped within 48 hours of payment? (第五条 1(2))

The admission rule's parts: :mod:`~pricecalc_chaozhigou.applicant` (the merchant and the
product read from the request), :mod:`~pricecalc_chaozhigou.limits` (its policy bounds),
:mod:`~pricecalc_chaozhigou.criteria` (one check per criterion, the reason codes), and
:mod:`~pricecalc_chaozhigou.names` (the campaign's vocabulary, English and Chinese).
"""

from __future__ import annotations

from importlib import metadata

DISTRIBUTION = "chaozhigou-pricecalc-admission"

try:
    __version__ = metadata.version(DISTRIBUTION)
except metadata.PackageNotFoundError:  # imported from a source tree, not installed
    __version__ = "0+unknown"

__all__ = ["DISTRIBUTION", "__version__"]
