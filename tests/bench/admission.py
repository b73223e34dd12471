"""The admission check's latency on a worker that counts a large subscription, against two baselines
measured in the same run on the same connection: ``/healthz`` (the HTTP round trip and the token-free
path, no work) and ``GET /api/v1/subscriptions/{id}`` (the counts, one small read of Redis).

    .venv/bin/python -m tests.bench.admission --records 1000000 [--requests 3000]

It starts the local services (``deploy/local/services up``), writes a subscription of N records to
Redis database 13 (flushed first) as the takeover benchmark builds it (``takeover_load.build``: logins
of distinct users, every 50th sharing an email with the one before, three domains, one owned), starts
one ``endusers worker`` with a token file, and sends one login of that subscription through Kafka so
that the worker loads the state and counts it (the admission check answers from that memory). Then
it asks, one request at a time on one keep-alive connection, in turn: an admission of a new person
(adds), of a person who counts already (an existing email: joins), ``/healthz`` and the counts. It
checks that the counts are the same after. Prints one JSON object: p50/p95/p99/max in milliseconds
of each, the admission's p99 over each baseline's, the engine's own cost of a check in microseconds
(``candidate`` and ``admission`` on the same state in this process), the records, the load average
and the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis.asyncio

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from counters import Digester, SubscriptionState, admission, candidate  # noqa: E402
from streams.http.auth import create_token  # noqa: E402
from streams.store.redis_store import RedisStore  # noqa: E402
from tests.bench.run import Deployment, log, machine, percentiles, services_up  # noqa: E402
from tests.bench.takeover_load import SUBSCRIPTION, build  # noqa: E402


async def write_state(redis_url: str, records: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The subscription's state committed to Redis (database flushed first): its counts, and the
    engine's own cost of the check on it in this process (microseconds: no HTTP, no event loop)."""
    store = RedisStore(redis.asyncio.Redis.from_url(redis_url, socket_timeout=None))  # one script writes them all
    try:
        await store.redis.flushdb()
        started = time.perf_counter()
        state = build(records)
        log(f"built {records} records in {time.perf_counter() - started:.1f}s")
        engine = in_process(state, records)
        started = time.perf_counter()
        assert await store.commit(state, None, [])
        log(f"committed to Redis in {time.perf_counter() - started:.1f}s")
        return dict(state.summary()), engine
    finally:
        await store.close()


def in_process(state: SubscriptionState, records: int, n: int = 20_000) -> dict[str, Any]:
    """``candidate`` (normalize, digest) and ``admission`` timed n times, new and known people in turn."""
    digest, spent = Digester(), []
    for i in range(n):
        email = f"new{i}@corp.example" if i % 2 else _known(i * 7919 % records)
        started = time.perf_counter()
        admission(state, candidate(digest, SUBSCRIPTION, email=email))
        spent.append((time.perf_counter() - started) * 1_000_000)
    return percentiles(spent)


