"""``pricecalc serve`` under load (issue 23), side by side in one run.

Closed loop: Debian's ``wrk`` (apt-get install wrk) with a Lua ``request()`` that gives
every request its own ``Idempotency-Key`` — so every answer is a new durable decision,
never a replay — at 64 connections and at 1, against ``pricecalc serve`` and against the
same Starlette/uvicorn stack answering a constant (no rules, no store). Open loop:
bench/openloop.py at a steady 1,000 requests/s, p99 latency. subsidy_split requests.
Beside each rate, the server's CPU time (user + system, its threads and children) per
request: the figure that moves least with the load other work puts on the machine.

``python -m bench --only serve`` or ``python -m bench.serve [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import openloop
from bench._common import table, write_results

REQUEST = {
    "kind": "subsidy_split",
    "merchant_id": "M-1001",
    "input": {
        "list_price": "199.00",
        "registration_price": "169.00",
        "subsidy_price": "149.00",
        "floor_price": "139.00",
        "cost_price": "120.00",
        "lowest_price_30d": "175.00",
        "quantity": 2,
    },
}
BODY = json.dumps(REQUEST)

LUA = """
local counter = 0
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
wrk.body = %(body)s
function request()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = string.format('"%(run)s-%%d-%%d"', tid, counter)
  return wrk.format(nil, nil, nil, nil)
end
"""

CONSTANT = b'{"request_id":"k","kind":"subsidy_split","status":"approved","result":{}}'


def constant_app() -> Any:
    """The same stack answering a constant: Starlette, one route, no rules, no store."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def decide(request: Request) -> Response:
        await request.body()
        return Response(CONSTANT, 201, media_type="application/json")

    return Starlette(routes=[Route("/v1/decisions", decide, methods=["POST"])])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server under test exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server under test did not start")


@contextmanager
def server(command: Sequence[str], port: int) -> Iterator[int]:
    """Run the server under test; yields its process id."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        _wait(port, process)
        yield process.pid
    finally:
        process.terminate()
        process.wait(timeout=60)


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) of process ``pid`` and its children so far — the load-robust
    measure: on a shared machine the rate moves with the neighbours, the CPU a request
    costs much less. None where /proc is not there to read it."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            stat = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            if current == pid:
                return None
            continue
        total += int(stat[11]) + int(stat[12])
    return total / tick


def wrk(
    url: str, connections: int, seconds: int, script: Path, pid: int | None = None
) -> dict[str, float | str | None]:
    """A closed-loop run; with the server's ``pid``, its CPU µs per answered request."""
    threads = min(2, connections)
    before = cpu_seconds(pid) if pid is not None else None
    out = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
         "-s", str(script), "--latency", url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    after = cpu_seconds(pid) if pid is not None else None
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    failed = int(bad.group(1)) if bad else 0
    cpu_us = None
    if before is not None and after is not None and total:
        cpu_us = (after - before) / total * 1e6
    return {
        "requests_per_s": rate,
        "ok_per_s": rate * (total - failed) / total if total else 0.0,
        "non_2xx": failed,
        "socket_errors": errors.group(0) if errors else "",
        "server_cpu_us_per_request": cpu_us,
    }


def run(quick: bool = False) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise SystemExit("bench/serve.py needs wrk: apt-get install wrk")
    seconds = 5 if quick else 10
    pricecalc = str(Path(sys.executable).with_name("pricecalc"))
    with tempfile.TemporaryDirectory(prefix="pricecalc-bench-serve-") as folder:
        base = Path(folder)
        tokens = base / "tokens.json"
        token = subprocess.run(
            [pricecalc, "token", "add", "bench", "--tokens", str(tokens),
             "--operator", "bench", "--rights", "decide,read"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        script = base / "keys.lua"
        script.write_text(
            LUA % {"token": token, "body": json.dumps(BODY), "run": uuid.uuid4().hex[:12]}
        )
        ours, plain = _free_port(), _free_port()
        serve_cmd = [pricecalc, "--audit", str(base / "audit.jsonl"), "serve",
                     "--tokens", str(tokens), "--port", str(ours), "--access-log", "-"]  # fmt: skip
        const_cmd = [sys.executable, "-m", "bench.serve", "--constant", str(plain)]
        results: dict[str, Any] = {}
        with server(serve_cmd, ours) as ours_pid, server(const_cmd, plain) as plain_pid:
            for name, port, pid in (("pricecalc", ours, ours_pid), ("constant", plain, plain_pid)):
                url = f"http://127.0.0.1:{port}/v1/decisions"
                for connections in (64, 1):
                    results[f"{name}_c{connections}"] = wrk(url, connections, seconds, script, pid)
            headers = {"Authorization": f"Bearer {token}"}
            data = BODY.encode()
            run_id = uuid.uuid4().hex[:12]
            results["open_loop_1000"] = asyncio.run(
                openloop.run(
                    f"http://127.0.0.1:{ours}/v1/decisions", 1000, seconds,
                    lambda i: (data, {**headers, "Idempotency-Key": f'"{run_id}-{i}"'}),
                )
            )  # fmt: skip
    durable = float(results["pricecalc_c64"]["ok_per_s"])
    vs_constant = durable / float(results["constant_c64"]["ok_per_s"])
    vs_one = durable / max(float(results["pricecalc_c1"]["ok_per_s"]), 1e-9)

    def cpu(run: str) -> str:
        value = results[run]["server_cpu_us_per_request"]
        return "" if value is None else f"{value:,.0f}"

    p99 = results["open_loop_1000"]["p99_ms"]
    print(table(
        "pricecalc serve: subsidy_split, each request its own Idempotency-Key",
        ("measure", "value", "goal", "minimum"),
        [
            ("durable decisions/s at 64 connections", durable, "≥ 3,000", "≥ 1,500"),
            ("vs the same stack answering a constant", vs_constant, "≥ 0.5", "≥ 0.33"),
            ("64 connections vs 1", vs_one, "≥ 8", "≥ 4"),
            ("p99 at a steady 1,000 req/s (ms)", p99, "≤ 15", "≤ 50"),
            ("  (open loop answered / failures)",
             f"{results['open_loop_1000']['answered']} / "
             f"{results['open_loop_1000']['failures']}", "", ""),
            ("server CPU µs per request, 64 / 1 connections",
             f"{cpu('pricecalc_c64')} / {cpu('pricecalc_c1')}", "", ""),
            ("  the constant stack's, 64 / 1",
             f"{cpu('constant_c64')} / {cpu('constant_c1')}", "", ""),
        ],
    ))  # fmt: skip
    goals = {
        "serve: ≥ 1,500 durable decisions/s at 64 connections": durable >= 1500,
        "serve: ≥ 1/3 of the same stack answering a constant": vs_constant >= 1 / 3,
        "serve: 64 connections ≥ 4× 1 connection": vs_one >= 4,
        "serve: p99 ≤ 50 ms at a steady 1,000 req/s": p99 <= 50
        and results["open_loop_1000"]["failures"] == 0,
    }
    write_results("serve", {"quick": quick, "results": results, "goals": goals})
    return {"goals": goals}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--constant", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.constant is not None:  # the comparison server, run as a subprocess
        import uvicorn

        uvicorn.run(constant_app(), host="127.0.0.1", port=args.constant,
                    access_log=False, log_level="warning")  # fmt: skip
        return 0
    run(quick=args.quick)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
