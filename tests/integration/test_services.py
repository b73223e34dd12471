"""The local services answer like the real thing: Kafka 4 through aiokafka and Faust, Redis with AOF."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from tests.fixtures.pipeline import free_port
from tests.fixtures.services import Services, _exports, _run

pytestmark = pytest.mark.integration


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def test_kafka_produce_and_consume(services: Services) -> None:
    topic = _unique("it-roundtrip")
    payloads = [f"user-{i}@example.org".encode() for i in range(5)]

    producer = AIOKafkaProducer(bootstrap_servers=services.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        batch = [await producer.send(topic, value=v, key=b"org-1") for v in payloads]
        metadata = await asyncio.gather(*batch)
    finally:
        await producer.stop()
    assert [m.offset for m in metadata] == [0, 1, 2, 3, 4]
    assert {m.topic for m in metadata} == {topic}

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=services.kafka_bootstrap,
        group_id=_unique("it-group"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        got: list[tuple[bytes | None, bytes | None]] = []
        async with asyncio.timeout(30):
            while len(got) < len(payloads):
                batches = await consumer.getmany(timeout_ms=1000)
                for records in batches.values():
                    got.extend((r.key, r.value) for r in records)
        await consumer.commit()
    finally:
        await consumer.stop()
    assert got == [(b"org-1", v) for v in payloads]


async def test_faust_declares_topic_with_partitions(services: Services, tmp_path: Path) -> None:
    import faust

    name = _unique("it-faust-topic")
    app = faust.App(
        _unique("endusers-it"),
        broker=services.kafka_url,
        store="memory://",
        datadir=str(tmp_path / "faust"),
        web_enabled=False,
        topic_replication_factor=1,
    )
    topic = app.topic(name, partitions=3, value_serializer="raw")
    try:
        await topic.maybe_declare()
    finally:
        await app.producer.stop()

    admin = AIOKafkaAdminClient(bootstrap_servers=services.kafka_bootstrap)
    await admin.start()
    try:
        assert name in await admin.list_topics()
        (described,) = await admin.describe_topics([name])
    finally:
        await admin.close()
    assert described["error_code"] == 0
    assert described["topic"] == name
    assert sorted(p["partition"] for p in described["partitions"]) == [0, 1, 2]
    assert all(p["leader"] == 1 and p["replicas"] == [1] for p in described["partitions"])


async def test_redis_set_get_and_lua(services: Services) -> None:
    client = aioredis.from_url(services.redis_url, decode_responses=True)
    key = _unique("it:users")
    try:
        assert await client.set(f"{key}:name", "alice") is True
        assert await client.get(f"{key}:name") == "alice"

        # add a member to a set and return the new cardinality, atomically
        sha = await client.script_load(
            "redis.call('SADD', KEYS[1], ARGV[1]); return redis.call('SCARD', KEYS[1])"
        )
        assert await client.script_exists(sha) == [True]
        assert await client.evalsha(sha, 1, f"{key}:set", "u1") == 1
        assert await client.evalsha(sha, 1, f"{key}:set", "u2") == 2
        assert await client.evalsha(sha, 1, f"{key}:set", "u1") == 2
        assert await client.smembers(f"{key}:set") == {"u1", "u2"}
    finally:
        await client.delete(f"{key}:name", f"{key}:set")
        await client.aclose()


async def test_redis_data_survives_restart(tmp_path: Path) -> None:
    """`restart-redis` keeps the data (AOF). On a Redis of this test's own (data folder and port), so
    the restart never takes the suite's Redis from tests running in parallel processes."""
    env = {**os.environ, "ENDUSERS_DATA": str(tmp_path), "ENDUSERS_REDIS_PORT": str(free_port())}
    up = await asyncio.to_thread(_run, "up", "redis", env=env, timeout=120)
    own = _exports(up.stdout)["ENDUSERS_REDIS"]
    key = _unique("it:durable")
    try:
        client = aioredis.from_url(own, decode_responses=True)
        try:
            assert await client.config_get("appendonly") == {"appendonly": "yes"}
            await client.set(f"{key}:s", "kept")
            await client.hset(f"{key}:h", mapping={"org": "acme", "users": "42"})
            pid_before = (await client.info("server"))["process_id"]
        finally:
            await client.aclose()

        await asyncio.to_thread(_run, "restart-redis", env=env, timeout=120)

        client = aioredis.from_url(own, decode_responses=True)
        try:
            pid_after = (await client.info("server"))["process_id"]
            assert pid_after != pid_before, "redis was not restarted"
            assert await client.get(f"{key}:s") == "kept"
            assert await client.hgetall(f"{key}:h") == {"org": "acme", "users": "42"}
        finally:
            await client.aclose()
    finally:
        await asyncio.to_thread(_run, "down", "redis", env=env, check=False, timeout=120)


def test_services_env_prints_the_url_of_each_distributed_setup(services: Services) -> None:
    """`env NAME` prints what a shell needs to point the worker at that setup, without starting it."""
    import os
    import subprocess

    env = {**os.environ, "ENDUSERS_REDIS_CLUSTER_PORT": "7300", "ENDUSERS_REDIS_SENTINEL_PORT": "7310",
           "ENDUSERS_KAFKA_CLUSTER_PORT": "9400"}
    out = subprocess.run([str(services.script), "env", "redis-cluster", "redis-sentinel", "kafka-cluster"],
                         env=env, capture_output=True, text=True, check=True).stdout.splitlines()
    nodes = ",".join(f"127.0.0.1:{port}" for port in range(7300, 7306))
    assert out == [
        f"export ENDUSERS_REDIS=redis+cluster://{nodes}/0",
        "export ENDUSERS_REDIS=redis+sentinel://127.0.0.1:7312,127.0.0.1:7313,127.0.0.1:7314/endusers/0",
        "export ENDUSERS_KAFKA=kafka://127.0.0.1:9400;127.0.0.1:9401;127.0.0.1:9402",
        "export ENDUSERS_REPLICATION_FACTOR=3",
    ]
    unknown = subprocess.run([str(services.script), "up", "redis-galaxy"], env=env, capture_output=True, text=True)
    assert unknown.returncode != 0 and "known: kafka redis redis-cluster redis-sentinel kafka-cluster" in unknown.stderr
