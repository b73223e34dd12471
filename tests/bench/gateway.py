"""The gateway's throughput and latency against ``endusers publish`` of the same events, in one run
(never part of the test suite; docs/benchmarks.md#identity-gateway).

    .venv/bin/python -m tests.bench.gateway [--events 20000] [--okta-batch 50] [--auth0-batch 100] [--concurrency 4]

It starts the local services (``deploy/local/services up``) and one ``endusers gateway`` process with a
``source`` token and a topic prefix of its own, then measures, on the same broker:

1. the Okta route: ``--events`` successful sign-ins (``user.session.start``) posted as event hooks of
   ``--okta-batch`` events, ``--concurrency`` requests in flight (as a provider retrying in parallel);
2. the Auth0 route: as many success logins (``s``) as log stream batches of ``--auth0-batch`` (Auth0
   sends at most 100 a request);
3. the same batches, mapped as the gateway maps them, through the gateway's own publisher in this
   process (no HTTP, no separate process): what HTTP, tokens and mapping add to a request's latency;
4. the baseline: ``endusers publish`` of a JSONL file of exactly the events the two routes published
   (the same ids): its publishing (``publish_files``) timed in this process, so the rate is not the
   interpreter's start; the whole command is timed too and reported beside it.

A request is answered only after Kafka has acknowledged all its events, so its latency is the time
from request to Kafka's acknowledgement. The last line is the JSON of every figure, the machine and
the load average (the machine is shared: read the figures with it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from streams.gateway import auth0, okta
from streams.gateway.mapping import Target, parsed
from streams.http.auth import create_token
from streams.kafka.publish import Publisher, publish_files
from streams.settings import WorkerSettings
from tests.bench.run import ROOT, cpu_seconds, free_port, log, machine, percentiles, services_up
from tests.unit.test_gateway_auth0 import log as auth0_log
from tests.unit.test_gateway_okta import hook, okta_event

SUBSCRIPTION = "bench-gateway"
USERS = 5_000
"""Distinct people the sign-ins are spread over (mapping and publishing cost the same for a repeat)."""


def _person(n: int) -> tuple[str, str]:
    return f"00u{n % USERS:06d}", f"user{n % USERS}@example.com"


def _okta_sign_in(n: int) -> dict[str, Any]:
    user_id, email = _person(n)
    return okta_event("user.session.start", uuid=str(uuid.uuid4()),
                      actor={"id": user_id, "type": "User", "alternateId": email})


def _auth0_login(n: int) -> dict[str, Any]:
    user_id, email = _person(n)
    return auth0_log("s", log_id=f"9002026{uuid.uuid4().int % 10**40:040d}", user_id=f"auth0|{user_id}",
                     user_name=email)


REQUESTS: dict[str, tuple[Callable[[int], dict[str, Any]], Callable[[list[dict[str, Any]]], object]]] = {
    "okta": (_okta_sign_in, lambda items: hook(*items)),  # an event hook: {"data": {"events": [...]}}
    "auth0": (_auth0_login, lambda items: items),  # a log stream batch: a JSON array
}
"""Per route: one provider item (sign-in number ``n``, each with its own event id) and the request
body that carries a batch of them."""


def requests_for(route: str, events: int, size: int) -> list[bytes]:
    """``events`` sign-ins as requests of ``size`` items each."""
    item, body = REQUESTS[route]
    return [orjson.dumps(body([item(n) for n in range(start, min(events, start + size))]))
            for start in range(0, events, size)]


def mapped(route: str, body: bytes) -> list[dict[str, object]]:
    """The events the gateway publishes for one request of ``route``."""
    target = Target(SUBSCRIPTION, None, okta.PROVIDER if route == "okta" else auth0.PROVIDER)
    batch = okta.map_hook(parsed(body), target) if route == "okta" else auth0.map_stream(body, target)
    return batch.events


async def timed_requests(send: Callable[[bytes], Awaitable[int]], bodies: list[bytes],
                         concurrency: int) -> dict[str, Any]:
    """Every body through ``send`` (which returns the events accepted), ``concurrency`` at a time: the
    events accepted per second over the whole phase and each request's latency."""
    queue = list(reversed(bodies))
    latencies: list[float] = []
    accepted = 0

    async def lane() -> None:
        nonlocal accepted
        while queue:
            body = queue.pop()
            started = time.perf_counter()
            sent = await send(body)  # awaited first: ``accepted += await ...`` would lose other lanes' sums
            accepted += sent
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    return {"events": accepted, "requests": len(bodies), "seconds": round(wall, 3),
            "events_per_s": round(accepted / wall), "latency_ms": percentiles(latencies)}


