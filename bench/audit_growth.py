"""Benchmark: the audit store's append cost stays flat as the store grows.

Not a test (nothing here asserts a time). For each size the store is pre-filled through its
own group-commit path (``append_many`` in batches of 10,000 valid, chained, keyed records),
then reopened, and we time:

* ``group``: 2,000 appends as 20 group commits of 100 (one write + one fsync each),
* ``single``: 200 single durable appends (one fsync each, idempotency key checked),
* ``get``: 200 lookups by idempotency key,
* ``verify``: a full verify of the chain (records/s),

and record the peak memory: ``ru_maxrss`` of the process (each size runs in a fresh one;
it includes the 10,000-record pre-fill batches) and the ``tracemalloc`` peak while
opening the store and doing 50 keyed appends and 50 lookups (untimed).

TinyDB's stock ``JSONStorage`` gets the same payloads for comparison, at small sizes only:
each of its inserts reads and rewrites the whole file, so filling it is O(n²).

Run ``python -m bench.audit_growth`` (sizes 10³, 10⁵, 10⁶; stock 10³, 10⁴) or with
``--quick`` (10³, 10⁴; stock 10³). Prints a table and writes bench/results/audit_growth.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "audit_growth.json"
PREFILL_BATCH = 10_000
GROUP_APPENDS, GROUP_SIZE = 2_000, 100
SINGLE_APPENDS = 200
LOOKUPS = 200
TRACED_APPENDS = 50


def payload(n: int) -> dict[str, Any]:
    """A payload shaped like a pricecalc decision (about 400 bytes of JSON)."""
    return {
        "kind": "subsidy_split",
        "status": "approved",
        "request": {
            "request_id": f"req-{n}",
            "input": {"order_id": f"O{n}", "lines": [{"line_id": "L1", "paid_amount": "39.90"}]},
        },
        "result": {"platform_share": "12.00", "merchant_share": "8.00", "total": "20.00"},
        "reasons": [{"code": "OK", "message": "subsidy split by policy"}],
        "rules": {"set": "chaozhigou", "version": "2025.06"},
        "operator": "bench",
    }


def _rss_mb() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def measure_audit(size: int, workdir: str) -> dict[str, Any]:
    """Run in a fresh process: fill to ``size`` records, then time appends, lookups, verify."""
    import audit

    path = os.path.join(workdir, f"audit-{size}.jsonl")
    store = audit.TinyDBAuditStore(path)
    started = time.perf_counter()
    for start in range(0, size, PREFILL_BATCH):
        stop = min(size, start + PREFILL_BATCH)
        store.append_many(
            [
                audit.Entry(payload(n), key=f"req-{n}", tags=(f"order:O{n}",))
                for n in range(start, stop)
            ]
        )
    prefill_s = time.perf_counter() - started
    store.close()

    started = time.perf_counter()
    store = audit.TinyDBAuditStore(path)
    open_s = time.perf_counter() - started
    started = time.perf_counter()
    for i in range(SINGLE_APPENDS):
        store.append(audit.Entry(payload(size + i), key=f"single-{i}"))
    single_s = time.perf_counter() - started
    store.close()

    # Memory of opening the (big) store and appending to it, traced separately so that
    # tracemalloc's overhead does not count in the timings.
    tracemalloc.start()
    store = audit.TinyDBAuditStore(path)
    for i in range(TRACED_APPENDS):
        store.append(audit.Entry(payload(size + i), key=f"traced-{i}"))
        store.get(f"req-{i}")
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    started = time.perf_counter()
    for start in range(0, GROUP_APPENDS, GROUP_SIZE):
        store.append_many(
            [audit.Entry(payload(n), key=f"group-{n}") for n in range(start, start + GROUP_SIZE)]
        )
    group_s = time.perf_counter() - started

    rng = random.Random(size)
    keys = [f"req-{rng.randrange(size)}" for _ in range(LOOKUPS)]
    started = time.perf_counter()
    for key in keys:
        assert store.get(key) is not None
    get_s = time.perf_counter() - started

    started = time.perf_counter()
    report = store.verify()
    verify_s = time.perf_counter() - started
    assert report.ok, report
    store.close()
    file_mb = os.path.getsize(path) / 1e6
    index_mb = os.path.getsize(path + ".idx") / 1e6
    return {
        "records": size,
        "prefill_records_per_s": round(size / prefill_s),
        "open_ms": round(open_s * 1e3, 2),
        "single_append_us": round(single_s / SINGLE_APPENDS * 1e6, 1),
        "group_append_us_per_record": round(group_s / GROUP_APPENDS * 1e6, 1),
        "get_us": round(get_s / LOOKUPS * 1e6, 1),
        "verify_records_per_s": round(report.count / verify_s),
        "tracemalloc_peak_open_and_append_kb": round(traced_peak / 1024, 1),
        "peak_rss_mb": round(_rss_mb(), 1),
        "file_mb": round(file_mb, 1),
        "index_mb": round(index_mb, 1),
    }


def measure_stock(size: int, workdir: str) -> dict[str, Any]:
    """TinyDB's stock JSONStorage with the same documents (pre-filled by writing its file)."""
    from tinydb import TinyDB

    path = os.path.join(workdir, f"stock-{size}.json")
    docs = {str(n + 1): {"key": f"req-{n}", "payload": payload(n)} for n in range(size)}
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"_default": docs}, fh)
    del docs
    db = TinyDB(path)
    started = time.perf_counter()
    for i in range(SINGLE_APPENDS):
        db.insert({"key": f"single-{i}", "payload": payload(size + i)})
    single_s = time.perf_counter() - started
    started = time.perf_counter()
    for start in range(0, GROUP_APPENDS, GROUP_SIZE):
        db.insert_multiple(
            {"key": f"group-{n}", "payload": payload(n)} for n in range(start, start + GROUP_SIZE)
        )
    group_s = time.perf_counter() - started
    db.close()
    return {
        "records": size,
        "single_append_us": round(single_s / SINGLE_APPENDS * 1e6, 1),
        "group_append_us_per_record": round(group_s / GROUP_APPENDS * 1e6, 1),
        "peak_rss_mb": round(_rss_mb(), 1),
        "file_mb": round(os.path.getsize(path) / 1e6, 1),
    }


