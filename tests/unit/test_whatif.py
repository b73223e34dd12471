"""What-if (counters/whatif.py and POST /api/v1/subscriptions/{id}/preview): the preview of a config
change is exactly what applying it gives, and nothing is applied."""

from __future__ import annotations

import copy
from typing import Any

import orjson
from aiohttp.test_utils import TestClient, TestServer

from counters import engine
from counters.replay import Replay
from counters.whatif import preview
from schemas.events import parse_rfc3339
from streams.http.views import create_web_app
from tests.fixtures.examples import REPLAY_NOW
from tests.fixtures.factories import at, changes, config, lines, login
from tests.unit.fake_counts import FakeReader, counts
from tests.unit.test_web_views import ready

STREAM = [
    config(domains=["example.com"], capacity={"internal": 4, "external": 3}, time=at(1)),
    login("1", email="a@example.com", time=at(2)), login("2", email="b@partner.io", time=at(2)),
    login("3", email="c@partner.io", time=at(2)), login("4", email="d@ext.io", time=at(2)),
    login("5", provider="ITUsers", email="e@example.com", time=at(2)),
]


def state_of(*events: dict[str, Any]) -> Any:
    replay = Replay(now=parse_rfc3339(REPLAY_NOW))
    replay.feed_lines([orjson.dumps(e) for e in events])
    return replay.states["acme"]


def test_preview_of_a_change_is_exactly_what_applying_it_gives() -> None:
    for change in (config(domains=["example.com", "partner.io"]), config(excluded_providers=["ITUsers"]),
                   config(platform="odc"), config(capacity={"external": 2}, thresholds=[50, 100])):
        change["time"] = at(100)  # applied later, as the preview assumes
        live = state_of(*STREAM)
        untouched = copy.deepcopy(live.summary())
        normalized = next(changes(lines([change])))
        answer = preview(copy.deepcopy(live), normalized)
        assert live.summary() == untouched  # nothing applied
        emitted = engine.apply(live, normalized)
        applied = live.summary()
        assert answer["preview"] == {**{k: applied[k] for k in ("internal", "external", "records", "excluded")},
                                     "levels": applied["levels"]}
        assert answer["difference"] == {k: answer["preview"][k] - answer["current"][k]
                                        for k in ("internal", "external", "records", "excluded")}
        assert [(e["user_class"], e["level"]) for e in answer["capacity_events"]] == \
            [(e.user_class, e.level) for e in emitted]


def test_declaring_a_partner_domain_moves_its_people_to_internal() -> None:
    # a change stamped before the stream's config: "if applied now" still wins
    answer = preview(state_of(*STREAM), next(changes(lines([config(domains=["example.com", "partner.io"],
                                                                    time=at(0))]))))
    assert answer["current"]["external"] == 3 and answer["preview"]["external"] == 1
    assert answer["difference"] == {"internal": 2, "external": -2, "records": 0, "excluded": 0}
    assert answer["current"]["levels"]["external"] == 100 and answer["preview"]["levels"]["external"] == 0


async def test_preview_endpoint_validates_and_applies_nothing() -> None:
    reader = FakeReader()
    reader.put("acme", counts(3, 3))
    reader.states["acme"] = state_of(*STREAM)
    async with TestClient(TestServer(create_web_app(reader, ready(kafka=True, redis=True)))) as client:
        path = "/api/v1/subscriptions/acme/preview"
        response = await client.post(path, json={"domains": ["example.com", "partner.io"]})
        assert response.status == 200
        body = await response.json()
        assert body["change"] == {"domains": ["example.com", "partner.io"]}
        assert body["difference"]["external"] == -2
        assert (await client.post(path, json={"domains": ["example.com", "partner.io"]})).status == 200
        assert reader.states["acme"].count("external") == 3  # the reader's state is not changed
        bad = await client.post(path, json={"billing_day": 32})
        assert bad.status == 400 and "billing_day" in (await bad.json())["error"]
        assert (await client.post(path, data=b"[1]")).status == 400
        assert (await client.post(path, data=b"not json")).status == 400
        assert (await client.post("/api/v1/subscriptions/nope/preview", json={"domains": []})).status == 404
