"""Explain one person (counters/explain.py, endusers explain, POST .../explain): the records that
carry an identifier, their individual and what joins it, the class and the rule, and why a record
does not count."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp.test_utils import TestClient, TestServer

from counters.explain import digests_of, explanation, explanation_text, record_digest
from counters import Digester
from counters.replay import Replay
from schemas.events import parse_rfc3339
from streams.http.views import create_web_app
from tests.fixtures.examples import REPLAY_NOW
from tests.fixtures.factories import config, login, profile
from tests.unit.fake_counts import FakeReader, counts
from tests.unit.test_web_views import ready

DIGEST = Digester().for_subscription("acme")
STREAM = [
    config(domains=["example.com", "*.corp.example"], excluded_providers=["ITUsers"]),
    login("A", email="Adam@Example.com"),
    login("B", runtime="r2", email="adam@example.com", username="adam"),
    login("C", username="ADAM"),
    login("D", email="eve@partner.io"),
    login("E", provider="ITUsers", email="dev@corp.example"),
    login("F"), profile("deactivate", "F"),
]


def state() -> Any:
    replay = Replay(now=parse_rfc3339(REPLAY_NOW))
    replay.feed_lines([orjson.dumps(e) for e in STREAM])
    return replay.states["acme"]


def test_an_email_finds_its_records_their_individual_and_the_joining_identifiers() -> None:
    answer = explanation(state(), identifier=digests_of(DIGEST, email=" ADAM@example.COM "))
    assert answer["found"] == 2
    assert [e["record"]["carries"] for e in answer["records"]] == [["email"], ["email"]]
    people = [e["individual"] for e in answer["records"]]
    assert people[0] == people[1] and len(people[0]["records"]) == 3  # A, B and C (through B's username)
    assert sorted(j["field"] for j in people[0]["joined_by"]) == ["email", "email", "username", "username"]
    assert people[0]["class"] == "internal"
    assert people[0]["rule"] == "internal: email domain example.com is owned (entry example.com)"


def test_the_rule_names_the_wildcard_entry_and_the_external_case() -> None:
    external = explanation(state(), identifier=digests_of(DIGEST, email="eve@partner.io"))["records"][0]
    assert external["individual"]["rule"] == "external: no email domain of its records (partner.io) is owned"
    assert external["individual"]["joined_by"] == []


def test_records_that_do_not_count_say_why() -> None:
    developer = explanation(state(), identifier=digests_of(DIGEST, email="dev@corp.example"))["records"][0]
    assert developer["record"]["why_not_counted"] == "not an end user: its provider is in excluded_providers"
    assert "individual" not in developer
    gone = explanation(state(), record=record_digest(DIGEST, "default", "default", "default", "F"))["records"][0]
    assert gone["record"]["why_not_counted"] == "inactive"
    assert explanation(state(), identifier=digests_of(DIGEST, email="nobody@example.com"))["found"] == 0
    text = explanation_text(explanation(state(), identifier=digests_of(DIGEST, username="adam")))
    assert "individual #0 of 3 record(s)" in text and "class internal" in text


async def test_explain_endpoint_digests_as_ingest_does() -> None:
    reader = FakeReader()
    reader.put("acme", counts(2, 1))
    reader.states["acme"] = state()
    async with TestClient(TestServer(create_web_app(reader, ready(kafka=True, redis=True)))) as client:
        path = "/api/v1/subscriptions/acme/explain"
        body = await (await client.post(path, json={"email": "eve@partner.io"})).json()
        assert body["found"] == 1 and body["records"][0]["individual"]["class"] == "external"
        by_id = await (await client.post(path, json={"user_id": "B", "runtime": "r2"})).json()
        assert by_id["records"][0]["record"]["runtime"] == "r2"
        assert (await client.post(path, json={"email": "not-an-email"})).status == 400
        assert (await client.post(path, json={})).status == 400
        assert (await client.post("/api/v1/subscriptions/nope/explain", json={"username": "x"})).status == 404
