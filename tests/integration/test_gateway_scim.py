"""SCIM 2.0 on ``endusers gateway``, a real process on the real Kafka and Redis, with a real worker:
an independent checker (scim2-tester) finds no ERROR or CRITICAL result and runs every User check, the
counts follow SCIM operations live (O11: a provisioned active user counts; ODC: only after a login),
and the resources are sealed at rest."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import httpx2
import orjson
import pytest
import redis.asyncio
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

from counters import DEVELOPMENT_SECRET
from streams.gateway.mapping import Target
from streams.gateway.scim_mapping import upsert_event
from streams.http.auth import create_token
from streams.store.scim import ScimStore
from tests.fixtures.pipeline import Deployment, DeploymentFactory
from tests.fixtures.gateway import Gateway, start_gateway
from tests.unit.test_gateway_scim import ENTRA_CREATE, OKTA_CREATE, patch

pytestmark = pytest.mark.integration

SCIM = "application/scim+json"


class Scim:
    """Requests to one subscription's SCIM base with one token."""

    def __init__(self, gateway: Gateway, subscription: str, token: str) -> None:
        self.base = f"{gateway.url}/scim/v2/{subscription}"
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": SCIM, "Accept": SCIM}

    def send(self, method: str, path: str, body: object = None, **params: str) -> httpx.Response:
        return httpx.request(method, self.base + path, headers=self.headers, params=params, timeout=30,
                             content=None if body is None else orjson.dumps(body))


def counted(deployment: Deployment, subscription: str) -> tuple[int, int]:
    """(counted records, counted people) once the worker has caught up."""
    deployment.wait_caught_up()
    counts = deployment.counts().get(subscription, {"records": 0, "internal": 0, "external": 0})
    return counts["records"], counts["internal"] + counts["external"]


def test_scim2_tester_finds_no_error_and_runs_every_user_check(
        deployment_factory: DeploymentFactory, gateways: list[Gateway]) -> None:
    deployment = deployment_factory()
    gateway = start_gateway(deployment)
    gateways.append(gateway)
    http = httpx2.Client(base_url=f"{gateway.url}/scim/v2/acme/",
                         headers={"Authorization": f"Bearer {gateway.token}"}, timeout=30)
    results = check_server(SyncSCIMClient(http))
    summary = Counter(result.status.name for result in results)
    print(f"\nscim2-tester against the gateway: {len(results)} checks, {dict(summary)}")
    for result in results:
        if result.status not in (Status.SUCCESS, Status.COMPLIANT):
            print(f"  {result.status.name}: {result.title}: {result.reason}")
    bad = [f"{r.status.name} {r.title}: {r.reason}" for r in results if r.status in (Status.ERROR, Status.CRITICAL)]
    assert bad == []
    user_checks = [r for r in results if r.resource_type == "User"]
    tags = set().union(*(r.tags for r in user_checks))
    assert {"crud:create", "crud:read", "crud:update", "crud:delete"} <= tags, tags
    assert not [r for r in user_checks if r.status == Status.SKIPPED], "every User check runs"


def test_counts_follow_create_deactivate_replace_and_delete_on_o11(
        deployment_factory: DeploymentFactory, gateways: list[Gateway]) -> None:
    deployment = deployment_factory()
    deployment.start_worker()
    deployment.cli("config", "set", "acme", "--platform", "o11")
    gateway = start_gateway(deployment)
    gateways.append(gateway)
    scim = Scim(gateway, "acme", gateway.token)
    created = scim.send("POST", "/Users", ENTRA_CREATE)
    assert created.status_code == 201, created.text
    assert created.headers["Content-Type"].startswith(SCIM)
    user: dict[str, Any] = created.json()
    assert counted(deployment, "acme") == (1, 1)
    assert scim.send("POST", "/Users", {**ENTRA_CREATE, "userName": ENTRA_CREATE["userName"].upper()}).json()[
        "scimType"] == "uniqueness"
    off = scim.send("PATCH", f"/Users/{user['id']}", patch({"op": "Replace", "value": {"active": "False"}}))
    assert off.status_code == 200 and off.json()["active"] is False, off.text
    assert counted(deployment, "acme") == (0, 0)
    replaced = scim.send("PUT", f"/Users/{user['id']}", {**ENTRA_CREATE, "active": True})
    assert replaced.status_code == 200 and replaced.json()["meta"]["version"] == 'W/"3"', replaced.text
    assert counted(deployment, "acme") == (1, 1)
    found = scim.send("GET", "/Users", filter=f'userName eq "{ENTRA_CREATE["userName"]}"').json()
    assert [r["id"] for r in found["Resources"]] == [user["id"]] and found["totalResults"] == 1
    assert scim.send("DELETE", f"/Users/{user['id']}").status_code == 204
    assert scim.send("GET", f"/Users/{user['id']}").status_code == 404
    assert counted(deployment, "acme") == (0, 0)


