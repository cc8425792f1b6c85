"""The campaign report (SPEC §10): figures summed in one streaming pass
(:mod:`~pricecalc.books.report.aggregate`), drawn as inline SVG
(:mod:`~pricecalc.books.report.charts`) and written as one
self-contained HTML page (:mod:`~pricecalc.books.report.page`)."""

from __future__ import annotations

from pricecalc.books.report.aggregate import (
    UNCATEGORISED,
    CampaignFigures,
    Cut,
    aggregate,
    collect,
)
from pricecalc.books.report.page import ReportHeader, render_report, report_tables

__all__ = [
    "UNCATEGORISED",
    "CampaignFigures",
    "Cut",
    "ReportHeader",
    "aggregate",
    "collect",
    "render_report",
    "report_tables",
]
