"""A store written by 0.2 after the upgrade to keys by meaning (issue 21 point 1, SPEC §7).

tests/fixtures/0.2 holds a store 0.2 wrote (raw-spelling ``content-<32 hex>`` keys, voids
without target, ``~void-`` successors) and the files that made it: re-running them now
records nothing — the raw-spelling keys are looked up beside the ``content-v2-`` ones.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_support import ROOT, Invoke, store_count

OLD = ROOT / "tests" / "fixtures" / "0.2"


@pytest.mark.parametrize("name", ["decided-by-0.2.jsonl", "voids-by-0.2.jsonl"])
def test_a_file_decided_by_0_2_records_nothing_new(
    invoke: Invoke, store: Path, tmp_path: Path, name: str
) -> None:
    """SPEC §7: keys written by earlier versions are still recognised, so re-running an
    old file after the upgrade records nothing new, and the chain still verifies."""
    shutil.copy(OLD / "store-0.2.jsonl", store)
    before = store_count(store)
    result = invoke("batch", str(OLD / name), "-o", "out.jsonl")
    assert result.exit_code == 0, result.output
    assert store_count(store) == before
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert all(row.get("replayed") for row in rows), rows
    assert invoke("audit", "verify").exit_code == 0


def test_a_0_2_request_respelt_under_its_request_id_replays(
    invoke: Invoke, store: Path, tmp_path: Path
) -> None:
    """SPEC §7: a request recorded by 0.2 and sent again respelt (68 for "68.00", the
    order id without its spaces trimmed differently) under its request_id is the same
    request by meaning: a replay of the current successor, not a conflict."""
    shutil.copy(OLD / "store-0.2.jsonl", store)
    before = store_count(store)
    request = {"kind": "forwarding_clawback", "request_id": "fw-1", "merchant_id": "M-3",
               "input": {"order_id": "O-88", "category": "手机", "platform_subsidy": 200,
                         "quantity": "2", "forwarded": "true"}}  # fmt: skip
    (tmp_path / "respelt.jsonl").write_text(json.dumps(request, ensure_ascii=False) + "\n")
    result = invoke("batch", "respelt.jsonl", "-o", "out.jsonl")
    assert result.exit_code == 0, result.output
    assert store_count(store) == before
    [row] = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert row["replayed"] is True
    assert row["request_id"] == "fw-1~void-9"
