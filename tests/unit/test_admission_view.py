"""The admission route (streams/http/admission.py): who may call it, that it answers from the engine
state a worker holds without reading the store, that a worker without the state forwards the request
to the one that has it (once, never back), and that bad bodies get a reason."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from counters import SubscriptionState
from streams.http.auth import Access, TokenFile, create_token
from streams.http.views import create_web_app
from tests.unit.fake_counts import sample_reader
from tests.unit.test_admission import BASE, replayed
from tests.unit.test_web_views import ready

PATH = "/api/v1/subscriptions/acme/admission"


class Placement:
    """A worker's answer to where states are, fixed by the test."""

    def __init__(self, states: dict[str, SubscriptionState], owner: str | None = None) -> None:
        self.states, self.owner_url, self.asked = states, owner, 0
        self.client: aiohttp.ClientSession | None = None
        self.reader = sample_reader()
        """The store the worker's other views read (counted calls: the admission check must make none)."""

    def local(self, subscription: str) -> SubscriptionState | None:
        return self.states.get(subscription)

    def owner(self, subscription: str) -> str | None:
        self.asked += 1
        return self.owner_url

    def session(self) -> aiohttp.ClientSession:
        if self.client is None:
            self.client = aiohttp.ClientSession()
        return self.client


class Tokens:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.source_acme = create_token(path, "source", frozenset({"acme"}))
        self.source_globex = create_token(path, "source", frozenset({"globex"}))
        self.viewer_acme = create_token(path, "viewer", frozenset({"acme"}))
        self.admin = create_token(path, "admin", None)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def tokens(tmp_path: Path) -> Tokens:
    return Tokens(tmp_path / "tokens")


async def serve(tokens: Tokens, placement: Placement) -> TestClient[Any, Any]:
    app = create_web_app(placement.reader, ready(kafka=True, redis=True), access=Access(TokenFile(tokens.path)),
                         digester=replayed().digest, placement=placement)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def owner(tokens: Tokens) -> AsyncIterator[tuple[TestClient[Any, Any], Placement]]:
    placement = Placement({"acme": replayed(*BASE).states["acme"]})
    client = await serve(tokens, placement)
    yield client, placement
    await client.close()


async def test_source_and_admin_tokens_may_ask_within_their_scope_viewers_never(
        owner: tuple[TestClient[Any, Any], Placement], tokens: Tokens) -> None:
    client, _ = owner
    body = {"email": "dee@example.com"}
    for token, status in ((tokens.source_acme, 200), (tokens.admin, 200), (tokens.viewer_acme, 403),
                          (tokens.source_globex, 403)):
        assert (await client.post(PATH, json=body, headers=bearer(token))).status == status, token
    assert (await client.post(PATH, json=body)).status == 401
    # a source token reads nothing else
    assert (await client.get("/api/v1/subscriptions/acme", headers=bearer(tokens.source_acme))).status == 403
    assert (await client.post("/api/v1/subscriptions/acme/explain", json=body,
                              headers=bearer(tokens.source_acme))).status == 403


async def test_the_owner_answers_from_its_memory_without_reading_the_store(
        owner: tuple[TestClient[Any, Any], Placement], tokens: Tokens) -> None:
    client, placement = owner
    response = await client.post(PATH, json={"email": "dee@example.com"}, headers=bearer(tokens.source_acme))
    answer = await response.json()
    assert {k: answer[k] for k in ("adds", "user_class", "count_after", "capacity", "level_after", "crosses")} == {
        "adds": True, "user_class": "internal", "count_after": 4, "capacity": 5, "level_after": 80, "crosses": True}
    assert placement.asked == 0 and placement.reader.calls == 0 and response.headers["Cache-Control"] == "no-cache"


async def test_a_worker_without_the_state_forwards_to_the_owner_once(
        owner: tuple[TestClient[Any, Any], Placement], tokens: Tokens) -> None:
    owner_client, _ = owner
    other = Placement({}, owner=str(owner_client.make_url("/")))
    client = await serve(tokens, other)
    try:
        body = {"email": "ann@example.com", "runtime": "sales", "user_id": "a.smith"}
        forwarded = await client.post(PATH, json=body, headers=bearer(tokens.source_acme))
        direct = await owner_client.post(PATH, json=body, headers=bearer(tokens.source_acme))
        assert forwarded.status == 200 and await forwarded.json() == await direct.json()
        assert (await forwarded.json())["adds"] is False and other.asked == 1
        # the owner checks the token again: a viewer's is refused there too
        assert (await client.post(PATH, json=body, headers=bearer(tokens.viewer_acme))).status == 403
        # a forwarded request that lands on a worker without the state is not sent on: 503, retry
        again = await client.post(PATH, json=body, headers={**bearer(tokens.admin), "X-Endusers-Forwarded": "1"})
        assert again.status == 503 and again.headers["Retry-After"] == "1" and other.asked == 1
    finally:
        await client.close()
        if other.client is not None:
            await other.client.close()


async def test_without_state_or_owner_an_unknown_subscription_is_404_a_known_one_503(tokens: Tokens) -> None:
    client = await serve(tokens, Placement({}))
    try:
        unknown = await client.post("/api/v1/subscriptions/nobody/admission", json={"email": "a@example.com"},
                                    headers=bearer(tokens.admin))
        assert unknown.status == 404
        moving = await client.post(PATH, json={"email": "a@example.com"}, headers=bearer(tokens.admin))
        assert moving.status == 503 and "loading or moving" in (await moving.json())["error"]
    finally:
        await client.close()


@pytest.mark.parametrize("body, reason", [
    (b"[1]", "JSON object"), (b"not json", "JSON object"), (b"{}", "give email"),
    (orjson.dumps({"email": "not-an-email"}), "not a valid email"),
    (orjson.dumps({"email": 7}), "email must be a string"),
    (orjson.dumps({"user_id": True}), "user_id must be"),
    (orjson.dumps({"email": "a@example.com", "runtime": "r" * 300}), "runtime must be a string of at most 256"),
    (orjson.dumps({"email": "a@example.com", "default_tenant": "yes"}), "default_tenant must be"),
])
async def test_a_bad_body_gets_a_reason_and_changes_nothing(owner: tuple[TestClient[Any, Any], Placement],
                                                          tokens: Tokens, body: bytes, reason: str) -> None:
    client, placement = owner
    before = orjson.dumps(placement.states["acme"].summary())
    response = await client.post(PATH, data=body, headers=bearer(tokens.admin))
    assert response.status == 400 and reason in (await response.json())["error"]
    assert orjson.dumps(placement.states["acme"].summary()) == before
