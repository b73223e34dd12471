"""Input validation (docs/events.md): what a line must hold to be accepted, each rejection with its
reason and no effect on the counts, and the accepted forms of times and ids.

Each rule is proved through the offline replay with concrete values, on events built with
``tests/fixtures/factories.py`` (which also holds the replay helpers ``run``, ``acme``, ``feed``).
Timed events use ``at(n)`` (n seconds after 2026-01-01T00:00:00Z); a test never mixes timed and
untimed events, since untimed ones get wall-clock arrival times.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from counters.replay import Replay
from tests.fixtures.factories import NOW, acme, config, event, feed, login, profile, run, totals, visit


def test_integer_user_id_is_its_decimal_string() -> None:
    counts = acme(login(42), login("42"), login(7), profile("deactivate", "7"))  # type: ignore[arg-type]
    assert totals(counts) == (1, 0, 1)


def test_unknown_fields_are_ignored() -> None:
    replay = feed(
        login("1", color="blue", nested={"a": [1, 2]}, email="a@example.com"),
        config(capacity={"internal": 5, "burst": 3}, future_setting=True),
        visit("s1", referrer="x"),
    )
    assert replay.rejections == []
    assert totals(replay.document()["subscriptions"]["acme"]) == (1, 0, 1)


def test_blank_lines_and_comments_are_skipped() -> None:
    replay = feed("", "   ", "# a comment", b"  # indented comment", orjson.dumps(login("1")))
    assert replay.rejections == []
    assert totals(replay.document()["subscriptions"]["acme"]) == (1, 0, 1)


def test_subscription_appears_only_once_an_accepted_event_names_it() -> None:
    document = run(event("login", "ghost", user_id=True), login("1"))
    assert list(document["subscriptions"]) == ["acme"]
    assert document["rejected"] == 1


def rejected(raw: dict[str, Any] | bytes | str) -> str:
    """The reason the line is rejected, checking it changes no count (a good login around it)."""
    replay = feed(login("before"), raw, login("after"))
    assert len(replay.rejections) == 1, replay.rejections
    document = replay.document()
    assert totals(document["subscriptions"]["acme"]) == (2, 0, 2)
    assert document["rejected"] == 1
    assert document["capacity_events"] == []
    assert replay.rejections[0].line == 2
    assert replay.rejections[0].reason
    return replay.rejections[0].reason


def test_rejects_line_that_is_not_json() -> None:
    assert rejected("this is not json").startswith("not JSON")
    assert rejected(b"\xff\xfe").startswith("not JSON")
    assert rejected('{"type": "login", ').startswith("not JSON")


def test_rejects_json_that_is_not_an_object() -> None:
    assert rejected("[1, 2]") == "not a JSON object (got list)"
    assert rejected('"login"') == "not a JSON object (got str)"
    assert rejected("null") == "not a JSON object (got NoneType)"


def test_rejects_missing_type() -> None:
    assert rejected({"subscription": "acme", "user_id": "1"}) == "type: required field missing"


def test_rejects_missing_subscription() -> None:
    assert rejected({"type": "login", "user_id": "1"}) == "subscription: required field missing"
    assert "subscription" in rejected({"type": "login", "subscription": "", "user_id": "1"})


def test_rejects_missing_user_id() -> None:
    assert rejected({"type": "login", "subscription": "acme"}) == "user_id: required field missing"
    assert rejected({"type": "profile", "op": "upsert", "subscription": "acme"}) == "user_id: required field missing"
    assert "user_id" in rejected({"type": "login", "subscription": "acme", "user_id": ""})


def test_rejects_missing_op() -> None:
    assert rejected({"type": "profile", "subscription": "acme", "user_id": "1"}) == "op: required field missing"


def test_rejects_visit_without_session_id() -> None:
    assert rejected({"type": "visit", "subscription": "acme"}) == "session_id: required field missing"


def test_rejects_unknown_type() -> None:
    reason = rejected({"type": "logout", "subscription": "acme", "user_id": "1"})
    assert reason.startswith("type: unknown event type 'logout'")
    assert rejected({"type": 5, "subscription": "acme"}).startswith("type: unknown event type 5")


def test_rejects_unknown_op() -> None:
    assert rejected(profile("merge", "1")).startswith("op: ")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subscription", 5),
        ("user_id", True),
        ("user_id", 1.5),
        ("user_id", None),
        ("user_id", ["1"]),
        ("email", 5),
        ("username", {"a": 1}),
        ("runtime", 5),
        ("tenant", 3),
        ("provider", False),
        ("default_tenant", "yes"),
        ("id", 17),
        ("time", 1767225600),
    ],
)
def test_rejects_wrong_types_in_login(field: str, value: Any) -> None:
    reason = rejected({**login("1"), field: value})
    assert reason.startswith(f"{field}")


@pytest.mark.parametrize(
    ("fields", "location"),
    [
        ({"active": "true"}, "active"),
        ({"active": 1}, "active"),
        ({"op": 1}, "op"),
    ],
)
def test_rejects_wrong_types_in_profile(fields: dict[str, Any], location: str) -> None:
    assert rejected({**profile("upsert", "1"), **fields}).startswith(location)


@pytest.mark.parametrize(
    ("fields", "location"),
    [
        ({"capacity": {"external": "lots"}}, "capacity.external"),
        ({"capacity": {"internal": -1}}, "capacity.internal"),
        ({"capacity": {"internal": 1.5}}, "capacity.internal"),
        ({"capacity": 10}, "capacity"),
        ({"platform": "o12"}, "platform"),
        ({"domains": "example.com"}, "domains"),
        ({"domains": [5]}, "domains.0"),
        ({"thresholds": ["80"]}, "thresholds.0"),
        ({"thresholds": [0]}, "thresholds.0"),
        ({"thresholds": [1001]}, "thresholds.0"),
        ({"hysteresis": 101}, "hysteresis"),
        ({"hysteresis": -1}, "hysteresis"),
        ({"runtimes": {"prod": {"version": 11}}}, "runtimes.prod.version"),
        ({"runtimes": {"prod": {"version": "eleven"}}}, "runtimes.prod.version"),
        ({"runtimes": ["prod"]}, "runtimes"),
    ],
)
def test_rejects_wrong_types_and_ranges_in_config(fields: dict[str, Any], location: str) -> None:
    reason = rejected(config(**fields))
    assert reason.startswith(f"{location}:"), reason


def test_rejects_empty_thresholds() -> None:
    assert rejected(config(thresholds=[])) == "thresholds: must list at least one percentage"


def test_rejects_config_with_an_invalid_owned_domain() -> None:
    assert rejected(config(domains=["example.com", "localhost"])) == "domains.1: 'localhost' is not a domain name"
    # and the valid entries of the rejected event are not applied
    assert totals(acme(config(domains=["gmail.com", "not a domain"]), login("1", email="a@example.com"))) == (1, 0, 1)


def test_rejects_wrong_types_in_visit() -> None:
    assert rejected(visit(17)).startswith("session_id")  # type: ignore[arg-type]
    assert rejected(visit("s1", phone=5551234)).startswith("phone")


@pytest.mark.parametrize("field", ["subscription", "user_id", "username", "runtime", "tenant", "provider", "phone", "name", "id"])
def test_rejects_oversized_strings(field: str) -> None:
    assert f"{field}:" in rejected({**login("1"), field: "x" * 257})
    assert feed({**login("1"), field: "x" * 256}).rejections == []


def test_rejects_oversized_email() -> None:
    assert rejected(login("1", email="a" * 243 + "@example.com")).startswith("email:")  # 255 characters
    accepted = feed(login("1", email="a" * 242 + "@example.com"))  # 254 characters
    assert accepted.rejections == []
    assert accepted.states["acme"].invalid_emails == 0


def test_rejects_oversized_strings_in_visits_and_config() -> None:
    assert rejected(visit("x" * 257)).startswith("session_id:")
    assert rejected(config(domains=["x" * 257])).startswith("domains.0:")


@pytest.mark.parametrize("time", ["yesterday", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-01-01T25:00:00Z",
                                  "2026-01-01", "", "2026-01-01T00:00:00+25:00"])
def test_rejects_unparseable_time(time: str) -> None:
    assert rejected(login("1", time=time)).startswith("time:")


@pytest.mark.parametrize("time", ["2026-01-01T00:00:00", "2026-01-01T00:00:00.5"])
def test_rejects_time_without_offset(time: str) -> None:
    assert rejected(login("1", time=time)).startswith("time:")


@pytest.mark.parametrize("time", ["2026-01-01T00:00:00Z", "2026-01-01t00:00:00z", "2026-01-01 00:00:00+00:00",
                                  "2026-01-01T01:00:00.123456789+01:00", "2025-12-31T19:00:00-05:00"])
def test_accepts_rfc3339_times_with_offset(time: str) -> None:
    assert feed(login("1", time=time)).rejections == []


def test_time_null_means_arrival_order() -> None:
    assert feed(login("1", time=None)).rejections == []


def test_rejection_reports_line_number_and_reason() -> None:
    replay = Replay(now=NOW)
    replay.feed_lines(["# header", orjson.dumps(login("1")), "", "{oops"], source="events.jsonl")
    assert [str(r) for r in replay.rejections] == [f"events.jsonl:4: {replay.rejections[0].reason}"]
    assert replay.rejections[0].reason.startswith("not JSON")


def test_instant_outside_years_1_to_9999_in_utc_is_rejected() -> None:
    # RFC 3339 allows years 0001-9999 with any offset; shifted to UTC they may leave that range, and
    # such an event is rejected with a reason instead of crashing the engine later.
    for time in ("0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59"):
        replay = feed(config(capacity={"internal": 0}), login("1", time=time))
        assert len(replay.capacity_events) + len(replay.rejections) == 1, time


def test_capacity_event_time_is_rfc3339_for_early_years() -> None:
    document = run(config(capacity={"internal": 0}), login("1", time="0999-01-01T00:00:00Z"))
    assert document["capacity_events"][0]["time"] == "0999-01-01T00:00:00Z"
