"""The admission check on running workers with the real Kafka and Redis: answered from the counting
worker's memory, for source and admin tokens of the subscription's scope, changing nothing; and asked
of a worker that does not count the subscription, forwarded to the one that does."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from streams.http.auth import create_token
from tests.fixtures.generate import write_jsonl
from tests.fixtures.pipeline import Deployment, DeploymentFactory

pytestmark = pytest.mark.integration

FIELDS = ("adds", "user_class", "count_after", "capacity", "level_after", "crosses")


def _events(subscription: str = "acme") -> list[dict[str, Any]]:
    """Internal 3 of capacity 5 (level 0); Ann counts through prod; Eve is external."""
    def login(user_id: str, email: str, runtime: str = "prod") -> dict[str, Any]:
        return {"type": "login", "subscription": subscription, "user_id": user_id, "email": email, "runtime": runtime}
    return [{"type": "config", "subscription": subscription, "domains": ["example.com"],
             "capacity": {"internal": 5, "external": 10}},
            login("ann", "ann@example.com"), login("bob", "bob@example.com"), login("cid", "cid@example.com"),
            login("eve", "eve@partner.io")]


def _ask(http: httpx.Client, token: str, body: dict[str, Any], subscription: str = "acme") -> httpx.Response:
    """The answer, asked again while the state loads or moves (503 with Retry-After)."""
    deadline = time.monotonic() + 60
    while True:
        response = http.post(f"/api/v1/subscriptions/{subscription}/admission", json=body,
                             headers={"Authorization": f"Bearer {token}"})
        if response.status_code != 503 or time.monotonic() > deadline:
            return response
        time.sleep(0.5)


def _state(deployment: Deployment) -> dict[bytes, Any]:
    """Every key of the deployment's Redis database with its value, for a before/after comparison."""
    redis = deployment.redis()
    return {key: redis.dump(key) for key in sorted(redis.keys("*")) if b"changes-read" not in key}


def test_admission_answers_live_for_source_and_admin_tokens_and_changes_nothing(
        deployment_factory: DeploymentFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = tmp_path / "tokens"
    source, admin = create_token(tokens, "source", frozenset({"acme"})), create_token(tokens, "admin", None)
    viewer, other = create_token(tokens, "viewer", frozenset({"acme"})), create_token(tokens, "source", frozenset({"globex"}))
    monkeypatch.setenv("ENDUSERS_API_TOKENS_FILE", str(tokens))
    deployment = deployment_factory()
    worker = deployment.start_worker()
    deployment.cli("publish", str(write_jsonl(tmp_path / "acme.jsonl", _events())))
    deployment.wait_caught_up()
    counts_before, stored_before = deployment.counts()["acme"], _state(deployment)
    with httpx.Client(base_url=worker.url, timeout=10) as http:
        new = _ask(http, source, {"email": "dee@example.com", "runtime": "prod", "user_id": "dee"}).json()
        assert {k: new[k] for k in FIELDS} == {"adds": True, "user_class": "internal", "count_after": 4,
                                               "capacity": 5, "level_after": 80, "crosses": True}
        known = _ask(http, source, {"email": "Ann@Example.com", "runtime": "sales", "user_id": "a.smith"}).json()
        assert {k: known[k] for k in FIELDS} == {"adds": False, "user_class": "internal", "count_after": 3,
                                                 "capacity": 5, "level_after": 0, "crosses": False}
        partner = _ask(http, admin, {"email": "fay@partner.io"}).json()
        assert (partner["adds"], partner["user_class"], partner["count_after"], partner["crosses"]) == (
            True, "external", 2, False)
        assert _ask(http, viewer, {"email": "dee@example.com"}).status_code == 403
        assert _ask(http, other, {"email": "dee@example.com"}).status_code == 403
        assert _ask(http, source, {"email": "not-an-email"}).status_code == 400
        assert http.get("/api/v1/subscriptions/acme", headers={"Authorization": f"Bearer {source}"}).status_code == 403
    time.sleep(1.5)  # a commit or a snapshot the check had caused would have landed by now
    assert deployment.counts()["acme"] == counts_before
    assert _state(deployment) == stored_before


def test_a_worker_that_does_not_count_the_subscription_forwards_to_the_one_that_does(
        deployment_factory: DeploymentFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = tmp_path / "tokens"
    source = create_token(tokens, "source", None)
    monkeypatch.setenv("ENDUSERS_API_TOKENS_FILE", str(tokens))
    deployment = deployment_factory(partitions=4)
    first = deployment.start_worker()
    names = [f"client-{n}" for n in range(8)]  # over 4 partitions: each worker counts some
    deployment.cli("publish", str(write_jsonl(tmp_path / "all.jsonl", [e for n in names for e in _events(n)])))
    deployment.wait_caught_up()
    second = deployment.start_worker()
    deployment.wait_ready(first)
    body, held = {"email": "dee@example.com"}, {}
    with httpx.Client(base_url=first.url, timeout=10) as one, httpx.Client(base_url=second.url, timeout=10) as two:
        answers = {name: [_ask(http, source, body, name).json() for http in (one, two)] for name in names}
        for name in names:  # marked as forwarded already, a request is answered only where the state is
            held[name] = [http.post(f"/api/v1/subscriptions/{name}/admission", json=body, headers={
                "Authorization": f"Bearer {source}", "X-Endusers-Forwarded": "1"}).status_code for http in (one, two)]
    assert all(sorted(statuses) == [200, 503] for statuses in held.values()), held
    assert {statuses.index(200) for statuses in held.values()} == {0, 1}, held  # each worker counts some
    for name, (via_first, via_second) in answers.items():
        assert via_first == via_second, name
        assert (via_first["adds"], via_first["count_after"], via_first["crosses"]) == (True, 4, True), name
    logs = first.log.read_text(errors="replace") + second.log.read_text(errors="replace")
    assert "cannot forward" not in logs
