"""The gateway's HTTP answers (streams/gateway/app.py): tokens and scopes, the routes' defaults, 400 for a
malformed payload, partial batches, 503 with Retry-After while Kafka cannot be reached, the metrics;
against an in-memory publisher (the real Kafka: tests/integration/test_gateway.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from streams.gateway.app import create_gateway
from streams.http.auth import create_token
from streams.kafka.errors import BrokerUnavailable
from streams.kafka.publish import Publisher, PublishResult
from streams.settings import WorkerSettings
from tests.unit.test_gateway_auth0 import log
from tests.unit.test_gateway_okta import hook, okta_event


class MemoryPublisher:
    """Records what would be published; ``down`` makes it fail as a broker that cannot be reached."""

    def __init__(self) -> None:
        self.published: list[dict[str, object]] = []
        self.down = False

    async def publish(self, documents: list[dict[str, object]]) -> PublishResult:
        if self.down:
            raise BrokerUnavailable("KafkaConnectionError: Unable to bootstrap from [('127.0.0.1', 1)]")
        self.published += documents
        result = PublishResult()
        result.sent["enduser.logins"] += len(documents)
        return result

    async def check(self) -> None:
        if self.down:
            raise BrokerUnavailable("KafkaConnectionError: Unable to bootstrap from [('127.0.0.1', 1)]")

    async def stop(self) -> None:
        pass


class Tokens:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.source_acme = create_token(path, "source", frozenset({"acme"}))
        self.source_all = create_token(path, "source", None)
        self.viewer_all = create_token(path, "viewer", None)
        self.admin_acme = create_token(path, "admin", frozenset({"acme"}))


@pytest.fixture
def tokens(tmp_path: Path) -> Tokens:
    return Tokens(tmp_path / "tokens")


@pytest.fixture
def publisher() -> MemoryPublisher:
    return MemoryPublisher()


@pytest.fixture
async def client(tokens: Tokens, publisher: MemoryPublisher) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_gateway(WorkerSettings(), str(tokens.path), cast(Publisher, publisher))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


ROUTES = ["/v1/subscriptions/acme/events", "/v1/subscriptions/acme/okta", "/v1/subscriptions/acme/auth0"]


@pytest.mark.parametrize("path", ROUTES)
async def test_every_route_needs_a_token_401_without(client: TestClient[Any, Any], path: str) -> None:
    for headers in ({}, bearer("wrong")):
        response = await client.post(path, data=b"[]", headers=headers)
        assert response.status == 401 and "WWW-Authenticate" in response.headers
    assert (await client.get("/v1/subscriptions/acme/okta")).status == 401


async def test_a_scim_client_without_a_valid_token_gets_a_scim_error_body(client: TestClient[Any, Any]) -> None:
    for headers in ({}, bearer("wrong")):
        response = await client.get("/scim/v2/acme/Users", headers=headers)
        assert response.status == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.content_type == "application/scim+json"
        body = await response.json(content_type=None)
        assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"] and body["status"] == "401"
        assert "Authorization: Bearer" in body["detail"]
    other = await client.post(ROUTES[0], data=b"[]")  # the event routes keep their own error body
    assert other.status == 401 and "error" in await other.json()


@pytest.mark.parametrize("path", ROUTES)
async def test_a_token_outside_its_scope_or_a_viewer_is_refused_403(client: TestClient[Any, Any], tokens: Tokens,
                                                                     path: str) -> None:
    other, empty = path.replace("acme", "globex"), b'{"data": {"events": []}}' if "okta" in path else b"[]"
    assert (await client.post(other, data=empty, headers=bearer(tokens.source_acme))).status == 403
    assert (await client.post(other, data=empty, headers=bearer(tokens.admin_acme))).status == 403
    assert (await client.post(path, data=empty, headers=bearer(tokens.viewer_all))).status == 403
    assert (await client.post(path, data=empty, headers=bearer(tokens.source_acme))).status == 200


async def test_okta_verification_echoes_the_challenge(client: TestClient[Any, Any], tokens: Tokens) -> None:
    response = await client.get("/v1/subscriptions/acme/okta", headers={
        **bearer(tokens.source_acme), "X-Okta-Verification-Challenge": "5MwcInHN3tSONtjnoB9bB"})
    assert response.status == 200 and await response.json() == {"verification": "5MwcInHN3tSONtjnoB9bB"}
    missing = await client.get("/v1/subscriptions/acme/okta", headers=bearer(tokens.source_acme))
    assert missing.status == 400


async def test_an_okta_hook_is_published_with_the_routes_defaults(client: TestClient[Any, Any], tokens: Tokens,
                                                                  publisher: MemoryPublisher) -> None:
    body = hook(okta_event("user.session.start", uuid="a"), okta_event("user.session.start", uuid="b",
                                                                       result="FAILURE"),
                okta_event("user.account.lock", uuid="c"), "not an event")
    response = await client.post("/v1/subscriptions/acme/okta?runtime=prod-eu", json=body,
                                 headers=bearer(tokens.source_acme))
    assert response.status == 200
    answer = await response.json()
    assert answer["accepted"] == 1 and answer["ignored"] == {"failure": 1, "other_type": 1}
    assert [u["index"] for u in answer["unmapped"]] == [3]
    [event] = publisher.published
    assert (event["runtime"], event["provider"], event["id"]) == ("prod-eu", "okta", "okta:a")


async def test_an_auth0_batch_is_published_with_a_provider_chosen_by_the_route(
        client: TestClient[Any, Any], tokens: Tokens, publisher: MemoryPublisher) -> None:
    body = orjson.dumps([log("s", log_id="1"), log("seccft", log_id="2"), log("fp", log_id="3")])
    response = await client.post("/v1/subscriptions/acme/auth0?provider=customers", data=body,
                                 headers=bearer(tokens.source_all))
    assert await response.json() == {"accepted": 1, "ignored": {"machine": 1, "failure": 1}, "unmapped": []}
    assert publisher.published[0]["provider"] == "customers"


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/subscriptions/acme/okta", b"{not json"), ("/v1/subscriptions/acme/okta", b'{"data": {}}'),
    ("/v1/subscriptions/acme/auth0", b"<html>"), ("/v1/subscriptions/acme/events", b"42")])
async def test_a_malformed_payload_is_400_with_the_reasons(client: TestClient[Any, Any], tokens: Tokens, path: str,
                                                           body: bytes, publisher: MemoryPublisher) -> None:
    response = await client.post(path, data=body, headers=bearer(tokens.source_acme))
    assert response.status == 400
    answer = await response.json()
    assert answer["reasons"] and all(isinstance(r, str) and r for r in answer["reasons"])
    assert publisher.published == []


async def test_own_events_take_the_routes_subscription_and_refuse_others(
        client: TestClient[Any, Any], tokens: Tokens, publisher: MemoryPublisher) -> None:
    body = b"\n".join([
        b'{"type": "login", "user_id": "1", "email": "ann@example.com"}',
        b'{"type": "login", "subscription": "globex", "user_id": "2"}',
        b'{"type": "config", "subscription": "acme", "capacity": {"internal": 5}}',
        b'{"type": "login", "subscription": "acme"}',
        b'{"type": "visit", "session_id": "s1"}'])
    response = await client.post("/v1/subscriptions/acme/events?provider=hr", data=body,
                                 headers=bearer(tokens.source_acme))
    answer = await response.json()
    assert response.status == 200 and answer["accepted"] == 2
    reasons = {u["index"]: u["reason"] for u in answer["unmapped"]}
    assert set(reasons) == {1, 2, 3}
    assert "globex" in reasons[1] and "admin token" in reasons[2] and "user_id" in reasons[3]
    login, visit = publisher.published
    assert (login["subscription"], login["provider"]) == ("acme", "hr") and "provider" not in visit


async def test_an_admin_token_may_send_a_config_event(client: TestClient[Any, Any], tokens: Tokens,
                                                      publisher: MemoryPublisher) -> None:
    body = b'[{"type": "config", "subscription": "acme", "capacity": {"internal": 5}}]'
    answer = await (await client.post("/v1/subscriptions/acme/events", data=body,
                                      headers=bearer(tokens.admin_acme))).json()
    assert answer["accepted"] == 1 and publisher.published[0]["type"] == "config"


async def test_kafka_unreachable_is_503_with_retry_after_and_not_ready(
        client: TestClient[Any, Any], tokens: Tokens, publisher: MemoryPublisher) -> None:
    publisher.down = True
    response = await client.post("/v1/subscriptions/acme/auth0", data=orjson.dumps([log("s")]),
                                 headers=bearer(tokens.source_acme))
    assert response.status == 503 and int(response.headers["Retry-After"]) > 0
    assert "127.0.0.1" not in await response.text()
    ready = await client.get("/readyz")
    assert ready.status == 503 and await ready.json() == {"kafka": False, "reason": "Kafka does not answer"}
    publisher.down = False
    assert (await client.get("/readyz")).status == 200


async def test_metrics_count_accepted_ignored_and_refused_per_source_and_reason(
        client: TestClient[Any, Any], tokens: Tokens) -> None:
    await client.post("/v1/subscriptions/acme/auth0", data=orjson.dumps([log("s"), log("seccft"), {"x": 1}]),
                      headers=bearer(tokens.source_acme))
    await client.post("/v1/subscriptions/acme/okta", data=b"[]", headers=bearer(tokens.source_acme))
    assert (await client.get("/metrics", headers=bearer(tokens.source_all))).status == 403
    text = await (await client.get("/metrics", headers=bearer(tokens.viewer_all))).text()
    assert 'endusers_gateway_events_accepted_total{source="auth0"}' in text
    assert 'endusers_gateway_events_ignored_total{reason="machine",source="auth0"}' in text
    assert 'endusers_gateway_events_refused_total{reason="not_object",source="auth0"}' in text
    assert 'endusers_gateway_events_refused_total{reason="malformed",source="okta"}' in text


async def test_the_probes_need_no_token(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/healthz")).status == 200
    assert await (await client.get("/readyz")).json() == {"kafka": True}