def test_on_odc_a_provisioned_user_counts_only_after_a_login(
        deployment_factory: DeploymentFactory, gateways: list[Gateway]) -> None:
    deployment = deployment_factory()
    deployment.start_worker()
    deployment.cli("config", "set", "beta", "--platform", "odc")
    token = create_token(deployment.directory / "gateway-tokens", "source", frozenset({"beta"}))
    gateway = start_gateway(deployment)
    gateways.append(gateway)
    scim = Scim(gateway, "beta", token)
    user = scim.send("POST", "/Users", OKTA_CREATE).json()
    assert counted(deployment, "beta") == (0, 0)  # provisioned, never logged in
    login = {"type": "login", "provider": "scim", "user_id": user["id"], "username": OKTA_CREATE["userName"]}
    posted = httpx.post(f"{gateway.url}/v1/subscriptions/beta/events", content=orjson.dumps(login), timeout=30,
                        headers={"Authorization": f"Bearer {token}"})
    assert posted.json()["accepted"] == 1, posted.text
    assert counted(deployment, "beta") == (1, 1)
    off = scim.send("PATCH", f"/Users/{user['id']}", patch({"op": "replace", "value": {"active": False}}))
    assert off.status_code == 200, off.text
    assert counted(deployment, "beta") == (0, 0)  # the login's record is the provisioned one


def test_reads_page_select_attributes_and_refuse_other_tokens(
        deployment_factory: DeploymentFactory, gateways: list[Gateway]) -> None:
    deployment = deployment_factory()
    gateway = start_gateway(deployment)
    gateways.append(gateway)
    tokens = deployment.directory / "gateway-tokens"
    viewer, other = create_token(tokens, "viewer", frozenset({"acme"})), create_token(tokens, "source",
                                                                                     frozenset({"beta"}))
    scim = Scim(gateway, "acme", gateway.token)
    ids = [scim.send("POST", "/Users", {**OKTA_CREATE, "userName": f"user{n}@example.com",
                                        "externalId": f"ext-{n}"}).json()["id"] for n in range(5)]
    page = scim.send("GET", "/Users", startIndex="2", count="2", attributes="userName").json()
    assert (page["totalResults"], page["startIndex"], page["itemsPerPage"]) == (5, 2, 2)
    assert [sorted(r) for r in page["Resources"]] == [["id", "schemas", "userName"]] * 2
    one = scim.send("GET", f"/Users/{ids[0]}", excludedAttributes="emails").json()
    assert "emails" not in one and one["externalId"] == "ext-0"
    assert scim.send("GET", "/Users", filter='externalId eq "ext-3"').json()["Resources"][0]["id"] == ids[3]
    assert scim.send("GET", "/Users", filter="userName eq").json()["scimType"] == "invalidFilter"
    assert httpx.get(scim.base + "/Users", timeout=10).status_code == 401
    assert Scim(gateway, "acme", viewer).send("POST", "/Users", OKTA_CREATE).status_code == 403
    refused = Scim(gateway, "acme", other).send("GET", "/Users")
    assert refused.status_code == 403 and refused.json()["status"] == "403"
    assert scim.send("GET", "/Groups").status_code == 501
    with deployment.redis() as redis:
        sealed = b"".join(redis.hvals("endusers:{acme}:scim:users"))
        assert len(redis.hkeys("endusers:{acme}:scim:users")) == 5
    assert b"user0" not in sealed and b"ext-0" not in sealed and b"example.com" not in sealed


def test_a_create_retried_after_a_crash_between_the_ack_and_the_store_republishes_the_same_event(
        deployment_factory: DeploymentFactory, gateways: list[Gateway]) -> None:
    """The crash is played by publishing what the first attempt published (Kafka acknowledged it, the
    User was never stored); the retried POST must land on the same record, not make a second one."""
    deployment = deployment_factory()
    deployment.start_worker()
    gateway = start_gateway(deployment)
    gateways.append(gateway)
    store = ScimStore(redis.asyncio.Redis.from_url(deployment.redis_url), DEVELOPMENT_SECRET)
    first_id = store.new_id("acme", OKTA_CREATE["userName"])
    crashed = upsert_event({**OKTA_CREATE, "id": first_id}, 1, Target("acme", provider="scim"))
    posted = gateway.post("/v1/subscriptions/acme/events", orjson.dumps(crashed))
    assert posted.json()["accepted"] == 1, posted.text
    assert counted(deployment, "acme") == (1, 1)
    retried = Scim(gateway, "acme", gateway.token).send("POST", "/Users", OKTA_CREATE)
    assert retried.status_code == 201 and retried.json()["id"] == first_id, retried.text
    assert counted(deployment, "acme") == (1, 1)  # one record: another id would be a second one


def test_two_gateways_writing_one_user_at_once_publish_each_version_once(
        deployment_factory: DeploymentFactory, gateways: list[Gateway]) -> None:
    # each write reads the stored version and publishes the next: without the lease in Redis, two
    # gateways read the same version and both publish its successor
    deployment = deployment_factory()
    first, second = start_gateway(deployment), start_gateway(deployment)
    gateways += [first, second]
    sides = [Scim(first, "acme", first.token), Scim(second, "acme", second.token)]
    user = sides[0].send("POST", "/Users", {**OKTA_CREATE, "userName": "race@example.com"}).json()

    def rename(n: int) -> int:
        body = patch({"op": "replace", "path": "displayName", "value": f"Race {n}"})
        return sides[n % 2].send("PATCH", f"/Users/{user['id']}", body).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(rename, range(40)))
    assert statuses == [200] * 40
    assert sides[1].send("GET", f"/Users/{user['id']}").headers["ETag"] == 'W/"41"'
    published = [orjson.loads(value)["id"] for _, value in deployment.read_topic("profiles")]
    assert sorted(published, key=lambda i: int(i.rsplit(":", 1)[1])) == \
        [f"scim:{user['id']}:{version}" for version in range(1, 42)]
