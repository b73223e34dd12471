"""Security on the real Kafka and Redis: tokens and scopes on a running worker, the audit trail of config
changes (API and CLI), and topics created with explicit retention."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from redis import Redis

from streams.http.auth import create_token
from tests.fixtures.generate import write_jsonl
from tests.fixtures.pipeline import Deployment, Worker, _databases
from tests.fixtures.services import Services

pytestmark = pytest.mark.integration
WEEK_MS = str(7 * 24 * 3600 * 1000)


@pytest.fixture(scope="module")
def secured(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, Worker, dict[str, str]]]:
    """One worker with a token file for the whole module (a worker takes seconds to start)."""
    directory = tmp_path_factory.mktemp("security")
    tokens = directory / "tokens"
    names = {"admin": create_token(tokens, "admin", None), "viewer": create_token(tokens, "viewer", frozenset({"sec"})),
             "metrics": create_token(tokens, "viewer", None)}
    redis_url = services.redis_db_url(next(_databases))
    Redis.from_url(redis_url).flushdb()
    name = uuid.uuid4().hex[:8]
    deployment = Deployment(services.kafka_bootstrap, redis_url, f"t{name}", f"endusers-t{name}", directory / name)
    deployment.directory.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ENDUSERS_API_TOKENS_FILE", str(tokens))
        try:
            worker = deployment.start_worker()
            deployment.cli("config", "set", "sec", "--capacity-internal", "10", "--domains", "corp.example",
                           "--actor", "alice")
            deployment.cli("config", "set", "sec", "--capacity-internal", "20", "--actor", "bob")
            events = [{"type": "login", "subscription": s, "user_id": "1", "email": "a@corp.example"}
                      for s in ("sec", "other")]
            deployment.cli("publish", str(write_jsonl(directory / "logins.jsonl", events)))
            deployment.wait_caught_up()
            yield deployment, worker, names
        finally:
            deployment.close()


def test_tokens_and_scopes_on_a_running_worker(secured: tuple[Deployment, Worker, dict[str, str]]) -> None:
    _, worker, tokens = secured

    def get(path: str, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(worker.url + path, headers=headers, timeout=5)

    assert get("/healthz").status_code == 200 and get("/readyz").status_code == 200
    assert get("/api/v1/subscriptions").status_code == 401
    assert get("/api/v1/subscriptions", tokens["admin"]).json() == {"subscriptions": ["other", "sec"]}
    assert get("/api/v1/subscriptions", tokens["viewer"]).json() == {"subscriptions": ["sec"]}
    assert get("/api/v1/subscriptions/other", tokens["viewer"]).status_code == 403
    viewer = get("/api/v1/subscriptions/sec", tokens["viewer"]).json()
    assert viewer["internal"] == 1 and viewer["settings"]["capacity"]["internal"] == 20
    assert "domains" not in viewer["settings"]
    assert get("/api/v1/subscriptions/sec", tokens["admin"]).json()["settings"]["domains"] == ["corp.example"]
    assert get("/metrics", tokens["viewer"]).status_code == 403
    assert "endusers_users" in get("/metrics", tokens["metrics"]).text
    response = get("/router/", tokens["admin"])
    assert response.status_code == 404 and response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Server"] == "endusers"


def test_config_changes_are_audited_with_actor_source_and_settings(
        secured: tuple[Deployment, Worker, dict[str, str]]) -> None:
    deployment, worker, tokens = secured
    response = httpx.get(worker.url + "/api/v1/subscriptions/sec/audit",
                         headers={"Authorization": f"Bearer {tokens['admin']}"}, timeout=5)
    assert response.status_code == 200
    newest, oldest = response.json()["changes"]
    assert (oldest["actor"], newest["actor"]) == ("alice", "bob")
    assert oldest["topic"] == newest["topic"] == deployment.topic("config")
    assert isinstance(oldest["offset"], int) and isinstance(oldest["partition"], int)
    assert oldest["diff"]["capacity.internal"] == {"before": None, "after": 10}
    assert sorted(oldest["changed"]) == ["capacity", "domains"]
    assert newest["diff"] == {"capacity.internal": {"before": 10, "after": 20}}
    assert newest["changed"] == ["capacity"]
    forbidden = httpx.get(worker.url + "/api/v1/subscriptions/sec/audit",
                          headers={"Authorization": f"Bearer {tokens['viewer']}"}, timeout=5)
    assert forbidden.status_code == 403
    printed = deployment.cli("audit", "sec").stdout.decode()
    assert printed.index("bob") < printed.index("alice")
    assert "capacity.internal: 10 -> 20" in printed


def test_topics_are_created_with_explicit_retention(secured: tuple[Deployment, Worker, dict[str, str]]) -> None:
    deployment, _, _ = secured

    async def configs() -> dict[str, dict[str, Any]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=deployment.kafka_bootstrap)
        await admin.start()
        try:
            names = [deployment.topic(t) for t in ("deadletter", "changes", "counts")]
            responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
        finally:
            await admin.close()
        found: dict[str, dict[str, Any]] = {}
        for response in responses:
            for resource in response.resources:
                found[resource[3]] = {entry[0]: entry[1] for entry in resource[4]}
        return found

    found = asyncio.run(configs())
    assert found[deployment.topic("deadletter")]["retention.ms"] == WEEK_MS
    assert found[deployment.topic("changes")]["retention.ms"] == WEEK_MS
    assert found[deployment.topic("counts")]["cleanup.policy"] == "compact"