async def through_gateway(url: str, token: str, route: str, bodies: list[bytes], concurrency: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        async def send(body: bytes) -> int:
            answer = await client.post(f"/v1/subscriptions/{SUBSCRIPTION}/{route}", content=body)
            if answer.status_code != 200:
                raise SystemExit(f"the gateway answered {answer.status_code}: {answer.text}")
            return int(answer.json()["accepted"])

        await send(bodies[0])  # warm: the producer's connections and the topics' metadata
        return await timed_requests(send, bodies[1:], concurrency)


async def through_publisher(settings: WorkerSettings, route: str, bodies: list[bytes],
                            concurrency: int) -> dict[str, Any]:
    """The same requests' events through :class:`Publisher` in this process (mapped beforehand)."""
    publisher = Publisher(settings, linger_ms=2)
    batches = {body: mapped(route, body) for body in bodies}

    async def send(body: bytes) -> int:
        return sum((await publisher.publish(batches[body])).sent.values())

    try:
        await send(bodies[0])
        return await timed_requests(send, bodies[1:], concurrency)
    finally:
        await publisher.stop()


async def baseline(settings: WorkerSettings, env: dict[str, str], events: list[dict[str, object]],
                   directory: Path) -> dict[str, Any]:
    """``endusers publish`` of ``events``: its publishing (:func:`publish_files`, what the command runs
    once it has checked the lines) timed in this process, and the whole command with its interpreter's
    start and line checks, for reference."""
    path = directory / "events.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    started = time.perf_counter()
    result = await publish_files([path], settings)
    seconds = time.perf_counter() - started
    assert sum(result.sent.values()) == len(events) and not result.unroutable, result
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "streams", "publish", str(path)], env=env, capture_output=True)
    command = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(f"endusers publish failed: {run.stderr.decode()}")
    return {"events": len(events), "seconds": round(seconds, 3), "events_per_s": round(len(events) / seconds),
            "command_seconds": round(command, 3), "command_events_per_s": round(len(events) / command)}


def start_gateway(env: dict[str, str], directory: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    tokens = directory / "tokens"
    token = create_token(tokens, "source", frozenset({SUBSCRIPTION}))
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "streams", "gateway"],
                               env={**env, "ENDUSERS_GATEWAY_PORT": str(port), "ENDUSERS_API_TOKENS_FILE": str(tokens)},
                               stdout=(directory / "gateway.log").open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the gateway exited:\n{(directory / 'gateway.log').read_text()}")
        try:
            if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                return process, url, token
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.kill()
    raise SystemExit("the gateway did not become ready within 60 s")


async def measure(args: argparse.Namespace, env: dict[str, str], directory: Path) -> dict[str, Any]:
    sizes = {"okta": args.okta_batch, "auth0": args.auth0_batch}
    requests_of = {route: requests_for(route, args.events, size) for route, size in sizes.items()}
    process, url, token = start_gateway(env, directory)
    results: dict[str, Any] = {}
    try:
        for route, requests in requests_of.items():
            log(f"{route}: {len(requests)} requests of {sizes[route]}")
            cpu = cpu_seconds(process.pid)
            results[route] = await through_gateway(url, token, route, requests, args.concurrency)
            used = (cpu_seconds(process.pid) or 0) - (cpu or 0)
            results[route]["gateway_cpu_us_per_event"] = round(used / results[route]["events"] * 1e6, 1)
    finally:
        process.terminate()
        process.wait(timeout=30)
    settings = WorkerSettings.from_environment(env)
    for route, requests in requests_of.items():
        log(f"{route}: the same batches through the publisher in this process")
        results[f"{route}_publisher"] = await through_publisher(settings, route, requests, args.concurrency)
    log("baseline: endusers publish of the same events")
    events = [e for route, requests in requests_of.items() for body in requests for e in mapped(route, body)]
    results["publish"] = await baseline(settings, env, events, directory)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000, help="sign-ins per route")
    parser.add_argument("--okta-batch", type=int, default=50, help="events per Okta event hook request")
    parser.add_argument("--auth0-batch", type=int, default=100, help="logs per Auth0 log stream request (at most 100)")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    kafka, _, _ = services_up()
    env = {**os.environ, "ENDUSERS_KAFKA": f"kafka://{kafka}", "ENDUSERS_ENV": "development",
           "ENDUSERS_TOPIC_PREFIX": f"bgw{uuid.uuid4().hex[:8]}", "ENDUSERS_PARTITIONS": "4",
           "PYTHONPATH": str(ROOT)}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as folder:
        results = asyncio.run(measure(args, env, Path(folder)))
    publish_rate = results["publish"]["events_per_s"]
    summary = {
        "okta_events_per_s": results["okta"]["events_per_s"],
        "auth0_events_per_s": results["auth0"]["events_per_s"],
        "publish_events_per_s": publish_rate,
        "okta_ratio_to_publish": round(results["okta"]["events_per_s"] / publish_rate, 3),
        "auth0_ratio_to_publish": round(results["auth0"]["events_per_s"] / publish_rate, 3),
        "okta_p99_ms": results["okta"]["latency_ms"]["p99"],
        "auth0_p99_ms": results["auth0"]["latency_ms"]["p99"],
        "okta_publisher_p99_ms": results["okta_publisher"]["latency_ms"]["p99"],
        "auth0_publisher_p99_ms": results["auth0_publisher"]["latency_ms"]["p99"],
    }
    for name, value in summary.items():
        print(f"{name:<28}{value}")
    document = {"summary": summary, **results,
                "parameters": {"events": args.events, "okta_batch": args.okta_batch, "auth0_batch": args.auth0_batch,
                               "concurrency": args.concurrency},
                "machine": machine(), "load_average": {"before": [round(v, 2) for v in load_before],
                                                       "after": [round(v, 2) for v in os.getloadavg()]}}
    text = orjson.dumps(document).decode()
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
