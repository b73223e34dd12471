"""Capacity levels (docs/rules.md, "Capacity levels and hysteresis"): thresholds, hysteresis, exceeded,
and the capacity events with their ids and times.

Each rule is proved through the offline replay with concrete values, on events built with
``tests/fixtures/factories.py`` (which also holds the replay helpers ``run``, ``acme``, ``feed``).
Timed events use ``at(n)`` (n seconds after 2026-01-01T00:00:00Z); a test never mixes timed and
untimed events, since untimed ones get wall-clock arrival times.
"""

from __future__ import annotations

import re
import uuid

from tests.fixtures.factories import OWNED, at, capacity_events, config, event, login, profile, run


def test_threshold_reached_emits_capacity_event() -> None:
    users = [login(str(n), time=at(n), email=f"u{n}@example.com") for n in range(1, 11)]
    document = run(config(capacity={"internal": 10}, time=at(0)), *users[:8])
    assert document["capacity_events"] == [{
        "id": document["capacity_events"][0]["id"],
        "subscription": "acme",
        "user_class": "internal",
        "previous_level": 0,
        "level": 80,
        "direction": "up",
        "count": 8,
        "capacity": 10,
        "exceeded": False,
        "time": "2026-01-01T00:00:08Z",
        "trigger": users[7]["id"],
    }]
    assert document["subscriptions"]["acme"]["levels"] == {"internal": 80, "external": 0}
    document = run(config(capacity={"internal": 10}, time=at(0)), *users)
    assert [(e["level"], e["count"], e["trigger"]) for e in document["capacity_events"]] == [
        (80, 8, users[7]["id"]), (90, 9, users[8]["id"]), (100, 10, users[9]["id"])]


def test_level_jumps_to_the_largest_reached_threshold() -> None:
    users = [login(str(n), email=f"u{n}@gmail.com") for n in range(7)]
    cfg = config(capacity={"external": 5})
    document = run(OWNED, *users, cfg)
    assert capacity_events(document) == [("external", 0, 100, "up", 7, 5, True, cfg["id"])]


def test_exceeded_means_count_above_capacity() -> None:
    second = login("2")
    document = run(config(capacity={"internal": 2}), login("1"), second, login("3"))
    # reached 100 at count 2 == capacity (not exceeded); count 3 exceeds, but the level stays 100: no event
    assert capacity_events(document) == [("internal", 0, 100, "up", 2, 2, False, second["id"])]
    cfg = config(capacity={"internal": 1})
    document = run(config(capacity={"internal": 2}), login("1"), second, login("3"), cfg, config(capacity={"internal": 2}))
    assert capacity_events(document)[1:] == []  # lowering the capacity keeps the level at 100: still no event
    document = run(config(capacity={"internal": 5}), login("1"), second, login("3"), cfg)
    assert capacity_events(document) == [("internal", 0, 100, "up", 3, 1, True, cfg["id"])]


def test_hysteresis_delays_going_down() -> None:
    users = [login(str(n), email=f"u{n}@example.com") for n in range(10)]
    off = [profile("deactivate", str(n)) for n in range(10)]
    base = [config(capacity={"internal": 10}, hysteresis=10), *users]
    document = run(*base, off[9])
    # 9 of 10: 100 is still held (900 >= (100 - 10) * 10)
    assert document["subscriptions"]["acme"]["levels"]["internal"] == 100
    assert [e["level"] for e in document["capacity_events"]] == [80, 90, 100]
    document = run(*base, off[9], off[8])
    # 8 of 10: 100 is not held, 90 is (800 >= 800): down to 90, not 80
    assert capacity_events(document)[-1] == ("internal", 100, 90, "down", 8, 10, False, off[8]["id"])
    document = run(*base, off[9], off[8], off[7], off[6])
    assert capacity_events(document)[-2:] == [
        ("internal", 90, 80, "down", 7, 10, False, off[7]["id"]),
        ("internal", 80, 0, "down", 6, 10, False, off[6]["id"]),
    ]


def test_default_hysteresis_is_one_point() -> None:
    users = [login(str(n)) for n in range(200)]
    document = run(config(capacity={"internal": 200}, thresholds=[50]), *users[:100],
                   profile("deactivate", "0"), profile("deactivate", "1"), profile("deactivate", "2"))
    # 100/200 reaches 50; 99 and 98 hold (>= 49 %); 97 drops
    assert [(e["level"], e["count"]) for e in document["capacity_events"]] == [(50, 100), (0, 97)]


