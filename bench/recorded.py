"""Benchmark 2: recorded decisions — the Calculator against a bare hash-chained append loop.

Contenders, each into a fresh store in a fresh directory (set-up not timed):

``decide_many``
    :meth:`pricecalc.Calculator.decide_many` over the requests: decide, append, one
    group commit (one write, one fsync) for the whole batch.
``decide``
    :meth:`pricecalc.Calculator.decide` per request: each decision durable (write +
    fsync) before it is returned.
``limit, one fsync`` / ``limit, fsync per line``
    a bare loop writing *the same records* — payloads taken from a pricecalc run — as
    hash-chained canonical JSON lines (sorted keys, SHA-256 over the record without its
    hash, the previous hash chained in, a fresh id and timestamp) to a plain file: one
    fsync at the end, or one per line. No deciding, no validation, no index, no locks.

The requests are the subsidy_split requests of benchmark 1 (fixed seed). Goal: each
calculator mode within 3× of the limit with the same fsync policy.

Recording (issue 10) is everything ``decide_many`` does beyond deciding: two more
contenders run interleaved with the others over the same requests,

``evaluate only``
    the calculator's engine alone (``pricecalc.engine.evaluate_envelope(Envelope.parse(r), ...)``
    with the calculator's registry and rules policy, a clock reading per request, the
    decisions kept as ``decide_many`` keeps them);
``store only``
    the audit store fed the records' own entries (payload, key, tags, ``plain=True``) the
    way ``decide_many`` feeds it: one transaction, ``prefetch`` of the keys, then
    ``get`` and ``append`` per request, one commit;

recording = ``decide_many`` − ``evaluate only``, against the one-fsync limit: goal
≤ 2×, minimum ≤ 4×. Of the recording, ``store only`` is the store's part; the rest is the
calculator's (payload, tags, entry, the recorded decision).

Run: ``python -m bench.recorded [--quick]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import audit
from audit.protocol import Entry
from bench._common import interleaved, median, table, verdict, write_results
from bench.rules_vs_engine import make_requests
from pricecalc import Calculator, Policy, engine
from pricecalc.envelope import Envelope
from pricecalc.history import NO_HISTORY
from pricecalc.plugins import default_registry

GENESIS = "0" * 64


def _fresh_calculator(root: str) -> Calculator:
    directory = tempfile.mkdtemp(dir=root)
    return Calculator(
        os.path.join(directory, "audit.jsonl"),
        Policy(),
        operator="bench",
        registry=default_registry(),
    )


def recorded_entries(lines: Sequence[bytes]) -> list[tuple[Any, list[str], dict[str, Any]]]:
    """``(key, tags, payload)`` of every stored line: what the limit loop re-records."""
    out = []
    for line in lines:
        record = json.loads(line)
        out.append((record["key"], record["tags"], record["payload"]))
    return out


def limit_loop(
    entries: Sequence[tuple[Any, list[str], dict[str, Any]]], path: str, *, fsync_each: bool
) -> float:
    """Append ``entries`` as hash-chained canonical lines; seconds taken (file open excluded)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        start = time.perf_counter()
        prev = GENESIS
        pending: list[bytes] = []
        for seq, (key, tags, payload) in enumerate(entries, start=1):
            body = json.dumps(
                {
                    "seq": seq,
                    "id": uuid.uuid4().hex,
                    "recorded_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    "key": key,
                    "tags": tags,
                    "payload": payload,
                    "prev_hash": prev,
                },
                sort_keys=True,
                separators=(",", ":"),
                ensure_ascii=False,
            ).encode("utf-8")
            prev = hashlib.sha256(body).hexdigest()
            line = b'{"hash":"' + prev.encode("ascii") + b'",' + body[1:] + b"\n"
            if fsync_each:
                os.write(fd, line)
                os.fsync(fd)
            else:
                pending.append(line)
        if not fsync_each:
            os.write(fd, b"".join(pending))
            os.fsync(fd)
        return time.perf_counter() - start
    finally:
        os.close(fd)


