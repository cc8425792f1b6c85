"""Benchmark: the audit store on PostgreSQL next to the embedded TinyDB store.

Not a test (nothing here asserts a time). For each backend, on one store that grows as the
scenarios run, we time:

* ``single``: durable appends one at a time (one commit / fsync each, idempotency key
  checked), with 1 writer and with 8 writer processes;
* ``batch``: ``append_many`` of 100 records (one commit each), 1 and 8 writers;
* ``verify``: a full verify of everything appended above (records/s).

With 8 writers every process opens its own handle, waits at a barrier, and the rate is
all records over the span from the first start to the last finish.

PostgreSQL: the server at ``PRICECALC_BENCH_PG`` (else ``PRICECALC_TEST_PG``, else
``postgresql://postgres@127.0.0.1:5432/postgres``), a superuser URL. The benchmark creates
a database of its own, initialises it with :func:`audit.init_store`, writes as the
application role where the server lets it log in, and drops the database at the end.

Groups (issue 22): ``--groups`` times PostgreSQL alone, one transaction per group —
``tx.prefetch`` of the group's keys, then ``tx.append`` per record, as
``Calculator.decide_prepared`` and the grouped ``decide`` record — for groups of 1, 8 and
64 records and 1, 2, 4 and 8 writer processes, side by side in one run (records/s). It
also times, for groups of 64, how a group's rows are sent: ``bulk`` (the store: pipelined
INSERTs with the COMMIT), ``copy`` (COPY, then COMMIT) and ``each`` (every append sent as
it comes, as before issue 22). Writes bench/results/audit_postgres_groups.json.

``--ceiling`` times the same groups (bulk only) with 1, 2, 4, 8 and 16 writer processes:
the ceiling of one chain on PostgreSQL (docs/scaling.md); writes
bench/results/audit_postgres_ceiling.json.

``--decide`` runs ``Calculator.decide`` in 1 and 8 single-threaded processes (as
bench/concurrency.py's PostgreSQL row does), alternating on fresh databases, and reports
decisions/s with the CPU per decision of the processes and of their database backends
(from ``/proc``): the figure that stays comparable when the machine is shared; writes
bench/results/audit_postgres_decide.json.

Run ``python -m bench.audit_postgres`` or with ``--quick`` (a fifth of the records).
Prints a table and writes bench/results/audit_postgres.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import audit
from bench.rules_vs_engine import keyed_requests
from pricecalc import Calculator

RESULTS = Path(__file__).resolve().parent / "results" / "audit_postgres.json"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
WRITERS = 8
BATCH = 100
SPAWN = multiprocessing.get_context("spawn")

# records per scenario (full run); --quick divides by 5
SIZES = {"single_1": 2_000, "single_8": 4_000, "batch_1": 20_000, "batch_8": 40_000}


def payload(n: int, writer: int) -> dict[str, Any]:
    """A payload shaped like a pricecalc decision (about 450 bytes of JSON)."""
    return {
        "kind": "price_protection",
        "status": "approved",
        "request": {
            "request_id": f"req-{writer}-{n}",
            "input": {"order_id": f"O{n}", "lines": [{"line_id": "L1", "unit_price": "99.00"}]},
        },
        "result": {"refund_total": "10.00", "lines": [{"line_id": "L1", "refund": "10.00"}]},
        "reasons": [],
        "rules": {"set": "chaozhigou", "version": "2025.06"},
        "policy": {"claim_days": 15},
        "operator": f"bench-{writer}",
    }


def entries(writer: int, start: int, count: int, scenario: str) -> list[audit.Entry]:
    return [
        audit.Entry(
            payload(n, writer), key=f"{scenario}-{writer}-{n}", tags=(f"order:O{n % 1000}",)
        )
        for n in range(start, start + count)
    ]


def work(target: str, writer: int, count: int, batch: int, scenario: str, start: Any) -> Any:
    """One writer: open a handle, wait for the others, append ``count`` records in groups of
    ``batch`` (1 = single durable appends). Returns (started, finished) wall-clock times."""
    store = audit.open_store(target)
    try:
        todo = [entries(writer, i, min(batch, count - i), scenario) for i in range(0, count, batch)]
        start.wait()
        began = time.time()
        for group in todo:
            if batch == 1:
                store.append(group[0])
            else:
                store.append_many(group)
        return began, time.time()
    finally:
        store.close()


def run_scenario(target: str, writers: int, count: int, batch: int, scenario: str) -> float:
    """Records per second for ``count`` records written by ``writers`` processes."""
    each = count // writers
    with SPAWN.Manager() as manager, ProcessPoolExecutor(writers, mp_context=SPAWN) as pool:
        start = manager.Barrier(writers)
        futures = [
            pool.submit(work, target, w, each, batch, scenario, start) for w in range(writers)
        ]
        spans = [f.result() for f in futures]
    elapsed = max(end for _, end in spans) - min(began for began, _ in spans)
    return each * writers / elapsed


def measure(target: str, scale: float) -> dict[str, Any]:
    sizes = {name: max(WRITERS * BATCH, round(n * scale)) for name, n in SIZES.items()}
    sizes["single_1"] = max(200, round(SIZES["single_1"] * scale))
    result: dict[str, Any] = {}
    result["single_1_writer_appends_per_s"] = round(
        run_scenario(target, 1, sizes["single_1"], 1, "s1")
    )
    result["single_8_writers_appends_per_s"] = round(
        run_scenario(target, WRITERS, sizes["single_8"], 1, "s8")
    )
    result["batch100_1_writer_records_per_s"] = round(
        run_scenario(target, 1, sizes["batch_1"], BATCH, "b1")
    )
    result["batch100_8_writers_records_per_s"] = round(
        run_scenario(target, WRITERS, sizes["batch_8"], BATCH, "b8")
    )
    store = audit.open_store(target)
    try:
        began = time.perf_counter()
        report = store.verify()
        elapsed = time.perf_counter() - began
    finally:
        store.close()
    assert report.ok, report
    result["verify_records"] = report.count
    result["verify_records_per_s"] = round(report.count / elapsed)
    return result


# -- groups (issue 22) --------------------------------------------------------------------

GROUP_SIZES = (1, 8, 64)
GROUP_WRITERS = (1, 2, 4, 8)
CEILING_WRITERS = (1, 2, 4, 8, 16)
GROUPS_RESULTS = RESULTS.with_name("audit_postgres_groups.json")
# records per writer count and group size (full run); --quick divides by 5
GROUP_RECORDS = {1: 1_200, 8: 6_400, 64: 25_600}


def _send_mode(mode: str) -> None:
    """Make this process's PostgreSQL writer send a group's rows as ``mode`` says."""
    from audit import pg_writer

    if mode == "copy":
        pg_writer._COPY_FROM = 2
    elif mode == "each":
        keep = pg_writer._Writer._keep

        def keep_and_send(self: Any, sealed: Any, nodes: Any) -> None:
            keep(self, sealed, nodes)
            self._send()

        pg_writer._Writer._keep = keep_and_send  # type: ignore[method-assign]


def group_work(
    target: str, writer: int, groups: int, size: int, scenario: str, mode: str, start: Any
) -> Any:
    """One writer: ``groups`` transactions of ``size`` records each (prefetch, then one
    append per record). Returns (started, finished) wall-clock times."""
    _send_mode(mode)
    store = audit.open_store(target)
    try:
        todo = [entries(writer, g * size, size, scenario) for g in range(groups)]
        start.wait()
        began = time.time()
        for group in todo:
            with store.transaction() as tx:
                tx.prefetch([e.key for e in group if e.key is not None])
                for item in group:
                    tx.append(item)
        return began, time.time()
    finally:
        store.close()


def run_groups(target: str, writers: int, records: int, size: int, mode: str) -> float:
    """Records per second for about ``records`` records in groups of ``size``."""
    groups = max(1, records // (writers * size))
    scenario = f"g{size}-{writers}-{mode}"
    with SPAWN.Manager() as manager, ProcessPoolExecutor(writers, mp_context=SPAWN) as pool:
        start = manager.Barrier(writers)
        futures = [
            pool.submit(group_work, target, w, groups, size, scenario, mode, start)
            for w in range(writers)
        ]
        spans = [f.result() for f in futures]
    elapsed = max(end for _, end in spans) - min(began for began, _ in spans)
    return groups * size * writers / elapsed


def measure_groups(
    target: str,
    scale: float,
    writer_counts: tuple[int, ...] = GROUP_WRITERS,
    bulk_only: bool = False,
) -> dict[str, Any]:
    """The matrix: {"bulk": {size: {writers: records/s}}, "copy"/"each": size 64 only}."""
    out: dict[str, Any] = {"bulk": {}} if bulk_only else {"bulk": {}, "copy": {}, "each": {}}
    for size in GROUP_SIZES:
        records = max(size * 16, round(GROUP_RECORDS[size] * scale))
        modes = ("bulk", "copy", "each") if size == 64 and not bulk_only else ("bulk",)
        for writers in writer_counts:
            for mode in modes:
                rate = round(run_groups(target, writers, records, size, mode))
                out[mode].setdefault(str(size), {})[str(writers)] = rate
                label = f"groups of {size:>2}, {writers} writer(s), {mode:>4}"
                print(f"  {label}: {rate:>7,} records/s", flush=True)
    return out


def print_groups(groups: dict[str, Any], writer_counts: tuple[int, ...] = GROUP_WRITERS) -> None:
    header = "".join(f"{w} writer{'s' if w > 1 else ''}".rjust(12) for w in writer_counts)
    print(f"\nPostgreSQL, one transaction per group (records/s)\n{'':22}{header}")
    for mode, sizes in groups.items():
        for size, row in sizes.items():
            cells = "".join(f"{row[str(w)]:>12,}" for w in writer_counts)
            print(f"{f'{mode}, groups of {size}':22}{cells}")
    for mode, sizes in groups.items():
        for size, row in sizes.items():
            print(f"{mode}, groups of {size}: 8 writers / 1 writer = "
                  f"{row['8'] / row['1']:.2f}")  # fmt: skip


# -- decide, per process (issue 22) -----------------------------------------------------

DECIDE_RESULTS = RESULTS.with_name("audit_postgres_decide.json")
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_of(pid: int) -> float:
    """Seconds of CPU (user + system) process ``pid`` has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def decide_work(target: str, worker: int, count: int, tag: str, start: Any) -> Any:
    """One single-threaded process deciding ``count`` requests with its own Calculator,
    as bench/concurrency.py's PostgreSQL row does. Returns its span and the CPU seconds
    of this process and of its database backend over the timed loop."""
    calc = Calculator(target, operator="bench")
    requests = keyed_requests(count + 1, f"{tag}-p{worker}")
    calc.decide(requests[0])  # warm: plugins loaded, store opened
    backend = calc.store._conn.info.backend_pid
    start.wait()
    began, cpu, server = time.time(), time.process_time(), _cpu_of(backend)
    for request in requests[1:]:
        calc.decide(request)
    out = (began, time.time(), time.process_time() - cpu, _cpu_of(backend) - server)
    calc.close()
    return out


