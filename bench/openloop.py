"""An open-loop HTTP load generator: requests sent on a fixed schedule (``rate`` per
second), whether or not earlier ones have been answered, so a slow answer cannot hide
the requests queued behind it (no coordinated omission: each latency is measured from
the moment the request was *due*). wrk2 would do this, but Debian has no wrk2.

asyncio with plain HTTP/1.1 keep-alive connections (a pool that grows when every
connection is busy), so the generator costs little CPU beside the server under test.
``python -m bench.openloop URL --rate 1000 --seconds 10 --header 'Authorization: …'``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit


class _Pool:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def get(
        self, *, fresh: bool = False
    ) -> tuple[tuple[asyncio.StreamReader, asyncio.StreamWriter], bool]:
        """A connection, and whether it was kept from an earlier request."""
        if self.idle and not fresh:
            return self.idle.pop(), True
        return await asyncio.open_connection(self.host, self.port), False


async def _exchange(
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes
) -> int:
    reader, writer = conn
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def run(
    url: str,
    rate: float,
    seconds: float,
    body: Callable[[int], tuple[bytes, dict[str, str]]],
) -> dict[str, float]:
    """Send ``rate``·``seconds`` POSTs to ``url`` on schedule; ``body(i)`` gives the i-th
    request's body and extra headers. Returns latency percentiles (ms) and counts."""
    parts = urlsplit(url)
    pool = _Pool(parts.hostname or "127.0.0.1", parts.port or 80)
    latencies: list[float] = []
    failures = 0
    total = int(rate * seconds)
    start = time.perf_counter() + 0.2

    async def one(i: int) -> None:
        nonlocal failures
        due = start + i / rate
        data, headers = body(i)
        lines = [f"POST {parts.path} HTTP/1.1", f"Host: {parts.netloc}",
                 f"Content-Length: {len(data)}", "Content-Type: application/json"]  # fmt: skip
        lines += [f"{k}: {v}" for k, v in headers.items()]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode() + data
        try:
            conn, kept = await pool.get()
            try:
                status = await _exchange(conn, request)
            except asyncio.IncompleteReadError as exc:
                # A kept-alive connection the server closed while it sat idle (uvicorn's
                # keep-alive timeout) answers nothing at all: sent again on a new
                # connection, as HTTP clients do — safe, every request has its own
                # Idempotency-Key. The latency still counts from when it was due.
                conn[1].close()
                if not (kept and exc.partial == b""):
                    raise
                conn, _ = await pool.get(fresh=True)
                status = await _exchange(conn, request)
            pool.idle.append(conn)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            failures += 1
            return
        latencies.append(time.perf_counter() - due)
        if status >= 300:
            failures += 1

    tasks = []
    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {
        "sent": total,
        "answered": len(latencies),
        "failures": failures,
        "achieved_rate": len(latencies) / elapsed,
        "p50_ms": pct(0.50) if latencies else float("nan"),
        "p99_ms": pct(0.99) if latencies else float("nan"),
        "max_ms": latencies[-1] * 1000 if latencies else float("nan"),
        "connections": len(pool.idle),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.openloop", description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--body", default="{}")
    parser.add_argument("--header", action="append", default=[])
    args = parser.parse_args(argv)
    headers = dict(h.split(": ", 1) for h in args.header)
    data = args.body.encode()
    result = asyncio.run(run(args.url, args.rate, args.seconds, lambda i: (data, headers)))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
