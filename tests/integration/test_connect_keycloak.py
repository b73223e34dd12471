"""``endusers connect keycloak`` against a real Keycloak (deploy/local/services up keycloak): users and
logins made through Keycloak's own REST API reach the counts through a real worker, on ODC (logged-in
users) and O11 (active users) alike, across a restart of the connector with nothing repeated or missed."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

from tests.fixtures.keycloak import Keycloak, eventually, start_connector, stop_connector
from tests.fixtures.pipeline import Deployment, DeploymentFactory

pytestmark = [pytest.mark.integration, pytest.mark.keycloak]

PLATFORMS = {"kc-odc": "odc", "kc-o11": "o11"}


def _users(deployment: Deployment) -> dict[str, int]:
    counts = deployment.counts()
    return {name: (counts.get(name) or {}).get("internal", 0) + (counts.get(name) or {}).get("external", 0)
            for name in PLATFORMS}


def _published_ids(deployment: Deployment) -> Counter[str]:
    return Counter(orjson.loads(value).get("id") for topic in ("logins", "profiles")
                   for _, value in deployment.read_topic(topic))


def test_a_realm_s_users_and_logins_count_across_a_restart_with_no_repeat_and_no_gap(
        deployment_factory: DeploymentFactory, keycloak: Keycloak, tmp_path: Path) -> None:
    deployment = deployment_factory(partitions=1)
    realm = keycloak.create_realm()
    ann = keycloak.create_user(realm, "ann", "ann@example.com")
    bob = keycloak.create_user(realm, "bob", "bob@example.com")
    keycloak.create_user(realm, "cat", "cat@example.com")
    keycloak.login(realm, "ann")  # stored before the connector's first start
    for subscription, platform in PLATFORMS.items():
        deployment.cli("config", "set", subscription, "--platform", platform)
    deployment.start_worker()
    logs = [tmp_path / f"{name}.log" for name in PLATFORMS]
    connectors = [start_connector(deployment, keycloak, realm, name, log) for name, log in zip(PLATFORMS, logs)]
    # existing users upserted (O11 counts all 3 active ones), the stored login read (ODC counts ann)
    eventually(lambda: _users(deployment), {"kc-odc": 1, "kc-o11": 3}, logs)

    keycloak.login(realm, "bob")
    keycloak.create_user(realm, "dan", "dan@example.com")
    eventually(lambda: _users(deployment), {"kc-odc": 2, "kc-o11": 4}, logs)

    for process in connectors:
        stop_connector(process)
    # while the connectors are down: a login, a user disabled and one deleted
    keycloak.login(realm, "cat")
    keycloak.set_enabled(realm, ann, False)
    keycloak.delete_user(realm, bob)
    connectors = [start_connector(deployment, keycloak, realm, name, log) for name, log in zip(PLATFORMS, logs)]
    eventually(lambda: _users(deployment), {"kc-odc": 1, "kc-o11": 2}, logs)
    keycloak.login(realm, "dan")
    eventually(lambda: _users(deployment), {"kc-odc": 2, "kc-o11": 2}, logs)
    for process in connectors:
        stop_connector(process)

    ids = _published_ids(deployment)
    repeated = {key: n for key, n in ids.items() if n != len(PLATFORMS)}
    assert repeated == {}, "each event is published once per subscription"
    logins = [key for key in ids if key and ":" in key and not key.endswith(("activate", "deactivate"))]
    assert sum(1 for _, value in deployment.read_topic("logins")) == 4 * len(PLATFORMS), logins


def test_a_realm_that_stores_no_events_is_reported_with_how_to_fix_it(
        deployment_factory: DeploymentFactory, keycloak: Keycloak, tmp_path: Path) -> None:
    deployment = deployment_factory(partitions=1)
    realm = keycloak.create_realm(events=False)
    keycloak.create_user(realm, "eve", "eve@example.com")
    run = subprocess.run([sys.executable, "-m", "streams", "connect", "keycloak", "-s", "kc-quiet", "--realm", realm,
                          "--once"], env={**deployment.env, **keycloak.env()}, capture_output=True, timeout=120)
    err = run.stderr.decode()
    assert run.returncode == 0, err
    assert "does not store LOGIN events" in err and "Save events" in err
    assert "Include representation" in err
    assert "published 1," in err


def test_the_services_script_knows_keycloak(keycloak: Keycloak) -> None:
    from tests.fixtures.services import _exports, _run

    assert _exports(_run("env", "keycloak").stdout) == keycloak.env()
    status = _run("status", "keycloak", check=False)
    assert status.returncode == 0 and "keycloak: running" in status.stderr
    assert "keycloak" not in _run("status", check=False).stderr  # not one of the default pair


@pytest.mark.parametrize("env, reason", [
    ({"ENDUSERS_KEYCLOAK_URL": "http://127.0.0.1:9", "ENDUSERS_KEYCLOAK_USERNAME": "admin",
      "ENDUSERS_KEYCLOAK_PASSWORD": "x"}, "cannot reach http://127.0.0.1:9"),
    ({"ENDUSERS_KEYCLOAK_URL": "http://127.0.0.1:9"}, "no credentials"),
    ({}, "no Keycloak URL")])
def test_a_keycloak_that_cannot_be_used_ends_the_command_with_the_reason(
        deployment_factory: DeploymentFactory, env: dict[str, str], reason: str) -> None:
    deployment = deployment_factory(partitions=1)
    clean = {k: v for k, v in deployment.env.items() if not k.startswith("ENDUSERS_KEYCLOAK_")}
    run = subprocess.run([sys.executable, "-m", "streams", "connect", "keycloak", "-s", "x", "--realm", "r", "--once"],
                         env={**clean, **env}, capture_output=True, timeout=60)
    assert run.returncode == 3 and f"endusers: Keycloak: {reason}" in run.stderr.decode(), run.stderr.decode()
    assert "Traceback" not in run.stderr.decode()
