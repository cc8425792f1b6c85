"""The Python-API example a checkout script would copy (examples/run_api.py) runs as shown."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_checkout_script_example(tmp_path: Path) -> None:
    """Each request gives one decision line, recorded; the invalid line says why (SPEC §8)."""
    store = tmp_path / "audit.jsonl"
    script = ROOT / "examples" / "run_api.py"
    requests = ROOT / "examples" / "quickstart.jsonl"
    out = subprocess.run(
        [sys.executable, str(script), str(requests), str(store)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.splitlines()
    rows = [json.loads(line) for line in out]
    assert [(r.get("request_id"), r["status"]) for r in rows] == [
        ("qs-1", "approved"),
        ("qs-2", "rejected"),
        ("qs-3", "approved"),
        ("qs-4", "approved"),
        ("qs-5", "approved"),
        (None, "invalid"),
    ]
    assert rows[2]["result"]["refund_total"] == "42.00"
    assert rows[3]["result"]["payout_total"] == "1287.90"
    assert rows[4]["result"]["clawback"] == "150.00"
    assert rows[5] == {
        "line": 6,
        "status": "invalid",
        "error": "input.lines[0].paid_amount: has more than two decimals "
        "(fen is the smallest unit) (got '1.001')",
    }
    assert [r["audit"]["seq"] for r in rows[:5]] == [1, 2, 3, 4, 5]
    assert len(store.read_text(encoding="utf-8").splitlines()) == 5
