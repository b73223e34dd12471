"""``endusers gateway`` as a process on the real Kafka, with a real worker counting what it publishes:
Okta and Auth0 payloads are counted, one person seen by both counts once, a redelivery changes nothing,
and while Kafka cannot be reached (from the start, or gone after the gateway connected) the gateway answers
503 with Retry-After, and 200 again once Kafka is back, without a restart."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from tests.fixtures.gateway import Gateway, start_gateway
from tests.fixtures.pipeline import DeploymentFactory, free_port
from tests.fixtures.services import _run
from tests.unit.test_gateway_auth0 import log
from tests.unit.test_gateway_okta import hook, okta_event

pytestmark = pytest.mark.integration

ANN = {"id": "00u1ann", "type": "User", "alternateId": "ann.lee@example.com", "displayName": "Ann Lee"}
BOB = {"id": "00u2bob", "type": "User", "alternateId": "bob@example.com", "displayName": "Bob Ray"}
ADMIN = {"id": "00u9admin", "type": "User", "alternateId": "admin@example.com", "displayName": "Admin"}


def test_okta_and_auth0_payloads_posted_to_the_gateway_are_counted_one_person_once(
        deployment_factory: DeploymentFactory, gateways: list[Gateway]) -> None:
    deployment = deployment_factory()
    deployment.start_worker()
    gateway = start_gateway(deployment)
    gateways.append(gateway)
    okta = orjson.dumps(hook(
        okta_event("user.session.start", uuid="u-1", actor=ANN),
        okta_event("user.authentication.sso", uuid="u-2", actor=BOB),
        okta_event("user.session.start", uuid="u-3", actor={**ADMIN, "id": "00u3carol"}, result="FAILURE"),
        okta_event("user.lifecycle.create", uuid="u-4", actor=ADMIN,
                   target=[{"id": "00u4dan", "type": "User", "alternateId": "dan@example.com"}]),
        okta_event("user.lifecycle.deactivate", uuid="u-5", actor=ADMIN,
                   target=[{"id": "00u4dan", "type": "User", "alternateId": "dan@example.com"}])))
    auth0 = b"\n".join(orjson.dumps(item) for item in [
        log("s", log_id="a-1", user_id="auth0|ann", user_name="ann.lee@example.com"),
        log("seccft", log_id="a-2", user_id=None, user_name=None),
        log("fp", log_id="a-3", user_id="auth0|eve", user_name="eve@example.com")])
    first = gateway.post("/v1/subscriptions/acme/okta", okta)
    assert first.status_code == 200, first.text
    assert first.json() == {"accepted": 4, "ignored": {"failure": 1}, "unmapped": []}
    second = gateway.post("/v1/subscriptions/acme/auth0", auth0)
    assert second.json() == {"accepted": 1, "ignored": {"machine": 1, "failure": 1}, "unmapped": []}
    deployment.wait_caught_up()
    counts = deployment.counts()["acme"]
    # ann (Okta and Auth0, one email), bob; dan was created then deactivated
    assert (counts["records"], counts["internal"] + counts["external"]) == (3, 2), counts
    assert counts["providers"] == {"okta": 2, "auth0": 1}
    assert gateway.post("/v1/subscriptions/acme/okta", okta).status_code == 200  # Okta delivers again
    deployment.wait_caught_up()
    assert deployment.counts()["acme"] == counts
    metrics = httpx.get(gateway.url + "/metrics", headers={"Authorization": f"Bearer {gateway.token}"}, timeout=10)
    assert metrics.status_code == 403  # a source token reads nothing


def test_the_gateway_answers_503_with_retry_after_while_kafka_cannot_be_reached(
        deployment_factory: DeploymentFactory, gateways: list[Gateway]) -> None:
    deployment = deployment_factory()
    closed = free_port()
    gateway = start_gateway(deployment, {"ENDUSERS_KAFKA": f"kafka://127.0.0.1:{closed}"}, ready=False)
    gateways.append(gateway)
    assert httpx.get(gateway.url + "/readyz", timeout=30).status_code == 503
    started = time.monotonic()
    response = gateway.post("/v1/subscriptions/acme/auth0", orjson.dumps([log("s")]))
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0
    assert time.monotonic() - started < 30, "a provider must not wait long for the answer"
    malformed = gateway.post("/v1/subscriptions/acme/okta", b"{}")
    assert malformed.status_code == 400  # a malformed payload is refused before Kafka is needed


class OwnKafka:
    """A single-node Kafka of one test's own (``deploy/local/services`` with its own data folder and
    ports), so the test can stop the broker without taking the suite's away."""

    def __init__(self, directory: Path) -> None:
        self.port, self.controller = free_port(), free_port()
        self.env = {**os.environ, "ENDUSERS_DATA": str(directory), "ENDUSERS_KAFKA_PORT": str(self.port),
                    "ENDUSERS_KAFKA_CONTROLLER_PORT": str(self.controller), "ENDUSERS_KAFKA_HEAP": "-Xmx256m -Xms256m"}

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def up(self) -> None:
        _run("up", "kafka", env=self.env, timeout=180)

    def down(self) -> None:
        _run("down", "kafka", env=self.env, check=False, timeout=120)

    def ids(self, topic: str) -> list[str]:
        """The ``id`` of every event on ``topic`` (watermarks carry none)."""
        async def read() -> list[str]:
            consumer = AIOKafkaConsumer(topic, bootstrap_servers=self.bootstrap, auto_offset_reset="earliest",
                                        enable_auto_commit=False, consumer_timeout_ms=2000)
            await consumer.start()
            try:
                batches = await consumer.getmany(timeout_ms=5000)
                return [orjson.loads(r.value).get("id") for records in batches.values() for r in records]
            finally:
                await consumer.stop()
        return asyncio.run(read())


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[OwnKafka]:
    kafka = OwnKafka(tmp_path / "own-kafka")
    kafka.up()
    yield kafka
    kafka.down()


