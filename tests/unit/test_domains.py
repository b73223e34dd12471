"""Where external users come from (counters/domains.py): external individuals per email domain, from
the signature histogram, and how the API, the stream and the CLI show them."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp.test_utils import TestClient, TestServer

from counters.domains import external_domains
from counters.replay import Replay
from streams.cli.present import domains_table
from streams.http.views import create_web_app
from schemas.events import parse_rfc3339
from tests.fixtures.examples import REPLAY_NOW
from tests.fixtures.factories import config, login, profile
from tests.unit.fake_counts import sample_reader
from tests.unit.test_web_views import read_events, ready


def state_of(*events: dict[str, Any]) -> Any:
    replay = Replay(now=parse_rfc3339(REPLAY_NOW))
    replay.feed_lines([orjson.dumps(e) for e in events])
    return replay.states["acme"]


def test_external_individuals_are_counted_per_domain_largest_first_and_internal_ones_never() -> None:
    state = state_of(
        config(domains=["example.com"]),
        *(login(f"p{i}", email=f"p{i}@partner.io") for i in range(3)),
        login("v1", email="v1@vendor.com"), login("v2", email="v2@vendor.com"),
        login("a1", email="a@aaa.org"),
        login("i1", email="me@example.com"),
        login("both", email="x@partner.io", username="x"), login("both2", email="x@example.com", username="x"),
        login("nobody"),  # no email: internal
    )
    assert external_domains(state) == {"top": [("partner.io", 3), ("vendor.com", 2), ("aaa.org", 1)],
                                       "other_domains": 0, "other_individuals": 0}


def test_beyond_the_limit_domains_are_folded_into_others() -> None:
    state = state_of(config(domains=["example.com"]),
                     *(login(f"u{i}-{j}", email=f"u{j}@d{i}.io") for i in range(5) for j in range(i + 1)))
    report = external_domains(state, limit=2)
    assert report == {"top": [("d4.io", 5), ("d3.io", 4)], "other_domains": 3, "other_individuals": 3 + 2 + 1}


def test_declaring_a_domain_owned_removes_it_from_the_report() -> None:
    events = [config(domains=["example.com"]), login("1", email="a@affiliate.com"), login("2", email="b@ext.io")]
    assert [d for d, _ in external_domains(state_of(*events))["top"]] == ["affiliate.com", "ext.io"]
    owned = config(domains=["example.com", "affiliate.com"])
    assert external_domains(state_of(*events, owned))["top"] == [("ext.io", 1)]


def test_an_individual_with_two_foreign_domains_appears_under_both() -> None:
    state = state_of(config(domains=["example.com"]), login("1", email="a@one.io", username="a"),
                     login("2", email="a@two.io", username="a"), profile("deactivate", "3"))
    assert state.count("external") == 1
    assert external_domains(state)["top"] == [("one.io", 1), ("two.io", 1)]


def test_no_owned_domains_means_no_external_domains() -> None:
    assert external_domains(state_of(login("1", email="a@ext.io")))["top"] == []


def test_domains_table_shows_share_and_folds_the_rest() -> None:
    report = {"top": [["partner.io", 30], ["vendor.com", 15], ["tiny.org", 5]], "other_domains": 2,
              "other_individuals": 2}
    text = domains_table("acme", 52, report, limit=2)
    assert "acme: 52 external end users by email domain" in text
    lines = text.splitlines()
    assert next(line for line in lines if "partner.io" in line).split() == ["partner.io", "30", "57.7%"]
    assert next(line for line in lines if "other" in line).split() == ["3", "other", "domain(s)", "7"]
    assert domains_table("acme", 0, {"top": [], "other_domains": 0, "other_individuals": 0}) == \
        "acme: no external users.\n"


async def test_domains_endpoint_and_stream_carry_the_report() -> None:
    reader = sample_reader()
    top = [[f"d{i}.io", 100 - i] for i in range(30)]
    reader.data["acme"]["external_domains"] = {"top": top, "other_domains": 4, "other_individuals": 9}
    async with TestClient(TestServer(create_web_app(reader, ready(kafka=True, redis=True), interval=0.05))) as client:
        body = await (await client.get("/api/v1/subscriptions/acme/domains")).json()
        assert body["domains"][:2] == [{"domain": "d0.io", "external": 100}, {"domain": "d1.io", "external": 99}]
        assert (body["external"], body["other_domains"], body["other_individuals"]) == (56, 4, 9)
        assert len(body["domains"]) == 30
        plain = await (await client.get("/api/v1/subscriptions/globex/domains")).json()
        assert plain["domains"] == [] and plain["other_domains"] == 0
        assert (await client.get("/api/v1/subscriptions/nope/domains")).status == 404
        async with client.get("/api/v1/stream") as stream:
            (_, first), = await read_events(stream, 1)
        entry = first["subscriptions"]["acme"]
        shortened = entry["external_domains"]
        assert len(shortened["top"]) == 10
        assert shortened["other_domains"] == 4 + 20
        assert shortened["other_individuals"] == 9 + sum(n for _, n in top[10:])
