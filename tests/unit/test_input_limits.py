"""The documented bounds on input (schemas/limits.py): sizes, string lengths, topics and the time horizon.

Each bound rejects with a reason and applies nothing; nothing is ever truncated.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from counters import ArrivalClock, Replay
from schemas.codec import Rejection, Source, decode, too_far_ahead
from schemas.events import ConfigEvent, LoginEvent, parse_rfc3339
from schemas.limits import (
    MAX_DOMAINS,
    MAX_EMAIL,
    MAX_EVENT_BYTES,
    MAX_RUNTIMES,
    MAX_STRING,
    MAX_THRESHOLDS,
    format_duration,
    parse_duration,
)
from schemas.outputs import format_instant
from streams.cli.config_builder import InvalidInput, config_event
from streams.kafka.publish import stamped
from streams.settings import SettingsError, WorkerSettings
from tests.fixtures.examples import REPLAY_NOW

NOW = parse_rfc3339(REPLAY_NOW)
HOUR = 3_600_000_000


def login(**fields: Any) -> dict[str, Any]:
    return {"type": "login", "subscription": "acme", "user_id": "1", **fields}


def padded_to(size: int) -> bytes:
    """A valid login of exactly ``size`` bytes (the padding is an unknown field, which is ignored)."""
    base = orjson.dumps(login(pad=""))
    return orjson.dumps(login(pad="x" * (size - len(base))))


# --- the event itself -------------------------------------------------------------------------------


def test_an_event_of_1_mib_is_accepted_and_one_byte_more_is_rejected_as_too_large() -> None:
    assert len(padded_to(MAX_EVENT_BYTES)) == MAX_EVENT_BYTES
    assert isinstance(decode(padded_to(MAX_EVENT_BYTES)), LoginEvent)
    rejection = decode(padded_to(MAX_EVENT_BYTES + 1))
    assert isinstance(rejection, Rejection)
    assert rejection.reason == f"too large: {MAX_EVENT_BYTES + 1} bytes (an event is at most {MAX_EVENT_BYTES} bytes, 1 MiB)"
    assert rejection.category == "too_large"


def test_a_text_line_is_measured_in_utf8_bytes() -> None:
    three_bytes = "€"  # one character, three bytes in UTF-8
    line = orjson.dumps(login(pad=three_bytes * (MAX_EVENT_BYTES // 3))).decode()
    assert len(line) < MAX_EVENT_BYTES < len(line.encode())
    assert isinstance(decode(line), Rejection)
    assert isinstance(decode(line.encode()), Rejection)


# --- collections of a config ------------------------------------------------------------------------


@pytest.mark.parametrize("key, limit, item", [
    ("runtimes", MAX_RUNTIMES, lambda n: (f"rt-{n}", {"version": "11.14.0"})),
    ("domains", MAX_DOMAINS, lambda n: f"d{n}.example"),
    ("thresholds", MAX_THRESHOLDS, lambda n: 1 + n),
])
def test_a_config_collection_beyond_its_limit_is_rejected(key: str, limit: int, item: Any) -> None:
    def config(size: int) -> bytes:
        items = [item(n) for n in range(size)]
        return orjson.dumps({"type": "config", "subscription": "acme", key: dict(items) if key == "runtimes" else items})

    accepted = decode(config(limit))
    assert isinstance(accepted, ConfigEvent) and len(getattr(accepted, key)) == limit
    rejection = decode(config(limit + 1))
    assert isinstance(rejection, Rejection)
    assert rejection.reason.startswith(f"{key}: ") and f"at most {limit} items" in rejection.reason
    assert rejection.category == "too_large"


def test_the_config_command_refuses_an_event_the_pipeline_would_refuse_as_too_large() -> None:
    long = ".".join(c * 60 for c in "abc")
    domains = [f"{long}.d{n}.example" for n in range(MAX_DOMAINS)]  # each valid, together about 2 MB
    with pytest.raises(InvalidInput, match="too large"):
        config_event("acme", domains=domains)


# --- strings: rejected beyond their limit, never truncated ------------------------------------------

STRING_FIELDS = [
    ("login", "subscription", MAX_STRING), ("login", "id", MAX_STRING), ("login", "runtime", MAX_STRING),
    ("login", "tenant", MAX_STRING), ("login", "provider", MAX_STRING), ("login", "user_id", MAX_STRING),
    ("login", "username", MAX_STRING), ("login", "email", MAX_EMAIL), ("login", "phone", MAX_STRING),
    ("login", "name", MAX_STRING), ("visit", "session_id", MAX_STRING), ("config", "domains", MAX_STRING),
    ("config", "runtimes", MAX_STRING), ("login", "time", MAX_STRING),
]


def _with(kind: str, field: str, text: str) -> dict[str, Any]:
    event: dict[str, Any] = {"login": login(), "visit": {"type": "visit", "subscription": "acme", "session_id": "s"},
                             "config": {"type": "config", "subscription": "acme"}}[kind]
    if field == "domains":
        event["domains"] = [text]
    elif field == "runtimes":
        event["runtimes"] = {text: {"version": "11.14.0"}}
    else:
        event[field] = text
    return event


def _text(field: str, length: int) -> str:
    if field == "time":  # a valid instant, lengthened by its fraction of a second
        return "2026-11-01T09:00:00." + "1" * (length - len("2026-11-01T09:00:00.Z")) + "Z"
    if field == "domains":  # an owned domain must be a domain name: a wildcard, labels of 63, a final dot
        return "*." + "".join("." if n % 64 == 63 else "x" for n in range(length - 3)) + "."
    return "x" * length


@pytest.mark.parametrize("kind, field, limit", STRING_FIELDS, ids=[f"{k}.{f}" for k, f, _ in STRING_FIELDS])
def test_a_string_longer_than_its_limit_is_rejected_not_truncated(kind: str, field: str, limit: int) -> None:
    at_limit = _text(field, limit)
    event = decode(orjson.dumps(_with(kind, field, at_limit)))
    assert not isinstance(event, Rejection), event
    kept = {"domains": lambda: event.domains[0], "runtimes": lambda: next(iter(event.runtimes)),  # type: ignore[union-attr]
            "time": lambda: at_limit}.get(field, lambda: getattr(event, field))()
    assert kept == at_limit, "a string within its limit is kept whole"

    rejection = decode(orjson.dumps(_with(kind, field, _text(field, limit + 1))))
    assert isinstance(rejection, Rejection), f"{field} of {limit + 1} characters was accepted"
    assert rejection.reason.startswith(field) and f"at most {limit} characters" in rejection.reason


# --- topics -----------------------------------------------------------------------------------------


def test_an_event_is_accepted_only_on_its_own_types_topic() -> None:
    source = Source("enduser.logins", "login")
    assert isinstance(decode(orjson.dumps(login()), source), LoginEvent)
    config = orjson.dumps({"type": "config", "subscription": "acme", "capacity": {"internal": 0}})
    rejection = decode(config, source)
    assert rejection == Rejection("type config is not accepted on topic enduser.logins", "wrong_topic")
    assert isinstance(decode(config), ConfigEvent), "a file has no topics: replay accepts every type"


# --- the time horizon -------------------------------------------------------------------------------


@pytest.mark.parametrize("text, microseconds", [
    ("30s", 30_000_000), ("15m", 900_000_000), ("24h", 24 * HOUR), ("2d", 48 * HOUR), ("90", 90_000_000),
    ("1.5h", 90 * 60_000_000), (" 24h ", 24 * HOUR),
])
def test_max_future_accepts_seconds_minutes_hours_and_days(text: str, microseconds: int) -> None:
    assert parse_duration(text) == microseconds


@pytest.mark.parametrize("text", ["", "1w", "h", "-1h", "24 hours", "1e3s"])
def test_max_future_refuses_other_forms(text: str) -> None:
    with pytest.raises(ValueError, match="like 30s, 15m, 24h or 2d"):
        parse_duration(text)


def test_a_bad_max_future_stops_the_worker_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENDUSERS_MAX_FUTURE", "tomorrow")
    with pytest.raises(SettingsError, match="ENDUSERS_MAX_FUTURE"):
        WorkerSettings()
    monkeypatch.setenv("ENDUSERS_MAX_FUTURE", "2d")
    assert WorkerSettings().max_future == 48 * HOUR


def test_a_time_up_to_max_future_ahead_is_accepted_and_later_ones_are_rejected() -> None:
    def at(offset: int) -> Any:
        event = decode(orjson.dumps(login(time=format_instant(NOW + offset))))
        assert isinstance(event, LoginEvent)
        return too_far_ahead(event, NOW, 24 * HOUR)

    assert at(24 * HOUR) is None
    rejection = at(24 * HOUR + 1)
    assert rejection == Rejection(f"time is in the future: {format_instant(NOW + 24 * HOUR + 1)} is more than 24h "
                                  f"ahead of {REPLAY_NOW}", "future_time")
    assert format_duration(90_000_000) == "90s" and format_duration(1_500_000) == "1.5s"


def _feed(replay: Replay, *events: dict[str, Any]) -> list[str]:
    return [r.reason for e in events if (r := replay.feed(orjson.dumps(e))) is not None]


def test_replay_rejects_a_delete_dated_9999_so_later_untimed_events_still_apply() -> None:
    replay = Replay(now=NOW)
    reasons = _feed(
        replay,
        {"type": "profile", "op": "upsert", "subscription": "acme", "user_id": "1", "time": "2026-11-01T09:00:00Z"},
        {"type": "profile", "op": "delete", "subscription": "acme", "user_id": "1", "time": "9999-01-01T00:00:00Z"},
        login(),  # untimed: stamped at the pinned clock, not past 9999
        login(user_id="2", time=format_instant(NOW + 23 * HOUR)),
    )
    assert [r.split(":")[0] for r in reasons] == ["time is in the future"]
    assert replay.document()["subscriptions"]["acme"]["records"] == 2
    assert replay.clock() < NOW + 24 * HOUR, "the refused time did not move the arrival clock"


def test_replay_pinned_to_now_is_the_same_on_every_run() -> None:
    events = [orjson.dumps(e) for e in (
        {"type": "config", "subscription": "acme", "capacity": {"internal": 0, "external": 0}}, login(), login(user_id="2"))]
    documents = []
    for _ in range(2):
        replay = Replay(now=NOW)
        replay.feed_lines(events)
        documents.append(replay.document())
    assert documents[0] == documents[1]
    assert documents[0]["capacity_events"][0]["time"] == REPLAY_NOW.replace("00Z", "00.000001Z")


def test_publish_lets_no_refused_time_move_its_arrival_clock() -> None:
    clock = ArrivalClock()
    far = {"type": "profile", "op": "delete", "subscription": "acme", "user_id": "1", "time": "9999-01-01T00:00:00Z"}
    stamped(orjson.dumps(far), far, clock, 24 * HOUR)
    line, headers = stamped(orjson.dumps(login()), login(), clock, 24 * HOUR)
    untimed = parse_rfc3339(orjson.loads(line)["time"])
    assert abs(untimed - clock.now()) < HOUR, "stamped at its publish time, not after 9999"
    assert headers == [("endusers-arrival", str(untimed).encode())]

    near = login(time=format_instant(clock.now() + 23 * HOUR))
    stamped(orjson.dumps(near), near, clock, 24 * HOUR)
    line, _ = stamped(orjson.dumps(login()), login(), clock, 24 * HOUR)
    assert parse_rfc3339(orjson.loads(line)["time"]) > parse_rfc3339(near["time"]), "an accepted time still orders"


def test_a_counts_document_names_at_most_max_reported_runtimes_and_providers_and_folds_the_rest() -> None:
    from counters.replay import replay_lines
    from schemas.limits import MAX_REPORTED, REPORTED_OTHER

    names = [f"{n:04d}" + "r" * 196 for n in range(MAX_REPORTED + 50)]
    lines = [orjson.dumps({"type": "login", "subscription": "acme", "user_id": f"u{n}", "runtime": name,
                           "provider": name, "email": f"u{n}@ext.example"}) for n, name in enumerate(names)]
    lines += [orjson.dumps({"type": "login", "subscription": "acme", "user_id": "v", "runtime": names[-1],
                            "provider": names[-1]})]  # the last name is the largest: it is kept, not folded
    counts = replay_lines(lines)["subscriptions"]["acme"]
    assert len(counts["runtimes"]) == len(counts["providers"]) == MAX_REPORTED + 1
    assert names[-1] in counts["runtimes"] and names[-2] not in counts["runtimes"]
    assert counts["runtimes"][REPORTED_OTHER]["records"] == counts["providers"][REPORTED_OTHER] == 50
    assert sum(scope["records"] for scope in counts["runtimes"].values()) == counts["records"] == len(lines)
    assert len(orjson.dumps(counts)) < 500_000


def test_a_capacity_event_names_its_trigger_only_by_an_identifier_like_id() -> None:
    from schemas.limits import copied_id

    assert copied_id("e10") == "e10" and copied_id("0f5c7a3e-6a7d-5d1c-9b7e-2f4f1c1b9a10") is not None
    assert copied_id("login of ann@corp.example") is None and copied_id("Ann Smith") is None
    assert copied_id("x" * (MAX_STRING + 1)) is None and copied_id(None) is None and copied_id("") is None
    document = Replay()
    document.feed_lines([orjson.dumps({"type": "config", "subscription": "a", "capacity": {"internal": 1}}),
                         orjson.dumps({"type": "login", "subscription": "a", "user_id": "1", "id": "ann@x.example",
                                       "email": "ann@x.example"})])
    (event,) = document.document()["capacity_events"]
    assert event["trigger"] is None