def run_decide(target: str, processes: int, per_process: int, tag: str) -> dict[str, float]:
    """Decisions/s of ``processes`` single-threaded processes, and CPU per decision (ms)."""
    with SPAWN.Manager() as manager, ProcessPoolExecutor(processes, mp_context=SPAWN) as pool:
        start = manager.Barrier(processes)
        futures = [
            pool.submit(decide_work, target, w, per_process, tag, start) for w in range(processes)
        ]
        spans = [f.result() for f in futures]
    done = processes * per_process
    elapsed = max(s[1] for s in spans) - min(s[0] for s in spans)
    return {
        "decisions_per_s": done / elapsed,
        "client_ms": 1000 * sum(s[2] for s in spans) / done,
        "backend_ms": 1000 * sum(s[3] for s in spans) / done,
    }


def measure_decide(server: str, scale: float, rounds: int) -> dict[str, Any]:
    """1 and 8 processes, alternating on fresh databases, ``rounds`` times; medians."""
    per = max(40, round(400 * scale))
    runs: dict[str, list[dict[str, float]]] = {"1": [], "8": []}
    for n in range(rounds):
        for processes in (1, 8):
            with postgres_store(server) as (target, _facts):
                each = per * 2 if processes == 1 else per
                result = run_decide(target, processes, each, f"d{n}-{processes}")
            runs[str(processes)].append(result)
            print(f"  {processes} process(es): " + ", ".join(
                f"{k} {v:,.3f}" for k, v in result.items()), flush=True)  # fmt: skip
    out: dict[str, Any] = {}
    for processes, results in runs.items():
        out[processes] = {
            key: sorted(r[key] for r in results)[len(results) // 2] for key in results[0]
        }
    out["ratio_8_over_1"] = out["8"]["decisions_per_s"] / out["1"]["decisions_per_s"]
    return out


# -- the PostgreSQL side ---------------------------------------------------------------


def _with(url: str, **changes: Any) -> str:
    params = dict(conninfo_to_dict(url))
    params.update(changes)
    return make_conninfo("", **params)


def _url(conninfo: str) -> str:
    """A key=value connection string as a postgresql:// URL (what open_store dispatches on)."""
    from urllib.parse import quote, urlencode

    params = dict(conninfo_to_dict(conninfo))
    user = quote(str(params.pop("user", "")), safe="")
    host = quote(str(params.pop("host", "")), safe="")
    port = params.pop("port", None)
    dbname = quote(str(params.pop("dbname", "")), safe="")
    password = params.pop("password", None)
    auth = user + (f":{quote(str(password), safe='')}" if password else "")
    netloc = (f"{auth}@" if auth else "") + host + (f":{port}" if port else "")
    query = urlencode({k: str(v) for k, v in params.items()})
    return f"postgresql://{netloc}/{dbname}" + (f"?{query}" if query else "")


@contextmanager
def postgres_store(server: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """A fresh database with the audit schema: (URL to write with, server facts)."""
    name = f"pricecalc_audit_bench_{secrets.token_hex(3)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        facts: dict[str, Any] = {}
        for key in ("server_version", "fsync", "synchronous_commit", "wal_sync_method"):
            row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(key))).fetchone()
            facts[key] = row[0] if row else None
    try:
        admin = _with(server, dbname=name)
        audit.init_store(_url(admin))
        app = _with(admin, user=audit.postgres.APP_ROLE)
        try:
            psycopg.connect(app, connect_timeout=3).close()
            facts["role"] = audit.postgres.APP_ROLE
        except psycopg.OperationalError:
            app = _with(admin, options=f"-c role={audit.postgres.APP_ROLE}")
            facts["role"] = f"{audit.postgres.APP_ROLE} (SET ROLE from the superuser)"
        yield _url(app), facts
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextmanager
def tinydb_store() -> Iterator[tuple[str, dict[str, Any]]]:
    directory = tempfile.mkdtemp(prefix="pricecalc-bench-")
    try:
        yield os.path.join(directory, "audit.jsonl"), {"directory": directory}
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a fifth of the records")
    parser.add_argument(
        "--groups", action="store_true", help="only the group matrix on PostgreSQL (issue 22)"
    )
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="one chain's ceiling on PostgreSQL: groups of 1, 8 and 64 records (bulk) with "
        "1-16 writer processes (docs/scaling.md)",
    )
    parser.add_argument(
        "--decide",
        action="store_true",
        help="Calculator.decide in 1 and 8 single-threaded processes: decisions/s and CPU "
        "per decision of the processes and of their database backends (issue 22)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="--decide: alternations")
    args = parser.parse_args(argv)
    scale = 0.2 if args.quick else 1.0
    server = os.environ.get("PRICECALC_BENCH_PG") or os.environ.get("PRICECALC_TEST_PG")
    server = server or DEFAULT_PG
    import audit.postgres  # noqa: F401  (psycopg is the "postgres" extra)

    machine = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    if args.decide:
        print("postgres decide, 1 and 8 processes (alternating) ...", flush=True)
        decide = measure_decide(server, scale, args.rounds)
        for processes in ("1", "8"):
            row = decide[processes]
            print(f"{processes} process(es): {row['decisions_per_s']:>7,.0f} decisions/s, "
                  f"client {row['client_ms']:.3f} ms + backend {row['backend_ms']:.3f} ms "
                  "CPU per decision")  # fmt: skip
        print(f"8 processes / 1 process = {decide['ratio_8_over_1']:.2f}")
        machine["load_average_after"] = os.getloadavg()
        document = {"benchmark": "audit_postgres_decide", "quick": args.quick,
                    "machine": machine, "decide": decide}  # fmt: skip
        DECIDE_RESULTS.parent.mkdir(parents=True, exist_ok=True)
        DECIDE_RESULTS.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"\nwritten to {DECIDE_RESULTS}")
        return
    if args.groups or args.ceiling:
        writer_counts = CEILING_WRITERS if args.ceiling else GROUP_WRITERS
        with postgres_store(server) as (target, facts):
            print("postgres groups: running ...", flush=True)
            groups = measure_groups(target, scale, writer_counts, bulk_only=args.ceiling)
        print_groups(groups, writer_counts)
        machine["load_average_after"] = os.getloadavg()
        name = "audit_postgres_ceiling" if args.ceiling else "audit_postgres_groups"
        document = {"benchmark": name, "quick": args.quick,
                    "machine": machine, "setup": facts, "records_per_s": groups}  # fmt: skip
        out = GROUPS_RESULTS.with_name(f"{name}.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"\nwritten to {out}")
        return

    backends: list[tuple[str, Callable[[], Any]]] = [
        ("tinydb", tinydb_store),
        ("postgres", lambda: postgres_store(server)),
    ]
    results: dict[str, Any] = {}
    for name, make in backends:
        with make() as (target, facts):
            print(f"{name}: running ...", flush=True)
            results[name] = {**measure(target, scale), "setup": facts}
    columns = [
        ("single, 1 writer (appends/s)", "single_1_writer_appends_per_s"),
        ("single, 8 writers (appends/s)", "single_8_writers_appends_per_s"),
        ("batch 100, 1 writer (records/s)", "batch100_1_writer_records_per_s"),
        ("batch 100, 8 writers (records/s)", "batch100_8_writers_records_per_s"),
        ("verify (records/s)", "verify_records_per_s"),
    ]
    width = max(len(label) for label, _ in columns)
    print()
    print(f"{'':{width}}  {'tinydb':>10}  {'postgres':>10}")
    for label, key in columns:
        print(f"{label:{width}}  {results['tinydb'][key]:>10,}  {results['postgres'][key]:>10,}")
    document = {
        "benchmark": "audit_postgres",
        "quick": args.quick,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "writers": WRITERS,
        "batch": BATCH,
        "results": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
