"""The worker and the CLI on a broker with SASL (SCRAM-SHA-512) and ACLs, with per-subscription source
topics: each identity gets what its ACLs grant and nothing more, the broker (not this project) refuses
the rest, and an event on another licensee's topic is dead-lettered."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAuthorizationFailedError
from redis import Redis

from streams.settings import SOURCE_TOPICS, WorkerSettings
from tests.fixtures.generate import write_jsonl
from tests.fixtures.pipeline import Deployment, _databases
from tests.fixtures.secure_kafka import SecureKafka, secure_kafka  # noqa: F401  (the fixture)
from tests.fixtures.services import Services

pytestmark = pytest.mark.integration


@dataclass
class SecuredDeployment(Deployment):
    """A deployment with per-subscription source topics whose worker and CLI connect over SASL as
    ``identity``; the harness's own clients (lag, topic listings) use the PLAINTEXT listener as the
    super user."""

    secure: SecureKafka | None = None
    identity: str = "worker"
    tls: bool = True

    @property
    def env(self) -> dict[str, str]:
        assert self.secure is not None
        return {**super().env, **self.secure.client_env(self.identity, tls=self.tls),
                "ENDUSERS_TOPIC_LAYOUT": "per-subscription"}

    def settings(self) -> WorkerSettings:
        return WorkerSettings(topic_prefix=self.prefix, topic_layout="per-subscription")

    async def source_topics(self, admin: AIOKafkaAdminClient) -> list[str]:
        pattern = self.settings().source_pattern()
        return sorted(t for t in await admin.list_topics() if re.fullmatch(pattern, t))


LICENSEES = ("acme", "globex")


@pytest.fixture(scope="module")
def secured(services: Services, secure_kafka: SecureKafka, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredDeployment]:
    name = uuid.uuid4().hex[:8]
    prefix, app_id = f"t{name}", f"endusers-t{name}"
    redis_url = services.redis_db_url(next(_databases))
    Redis.from_url(redis_url).flushdb()
    kafka = secure_kafka
    # onboarding the licensees: the operator creates their topics and grants each producer its own
    asyncio.run(_create_topics(kafka, [f"{prefix}.{kind}.{licensee}" for kind in SOURCE_TOPICS.values()
                                       for licensee in LICENSEES]))
    kafka.acl("--allow-principal", "User:worker", "--operation", "All", "--resource-pattern-type", "prefixed",
              "--topic", f"{prefix}.", "--topic", app_id, "--group", app_id)
    kafka.acl("--allow-principal", "User:idp-acme", "--operation", "Write", "--operation", "Describe",
              "--resource-pattern-type", "prefixed", "--topic", f"{prefix}.logins.acme",
              "--topic", f"{prefix}.profiles.acme", "--topic", f"{prefix}.visits.acme")
    kafka.acl("--allow-principal", "User:admin", "--operation", "Write", "--operation", "Describe",
              "--resource-pattern-type", "prefixed", "--topic", f"{prefix}.config.")
    directory = tmp_path_factory.mktemp("acls")
    deployment = SecuredDeployment(kafka.plain_bootstrap, redis_url, prefix, app_id, directory / name, secure=kafka)
    deployment.directory.mkdir()
    try:
        deployment.start_worker()
        yield deployment
    finally:
        deployment.close()


async def _create_topics(kafka: SecureKafka, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.plain_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, 4, 1) for t in topics])
    finally:
        await admin.close()


async def _send(kafka: SecureKafka, user: str, topic: str, value: dict[str, Any]) -> None:
    producer = AIOKafkaProducer(**kafka.client_options(user), request_timeout_ms=10_000)  # type: ignore[arg-type]
    await producer.start()
    try:
        await producer.send_and_wait(topic, orjson.dumps(value), key=str(value["subscription"]).encode())
    finally:
        await producer.stop()


def test_the_broker_keeps_licensees_apart_and_the_worker_counts_over_sasl_ssl(
        secured: SecuredDeployment, tmp_path: Path) -> None:
    kafka = secured.secure
    assert kafka is not None
    config = {"type": "config", "subscription": "acme", "domains": ["acme.example"], "actor": "ops"}
    asyncio.run(_send(kafka, "admin", secured.topic("config.acme"), config))
    logins = [{"type": "login", "subscription": "acme", "user_id": str(n), "email": f"u{n}@acme.example"}
              for n in range(3)] + [{"type": "login", "subscription": "acme", "user_id": "x", "email": "x@gmail.com"}]
    secured.identity, secured.tls = "idp-acme", False  # the CLI over SASL_PLAINTEXT, the worker over SASL_SSL
    published = secured.cli("publish", str(write_jsonl(tmp_path / "logins.jsonl", logins)))
    assert b"sent 4 event(s)" in published.stdout and secured.topic("logins.acme").encode() in published.stdout

    globex_login = {"type": "login", "subscription": "globex", "user_id": "1", "email": "g@globex.example"}
    for topic, event in (("logins.globex", globex_login), ("config.acme", {**config, "domains": ["gmail.com"]})):
        with pytest.raises(TopicAuthorizationFailedError):  # the broker says no
            asyncio.run(_send(kafka, "idp-acme", secured.topic(topic), event))
    asyncio.run(_send(kafka, "idp-acme", secured.topic("logins.acme"), globex_login))  # allowed topic, wrong tenant
    secured.identity, secured.tls = "worker", True

    secured.wait_caught_up()
    counts = secured.counts()
    assert set(counts) == {"acme"}
    assert (counts["acme"]["internal"], counts["acme"]["external"]) == (3, 1)  # the refused config changed nothing
    audit = orjson.loads(secured.cli("audit", "acme", "--json").stdout)
    assert [entry["actor"] for entry in audit] == ["ops"]
    assert audit[0]["topic"] == secured.topic("config.acme")
    (letter,) = [orjson.loads(v) for _, v in secured.read_topic("deadletter")]
    assert letter["topic"] == secured.topic("logins.acme")
    assert "'globex' does not belong on topic" in letter["reason"]