def _isolated(func: Any, size: int, workdir: str) -> dict[str, Any]:
    """Run ``func(size, workdir)`` in a fresh process, so peak RSS is per size."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        result: dict[str, Any] = pool.submit(func, size, workdir).result()
    return result


def _table(title: str, rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    header = [label for _, label in columns]
    body = [
        [f"{row[key]:,}" if isinstance(row[key], int) else str(row[key]) for key, _ in columns]
        for row in rows
    ]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    lines = [title, "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes (10^3, 10^4)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    parser.add_argument("--dir", help="work directory (default: a temporary one)")
    args = parser.parse_args(argv)
    sizes = [1_000, 10_000] if args.quick else [1_000, 100_000, 1_000_000]
    stock_sizes = [1_000] if args.quick else [1_000, 10_000]

    workdir = args.dir or tempfile.mkdtemp(prefix="audit-growth-")
    try:
        ours = []
        for size in sizes:
            print(f"audit store: {size:,} records ...", file=sys.stderr, flush=True)
            ours.append(_isolated(measure_audit, size, workdir))
        stock = []
        for size in stock_sizes:
            print(f"stock TinyDB JSONStorage: {size:,} records ...", file=sys.stderr, flush=True)
            stock.append(_isolated(measure_stock, size, workdir))
    finally:
        if args.dir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    print(
        _table(
            "audit.TinyDBAuditStore (JSON Lines + sidecar index)",
            ours,
            [
                ("records", "records"),
                ("single_append_us", "single µs"),
                ("group_append_us_per_record", "group µs/rec"),
                ("get_us", "get µs"),
                ("open_ms", "open ms"),
                ("verify_records_per_s", "verify rec/s"),
                ("tracemalloc_peak_open_and_append_kb", "traced KiB"),
                ("peak_rss_mb", "RSS MB"),
                ("file_mb", "file MB"),
                ("index_mb", "index MB"),
            ],
        )
    )
    print()
    print(
        _table(
            "TinyDB stock JSONStorage (same payloads)",
            stock,
            [
                ("records", "records"),
                ("single_append_us", "single µs"),
                ("group_append_us_per_record", "group µs/rec"),
                ("peak_rss_mb", "RSS MB"),
                ("file_mb", "file MB"),
            ],
        )
    )
    result = {
        "benchmark": "audit_growth",
        "quick": args.quick,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "method": {
            "prefill_batch": PREFILL_BATCH,
            "group_appends": GROUP_APPENDS,
            "group_size": GROUP_SIZE,
            "single_appends": SINGLE_APPENDS,
            "lookups": LOOKUPS,
        },
        "audit_store": ours,
        "tinydb_stock": stock,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
