"""Billing statements on a running worker with the real Kafka and Redis: the open period and one in its
grace show ``closed: false``; once the grace is over the statement is frozen with its late events and
published once to ``enduser.statements`` as a CloudEvent (not again after a restart); a late event
after the close leaves it frozen and shows as its true-up; the API and ``endusers statements`` agree."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from streams.http.auth import create_token
from tests.fixtures.generate import write_jsonl
from tests.fixtures.pipeline import Deployment, DeploymentFactory

pytestmark = pytest.mark.integration

SWEEP = {"ENDUSERS_STATEMENT_SWEEP": "0.5"}


def _login(user_id: str, at: datetime) -> dict[str, Any]:
    return {"type": "login", "subscription": "acme", "user_id": user_id, "runtime": "prod",
            "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "email": f"{user_id}@example.com"}


def _publish(deployment: Deployment, path: Path, events: list[dict[str, Any]]) -> None:
    deployment.cli("publish", str(write_jsonl(path, events)))
    deployment.wait_caught_up()


def _statements(http: httpx.Client) -> dict[str, Any]:
    response = http.get("/api/v1/subscriptions/acme/statements")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _published(deployment: Deployment) -> list[tuple[bytes, dict[str, bytes]]]:
    """The statements topic: each record's value with its headers."""
    async def read() -> list[tuple[bytes, dict[str, bytes]]]:
        consumer = AIOKafkaConsumer(deployment.topic("statements"), bootstrap_servers=deployment.kafka_bootstrap,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        try:
            found: list[tuple[bytes, dict[str, bytes]]] = []
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    found += [(r.value or b"", dict(r.headers or ())) for r in records]
            return found
        finally:
            await consumer.stop()
    return asyncio.run(read())


def test_a_period_closes_once_after_its_grace_and_later_events_are_a_true_up(
        deployment_factory: DeploymentFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = tmp_path / "tokens"
    viewer = create_token(tokens, "viewer", frozenset({"acme"}))
    monkeypatch.setenv("ENDUSERS_API_TOKENS_FILE", str(tokens))
    now = datetime.now(timezone.utc)
    today, yesterday = now.date(), now - timedelta(days=1)
    # the current period starts today, so yesterday lies in the period before, which ended at 00:00
    config = {"type": "config", "subscription": "acme", "domains": ["example.com"], "capacity": {"internal": 2},
              "billing_day": today.day, "statement_grace": 72}
    deployment: Deployment = deployment_factory()
    worker = deployment.start_worker(env=SWEEP)
    _publish(deployment, tmp_path / "1.jsonl", [config, _login("ann", yesterday), _login("bob", yesterday),
                                                 _login("cid", yesterday), _login("dee", now)])
    with httpx.Client(base_url=worker.url, timeout=10, headers={"Authorization": f"Bearer {viewer}"}) as http:
        current, ended = _statements(http)["statements"]
        assert (current["period_start"], current["closed"]) == (today.isoformat(), False)
        assert current["peak"]["internal"] == {"count": 4, "day": today.isoformat()}
        assert (ended["period_end"], ended["closed"]) == ((today - timedelta(days=1)).isoformat(), False)  # its grace
        assert ended["peak"]["internal"] == {"count": 3, "day": yesterday.date().isoformat()}  # the late events
        assert _published(deployment) == []

        _publish(deployment, tmp_path / "2.jsonl", [{"type": "config", "subscription": "acme", "statement_grace": 0}])
        for _ in range(60):
            ended = _statements(http)["statements"][1]
            if ended["closed"]:
                break
            time.sleep(0.5)
        assert ended["closed"] and ended["late_events"] == 3 and ended["true_up"] is None
        assert ended["peak"]["internal"] == {"count": 3, "day": yesterday.date().isoformat()}
        assert (ended["capacity"]["internal"], ended["overage"]["internal"]) == (2, 1)
        assert ended["counts_at_close"] == {"internal": 4, "external": 0}

        _publish(deployment, tmp_path / "3.jsonl", [_login("eve", yesterday)])  # after the close
        after = _statements(http)["statements"][1]
    assert {k: v for k, v in after.items() if k != "true_up"} == {k: v for k, v in ended.items() if k != "true_up"}
    assert after["true_up"] == {"events": 1, "peak": {"internal": {"count": 5, "day": yesterday.date().isoformat()},
                                                      "external": None},  # no late event raised it
                                "overage": {"internal": 3, "external": None}}

    worker.stop()  # a restart neither freezes nor publishes the statement again
    deployment.start_worker(env=SWEEP)
    time.sleep(3)
    [(value, headers)] = _published(deployment)
    event = orjson.loads(value)
    assert headers["ce_type"] == b"io.endusers.statement.closed.v1" and headers["ce_id"] == event["id"].encode()
    assert headers["ce_subject"] == f"acme/{ended['period_start']}".encode()
    assert {k: v for k, v in event.items() if k != "subscription"} == {k: v for k, v in ended.items() if k != "true_up"}

    printed = deployment.cli("statements", "acme").stdout.decode()
    assert f"{ended['period_start']} to {ended['period_end']}  closed" in printed
    assert "true-up: 1 late event(s) after the close" in printed
    assert orjson.loads(deployment.cli("statements", "acme", "--json").stdout)["statements"][1] == after
    assert deployment.cli("statements", "nobody", check=False).returncode == 1
