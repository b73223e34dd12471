"""Silent sources on a running worker with the real Kafka and Redis: the count stage keeps each user
provider's latest event and events per day, the API shows them to any token of the subscription
(viewers too), and /metrics exports the last-event gauge, also after a restart without new events."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from streams.http.auth import create_token
from tests.fixtures.generate import write_jsonl
from tests.fixtures.pipeline import Deployment, DeploymentFactory

pytestmark = pytest.mark.integration

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def _login(user_id: str, provider: str, at: datetime) -> dict[str, Any]:
    return {"type": "login", "subscription": "acme", "user_id": user_id, "provider": provider, "runtime": "prod",
            "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "email": f"{user_id}@example.com"}


def _gauges(text: str, name: str) -> dict[str, float]:
    """``provider`` (or ``subscription``) label -> value of one gauge in a Prometheus exposition."""
    found = {}
    for labels, value in re.findall(rf"^{name}{{([^}}]*)}} (\S+)$", text, flags=re.M):
        fields = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        found[fields.get("provider", fields["subscription"])] = float(value)
    return found


def test_a_silent_provider_is_shown_to_viewers_and_exported_live(
        deployment_factory: DeploymentFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = tmp_path / "tokens"
    admin, viewer = create_token(tokens, "admin", None), create_token(tokens, "viewer", frozenset({"acme"}))
    monkeypatch.setenv("ENDUSERS_API_TOKENS_FILE", str(tokens))
    okta_last, okta_before = NOW - timedelta(hours=30), NOW - timedelta(hours=54)
    events = [{"type": "config", "subscription": "acme", "domains": ["example.com"], "source_silence": 24},
              _login("ann", "okta", okta_before), _login("bob", "okta", okta_before),
              _login("cid", "okta", okta_last),
              _login("dee", "entra", NOW - timedelta(hours=1)),
              _login("eve", "entra", NOW + timedelta(hours=2))]  # a clock ahead: taken as the time it is counted
    deployment: Deployment = deployment_factory()
    worker = deployment.start_worker()
    deployment.cli("publish", str(write_jsonl(tmp_path / "acme.jsonl", events)))
    deployment.wait_caught_up()
    with httpx.Client(base_url=worker.url, timeout=10) as http:
        body = http.get("/api/v1/subscriptions/acme/sources", headers={"Authorization": f"Bearer {viewer}"}).json()
        metrics = http.get("/metrics", headers={"Authorization": f"Bearer {admin}"}).text
    assert body["source_silence_hours"] == 24 and body["silent"] == 1
    entra, okta = body["providers"]
    assert (okta["provider"], okta["silent"], okta["active"], okta["silent_hours"]) == ("okta", True, True, 30)
    assert okta["last_event"] == okta_last.strftime("%Y-%m-%dT%H:%M:%SZ")
    per_day = {d["day"]: d["events"] for d in okta["events_per_day"]}
    assert len(per_day) == 8 and sum(per_day.values()) == 3
    assert per_day[okta_before.strftime("%Y-%m-%d")] >= 2  # ann and bob (and cid when the same UTC day)
    assert (entra["provider"], entra["silent"]) == ("entra", False)
    entra_last = datetime.strptime(entra["last_event"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert NOW <= entra_last < NOW + timedelta(hours=1)  # the future time was capped at the commit's
    assert sum(d["events"] for d in entra["events_per_day"]) == 2
    exported = _gauges(metrics, "endusers_source_last_event_timestamp_seconds")
    assert exported["okta"] == okta_last.timestamp() and set(exported) == {"okta", "entra"}
    assert _gauges(metrics, "endusers_source_silence_seconds") == {"acme": 86400.0}

    worker.stop()  # a new worker exports the gauge from the committed state, without waiting for an event
    again = deployment.start_worker()
    with httpx.Client(base_url=again.url, timeout=10, headers={"Authorization": f"Bearer {admin}"}) as http:
        for _ in range(60):
            exported = _gauges(http.get("/metrics").text, "endusers_source_last_event_timestamp_seconds")
            if exported:
                break
            time.sleep(0.5)
    assert exported["okta"] == okta_last.timestamp()