async def counted(d: Deployment, records: int, timeout: float) -> float:
    """Send one login of the subscription and wait until the worker has counted it (the state loaded)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=d.kafka)
    await producer.start()
    started = time.perf_counter()
    try:
        login = {"type": "login", "subscription": SUBSCRIPTION, "user_id": "bench-admission",
                 "email": "first@corp.example"}
        await producer.send_and_wait(d.topic("logins"), orjson.dumps(login), key=SUBSCRIPTION.encode())
    finally:
        await producer.stop()
    store = RedisStore.from_url(d.redis_url)
    try:
        key = "endusers:{%s}:counts" % SUBSCRIPTION
        while time.perf_counter() - started < timeout:
            raw = await store.redis.get(key)
            if raw is not None and orjson.loads(raw)["records"] == records + 1:
                return time.perf_counter() - started
            if d.process is not None and d.process.poll() is not None:
                raise RuntimeError(f"worker exited:\n{d.log_tail()}")
            await asyncio.sleep(0.1)
    finally:
        await store.close()
    raise RuntimeError(f"the login was not counted within {timeout}s:\n{d.log_tail()}")


def _known(user: int) -> str:
    """The email of a user ``build`` made (its domain by the user's number)."""
    return f"user{user}@{('corp.example', 'partner.example', 'mail.example')[user % 3]}"


def measure(port: int, tokens: dict[str, str], records: int, requests: int, warmup: int) -> dict[str, list[float]]:
    """Round trips in milliseconds, the four kinds interleaved on one connection."""
    path = f"/api/v1/subscriptions/{SUBSCRIPTION}"
    source, admin = {"Authorization": f"Bearer {tokens['source']}"}, {"Authorization": f"Bearer {tokens['admin']}"}
    kinds: dict[str, Any] = {
        "admission_new": lambda http, i: http.post(path + "/admission", headers=source,
                                                   json={"email": f"new{i}@corp.example", "runtime": "prod"}),
        "admission_known": lambda http, i: http.post(path + "/admission", headers=source,
                                                     json={"email": _known(i * 7919 % records)}),
        "healthz": lambda http, i: http.get("/healthz"),
        "counts": lambda http, i: http.get(path, headers=admin),
    }
    times: dict[str, list[float]] = {name: [] for name in kinds}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        for i in range(warmup + requests):
            for name, ask in kinds.items():
                started = time.perf_counter()
                response = ask(http, i)
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    raise RuntimeError(f"{name}: {response.status_code} {response.text}")
                if i >= warmup:
                    times[name].append(elapsed)
        answer = http.post(path + "/admission", headers=source, json={"email": _known(4)}).json()
        assert answer["adds"] is False, answer  # user4 counts already: the check reads the loaded state
    return times


def wait_ready(port: int, process: Any, timeout: float = 120) -> None:
    """Until the worker's /readyz says 200 (its topics exist, its partitions are assigned)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the worker did not get ready")


def run(args: argparse.Namespace) -> dict[str, Any]:
    kafka, redis_base, _status = services_up()
    workdir = Path(tempfile.mkdtemp(prefix="bench-admission-"))
    d = Deployment(kafka, redis_base, workdir, None)
    tokens_file = workdir / "tokens"
    tokens = {"source": create_token(tokens_file, "source", frozenset({SUBSCRIPTION})),
              "admin": create_token(tokens_file, "admin", None)}
    expected, engine = asyncio.run(write_state(d.redis_url, args.records))
    os.environ["ENDUSERS_API_TOKENS_FILE"] = str(tokens_file)
    process = d.start_worker()
    try:
        wait_ready(d.port, process)
        loaded = asyncio.run(counted(d, args.records, timeout=max(300.0, args.records / 2000)))
        log(f"the worker counts {args.records} records ({loaded:.1f}s from the login to counted)")
        before = httpx.get(f"http://127.0.0.1:{d.port}/api/v1/subscriptions/{SUBSCRIPTION}",
                           headers={"Authorization": f"Bearer {tokens['admin']}"}).json()
        times = measure(d.port, tokens, args.records, args.requests, args.warmup)
        after = httpx.get(f"http://127.0.0.1:{d.port}/api/v1/subscriptions/{SUBSCRIPTION}",
                          headers={"Authorization": f"Bearer {tokens['admin']}"}).json()
        assert {k: after[k] for k in ("internal", "external", "records")} == \
            {k: before[k] for k in ("internal", "external", "records")}, (before, after)
        assert before["records"] == expected["records"] + 1
    finally:
        if d.process is not None and d.process.poll() is None:
            d.process.send_signal(signal.SIGTERM)
            d.process.wait(timeout=30)
    figures = {name: percentiles(values) for name, values in times.items()}
    p99 = max(figures["admission_new"]["p99"] or 0, figures["admission_known"]["p99"] or 0)
    return {"records": args.records, "requests_each": args.requests, "milliseconds": figures,
            "admission_p99_ms": p99,
            "admission_p99_over_healthz_p99": round(p99 / (figures["healthz"]["p99"] or 1), 2),
            "admission_p99_over_counts_p99": round(p99 / (figures["counts"]["p99"] or 1), 2),
            "engine_microseconds": engine, "state_load_s": round(loaded, 1), "load_average": os.getloadavg(), "machine": machine()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=3000, help="measured requests of each kind")
    parser.add_argument("--warmup", type=int, default=100)
    print(orjson.dumps(run(parser.parse_args())).decode())


if __name__ == "__main__":
    main()