def run(quick: bool = False) -> dict[str, Any]:
    n_many = 3_000 if quick else 10_000
    n_each = 300 if quick else 1_000
    requests = make_requests(max(n_many, n_each))
    root = tempfile.mkdtemp(prefix="pricecalc-bench-recorded-")
    try:
        # The records the limit loops re-write: the calculator's own, from a scratch run.
        scratch = _fresh_calculator(root)
        with scratch:
            scratch.decide_many(requests[:n_many])
            path = scratch.store.path  # type: ignore[attr-defined]
        with open(path, "rb") as fh:
            entries = recorded_entries(fh.readlines())

        def many() -> float:
            calc = _fresh_calculator(root)
            with calc:
                start = time.perf_counter()
                calc.decide_many(requests[:n_many])
                return time.perf_counter() - start

        def each() -> float:
            calc = _fresh_calculator(root)
            with calc:
                start = time.perf_counter()
                for request in requests[:n_each]:
                    calc.decide(request)
                return time.perf_counter() - start

        def limit_group() -> float:
            return limit_loop(entries[:n_many], tempfile.mktemp(dir=root), fsync_each=False)

        engine_calc = _fresh_calculator(root)

        def evaluate_only() -> float:
            kept = []
            registry, policy = engine_calc.registry, engine_calc.rules_policy
            operator = engine_calc.named_operator
            start = time.perf_counter()
            for request in requests[:n_many]:
                kept.append(
                    engine.evaluate_envelope(
                        Envelope.parse(request),
                        registry=registry,
                        policy=policy,
                        now=datetime.now(UTC),
                        history=NO_HISTORY,
                        operator=operator,
                    )
                )
            return time.perf_counter() - start

        store_entries = [
            Entry(payload, key=key, tags=tuple(tags), plain=True)
            for key, tags, payload in entries[:n_many]
        ]

        def store_only() -> float:
            directory = tempfile.mkdtemp(dir=root)
            with audit.open_store(os.path.join(directory, "audit.jsonl")) as store:
                start = time.perf_counter()
                with store.transaction() as tx:
                    tx.prefetch([e.key for e in store_entries if e.key is not None])
                    for item in store_entries:
                        if item.key is not None:
                            tx.get(item.key)
                        tx.append(item)
                return time.perf_counter() - start

        def limit_each() -> float:
            return limit_loop(entries[:n_each], tempfile.mktemp(dir=root), fsync_each=True)

        contenders: dict[str, Callable[[], object]] = {
            "Calculator.decide_many (group commit)": many,
            "evaluate only (same requests)": evaluate_only,
            "store only (same entries)": store_only,
            "limit, one fsync": limit_group,
            "Calculator.decide (fsync each)": each,
            "limit, fsync per line": limit_each,
        }
        counts = {
            "Calculator.decide_many (group commit)": n_many,
            "evaluate only (same requests)": n_many,
            "store only (same entries)": n_many,
            "limit, one fsync": n_many,
            "Calculator.decide (fsync each)": n_each,
            "limit, fsync per line": n_each,
        }
        rounds = 3 if quick else 5
        times = interleaved(contenders, rounds)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    med = {name: median(t) for name, t in times.items()}
    per = {name: med[name] / counts[name] * 1e6 for name in contenders}
    ratio_many = per["Calculator.decide_many (group commit)"] / per["limit, one fsync"]
    ratio_each = per["Calculator.decide (fsync each)"] / per["limit, fsync per line"]
    rows = [(name, counts[name], per[name], counts[name] / med[name]) for name in contenders]
    print(
        table(
            f"recorded decisions, median of {rounds} interleaved rounds",
            ("contender", "records", "µs/record", "records/s"),
            rows,
        )
    )
    recording = per["Calculator.decide_many (group commit)"] - per["evaluate only (same requests)"]
    store_part = per["store only (same entries)"]
    ratio_recording = recording / per["limit, one fsync"]
    goals = {
        "decide_many within 3x of the one-fsync limit": ratio_many <= 3,
        "decide within 3x of the fsync-per-line limit": ratio_each <= 3,
        "recording (decide_many - evaluate) <= 2x the one-fsync limit": ratio_recording <= 2,
        "recording <= 4x the one-fsync limit (minimum)": ratio_recording <= 4,
    }
    print(f"decide_many / limit: {ratio_many:.2f}×; decide / limit: {ratio_each:.2f}×")
    print(
        f"recording (decide_many - evaluate): {recording:.1f} µs/record = "
        f"{ratio_recording:.2f}× the one-fsync limit; of it the store {store_part:.1f} µs "
        f"({store_part / recording:.0%}), the calculator {recording - store_part:.1f} µs"
    )
    for goal, ok in goals.items():
        print(f"  {goal}: {verdict(ok)}")
    result = {
        "counts": counts,
        "rounds": rounds,
        "seconds": times,
        "median_seconds": med,
        "us_per_record": per,
        "ratios": {
            "decide_many_over_limit": ratio_many,
            "decide_over_limit": ratio_each,
            "recording_over_limit": ratio_recording,
        },
        "recording_us_per_record": {
            "total": recording,
            "store": store_part,
            "calculator": recording - store_part,
        },
        "goals": goals,
    }
    write_results("recorded", result)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer records and rounds")
    args = parser.parse_args(argv)
    run(quick=args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
