"""``endusers connect entra`` through the real Kafka: Entra ID diagnostic batches (``{"records": [...]}``,
written from Microsoft's documented examples) on an Event Hubs-like topic become counts through a real
worker; failures, machines, malformed messages and other categories count nothing, and a restarted
connector goes on from its group's committed offsets, repeating nothing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.fixtures.pipeline import Deployment, DeploymentFactory
from tests.unit.test_connect_mappings import _audit, _sign_in

pytestmark = pytest.mark.integration


def _login(n: int, **overrides: Any) -> dict[str, Any]:
    return _sign_in(**{"id": f"sign-in-{n}", "userId": f"user-{n}", "userPrincipalName": f"u{n}@contoso.com",
                       **overrides})


async def _send(deployment: Deployment, topic: str, bodies: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=deployment.kafka_bootstrap)
    await producer.start()
    try:
        for body in bodies:
            await producer.send_and_wait(topic, body)
    finally:
        await producer.stop()


def _start(deployment: Deployment, topic: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "streams", "connect", "entra", "-s", "contoso", "--topic", topic],
                            env=deployment.env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _users(deployment: Deployment) -> int:
    found = deployment.counts().get("contoso") or {}
    return int(found.get("internal", 0) + found.get("external", 0))


def _wait_for(deployment: Deployment, expected: int, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (found := _users(deployment)) != expected:
        if time.monotonic() > deadline:
            pytest.fail(f"expected {expected} users, still {found}:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)


def test_entra_sign_ins_and_audit_records_count_once_across_a_restart(
        deployment_factory: DeploymentFactory, tmp_path: Path) -> None:
    deployment = deployment_factory(partitions=1)
    hub = f"{deployment.prefix}-entra-hub"
    deployment.cli("config", "set", "contoso", "--platform", "odc")
    deployment.start_worker()
    log = tmp_path / "entra.log"
    first = [
        orjson.dumps({"records": [_login(1), _login(2), _login(3, status={"errorCode": 50126}),
                                  _sign_in("ServicePrincipalSignInLogs", id="sp-1", userId=None)]}),
        b"not json at all",
        orjson.dumps({"records": [_login(4, signInEventTypes=["managedIdentity"]), _sign_in("ProvisioningLogs"),
                                  _login(5)]}),
        orjson.dumps({"records": [_login(1)]}),  # Event Hubs redelivers: same id, the same login
    ]
    asyncio.run(_send(deployment, hub, first))
    connector = _start(deployment, hub, log)
    _wait_for(deployment, 3, log)  # users 1, 2 and 5
    connector.terminate()
    assert connector.wait(timeout=30) == 0
    second = [orjson.dumps({"records": [_login(6), _login(7), {**_audit("Delete user"), "properties": {
        **_audit("Delete user")["properties"], "targetResources": [{"id": "user-2", "type": "User"}]}}]})]
    asyncio.run(_send(deployment, hub, second))
    connector = _start(deployment, hub, log)
    _wait_for(deployment, 4, log)  # users 6 and 7 logged in, user 2 deleted
    connector.terminate()
    assert connector.wait(timeout=30) == 0

    output = log.read_text()
    assert f"{hub}[0]@1: refused: not JSON" in output
    assert "published 4, ignored 4, refused 1" in output and "published 3, ignored 0, refused 0" in output
    logins = [orjson.loads(value)["id"] for _, value in deployment.read_topic("logins")]
    assert sorted(logins) == ["entra:sign-in-1", "entra:sign-in-1", "entra:sign-in-2", "entra:sign-in-5",
                              "entra:sign-in-6", "entra:sign-in-7"]
