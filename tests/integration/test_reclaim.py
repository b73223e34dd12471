"""Reclaiming seats on a running worker with the real Kafka and Redis: the dormant report and the
roster over HTTP (admins only) and from the CLI, with the providers' user ids opened for admins."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from streams.http.auth import create_token
from tests.fixtures.generate import write_jsonl
from tests.fixtures.pipeline import Deployment, DeploymentFactory

pytestmark = pytest.mark.integration


def _ago(days: int) -> str:
    return (datetime.now(timezone.utc) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _events() -> list[dict[str, Any]]:
    """Ann is dormant in prod but logged in through sales two days ago; Bob is dormant; Cid never
    logged in; Dee is recent; Eve (external) is dormant."""
    def login(user_id: str, days: int, email: str, runtime: str = "prod", tenant: str = "t1") -> dict[str, Any]:
        return {"type": "login", "subscription": "acme", "user_id": user_id, "time": _ago(days), "email": email,
                "runtime": runtime, "tenant": tenant}
    return [{"type": "config", "subscription": "acme", "domains": ["example.com"], "capacity": {"internal": 10}},
            login("ann", 200, "ann@example.com"), login("a.smith", 2, "ann@example.com", runtime="sales"),
            login("bob", 120, "bob@example.com"), login("dee", 1, "dee@example.com"),
            login("eve", 95, "eve@partner.io", tenant="t2"),
            {"type": "profile", "op": "upsert", "subscription": "acme", "user_id": "cid", "runtime": "prod",
             "tenant": "t1", "email": "cid@example.com", "time": _ago(3)}]


def test_dormant_users_and_the_roster_live(deployment_factory: DeploymentFactory, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = tmp_path / "tokens"
    admin, viewer = create_token(tokens, "admin", None), create_token(tokens, "viewer", frozenset({"acme"}))
    monkeypatch.setenv("ENDUSERS_API_TOKENS_FILE", str(tokens))
    deployment: Deployment = deployment_factory()
    worker = deployment.start_worker()
    deployment.cli("publish", str(write_jsonl(tmp_path / "acme.jsonl", _events())))
    deployment.wait_caught_up()
    with httpx.Client(base_url=worker.url, timeout=10) as http:
        for path in ("dormant", "roster"):
            assert http.get(f"/api/v1/subscriptions/acme/{path}",
                            headers={"Authorization": f"Bearer {viewer}"}).status_code == 403
        as_admin = {"Authorization": f"Bearer {admin}"}
        report = http.get("/api/v1/subscriptions/acme/dormant", params={"days": 90}, headers=as_admin).json()
        assert [(r["user_id"], r["tenant"], r["reclaimable"], r["class"]) for r in report["records"]] == [
            ("cid", "t1", True, "internal"), ("ann", "t1", False, "internal"),
            ("bob", "t1", True, "internal"), ("eve", "t2", True, "external")]
        assert report["records"][0]["last_login"] is None
        assert report["freed"] == {"internal": 2, "external": 1} and report["people"] == 4
        assert http.get("/api/v1/subscriptions/acme/dormant", params={"days": 0}, headers=as_admin).status_code == 400
        text = http.get("/api/v1/subscriptions/acme/dormant", params={"days": 100},
                        headers={**as_admin, "Accept": "text/csv"}).text
        assert [(row["user_id"], row["reclaimable"]) for row in csv.DictReader(io.StringIO(text))] == [
            ("cid", "true"), ("ann", "false"), ("bob", "true")]
        first = http.get("/api/v1/subscriptions/acme/roster", params={"limit": 3}, headers=as_admin).json()
        rest = http.get("/api/v1/subscriptions/acme/roster", params={"after": first["next"]}, headers=as_admin).json()
    people = first["people"] + rest["people"]
    assert rest["next"] is None and len(people) == 5
    ann = next(p for p in people if len(p["records"]) == 2)
    assert sorted(r["user_id"] for r in ann["records"]) == ["a.smith", "ann"]
    assert ann["rule"] == "internal: email domain example.com is owned (entry example.com)"

    printed = orjson.loads(deployment.cli("dormant", "acme", "--days", "90", "--json").stdout)
    assert printed["freed"] == report["freed"] and len(printed["records"]) == 4
    assert "still active elsewhere" in deployment.cli("dormant", "acme").stdout.decode()
    rows = list(csv.DictReader(io.StringIO(deployment.cli("roster", "acme", "--csv").stdout.decode())))
    assert sorted(row["user_id"] for row in rows) == ["a.smith", "ann", "bob", "cid", "dee", "eve"]
    # the plain ids never rest in Redis: only sealed
    assert not any(b"a.smith" in value for key in deployment.redis().keys("*")
                   if deployment.redis().type(key) == b"hash"
                   for value in deployment.redis().hgetall(key).values())
