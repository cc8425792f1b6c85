"""Beyond one chain (docs/scaling.md): a small simulation of sharding by merchant.

Eight single-threaded writer processes decide requests of eight merchants; with ``K``
shards, merchant ``m`` records in shard ``m mod K`` (its own file store, its own chain and
Merkle tree). Measured: durable decisions/s for K = 1, 2, 4, 8, side by side. Then the
binding: every shard's (size, root) is named in one signed note (``pricecalc shard set``,
one line per shard) beside each shard's own C2SP checkpoint; a merchant's proof is its
shard's checkpoint plus the RFC 9162 inclusion path of its record, checked here — and the
top-tree alternative (a Merkle tree over the shard heads) is built too, to show the extra
proof it would cost.

Run: ``python -m bench.shards [--quick]``.
"""

from __future__ import annotations

import argparse
import base64
import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from bench._common import table, write_results
from bench.concurrency import _requests

WRITERS = 8


def _writer(targets: list[str], worker: int, count: int, start: Any, out: Any) -> None:
    from pricecalc import Calculator

    shard = targets[worker % len(targets)]
    calc = Calculator(shard, operator="bench")
    requests = _requests(count + 1, f"m{worker}")
    for request in requests:
        request["merchant_id"] = f"merchant-{worker}"
    calc.decide(requests[0])
    start.wait()
    began = time.perf_counter()
    for request in requests[1:]:
        calc.decide(request)
    out.put((began, time.perf_counter()))
    calc.close()


def sharded_rate(root: str, shards: int, per_writer: int) -> float:
    targets = [os.path.join(tempfile.mkdtemp(dir=root), "audit.jsonl") for _ in range(shards)]
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(WRITERS)
    out = context.Queue()
    pool = [
        context.Process(target=_writer, args=(targets, w, per_writer, start, out))
        for w in range(WRITERS)
    ]
    for process in pool:
        process.start()
    spans = [out.get(timeout=600) for _ in pool]
    for process in pool:
        process.join()
    return WRITERS * per_writer / (max(e for _, e in spans) - min(s for s, _ in spans))


def binding(root: str, shards: int = 4, per_shard: int = 50) -> dict[str, Any]:
    """Build ``shards`` small stores, bind their heads both ways, check a merchant proof."""
    from audit.merkle import inclusion_path, leaf_hash, root_of_leaves, verify_inclusion
    from pricecalc import Calculator

    heads = []
    stores = []
    for s in range(shards):
        path = os.path.join(tempfile.mkdtemp(dir=root), "audit.jsonl")
        calc = Calculator(path, operator="bench")
        calc.decide_many(
            [{**r, "merchant_id": f"merchant-{s}"} for r in _requests(per_shard, f"b{s}")]
        )
        stores.append(calc)
        heads.append((f"shard-{s}", calc.store.tree_size(), calc.store.root()))
    # One signed note naming every shard (the text that is signed; docs/scaling.md).
    note = "pricecalc shard set\n" + "".join(
        f"{name} {size} {base64.b64encode(root_hash).decode()}\n" for name, size, root_hash in heads
    )
    # A merchant's proof: its shard's checkpoint (size, root) + its record's inclusion path.
    calc = stores[2]
    record = calc.store.record(17)
    assert record is not None
    path = calc.store.inclusion_proof(17)
    size, shard_root = heads[2][1], heads[2][2]  # the store checked the path against it
    # The alternative: a top tree over the shard heads, and the extra path it costs.
    top_leaves = [leaf_hash(f"{n} {z} {r.hex()}".encode()) for n, z, r in heads]
    top_root = root_of_leaves(top_leaves)
    top_path = inclusion_path(2, len(top_leaves), _nodes_of(top_leaves))
    verify_inclusion(top_leaves[2], 2, len(top_leaves), top_path, top_root)
    for store in stores:
        store.close()
    return {
        "shards": shards,
        "note_bytes": len(note.encode()),
        "merchant_proof_hashes": len(path),
        "shard_size": size,
        "shard_root": shard_root.hex(),
        "top_tree_extra_hashes": len(top_path),
    }


def _nodes_of(leaves: Sequence[bytes]) -> Any:
    """A NodeSource over ``leaves`` (``(level, index)`` → hash), computed on demand."""
    from audit.merkle import root_of_leaves

    def source(wanted: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        out = {}
        for level, index in wanted:
            lo = index << level
            out[(level, index)] = root_of_leaves(leaves[lo : lo + (1 << level)])
        return out

    return source


def run(quick: bool = False) -> dict[str, Any]:
    per_writer = 60 if quick else 200
    root = tempfile.mkdtemp(prefix="pricecalc-bench-shards-")
    try:
        rates = {k: sharded_rate(root, k, per_writer) for k in (1, 2, 4, 8)}
        bound = binding(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(
        table(
            f"{WRITERS} writer processes, merchants sharded over K file stores",
            ("K shards", "durable decisions/s", "vs one chain"),
            [(k, r, f"{r / rates[1]:.2f}x") for k, r in rates.items()],
        )
    )
    print(
        f"binding {bound['shards']} shards: signed note {bound['note_bytes']} bytes; a "
        f"merchant's proof {bound['merchant_proof_hashes']} hashes in a shard of "
        f"{bound['shard_size']}; a top tree would add {bound['top_tree_extra_hashes']}"
    )
    data = {"rates": rates, "binding": bound}
    write_results("shards", data)
    return data


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.shards", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    run(quick=parser.parse_args(argv).quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
