"""pricecalc — the money rules of Douyin's 超值购 subsidy campaign, with an audit trail.

>>> import pricecalc
>>> d = pricecalc.evaluate({"kind": "counterfeit_compensation", "input": {
...     "order_id": "O1", "confirmed": True,
...     "lines": [{"line_id": "L1", "paid_amount": "39.90"}]}})
>>> d.status, d.result["payout_total"]
('approved', '539.90')
"""

from __future__ import annotations

from pricecalc import _moved  # noqa: F401  (the old module names, until 0.4)
from pricecalc.calculator import BatchItem, Calculator
from pricecalc.decision import AuditRef, Decision, Outcome, Reason
from pricecalc.engine import Engine, evaluate
from pricecalc.errors import (
    IdempotencyConflict,
    InvalidInput,
    PluginError,
    PolicyError,
    PricecalcError,
)
from pricecalc.hookspecs import hookimpl
from pricecalc.policy import Policy

__version__ = "0.3.0"

__all__ = [
    "AuditRef",
    "BatchItem",
    "Calculator",
    "Decision",
    "Engine",
    "IdempotencyConflict",
    "InvalidInput",
    "Outcome",
    "PluginError",
    "Policy",
    "PolicyError",
    "PricecalcError",
    "Reason",
    "__version__",
    "evaluate",
    "hookimpl",
]
