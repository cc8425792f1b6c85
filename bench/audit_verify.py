"""Benchmark: verify at the speed of the disk, the tree's cost on an append, bytes per record.

Three measurements on pricecalc's own records (the subsidy_split requests of benchmark 1,
decided by a :class:`pricecalc.Calculator` into an unkeyed TinyDB store — set-up, not timed):

``verify``
    :meth:`audit.TinyDBAuditStore.verify` (the byte-level default: every line's bytes
    hashed and compared with its hash, every link, the Merkle tree recomputed and compared
    with the tree kept in the index) against **SHA-256 over each stored line** of the same
    file, read the same way (:func:`audit.logfile.read_blocks`) in the same process.
    ``verify --deep`` (every record re-derived in canonical form) is shown beside them.
    Goal: verify's rate ≥ 50 % of the SHA-256 rate (minimum 30 %).
``tree``
    ``append_many`` of the same records (their payloads, keys and tags as pricecalc made
    them, ``Entry(plain=True)``) into a fresh store, with the Merkle tree maintained, and
    with the tree step (:func:`audit.chain.grow`) replaced by a no-op — here only, by a
    monkeypatch. The difference of the two is noisy on a shared machine (a few percent
    either way), so the tree step is also timed inside the same appends (its seconds over
    the rest of the append's). Goal: the tree adds ≤ 10 % to an append.
``bytes``
    bytes per record in the log and in the sidecar index (and, where SQLite's ``dbstat``
    table is compiled in, per index table).

Contenders run interleaved, several rounds, medians (bench/_common.py).

Run: ``python -m bench.audit_verify [--quick] [--records N]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from unittest import mock

import audit
import audit.chain
import audit.logfile
from audit.protocol import Entry
from bench._common import interleaved, median, table, verdict, write_results
from bench.rules_vs_engine import make_requests
from pricecalc import Calculator, Policy
from pricecalc.plugins import default_registry

CHUNK = 5_000  # requests per decide_many while filling the store


def fill_store(path: str, count: int) -> None:
    """``count`` pricecalc subsidy_split decisions in a fresh unkeyed store at ``path``."""
    requests = make_requests(count)
    with Calculator(path, Policy(), operator="bench", registry=default_registry()) as calc:
        for start in range(0, count, CHUNK):
            calc.decide_many(requests[start : start + CHUNK])


def stored_entries(path: str) -> list[Entry]:
    """The entries pricecalc appended (payload, key, tags), read back from the log."""
    out = []
    with open(path, "rb") as fh:
        for line in fh:
            record = json.loads(line)
            out.append(
                Entry(record["payload"], key=record["key"], tags=tuple(record["tags"]), plain=True)
            )
    return out


def sha256_lines(path: str, end: int) -> int:
    """The baseline: SHA-256 over each stored line, read as verify reads them (blocks of
    lines, :func:`audit.logfile.read_blocks`; before it existed, line by line)."""
    sha256 = hashlib.sha256
    count = 0
    blocks = getattr(audit.logfile, "read_blocks", None)
    if blocks is None:  # an older audit package (a "before" figure)
        blocks = lambda p, e: [list(audit.logfile.read_lines(p, e))]  # noqa: E731
    for block in blocks(path, end):
        for line in block:
            sha256(line).digest()
        count += len(block)
    return count


def _no_tree(tree: Any, leaves: Iterable[bytes], min_level: int = 0) -> list[tuple[int, bytes]]:
    for _ in leaves:
        pass
    return []


def index_bytes(path: str) -> tuple[int, dict[str, int]]:
    """Size of the sidecar index (with its -wal) and, if SQLite can tell, per table."""
    total = sum(
        os.path.getsize(path + suffix)
        for suffix in (".idx", ".idx-wal")
        if os.path.exists(path + suffix)
    )
    tables: dict[str, int] = {}
    try:
        with sqlite3.connect(path + ".idx") as conn:
            rows = conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
        tables = {str(name): int(size) for name, size in rows}
    except sqlite3.Error:
        pass  # dbstat not compiled in
    return total, tables


def run(quick: bool = False, records: int | None = None) -> dict[str, Any]:
    count = records or (20_000 if quick else 100_000)
    appended = 3_000 if quick else 10_000
    rounds = 5 if quick else 7
    root = tempfile.mkdtemp(prefix="pricecalc-bench-verify-")
    try:
        path = os.path.join(root, "audit.jsonl")
        started = time.perf_counter()
        fill_store(path, count)
        print(f"(filled {count:,} records in {time.perf_counter() - started:.1f} s)", flush=True)
        end = os.path.getsize(path)
        log_bytes = end
        idx_total, idx_tables = index_bytes(path)
        entries = stored_entries(path)[:appended]
        store = audit.TinyDBAuditStore(path)

        def verify() -> None:
            report = store.verify()
            assert report.ok and report.count == count, report

        def verify_deep() -> None:
            report = store.verify(deep=True)
            assert report.ok and report.count == count, report

        def baseline() -> None:
            assert sha256_lines(path, end) == count

        tree_shares: list[float] = []
        real_grow = audit.chain.grow

        def timed_grow(tree: Any, leaves: Iterable[bytes], min_level: int = 0) -> Any:
            start = time.perf_counter()
            try:
                return real_grow(tree, leaves, min_level)
            finally:
                in_tree.append(time.perf_counter() - start)

        in_tree: list[float] = []

        def append_many(with_tree: bool) -> Callable[[], float]:
            def call() -> float:
                target = tempfile.mkdtemp(dir=root)
                with audit.TinyDBAuditStore(os.path.join(target, "a.jsonl")) as fresh:
                    patch = mock.patch.object(
                        audit.chain, "grow", timed_grow if with_tree else _no_tree
                    )
                    with patch:
                        in_tree.clear()
                        start = time.perf_counter()
                        fresh.append_many(entries)
                        elapsed = time.perf_counter() - start
                    if with_tree:  # the tree step's share of this very append
                        tree_shares.append(sum(in_tree) / (elapsed - sum(in_tree)))
                shutil.rmtree(target, ignore_errors=True)
                return elapsed

            return call

        try:
            times = interleaved(
                {
                    "verify (byte-level)": verify,
                    "SHA-256 over each line": baseline,
                    "verify --deep": verify_deep,
                    "append_many, with the tree": append_many(True),
                    "append_many, tree step a no-op": append_many(False),
                },
                rounds,
            )
        finally:
            store.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    med = {name: median(t) for name, t in times.items()}
    counts = {name: (appended if name.startswith("append") else count) for name in med}
    rows = [
        (name, counts[name], med[name] / counts[name] * 1e6, counts[name] / med[name])
        for name in med
    ]
    print(
        table(
            f"verify and append, {count:,} pricecalc records, median of {rounds} interleaved "
            "rounds",
            ("contender", "records", "µs/record", "records/s"),
            rows,
        )
    )
    verify_share = med["SHA-256 over each line"] / med["verify (byte-level)"]
    deep_share = med["SHA-256 over each line"] / med["verify --deep"]
    tree_cost = med["append_many, with the tree"] / med["append_many, tree step a no-op"] - 1
    tree_share = median(tree_shares)
    per_log = log_bytes / count
    per_idx = idx_total / count
    print(
        f"verify rate / SHA-256-per-line rate: {verify_share:.0%} (deep: {deep_share:.0%}); "
        f"the tree adds {tree_cost:+.1%} to append_many (against a no-op tree step, "
        f"interleaved), {tree_share:.1%} (timed inside the same appends)"
    )
    print(f"bytes per record: log {per_log:,.0f}, index {per_idx:,.0f}")
    if idx_tables:
        print(
            "  index by table (bytes/record): "
            + ", ".join(f"{name} {size / count:.1f}" for name, size in sorted(idx_tables.items()))
        )
    goals = {
        "verify >= 50% of the SHA-256-per-line rate": verify_share >= 0.5,
        "verify >= 30% of the SHA-256-per-line rate (minimum)": verify_share >= 0.3,
        "the tree adds <= 10% to append_many (timed inside the appends)": tree_share <= 0.10,
    }
    for goal, ok in goals.items():
        print(f"  {goal}: {verdict(ok)}")
    result = {
        "records": count,
        "appended": appended,
        "rounds": rounds,
        "seconds": times,
        "median_seconds": med,
        "verify_share_of_sha256": verify_share,
        "deep_share_of_sha256": deep_share,
        "tree_cost": tree_cost,
        "tree_share": tree_share,
        "bytes_per_record": {
            "log": per_log,
            "index": per_idx,
            "index_tables": {name: size / count for name, size in idx_tables.items()},
        },
        "goals": goals,
    }
    write_results("audit_verify", result)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="20,000 records, fewer rounds")
    parser.add_argument("--records", type=int, help="records in the verified store")
    args = parser.parse_args(argv)
    run(quick=args.quick, records=args.records)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
