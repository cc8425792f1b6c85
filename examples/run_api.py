"""Run the bundled example requests through the Python API and print the decisions.

Used by `make run` until the command line exists; shows what a checkout script does:
decide each request (recorded before it is returned), and report invalid input clearly.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pricecalc
from pricecalc.serialize import loads

HERE = Path(__file__).resolve().parent


def main() -> int:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "quickstart.jsonl"
    store = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("pricecalc-audit.jsonl")
    requests = [loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line]
    with pricecalc.Calculator(store) as calc:
        for item in calc.decide_many(requests, on_invalid="collect"):
            if item.error is not None:
                out = {"line": item.index + 1, "status": "invalid", "error": str(item.error)}
            else:
                assert item.decision is not None
                out = item.decision.to_dict()
            print(json.dumps(out, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
