"""Operators' surface against a running worker on the real Kafka and Redis: API, health, metrics,
OpenAPI, and the live dashboard in Debian's chromium."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.browser.dashboard_check import chromium_available, open_dashboard
from tests.fixtures.generate import write_jsonl
from tests.fixtures.pipeline import Deployment, DeploymentFactory, Worker
from tests.fixtures.services import Services

pytestmark = pytest.mark.integration
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def _logins(first: int, last: int, domain: str) -> list[dict[str, object]]:
    return [{"type": "login", "subscription": "ops", "user_id": str(n), "email": f"u{n}@{domain}"}
            for n in range(first, last)]


@pytest.fixture
def running(deployment_factory: DeploymentFactory, tmp_path: Path) -> tuple[Deployment, Worker]:
    deployment: Deployment = deployment_factory()
    worker = deployment.start_worker()
    events = [{"type": "config", "subscription": "ops", "domains": ["corp.example"],
               "capacity": {"internal": 10, "external": 5}}]
    events += _logins(0, 4, "corp.example") + _logins(4, 9, "client.example")
    deployment.cli("publish", str(write_jsonl(tmp_path / "ops.jsonl", events)))
    deployment.wait_caught_up()
    return deployment, worker


def test_api_health_metrics_and_openapi(running: tuple[Deployment, Worker]) -> None:
    deployment, worker = running
    with httpx.Client(base_url=worker.url, timeout=5) as http:
        assert http.get("/healthz").status_code == 200
        ready = http.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"kafka": True, "redis": True, "assignment": True,
                                                             "state": True, "progress": True}
        assert http.get("/api/v1/subscriptions").json() == {"subscriptions": ["ops"]}
        body = http.get("/api/v1/subscriptions/ops").json()
        assert (body["internal"], body["external"], body["records"]) == (4, 5, 9)
        assert body["levels"] == {"internal": 0, "external": 100}
        assert body == {**deployment.counts()["ops"], **{k: body[k] for k in body if k not in deployment.counts()["ops"]}}
        missing = http.get("/api/v1/subscriptions/nobody")
        assert missing.status_code == 404 and "error" in missing.json()
        metrics = http.get("/metrics").text
        assert 'endusers_users{subscription="ops",user_class="external"} 5.0' in metrics
        assert 'endusers_level{subscription="ops",user_class="external"} 100.0' in metrics
        assert f'endusers_events_processed_total{{topic="{deployment.topic("logins")}"}} 9.0' in metrics
        assert "endusers_batch_seconds_bucket" in metrics
        assert 'endusers_capacity_events_total{direction="up",subscription="ops",user_class="external"}' in metrics
        spec = http.get("/openapi.json").json()
        assert spec["openapi"].startswith("3.")
        assert {"/api/v1/subscriptions", "/api/v1/subscriptions/{id}", "/healthz", "/readyz", "/metrics"} <= set(spec["paths"])


def test_readyz_fails_when_redis_does_not_answer(running: tuple[Deployment, Worker], services: Services) -> None:
    """Pointing a second worker at a Redis port nobody listens on: ready must say no."""
    deployment, _ = running
    from tests.fixtures.pipeline import free_port

    deployment.redis_url = f"redis://127.0.0.1:{free_port()}/0"
    broken = deployment.start_worker(wait=False)
    deadline = time.monotonic() + 60
    status = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(broken.url + "/readyz", timeout=8)
            status = response.status_code, response.json()
            break
        except httpx.HTTPError:
            time.sleep(0.5)
    broken.stop()
    assert status is not None and status[0] == 503 and status[1]["redis"] is False


@pytest.mark.browser
@pytest.mark.skipif(not chromium_available() and not os.environ.get("ENDUSERS_REQUIRE_BROWSER"),
                    reason="needs /usr/bin/chromium (apt-get install chromium)")
def test_dashboard_count_changes_after_events_are_published(running: tuple[Deployment, Worker], tmp_path: Path) -> None:
    deployment, worker = running

    async def scenario() -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        async with await open_dashboard(worker.url + "/", ARTIFACTS / "dashboard-before.png") as page:
            await page.wait_for_count("ops", "external", 5, timeout=10)
            more = write_jsonl(tmp_path / "more.jsonl", _logins(9, 12, "client.example"))
            await asyncio.to_thread(deployment.cli, "publish", str(more))
            await page.wait_for_count("ops", "external", 8, timeout=30)
            await page.save(ARTIFACTS / "dashboard.png")
            assert not page.external_requests
            assert not [e for e in page.errors if "pageerror" in e]

    asyncio.run(scenario())
    assert orjson.loads(deployment.cli("counts", "--json").stdout)["subscriptions"]["ops"]["external"] == 8


def _exported_subscriptions(worker: Worker) -> set[str]:
    """Subscriptions whose user-count gauges this worker's /metrics exports."""
    text = httpx.get(worker.url + "/metrics", timeout=5).text
    return {line.split('subscription="')[1].split('"')[0] for line in text.splitlines()
            if line.startswith("endusers_users{")}


