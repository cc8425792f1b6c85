"""Helpers for the command-line tests: sample requests of every built-in kind, a way to
run ``python -m pricecalc``, and store inspection. (Fixtures are in conftest.py; this
module has its own name because several test folders have a conftest.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from click.testing import Result

ROOT = Path(__file__).resolve().parents[2]

#: Environment variables that would change what a command does; unset in every test.
CLEAN_ENV: dict[str, str | None] = {
    "COLUMNS": None,
    "PRICECALC_AUDIT": None,
    "PRICECALC_AUDIT_KEY": None,
    "PRICECALC_BATCH_CHUNK_SIZE": None,
    # the language of messages (docs/cli.md "Language"): English unless a test asks
    "LANGUAGE": None,
    "LC_ALL": None,
    "LC_MESSAGES": None,
    "LANG": None,
}

SPLIT = {
    "kind": "subsidy_split",
    "request_id": "split-1",
    "input": {
        "list_price": "199.00",
        "registration_price": "169.00",
        "subsidy_price": "149.00",
        "floor_price": "139.00",
        "cost_price": "120.00",
        "lowest_price_30d": "175.00",
        "other_platform_prices": [{"platform": "百亿补贴", "price": "172.00"}],
        "quantity": 2,
    },
}
SPLIT_REJECTED = {
    "kind": "subsidy_split",
    "request_id": "split-2",
    "input": {
        "list_price": "99.00",
        "registration_price": "109.00",
        "subsidy_price": "89.00",
        "floor_price": "85.00",
        "cost_price": "90.00",
    },
}
CLAIM = {
    "kind": "price_protection",
    "request_id": "claim-1",
    "input": {
        "order_id": "O-1",
        "paid_at": "2026-11-11T10:00",
        "claimed_at": "2026-11-12T09:00",
        "order_status": "paid",
        "event": {"start": "2026-11-10T00:00", "end": "2026-11-12T23:59:59"},
        "lines": [{"line_id": "L1", "sku": "A", "quantity": 2, "unit_price": "100.00"}],
        "offers": [
            {"type": "coupon", "amount": "10.00", "threshold": "100.00"},
            {"type": "direct_drop", "sku": "A", "unit_price": "90.00", "at": "2026-11-11T20:00"},
            {
                "type": "flash_sale",
                "sku": "A",
                "unit_price": "79.00",
                "start": "2026-11-11T12:00",
                "end": "2026-11-11T14:00",
            },
        ],
    },
}
COUNTERFEIT = {
    "kind": "counterfeit_compensation",
    "request_id": "cf-1",
    "input": {
        "order_id": "O-77",
        "confirmed": True,
        "lines": [{"line_id": "L1", "paid_amount": "68.00"}],
    },
}
CLAWBACK = {
    "kind": "forwarding_clawback",
    "request_id": "fw-1",
    "input": {
        "order_id": "O-88",
        "category": "手机",
        "platform_subsidy": "200.00",
        "quantity": 2,
        "forwarded": True,
    },
}


def jsonl(*requests: Any) -> str:
    """A JSON Lines text: dicts are dumped, strings are taken as raw lines."""
    return "".join(
        (r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in requests
    )


Invoke = Callable[..., Result]


def store_count(path: Path) -> int:
    """Records in a TinyDB audit store file (one JSON line each)."""
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def run_pricecalc(
    args: Sequence[str], *, cwd: Path, input: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """``python -m pricecalc ARGS`` as a real process."""
    environ = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "pricecalc", *args],
        cwd=cwd,
        input=input,
        capture_output=True,
        env=environ,
        timeout=300,
        check=False,
    )
