"""What the dashboard stream costs at fleet scale: bytes per second per client and the worker's CPU.

One worker process serves ``GET /api/v1/stream`` (streams/http/live.py) from an in-memory reader with
``--subscriptions`` subscriptions; a second process holds ``--clients`` open streams and counts the
bytes each receives. Two phases of ``--seconds`` each: at rest (nothing changes: heartbeats only), then
with ``--churn`` of the subscriptions changing their counts every second. The worker's CPU is its
process time over the phase (poll loop, serialization, writes; the reader's own cost is small here,
a real Redis read costs the worker more).

Usage: ``.venv/bin/python -m tests.bench.stream [--subscriptions 1000] [--clients 100] [--seconds 10]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import socket
import time
from collections import defaultdict
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web

from streams.http.live import DashboardStream


class StaticReader:
    """Counts held in dicts, read without copies (the stream must not depend on a reader's speed)."""

    def __init__(self, subscriptions: int) -> None:
        now = int(time.time() * 1000)
        self.data = {f"sub-{n:04d}": {
            "internal": n, "external": n % 50, "records": n + n % 50,
            "runtimes": {"prod": {"internal": n, "external": n % 50, "records": n + n % 50}},
            "providers": {"default": n + n % 50}, "excluded": 0, "anonymous_sessions": 0,
            "levels": {"internal": 0, "external": 0}} for n in range(subscriptions)}
        self.settings_by = {s: {"platform": "o11", "domains": ["example.com"],
                                "capacity": {"internal": 2000, "external": 100},
                                "thresholds": [80, 90, 100], "hysteresis": 1} for s in self.data}
        self.histories = {s: [[now - 10_000 * i, 1, 1] for i in range(360, 0, -1)] for s in self.data}

    async def subscriptions(self) -> list[str]:
        return list(self.data)

    async def counts(self, subscription: str) -> dict[str, Any] | None:
        return self.data.get(subscription)

    async def settings(self, subscription: str) -> dict[str, Any] | None:
        return self.settings_by.get(subscription)

    async def recent_capacity_events(self, subscription: str, limit: int = 20) -> list[dict[str, Any]]:
        return []

    async def shared_identifiers(self, subscription: str) -> Any:
        return None

    async def history(self, subscription: str) -> list[list[int]]:
        return self.histories[subscription]

    async def hourly(self, subscription: str) -> list[Any]:
        return []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clients(url: str, count: int, seconds: float, out: Any) -> None:
    """Hold ``count`` streams for ``seconds``; send back bytes per wall-clock second and the snapshot sizes."""

    async def main() -> None:
        per_second: dict[int, int] = defaultdict(int)
        first: list[int] = []

        async def one(session: ClientSession) -> None:
            async with session.get(url) as response:
                head = b""  # everything up to the end of the snapshot
                while True:
                    chunk = await response.content.readany()
                    if not chunk:
                        return
                    if head is not None:
                        head += chunk
                        at = head.find(b"\n\n", max(0, head.find(b"event: snapshot")))
                        if b"event: snapshot" not in head or at < 0:
                            continue
                        first.append(at + 2)
                        chunk, head = head[at + 2:], None
                    per_second[int(time.time())] += len(chunk)

        async with ClientSession(timeout=ClientTimeout(total=None)) as session:
            tasks = [asyncio.ensure_future(one(session)) for _ in range(count)]
            await asyncio.sleep(seconds)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        out.send({"per_second": dict(per_second), "snapshots": first})

    asyncio.run(main())


async def serve(args: argparse.Namespace) -> dict[str, Any]:
    reader = StaticReader(args.subscriptions)
    live = DashboardStream(reader, interval=1.0, max_streams=args.clients + 10)  # type: ignore[arg-type]
    app = web.Application()
    app.router.add_get("/api/v1/stream", live.stream)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    mine, theirs = multiprocessing.Pipe()
    total = 2 * args.seconds + args.warmup
    process = multiprocessing.Process(target=clients, args=(f"http://127.0.0.1:{port}/api/v1/stream",
                                                             args.clients, total, theirs))
    process.start()
    await asyncio.sleep(args.warmup)
    phases: dict[str, tuple[float, float, float]] = {}
    cpu, wall = time.process_time(), time.time()
    await asyncio.sleep(args.seconds)
    phases["rest"] = (wall, time.time(), time.process_time() - cpu)
    cpu, wall = time.process_time(), time.time()
    changing = max(1, int(args.subscriptions * args.churn))
    ids = list(reader.data)
    for second in range(int(args.seconds)):
        for n in range(changing):
            entry = reader.data[ids[(second * changing + n) % len(ids)]]
            reader.data[ids[(second * changing + n) % len(ids)]] = {**entry, "internal": entry["internal"] + 1}
        await asyncio.sleep(1.0)
    phases["churn"] = (wall, time.time(), time.process_time() - cpu)
    received = await asyncio.get_running_loop().run_in_executor(None, mine.recv)
    process.join()
    await runner.cleanup()
    return report(args, phases, received)


def report(args: argparse.Namespace, phases: dict[str, tuple[float, float, float]], received: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"subscriptions": args.subscriptions, "clients": args.clients,
                              "snapshot_bytes": max(received["snapshots"] or [0]),
                              "snapshots_received": len(received["snapshots"]),
                              "machine": f"{platform.machine()} {os.cpu_count()} cpus"}
    per_second = {int(k): v for k, v in received["per_second"].items()}
    for name, (start, end, cpu) in phases.items():
        received_bytes = sum(v for s, v in per_second.items() if start <= s < int(end))
        span = max(1, len(range(int(start) + 1, int(end))))
        inner = sum(per_second.get(s, 0) for s in range(int(start) + 1, int(end)))
        result[name] = {"bytes_per_second_per_client": round(inner / span / args.clients, 1),
                        "worker_cpu_percent": round(100 * cpu / (end - start), 1),
                        "bytes_total": received_bytes}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscriptions", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--churn", type=float, default=0.01, help="share of subscriptions changing each second")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(serve(args)), indent=2))


if __name__ == "__main__":
    main()