def test_fractional_hysteresis_is_accepted() -> None:
    users = [login(str(n)) for n in range(10)]
    document = run(config(capacity={"internal": 10}, thresholds=[80], hysteresis=0.5), *users[:8],
                   profile("deactivate", "0"))
    assert [(e["level"], e["count"]) for e in document["capacity_events"]] == [(80, 8), (0, 7)]


def test_zero_capacity_any_user_reaches_every_threshold() -> None:
    document = run(OWNED, config(capacity={"internal": 0, "external": 0}))
    assert document["capacity_events"] == []  # count 0 never reaches a threshold
    first = login("1", email="a@gmail.com")
    document = run(OWNED, config(capacity={"internal": 0, "external": 0}), first, profile("deactivate", "1"))
    assert capacity_events(document) == [
        ("external", 0, 100, "up", 1, 0, True, first["id"]),
        ("external", 100, 0, "down", 0, 0, False, document["capacity_events"][1]["trigger"]),
    ]


def test_capacity_null_resets_level_without_event() -> None:
    users = [login(str(n)) for n in range(8)]
    stream = [config(capacity={"internal": 10}), *users, config(capacity={"internal": None})]
    document = run(*stream)
    assert [e["level"] for e in document["capacity_events"]] == [80]
    assert document["subscriptions"]["acme"]["levels"] == {"internal": 0, "external": 0}
    again = config(capacity={"internal": 10})
    document = run(*stream, login("extra"), again)
    assert capacity_events(document)[1:] == [("internal", 0, 90, "up", 9, 10, False, again["id"])]


def test_thresholds_change_recomputes_level_without_hysteresis() -> None:
    users = [login(str(n)) for n in range(8)]
    stream = [config(capacity={"internal": 10}, hysteresis=10), *users, profile("deactivate", "0")]
    assert run(*stream)["subscriptions"]["acme"]["levels"]["internal"] == 80  # held by hysteresis
    same_set = config(thresholds=[100, 90, 80, 80])
    assert run(*stream, same_set)["subscriptions"]["acme"]["levels"]["internal"] == 80
    changed = config(thresholds=[80, 95])
    document = run(*stream, changed)
    assert capacity_events(document)[-1] == ("internal", 80, 0, "down", 7, 10, False, changed["id"])
    lower = config(thresholds=[50, 70])
    document = run(*stream, lower)
    assert capacity_events(document)[-1] == ("internal", 80, 70, "down", 7, 10, False, lower["id"])


def test_capacity_events_list_internal_before_external() -> None:
    cfg = config(capacity={"internal": 1, "external": 1})
    document = run(OWNED, login("1", email="a@example.com"), login("2", email="b@gmail.com"), cfg)
    assert [e["user_class"] for e in document["capacity_events"]] == ["internal", "external"]
    assert all(e["trigger"] == cfg["id"] for e in document["capacity_events"])


def test_capacity_events_are_per_subscription() -> None:
    document = run(
        config(capacity={"internal": 1}),
        event("config", "other", capacity={"internal": 1}),
        event("login", "other", user_id="1"),
    )
    assert [(e["subscription"], e["level"]) for e in document["capacity_events"]] == [("other", 100)]
    assert document["subscriptions"]["acme"]["levels"]["internal"] == 0


def test_capacity_event_ids_are_deterministic() -> None:
    stream = [config(capacity={"internal": 2}), login("1"), login("2"), profile("deactivate", "1"), login("3")]
    first, second = run(*stream), run(*stream)
    ids = [e["id"] for e in first["capacity_events"]]
    assert len(ids) == 3
    assert ids == [e["id"] for e in second["capacity_events"]]
    assert len(set(ids)) == 3  # 0->100, 100->0 and again 0->100 are different changes
    assert all(uuid.UUID(i).version == 5 for i in ids)
    other = run(*[dict(e, subscription="other") for e in stream])
    assert not set(ids) & {e["id"] for e in other["capacity_events"]}


def test_capacity_event_time_is_the_triggering_event_time() -> None:
    document = run(config(capacity={"internal": 1}, time=at(0)), login("1", time="2026-01-01T01:00:00.250+01:00"))
    assert document["capacity_events"][0]["time"] == "2026-01-01T00:00:00.25Z"


def test_untimed_event_gets_arrival_time() -> None:
    document = run(config(capacity={"internal": 1}), login("1"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", document["capacity_events"][0]["time"])
