"""What a licensing admin asks next, on a running worker with the real Kafka and Redis: accounts that
are not end users, and where external users come from (API, CLI)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.fixtures.generate import write_jsonl
from tests.fixtures.pipeline import Deployment, DeploymentFactory

pytestmark = pytest.mark.integration


def _login(n: int, domain: str, **extra: Any) -> dict[str, Any]:
    return {"type": "login", "subscription": "ops", "user_id": str(n), "email": f"u{n}@{domain}", **extra}


def _wait_for(read: Any, predicate: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if predicate(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.3)


def test_excluded_accounts_and_external_domains_live(deployment_factory: DeploymentFactory, tmp_path: Path) -> None:
    deployment: Deployment = deployment_factory()
    worker = deployment.start_worker()
    events: list[dict[str, Any]] = [{"type": "config", "subscription": "ops", "domains": ["corp.example"],
                                     "excluded_providers": ["ITUsers"], "capacity": {"external": 10}}]
    events += [_login(n, "corp.example") for n in range(0, 3)]
    events += [_login(n, "partner.example") for n in range(3, 7)] + [_login(n, "vendor.example") for n in range(7, 9)]
    events += [_login(n, "corp.example", provider="ITUsers") for n in range(9, 11)]  # developers
    events += [{"type": "profile", "op": "upsert", "subscription": "ops", "user_id": "8", "excluded": True}]
    deployment.cli("publish", str(write_jsonl(tmp_path / "ops.jsonl", events)))
    deployment.wait_caught_up()
    with httpx.Client(base_url=worker.url, timeout=5) as http:
        body = http.get("/api/v1/subscriptions/ops").json()
        assert (body["internal"], body["external"], body["records"], body["excluded"]) == (3, 5, 8, 3)
        assert body["settings"]["excluded_providers"] == ["ITUsers"]
        domains = http.get("/api/v1/subscriptions/ops/domains").json()
        assert domains["domains"] == [{"domain": "partner.example", "external": 4},
                                      {"domain": "vendor.example", "external": 1}]
    printed = orjson.loads(deployment.cli("domains", "ops", "--json").stdout)
    assert printed["top"] == [["partner.example", 4], ["vendor.example", 1]] and printed["external"] == 5
    assert "partner.example" in deployment.cli("domains", "ops").stdout.decode()
    table = deployment.cli("counts").stdout.decode()
    assert next(line for line in table.splitlines() if line.startswith("ops")).split()[-7] == "3"  # Excluded, before Anonymous and Levels

    # what-if first: the developers would become end users again; nothing changes yet
    with httpx.Client(base_url=worker.url, timeout=5) as http:
        answer = http.post("/api/v1/subscriptions/ops/preview", json={"excluded_providers": []}).json()
    assert answer["difference"] == {"internal": 2, "external": 0, "records": 2, "excluded": -2}
    dry = deployment.cli("config", "set", "ops", "--excluded-providers", "", "--dry-run").stdout.decode()
    assert "  internal: 3 -> 5 (+2)" in dry and "  excluded: 3 -> 1 (-2)" in dry
    assert deployment.counts()["ops"]["excluded"] == 3
    # then applied for real: exactly the previewed counts
    deployment.cli("config", "set", "ops", "--excluded-providers", "")
    after = _wait_for(lambda: deployment.counts()["ops"], lambda c: c["excluded"] == 1)
    assert {k: after[k] for k in ("internal", "external", "records", "excluded")} == \
        {k: answer["preview"][k] for k in ("internal", "external", "records", "excluded")}
    assert after["levels"] == answer["preview"]["levels"]
    assert (after["internal"], after["external"], after["records"], after["excluded"]) == (5, 5, 10, 1)
    with httpx.Client(base_url=worker.url, timeout=5) as http:
        today = http.get("/api/v1/subscriptions/ops/history").json()["entries"][-1]
        body = http.get("/api/v1/subscriptions/ops").json()
        csv_rows = http.get("/api/v1/subscriptions/ops/history", headers={"Accept": "text/csv"}).text.splitlines()
    # written by the same commits as the counts: today's last is the count now, the max and min bracket
    # the whole day (internal went from 3 up to 5 when the developers counted again)
    assert today["internal"]["last"] == 5 and today["internal"]["max"] == 5 and today["internal"]["min"] <= 3
    # external was 6 between user 8's login and the upsert that excluded it: the history keeps every
    # count the events passed through, whether the two events fell into one batch or two
    assert today["external"]["last"] == 5 and today["external"]["max"] == 6
    assert body["peak"]["current_period"]["internal"] == 5 and body["peak"]["previous_period"] is None
    assert body["forecast"]["external"]["days"] == 1 and body["forecast"]["external"]["reaches"] == {}
    printed = deployment.cli("history", "ops", "--csv").stdout.decode().splitlines()
    assert printed[-1] == csv_rows[-1] and printed[-1].startswith(today["period"] + ",5,")
    assert "peak, current billing period from" in deployment.cli("history", "ops").stdout.decode()
    # explain one person: the CLI digests with the deployment's secret as ingest did
    explained = orjson.loads(deployment.cli("explain", "ops", "--email", "U3@partner.example", "--json").stdout)
    assert explained["found"] == 1
    assert explained["records"][0]["individual"]["rule"] == \
        "external: no email domain of its records (partner.example) is owned"
    marked = orjson.loads(deployment.cli("explain", "ops", "--user-id", "8", "--json").stdout)
    assert marked["records"][0]["record"]["why_not_counted"] == "not an end user: the record is marked excluded"
    with httpx.Client(base_url=worker.url, timeout=5) as http:
        assert http.post("/api/v1/subscriptions/ops/explain", json={"email": "u3@partner.example"}).json() == explained
    # the admission check from the terminal: the committed state gives the API's answer
    asked = orjson.loads(deployment.cli("admission", "ops", "--email", "New@partner.example", "--json").stdout)
    assert (asked["adds"], asked["user_class"], asked["count_after"]) == (True, "external", 6)
    with httpx.Client(base_url=worker.url, timeout=5) as http:
        assert http.post("/api/v1/subscriptions/ops/admission", json={"email": "new@partner.example"}).json() == asked
    assert "adds one (a new individual); external 5 -> 6 of" in \
        deployment.cli("admission", "ops", "--email", "new@partner.example").stdout.decode()
