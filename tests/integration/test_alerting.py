"""Threshold events reaching alerting systems, end to end on the real Kafka and Redis: CloudEvents
headers on the capacity topic, a live worker pushing to Debian's Alertmanager (whose webhook receiver
is an HTTP server in this test), and Debian's Prometheus scraping a worker with the shipped rules."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.fixtures.generate import write_jsonl
from tests.fixtures.monitoring import ALERTMANAGER, MONITORING, PROMETHEUS, alertmanager, prometheus, requires
from tests.fixtures.pipeline import Deployment, DeploymentFactory, Worker

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]

SUBSCRIPTION = "ops"
CONFIG = {"type": "config", "subscription": SUBSCRIPTION, "domains": ["corp.example"],
          "capacity": {"internal": 10, "external": 100}}


def _logins(first: int, last: int) -> list[dict[str, Any]]:
    return [{"type": "login", "subscription": SUBSCRIPTION, "user_id": str(n), "email": f"u{n}@corp.example"}
            for n in range(first, last)]


def _deletes(first: int, last: int) -> list[dict[str, Any]]:
    return [{"type": "profile", "op": "delete", "subscription": SUBSCRIPTION, "user_id": str(n)}
            for n in range(first, last)]


def _publish(deployment: Deployment, directory: Path, name: str, events: list[dict[str, Any]]) -> None:
    deployment.cli("publish", str(write_jsonl(directory / f"{name}.jsonl", events)))


async def _produce_raw(deployment: Deployment, topic: str, value: bytes) -> None:
    """One message as it is, past ``endusers publish``'s check (which sends no invalid line)."""
    producer = AIOKafkaProducer(bootstrap_servers=deployment.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(deployment.topic(topic), value)
    finally:
        await producer.stop()


def _wait_for(what: str, condition: Callable[[], Any], timeout: float = 60, logs: Callable[[], str] = str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.3)
    pytest.fail(f"{what}: not within {timeout:.0f} s\n{logs()}")


# --- CloudEvents ---------------------------------------------------------------------------------

def test_capacity_records_carry_cloudevents_headers_and_keep_key_and_value(deployment_factory: DeploymentFactory, tmp_path: Path) -> None:
    deployment: Deployment = deployment_factory()
    deployment.start_worker()
    _publish(deployment, tmp_path, "up", [CONFIG, *_logins(0, 10)])
    deployment.wait_caught_up()

    async def read() -> list[Any]:
        consumer = AIOKafkaConsumer(deployment.topic("capacity"), bootstrap_servers=deployment.kafka_bootstrap,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        try:
            records: list[Any] = []
            deadline = time.monotonic() + 30
            while len(records) < 3 and time.monotonic() < deadline:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records += batch
            return records
        finally:
            await consumer.stop()

    records = asyncio.run(read())
    assert [orjson.loads(r.value)["level"] for r in records] == [80, 90, 100]
    for record in records:
        event = orjson.loads(record.value)
        assert record.key == SUBSCRIPTION.encode()
        assert set(event) == {"id", "subscription", "user_class", "previous_level", "level", "direction", "count",
                              "capacity", "exceeded", "time", "trigger"}, "the value is the event itself"
        headers = dict(record.headers)
        assert len(headers) == len(record.headers) == 7
        assert headers["ce_specversion"] == b"1.0"
        assert headers["ce_id"] == event["id"].encode()
        assert headers["ce_source"] == b"endusers/ops"
        assert headers["ce_type"] == b"io.endusers.capacity.changed.v1"
        assert headers["ce_subject"] == b"ops/internal"
        assert headers["ce_time"] == event["time"].encode()
        assert re.fullmatch(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", headers["ce_time"])
        assert headers["content-type"] == b"application/json"

    # the consumer of docs/alerting.md, pointed at this deployment, prints the three crossings
    page = (REPO / "docs" / "alerting.md").read_text()
    [snippet] = [block for block in re.findall(r"```python\n(.*?)```", page, flags=re.S) if "ce_type" in block]
    line = 'TOPIC, SERVERS = "enduser.capacity", "127.0.0.1:9092"'
    assert line in snippet
    script = tmp_path / "consumer.py"
    script.write_text(snippet.replace(line, f"TOPIC, SERVERS = {deployment.topic('capacity')!r}, "
                                            f"{deployment.kafka_bootstrap!r}"))
    consumer = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    watchdog = threading.Timer(60, consumer.kill)  # it consumes forever; a silent one must not hang the test
    watchdog.start()
    try:
        assert consumer.stdout is not None
        printed = [consumer.stdout.readline().decode().strip() for _ in range(3)]
    finally:
        watchdog.cancel()
        consumer.kill()
        consumer.wait(timeout=10)
    assert printed == ["ops/internal 0 -> 80 (8 of 10)", "ops/internal 80 -> 90 (9 of 10)",
                       "ops/internal 90 -> 100 (10 of 10)"]


# --- Alertmanager --------------------------------------------------------------------------------

class Receiver:
    """Alertmanager's webhook receiver: records each notification it is sent."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        received = self.notifications

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def alerts(self) -> list[tuple[str, str, str]]:
        """(notification status, alert status, severity) of every alert of every notification so far."""
        return [(n["status"], a["status"], a["labels"]["severity"]) for n in list(self.notifications)
                for a in n["alerts"]]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


def _alertmanager_config(receiver: Receiver) -> dict[str, Any]:
    return {
        "route": {"receiver": "test", "group_by": ["alertname", "subscription", "user_class"],
                  "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "test", "webhook_configs": [{"url": receiver.url, "send_resolved": True}]}],
    }


def _active_alerts(url: str) -> list[dict[str, Any]]:
    response = httpx.get(url + "/api/v2/alerts", params={"filter": f'subscription="{SUBSCRIPTION}"', "active": "true"},
                         timeout=5)
    response.raise_for_status()
    return [a for a in response.json() if a["status"]["state"] == "active"]


def _instant(text: str) -> float:
    """An RFC 3339 instant from Alertmanager (nanoseconds allowed) as epoch seconds."""
    match = re.fullmatch(r"(.+?)(\.\d+)?(Z|[+-]\d\d:\d\d)", text)
    assert match, text
    whole, fraction, zone = match.groups()
    moment = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone))
    return moment.timestamp() + float(fraction or 0)


def _exports_level(worker: Worker) -> bool:
    try:
        text = httpx.get(worker.url + "/metrics", timeout=5).text
    except httpx.HTTPError:
        return False
    return f'endusers_level{{subscription="{SUBSCRIPTION}",user_class="internal"}}' in text


def _changes_partitions(worker: Worker, deployment: Deployment) -> set[str]:
    text = httpx.get(worker.url + "/metrics", timeout=5).text
    topic = re.escape(deployment.topic("changes"))
    return set(re.findall(rf'endusers_consumer_lag{{partition="(\d+)",topic="{topic}"}}', text))


@requires(ALERTMANAGER)
def test_alertmanager_gets_warning_then_critical_then_resolved_across_a_rebalance_and_a_crash(
        deployment_factory: DeploymentFactory, receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with alertmanager(tmp_path / "alertmanager", _alertmanager_config(receiver)) as manager:
        deployment: Deployment = deployment_factory()
        monkeypatch.setenv("ENDUSERS_ALERTMANAGER_URL", manager.url)
        monkeypatch.setenv("ENDUSERS_ALERT_INTERVAL", "10")  # firing alerts stay valid 40 s without a re-send
        monkeypatch.setenv("ENDUSERS_DASHBOARD_URL", "https://counts.example/")
        first = deployment.start_worker()

        def logs() -> str:
            return f"notifications: {receiver.alerts()}\n" + "\n".join(w.log_tail() for w in deployment.workers) + \
                "\n" + manager.log_tail()

        # 8 of 10 internal users: the 80% level, a warning
        _publish(deployment, tmp_path, "80", [CONFIG, *_logins(0, 8)])
        _wait_for("a firing warning", lambda: ("firing", "firing", "warning") in receiver.alerts(), logs=logs)
        warning = receiver.notifications[0]["alerts"][0]
        assert warning["labels"] == {"alertname": "EndUserCapacity", "subscription": SUBSCRIPTION,
                                     "user_class": "internal", "severity": "warning"}
        assert {k: warning["annotations"][k] for k in ("count", "capacity", "level", "dashboard")} == \
            {"count": "8", "capacity": "10", "level": "80", "dashboard": "https://counts.example/"}
        assert warning["generatorURL"] == "https://counts.example/"

        # 10 of 10: critical, and the warning (another label set) resolves
        _publish(deployment, tmp_path, "100", _logins(8, 10))
        _wait_for("a firing critical", lambda: ("firing", "firing", "critical") in receiver.alerts(), logs=logs)
        assert ("firing", "resolved", "warning") in receiver.alerts()
        notified = len(receiver.notifications)
        [critical] = _active_alerts(manager.url)
        assert critical["labels"]["severity"] == "critical" and critical["annotations"]["count"] == "10"

        # a second worker joins (a rebalance), then the subscription's owner dies (kill -9)
        second = deployment.start_worker()
        _wait_for("the changes partitions shared by both workers",
                  lambda: len(_changes_partitions(first, deployment) | _changes_partitions(second, deployment)) == 4
                  and _changes_partitions(first, deployment) and _changes_partitions(second, deployment), logs=logs)
        owner = _wait_for("one owner of the subscription",
                          lambda: [w for w in (first, second) if _exports_level(w)], logs=logs)
        assert len(owner) == 1
        survivor = second if owner[0] is first else first
        owner[0].kill()
        killed = time.time()
        _wait_for("the survivor counting the subscription", lambda: _exports_level(survivor), timeout=90, logs=logs)
        time.sleep(12)  # a full re-send interval of the survivor, and Alertmanager's group interval

        assert len(receiver.notifications) == notified, f"nothing new to notify, but got {receiver.alerts()[notified:]}"
        [still] = _active_alerts(manager.url)
        assert still["labels"] == critical["labels"] and still["fingerprint"] == critical["fingerprint"]
        assert still["startsAt"] == critical["startsAt"], "the same alert, never resolved in between"
        assert _instant(still["endsAt"]) > killed + 40, "the survivor re-sends it (the dead owner's send ends earlier)"

        # down to 4 of 10: resolved by the worker that owns the subscription now, before it could expire
        [active] = _active_alerts(manager.url)
        _publish(deployment, tmp_path, "40", _deletes(0, 6))
        _wait_for("the resolved critical", lambda: ("resolved", "resolved", "critical") in receiver.alerts(), logs=logs)
        [resolved] = [a for n in receiver.notifications for a in n["alerts"]
                      if a["status"] == "resolved" and a["labels"]["severity"] == "critical"]
        assert _instant(resolved["endsAt"]) < _instant(active["endsAt"]), "resolved by a push, not by expiry"
        assert _active_alerts(manager.url) == []
        firing = [(status, severity) for _, status, severity in receiver.alerts() if status == "firing"]
        assert firing == [("firing", "warning"), ("firing", "critical")], "each alert notified once"


# --- Prometheus ----------------------------------------------------------------------------------

def _prometheus_config(worker: Worker) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["endusers.rules.yml"],
        "scrape_configs": [{"job_name": "endusers", "static_configs": [{"targets": [f"127.0.0.1:{worker.port}"]}]}],
    }


def _query(url: str, expr: str) -> list[dict[str, Any]]:
    response = httpx.get(url + "/api/v1/query", params={"query": expr}, timeout=10)
    response.raise_for_status()
    return response.json()["data"]["result"]  # type: ignore[no-any-return]


def _firing(url: str) -> dict[str, dict[str, Any]]:
    alerts = httpx.get(url + "/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    return {a["labels"]["alertname"] + "/" + a["labels"].get("severity", ""): a for a in alerts if a["state"] == "firing"}


@requires(PROMETHEUS)
def test_prometheus_with_the_shipped_rules_fires_the_capacity_alert_after_a_crossing(
        deployment_factory: DeploymentFactory, tmp_path: Path) -> None:
    deployment: Deployment = deployment_factory()
    worker = deployment.start_worker()
    rules = (MONITORING / "endusers.rules.yml").read_text()
    with prometheus(tmp_path / "prometheus", _prometheus_config(worker), {"endusers.rules.yml": rules}) as server:
        _wait_for("the worker scraped", lambda: _query(server.url, 'up{job="endusers"} == 1'))
        assert "EndUserCapacity/warning" not in _firing(server.url)

        visit = {"type": "visit", "subscription": SUBSCRIPTION, "session_id": "s-1"}
        _publish(deployment, tmp_path, "80", [CONFIG, *_logins(0, 8), visit])
        asyncio.run(_produce_raw(deployment, "logins", b'{"type": "login"}'))  # publish refuses it
        alerts = _wait_for("EndUserCapacity firing in /api/v1/alerts",
                           lambda: (a := _firing(server.url)).get("EndUserCapacity/warning") and a, timeout=60,
                           logs=lambda: worker.log_tail() + "\n" + server.log_tail())
        capacity = alerts["EndUserCapacity/warning"]
        assert capacity["labels"] == {"alertname": "EndUserCapacity", "severity": "warning",
                                      "subscription": SUBSCRIPTION, "user_class": "internal"}
        assert capacity["annotations"]["runbook"] == "docs/runbook.md#endusercapacity"
        assert float(capacity["value"]) == 80
        assert "EndUsersNoWorkerUp/critical" not in alerts

        # the bad event became a dead letter, which the shipped rule reports too
        _wait_for("EndUsersDeadLetters firing", lambda: "EndUsersDeadLetters/warning" in _firing(server.url),
                  logs=worker.log_tail)

        # every Grafana panel's query finds data in a Prometheus scraping a live worker (a rate needs two
        # samples of a series, so a series that has just appeared gets a few scrapes' time)
        dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$__rate_interval", "30s").replace("$subscription", ".*")
                _wait_for(f"{panel['title']}: data for {expr}", lambda: _query(server.url, expr), timeout=20)
