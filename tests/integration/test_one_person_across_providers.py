"""One person seen by two identity providers counts once: Ann signs in through Okta (an event hook
posted to a real ``endusers gateway``) and through a real Keycloak (read by ``endusers connect keycloak``)
with the same email, written differently; a real worker counts two records and one end user
(docs/sources.md#one-person-several-providers, docs/rules.md#deduplication-individuals)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.fixtures.gateway import Gateway, start_gateway
from tests.fixtures.keycloak import Keycloak, eventually, start_connector, stop_connector
from tests.fixtures.pipeline import Deployment, DeploymentFactory
from tests.unit.test_gateway_okta import hook, okta_event

pytestmark = [pytest.mark.integration, pytest.mark.keycloak]

ANN_IN_OKTA = {"id": "00u1ann", "type": "User", "alternateId": "Ann.Lee@Example.com", "displayName": "Ann Lee"}


def _records_and_users(deployment: Deployment) -> tuple[int, int, dict[str, int]]:
    counts = deployment.counts().get("acme") or {}
    return (counts.get("records", 0), counts.get("internal", 0) + counts.get("external", 0),
            counts.get("providers", {}))


def test_one_person_seen_by_okta_and_keycloak_with_the_same_email_counts_once(
        deployment_factory: DeploymentFactory, gateways: list[Gateway], keycloak: Keycloak, tmp_path: Path) -> None:
    deployment = deployment_factory(partitions=1)
    deployment.cli("config", "set", "acme", "--platform", "o11")
    deployment.start_worker()
    realm = keycloak.create_realm()
    keycloak.create_user(realm, "ann", "ann.lee@example.com")
    keycloak.create_user(realm, "bob", "bob@example.com")  # another person: the join is by identifier only
    keycloak.login(realm, "ann")
    log = tmp_path / "connector.log"
    connector = start_connector(deployment, keycloak, realm, "acme", log)
    try:
        eventually(lambda: _records_and_users(deployment), (2, 2, {"keycloak": 2}), [log])

        gateway = start_gateway(deployment)
        gateways.append(gateway)
        answer = gateway.post("/v1/subscriptions/acme/okta",
                              orjson.dumps(hook(okta_event("user.session.start", uuid="ann-1", actor=ANN_IN_OKTA))))
        assert answer.status_code == 200 and answer.json()["accepted"] == 1, answer.text
        # Ann is now a record of each provider, and still one end user
        eventually(lambda: _records_and_users(deployment), (3, 2, {"keycloak": 2, "okta": 1}), [log, gateway.log])
    finally:
        stop_connector(connector)