def test_a_gateway_whose_kafka_goes_away_answers_503_with_retry_after_and_200_again_once_it_is_back(
        deployment_factory: DeploymentFactory, gateways: list[Gateway], own_kafka: OwnKafka) -> None:
    deployment = deployment_factory(partitions=1)
    gateway = start_gateway(deployment, {"ENDUSERS_KAFKA": f"kafka://{own_kafka.bootstrap}", "ENDUSERS_PARTITIONS": "1"})
    gateways.append(gateway)
    assert gateway.post("/v1/subscriptions/acme/auth0", orjson.dumps([log("s", log_id="before")])).status_code == 200

    own_kafka.down()  # after the gateway has connected: its requests wait for an acknowledgement that never comes
    batch = orjson.dumps([log("s", log_id="during-1"), log("s", log_id="during-2", user_id="auth0|bob")])
    started = time.monotonic()
    refused = gateway.post("/v1/subscriptions/acme/auth0", batch)
    assert refused.status_code == 503, refused.text
    assert int(refused.headers["Retry-After"]) > 0
    assert time.monotonic() - started < 25, "the provider is answered within the acknowledgement timeout"
    assert httpx.get(gateway.url + "/readyz", timeout=30).status_code == 503

    own_kafka.up()  # the same broker back: the same gateway, not restarted, publishes again
    deadline = time.monotonic() + 60
    while (again := gateway.post("/v1/subscriptions/acme/auth0", batch)).status_code != 200:
        assert time.monotonic() < deadline, f"still {again.status_code} a minute after Kafka came back:\n{gateway.log_tail()}"
        time.sleep(1)
    assert again.json()["accepted"] == 2
    assert httpx.get(gateway.url + "/readyz", timeout=30).status_code == 200
    ids = own_kafka.ids(f"{deployment.prefix}.logins")
    # the refused batch sent again is there; if the first try reached Kafka after all, its ids repeat (harmless)
    assert set(ids) == {"auth0:before", "auth0:during-1", "auth0:during-2"}, ids
