"""Hostile input on the live pipeline: events on another type's topic, far-future times, oversized
configs. Each goes to the dead-letter topic with its reason and changes neither counts nor settings."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from prometheus_client.parser import text_string_to_metric_families

from schemas.outputs import format_instant
from tests.fixtures.pipeline import Deployment, DeploymentFactory

pytestmark = pytest.mark.integration


async def _produce(deployment: Deployment, items: list[tuple[str, dict[str, Any]]]) -> None:
    """One at a time, so that their record timestamps (and so their arrival order) follow the list."""
    producer = AIOKafkaProducer(bootstrap_servers=deployment.kafka_bootstrap)
    await producer.start()
    try:
        for topic, event in items:
            await producer.send_and_wait(deployment.topic(topic), orjson.dumps(event), key=b"acme")
    finally:
        await producer.stop()


def test_wrong_topics_far_future_times_and_oversized_configs_are_dead_lettered_live(deployment_factory: DeploymentFactory) -> None:
    deployment: Deployment = deployment_factory()
    worker = deployment.start_worker()
    in_23_hours = format_instant((int(time.time()) + 23 * 3600) * 1_000_000)
    asyncio.run(_produce(deployment, [
        ("config", {"type": "config", "subscription": "acme", "capacity": {"internal": 10, "external": 10},
                    "runtimes": {"prod": {"version": "11.14.0"}}}),
        # any producer allowed to write logins must not reconfigure a subscription
        ("logins", {"type": "config", "subscription": "acme", "capacity": {"internal": 99_999, "external": 0},
                    "domains": ["attacker.example"]}),
        ("profiles", {"type": "profile", "op": "upsert", "subscription": "acme", "user_id": "1",
                      "email": "one@client.example"}),
        # a delete dated 9999 would leave a tombstone that ignores every later event of the record
        ("profiles", {"type": "profile", "op": "delete", "subscription": "acme", "user_id": "1",
                      "time": "9999-01-01T00:00:00Z"}),
        ("logins", {"type": "login", "subscription": "acme", "user_id": "1"}),
        ("logins", {"type": "login", "subscription": "acme", "user_id": "2", "time": in_23_hours}),
        ("config", {"type": "config", "subscription": "acme",
                    "runtimes": {f"rt-{n}": {"version": "11.14.0"} for n in range(1001)}}),
    ]))
    deployment.wait_caught_up()
    assert worker.process.poll() is None, worker.log_tail()

    letters = sorted((orjson.loads(v) for _, v in deployment.read_topic("deadletter")), key=lambda d: d["timestamp"])
    reasons = [(d["topic"], d["reason"]) for d in letters]
    assert len(reasons) == 3, reasons
    assert reasons[0] == (deployment.topic("logins"), f"type config is not accepted on topic {deployment.topic('logins')}")
    assert reasons[1][0] == deployment.topic("profiles")
    assert reasons[1][1].startswith("time is in the future: 9999-01-01T00:00:00Z is more than 24h ahead of ")
    assert reasons[2][0] == deployment.topic("config")
    assert reasons[2][1].startswith("runtimes: ") and "at most 1000 items" in reasons[2][1]

    document = httpx.get(f"{worker.url}/api/v1/subscriptions/acme", timeout=10).json()
    assert document["records"] == 2, "the untimed login after the refused delete counts, and so does 23h ahead"
    settings = document["settings"]
    assert settings["capacity"] == {"internal": 10, "external": 10}
    assert settings["domains"] == []
    assert list(settings["runtimes"]) == ["prod"]

    body = httpx.get(f"{worker.url}/metrics", timeout=10).text
    rejections = {s.labels["reason"]: s.value for family in text_string_to_metric_families(body)
                  for s in family.samples if s.name == "endusers_rejections_total"}
    assert rejections == {"wrong_topic": 1, "future_time": 1, "too_large": 1}


FORGED_MS = 253_402_214_400_000
"""9999-12-31T00:00:00Z: a record timestamp a producer chose (CreateTime)."""


async def _allow_any_timestamp(deployment: Deployment, topics: list[str]) -> None:
    """What a Kafka 3.x broker does by default (4.x refuses stamps over an hour ahead unless told so)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=deployment.kafka_bootstrap)
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, deployment.topic(t),
                                                  {"message.timestamp.after.max.ms": "9223372036854775807"})
                                   for t in topics])
    finally:
        await admin.close()


async def _produce_stamped(deployment: Deployment, items: list[tuple[str, dict[str, Any], int | None]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=deployment.kafka_bootstrap)
    await producer.start()
    try:
        for topic, event, stamp in items:
            await producer.send_and_wait(deployment.topic(topic), orjson.dumps(event), key=b"acme", timestamp_ms=stamp)
    finally:
        await producer.stop()


async def _produce_raw(deployment: Deployment, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=deployment.kafka_bootstrap, linger_ms=50,
                                max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(deployment.topic(topic), value, key=b"k") for value in values])
    finally:
        await producer.stop()


