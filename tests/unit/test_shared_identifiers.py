"""The shared-identifier report: which emails and logins more records hold than the threshold."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from counters import individuals, shared
from counters import Digester
from counters.replay import Replay
from schemas.outputs import SharedIdentifiers
from tests.fixtures.factories import config, login, profile

SHARED = "noreply@corp.example"


def report(*events: dict[str, Any]) -> SharedIdentifiers:
    replay = Replay()
    replay.feed_lines([orjson.dumps(e) for e in events])
    return shared.shared_identifiers_report(replay.states["acme"])


def holders(n: int, **fields: Any) -> list[dict[str, Any]]:
    return [profile("upsert", f"u{i}", email=SHARED, **fields) for i in range(n)]


def test_an_email_held_by_more_records_than_the_threshold_is_reported() -> None:
    found = report(*holders(6))
    assert found["threshold"] == 5
    assert found["identifiers"] == [
        {"digest": Digester().for_subscription("acme")(SHARED), "kind": "email", "records": 6, "runtimes": {"default": 6}}]


def test_an_email_held_by_as_many_records_as_the_threshold_is_not() -> None:
    assert report(*holders(5))["identifiers"] == []


def test_the_threshold_is_a_config_key_and_null_restores_the_default() -> None:
    assert len(report(config(shared_identifier_threshold=2), *holders(3))["identifiers"]) == 1
    assert report(*holders(3), config(shared_identifier_threshold=3))["identifiers"] == []
    assert report(config(shared_identifier_threshold=2), *holders(3),
                  config(shared_identifier_threshold=None))["identifiers"] == []


def test_a_login_is_reported_as_a_username_with_its_runtimes() -> None:
    events = [login(f"u{i}", username="Admin", runtime="prod" if i % 2 else "test") for i in range(7)]
    (found,) = report(*events)["identifiers"]
    assert found["kind"] == "username" and found["records"] == 7
    assert found["runtimes"] == {"prod": 3, "test": 4}
    assert found["digest"] == Digester().for_subscription("acme")("admin")


def test_records_that_leave_or_do_not_group_are_not_holders() -> None:
    # Deactivated records do not count; records outside a default tenant (O11) never group.
    events = [*holders(6), profile("deactivate", "u0")]
    assert report(*events)["identifiers"] == []
    assert report(*holders(6, default_tenant=False))["identifiers"] == []


def test_shared_records_still_group_into_one_individual() -> None:
    replay = Replay()
    replay.feed_lines([orjson.dumps(e) for e in holders(8)])
    counts = replay.states["acme"].summary()
    assert (counts["internal"], counts["external"], counts["records"]) == (1, 0, 8)


def test_endusers_digest_prints_the_digest_the_report_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from streams.cli.commands import main

    monkeypatch.delenv("ENDUSERS_SECRET", raising=False)
    monkeypatch.delenv("ENDUSERS_DIGEST_SCOPE", raising=False)
    monkeypatch.setenv("ENDUSERS_ENV", "development")
    monkeypatch.setenv("ENDUSERS_REDIS", "redis://127.0.0.1:1/0")  # no store: the digest needs none
    (found,) = report(*holders(6))["identifiers"]
    result = CliRunner().invoke(main, ["digest", " NoReply@Corp.Example ", "--subscription", "acme"])
    assert result.exit_code == 0 and result.stdout.strip() == found["digest"]
    assert "not checked against the stored digests" in result.stderr


def test_the_kind_of_an_identifier_with_many_holders_follows_them_as_they_come_and_go() -> None:
    """Past ``FEW_HOLDERS`` holders a group counts who holds an identifier as their email instead of
    looking at each: the count must follow every join and leave, and a split of the group."""
    from counters.state import FEW_HOLDERS

    many = FEW_HOLDERS + 3
    usernames = [profile("upsert", f"u{i}", username=SHARED) for i in range(many)]
    replay = Replay()
    replay.feed_lines([orjson.dumps(e) for e in usernames])

    def kind() -> str:
        (found,) = shared.shared_identifiers_report(replay.states["acme"])["identifiers"]
        return str(found["kind"])

    assert kind() == "username"
    steps = [
        (profile("upsert", "e1", email=SHARED), "email"),  # one holder as its email among many
        (profile("upsert", "e1", email="other@corp.example"), "username"),  # it leaves: none left
        (profile("upsert", "u0", email=SHARED, username="u0"), "email"),  # a holder changes how it holds it
        (profile("delete", "u0"), "username"),
        (profile("upsert", "e2", email=SHARED, username="link"), "email"),
        (profile("upsert", "e3", email="third@corp.example", username="link"), "email"),
    ]
    for event, expected in steps:
        replay.feed_lines([orjson.dumps(event)])
        assert kind() == expected, event
    digest = shared.shared_identifiers_report(replay.states["acme"])["identifiers"][0]["digest"]
    for i in range(1, many):  # down to a few holders, then one: looked at again, not counted
        replay.feed_lines([orjson.dumps(profile("delete", f"u{i}"))])
    state = replay.states["acme"]
    assert state.summary()["records"] == 3  # e1, e2 and e3
    assert shared.shared_identifiers_report(state)["identifiers"] == []
    assert individuals.holders(state, digest) == 1 and individuals.held_as_email(state, digest)
