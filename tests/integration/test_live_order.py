"""Events published while the workers count give exactly replay's results: the counts, and every
capacity event id for id and field for field, with one worker, with two, with one of two killed
(SIGKILL) mid-publish and restarted, and with two ``publish`` processes writing disjoint subscriptions.

The stream is random (configs, deletes, late, tied and redelivered events over 300 subscriptions).
While a worker keeps up, every partition it reads is at its end most of the time: this is the case
where the merge used to release other partitions after a wall-clock hold, and a producer's batches to
different topics reached the broker further apart than that (measured with the hold: 2 capacity
events of 1,236 differed with one worker, 16 with two). Ingest now waits for every partition's
watermark from ``publish`` instead (docs/design.md, "Ordering across source topics").
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from schemas.outputs import format_instant
from streams.kafka.messages import ARRIVAL_HEADER, PRODUCER_HEADER, WATERMARK_HEADER
from streams.settings import SOURCE_TOPICS
from tests.fixtures.exactness import (
    assert_live_equals_replay,
    ingested,
    replayed_stream,
)
from tests.fixtures.generate import random_stream
from tests.fixtures.pipeline import Deployment, DeploymentFactory

pytestmark = pytest.mark.integration
EVENTS = 15_000
SUBSCRIPTIONS = 300


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The stream's file and ``endusers replay``'s document of it (computed once for every variant)."""
    return replayed_stream(tmp_path_factory.mktemp("live"), random_stream(EVENTS, SUBSCRIPTIONS, seed=28),
                           capacity_events=100)


def _publish(deployment: Deployment, path: Path) -> subprocess.Popen[bytes]:
    # --skip-invalid: the generator mixes in invalid lines, which publish reports and skips (status 1)
    return subprocess.Popen([sys.executable, "-m", "streams", "publish", "--skip-invalid", str(path)], env=deployment.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _finished(publisher: subprocess.Popen[bytes]) -> None:
    _, stderr = publisher.communicate(timeout=300)
    assert publisher.returncode in (0, 1), stderr.decode()  # 1: invalid lines skipped


def _counting(deployment: Deployment, workers: int) -> None:
    started = [deployment.start_worker(wait=False) for _ in range(workers)]
    for worker in started:
        deployment.wait_ready(worker)


@pytest.mark.parametrize("workers", [1, 2], ids=["one worker", "two workers"])
def test_events_published_while_workers_count_equal_replay(deployment_factory: DeploymentFactory,
                                                          stream: tuple[Path, dict[str, Any]], workers: int) -> None:
    path, expected = stream
    deployment = deployment_factory()
    _counting(deployment, workers)
    _finished(_publish(deployment, path))
    assert_live_equals_replay(deployment, expected)


def test_events_published_while_a_worker_is_killed_and_restarted_equal_replay(deployment_factory: DeploymentFactory, stream: tuple[Path, dict[str, Any]]) -> None:
    path, expected = stream
    deployment = deployment_factory()
    _counting(deployment, 2)
    publisher = _publish(deployment, path)
    deadline = time.monotonic() + 120
    while asyncio.run(ingested(deployment)) < EVENTS // 4:
        assert time.monotonic() < deadline and publisher.poll() is None, "the kill must land mid-publish"
        time.sleep(0.05)
    deployment.workers[0].kill()
    deployment.start_worker(wait=False)
    _finished(publisher)
    assert_live_equals_replay(deployment, expected)


def test_two_publishers_of_disjoint_subscriptions_while_two_workers_count_equal_replay(deployment_factory: DeploymentFactory, stream: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    path, expected = stream
    halves: list[list[bytes]] = [[], []]
    for line in path.read_bytes().splitlines():
        try:
            subscription = orjson.loads(line).get("subscription")
        except (orjson.JSONDecodeError, AttributeError):
            subscription = None  # an invalid line: rejected whoever sends it
        halves[zlib.crc32(str(subscription).encode()) % 2].append(line)
    files = [tmp_path / f"half-{n}.jsonl" for n in range(2)]
    for file, lines in zip(files, halves):
        file.write_bytes(b"\n".join(lines) + b"\n")
    deployment = deployment_factory()
    _counting(deployment, 2)
    publishers = [_publish(deployment, file) for file in files]
    for publisher in publishers:
        _finished(publisher)
    assert_live_equals_replay(deployment, expected)


async def _send_late(deployment: Deployment, lines: list[bytes], late: int, delay: float) -> None:
    """A producer of our own that follows docs/events.md#watermarks by hand: it stamps ``lines`` in
    order, but line ``late`` reaches the broker ``delay`` seconds after the lines stamped after it, as
    a slow partition leader or a retried batch would have it."""
    producer = AIOKafkaProducer(bootstrap_servers=deployment.kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        me = b"test-late-1"
        stamps = iter(range(time.time_ns() // 1000, 1 << 62))
        topics = [deployment.topic(t) for t in SOURCE_TOPICS.values()]

        async def mark(kind: str) -> None:
            stamp = str(next(stamps)).encode()
            headers = [(ARRIVAL_HEADER, stamp), (PRODUCER_HEADER, me), (WATERMARK_HEADER, kind.encode())]
            for topic in topics:
                for partition in sorted(await producer.partitions_for(topic)):
                    await (await producer.send(topic, b"{}", partition=partition, headers=headers))

        async def send(line: bytes, stamp: int) -> None:
            event = orjson.loads(line)
            topic = deployment.topic(SOURCE_TOPICS[event["type"]])
            headers = [(ARRIVAL_HEADER, str(stamp).encode()), (PRODUCER_HEADER, me)]
            await (await producer.send(topic, line, key=event["subscription"].encode(), headers=headers))

        await mark("open")
        stamped = [(line, next(stamps)) for line in lines]
        for line, stamp in stamped[:late] + stamped[late + 1 :]:
            await send(line, stamp)
        await asyncio.sleep(delay)
        await send(*stamped[late])
        await mark("closed")
    finally:
        await producer.stop()


def test_an_event_that_reaches_the_broker_after_later_ones_is_still_counted_in_stamp_order(deployment_factory: DeploymentFactory, tmp_path: Path) -> None:
    """The profile that fills the external capacity is stamped before a login but reaches the broker
    2.5 s after it, while the worker has read every partition to its end: the capacity event is still
    the profile's, as in replay (no wall-clock hold gives way: the producer's watermark on the
    profiles partition has not passed the login)."""
    at = time.time_ns() // 1000 - 3_600_000_000
    lines = [orjson.dumps(event) for event in (
        {"type": "config", "id": "c1", "subscription": "acme", "domains": ["corp.example"],
         "capacity": {"internal": 10, "external": 1}, "thresholds": [100], "time": format_instant(at)},
        {"type": "profile", "op": "upsert", "id": "p1", "subscription": "acme", "user_id": "u1",
         "email": "ann@mail.example", "time": format_instant(at + 1000)},
        {"type": "login", "id": "l1", "subscription": "acme", "user_id": "u2", "email": "bob@mail.example",
         "time": format_instant(at + 2000)},
    )]
    path = tmp_path / "late.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    replay = subprocess.run([sys.executable, "-m", "streams", "replay", str(path)], capture_output=True, check=True)
    expected: dict[str, Any] = orjson.loads(replay.stdout)
    assert [e["trigger"] for e in expected["capacity_events"]] == ["p1"]
    deployment = deployment_factory()
    _counting(deployment, 1)
    asyncio.run(_send_late(deployment, lines, late=1, delay=2.5))
    assert_live_equals_replay(deployment, expected)