def test_after_a_rebalance_each_subscription_is_exported_by_the_worker_that_counts_it(
        deployment_factory: DeploymentFactory, tmp_path: Path) -> None:
    deployment: Deployment = deployment_factory()
    subscriptions = {f"rebalance-{n}" for n in range(16)}  # spread over the 4 partitions of the changes topic

    def publish_one_login_each(user_id: str) -> None:
        events = [{"type": "login", "subscription": s, "user_id": user_id} for s in sorted(subscriptions)]
        deployment.cli("publish", str(write_jsonl(tmp_path / f"logins-{user_id}.jsonl", events)))
        deployment.wait_caught_up()

    first = deployment.start_worker()
    publish_one_login_each("1")
    assert _exported_subscriptions(first) == subscriptions

    second = deployment.start_worker()  # no event follows: the new owner exports what was committed
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        a, b = _exported_subscriptions(first), _exported_subscriptions(second)
        if a and b and a | b == subscriptions and not a & b:
            break
        time.sleep(0.5)
    assert a and b, "the rebalance must split the subscriptions between the two workers"
    assert a | b == subscriptions and not a & b, (a, b)

    publish_one_login_each("2")
    assert _exported_subscriptions(first) == a and _exported_subscriptions(second) == b
    assert {s: c["records"] for s, c in deployment.counts().items()} == {s: 2 for s in subscriptions}


def test_an_email_held_by_more_records_than_the_threshold_is_reported_live(
        running: tuple[Deployment, Worker], tmp_path: Path) -> None:
    """Seven profiles sharing one email (threshold 5): still one individual, and reported in the API,
    the gauge and ``endusers counts``; after a worker restart the new worker reports it too."""
    deployment, worker = running
    shared = [{"type": "profile", "op": "upsert", "subscription": "ops", "user_id": f"s{n}",
               "email": "noreply@corp.example", "runtime": "prod" if n < 4 else "test"} for n in range(7)]
    deployment.cli("publish", str(write_jsonl(tmp_path / "shared.jsonl", shared)))
    deployment.wait_caught_up()

    def check(url: str) -> None:
        report = httpx.get(url + "/api/v1/subscriptions/ops/shared-identifiers", timeout=5).json()
        assert report["subscription"] == "ops" and report["threshold"] == 5
        (found,) = report["identifiers"]
        assert (found["kind"], found["records"], found["runtimes"]) == ("email", 7, {"prod": 4, "test": 3})
        assert "noreply" not in orjson.dumps(report).decode() and len(found["digest"]) == 16
        metrics = httpx.get(url + "/metrics", timeout=5).text
        assert 'endusers_shared_identifiers{subscription="ops"} 1.0' in metrics

    check(worker.url)
    assert deployment.counts()["ops"]["internal"] == 4 + 1  # the seven are one individual
    table = deployment.cli("counts").stdout.decode()
    assert "! ops: 1 shared identifier(s) held by more than 5 records" in table

    worker.stop()
    restarted = deployment.start_worker()
    deadline = time.monotonic() + 60
    while 'endusers_shared_identifiers{subscription="ops"}' not in httpx.get(restarted.url + "/metrics", timeout=5).text:
        assert time.monotonic() < deadline, "the restarted worker never exported the gauge"
        time.sleep(0.5)
    check(restarted.url)