def test_an_untimed_event_with_a_forged_record_timestamp_is_dead_lettered_live(
        deployment_factory: DeploymentFactory) -> None:
    deployment: Deployment = deployment_factory()
    worker = deployment.start_worker()
    asyncio.run(_allow_any_timestamp(deployment, ["profiles", "config"]))
    asyncio.run(_produce_stamped(deployment, [
        ("config", {"type": "config", "subscription": "acme", "capacity": {"internal": 10, "external": 10}}, None),
        ("profiles", {"type": "profile", "op": "upsert", "subscription": "acme", "user_id": "1",
                      "email": "one@client.example"}, None),
        # untimed, so the record timestamp is their time: a tombstone and a locked capacity until 9999
        ("profiles", {"type": "profile", "op": "delete", "subscription": "acme", "user_id": "1"}, FORGED_MS),
        ("config", {"type": "config", "subscription": "acme", "capacity": {"internal": 1, "external": 1}}, FORGED_MS),
    ]))
    deployment.wait_caught_up()
    asyncio.run(_produce_stamped(deployment, [
        ("logins", {"type": "login", "subscription": "acme", "user_id": "1"}, None),
        ("config", {"type": "config", "subscription": "acme", "capacity": {"internal": 20, "external": 20}}, None),
    ]))
    deployment.wait_caught_up()
    assert worker.process.poll() is None, worker.log_tail()

    letters = [orjson.loads(v) for _, v in deployment.read_topic("deadletter")]
    assert sorted(d["topic"] for d in letters) == [deployment.topic("config"), deployment.topic("profiles")]
    assert all(d["reason"].startswith("the record timestamp (the event has no time) is in the future: "
                                      "9999-12-31T00:00:00Z is more than 24h ahead of ") for d in letters), letters
    document = httpx.get(f"{worker.url}/api/v1/subscriptions/acme", timeout=10).json()
    assert document["records"] == 1, "the delete was refused: the later login of user 1 counts"
    assert document["settings"]["capacity"] == {"internal": 20, "external": 20}, "no key is locked until 9999"


def test_no_message_stops_ingest_and_a_login_after_them_is_counted(deployment_factory: DeploymentFactory) -> None:
    deployment: Deployment = deployment_factory(partitions=1)
    asyncio.run(_produce_raw(deployment, "logins", [b"[" * 255 + b"]" * 255]))  # dead-lettering it recursed
    wide = "\U0001f600" * 256  # four-byte characters at the field limit: 500 of them made a 1.59 MB message
    asyncio.run(_produce_raw(deployment, "logins", [orjson.dumps(
        {"type": "login", "subscription": "wide", "user_id": f"{n:0>256}", "runtime": wide, "tenant": wide,
         "provider": wide, "id": f"{n:0>256}"}) for n in range(500)]))
    # as many runtimes as a subscription may have, 200 characters each: uncapped, a counts document
    # of 2,200 of them was 2.3 MB; the runtimes past the 200 largest fold into "other"
    asyncio.run(_produce_raw(deployment, "logins", [orjson.dumps(
        {"type": "login", "subscription": "many", "user_id": str(n), "runtime": f"{n:0>200}"}) for n in range(1000)]))
    asyncio.run(_produce_raw(deployment, "logins", [orjson.dumps(
        {"type": "login", "subscription": "plain", "user_id": "1"})]))
    worker = deployment.start_worker()
    deployment.wait_caught_up()
    assert worker.process.poll() is None, worker.log_tail()

    (letter,) = [orjson.loads(v) for _, v in deployment.read_topic("deadletter")]
    assert letter["reason"] == "not a JSON object (got list)" and letter["offset"] == 0
    counts = deployment.counts()
    assert counts["plain"]["records"] == 1
    assert counts["wide"]["records"] == 500 and counts["many"]["records"] == 1000
    assert len(counts["many"]["runtimes"]) == 201 and counts["many"]["runtimes"]["other"]["records"] == 800
    published = {key: orjson.loads(value) for key, value in deployment.read_topic("counts")}
    assert published[b"many"]["records"] == 1000 and published[b"plain"]["records"] == 1
    assert "Recursion limit" not in worker.log.read_text(errors="replace")


def test_a_history_request_of_any_range_answers_promptly_and_healthz_keeps_answering(
        deployment_factory: DeploymentFactory) -> None:
    deployment: Deployment = deployment_factory(partitions=1)
    worker = deployment.start_worker()
    asyncio.run(_produce(deployment, [("logins", {"type": "login", "subscription": "acme", "user_id": "1"})]))
    deployment.wait_caught_up()

    async def probe() -> tuple[float, float, int]:
        async with httpx.AsyncClient(base_url=worker.url, timeout=60) as client:
            slowest = 0.0
            done = False

            async def health() -> None:
                nonlocal slowest
                while not done:
                    started = time.monotonic()
                    assert (await client.get("/healthz")).status_code == 200
                    slowest = max(slowest, time.monotonic() - started)
                    await asyncio.sleep(0.02)

            poller = asyncio.ensure_future(health())
            await asyncio.sleep(0.2)
            started = time.monotonic()
            answer = await client.get("/api/v1/subscriptions/acme/history",
                                      params={"resolution": "hour", "from": "0001-01-01"})
            took = time.monotonic() - started
            await asyncio.sleep(0.2)
            done = True
            await poller
            return took, slowest, answer.status_code

    took, slowest, status = asyncio.run(probe())
    assert status == 200
    assert took < 3.0 and slowest < 2.0, f"history took {took:.2f} s, slowest /healthz {slowest:.2f} s"
