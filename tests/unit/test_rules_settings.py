"""Config events (docs/rules.md, "Settings"): which keys a config event replaces or merges, and how a
change of domains, runtime version or platform reclassifies and regroups.

Each rule is proved through the offline replay with concrete values, on events built with
``tests/fixtures/factories.py`` (which also holds the replay helpers ``run``, ``acme``, ``feed``).
Timed events use ``at(n)`` (n seconds after 2026-01-01T00:00:00Z); a test never mixes timed and
untimed events, since untimed ones get wall-clock arrival times.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.fixtures.factories import OWNED, acme, capacity_events, config, feed, login, profile, run, totals


def test_config_absent_keys_keep_their_value() -> None:
    counts = acme(
        config(domains=["example.com"], platform="odc"),
        config(capacity={"external": 5}),
        login("1", email="a@gmail.com"),
        profile("upsert", "2", email="b@gmail.com"),
    )
    assert totals(counts) == (0, 1, 1)


def test_config_capacity_keys_are_replaced_independently() -> None:
    document = run(
        config(capacity={"internal": 1, "external": 1}),
        config(capacity={"external": None}),
        login("1"),
    )
    assert capacity_events(document) == [("internal", 0, 100, "up", 1, 1, False, document["capacity_events"][0]["trigger"])]


def test_config_capacity_null_makes_both_classes_unlimited() -> None:
    document = run(config(capacity={"internal": 1, "external": 1}), config(capacity=None), OWNED,
                   login("1", email="a@example.com"), login("2", email="b@gmail.com"))
    assert document["capacity_events"] == []
    assert document["subscriptions"]["acme"]["levels"] == {"internal": 0, "external": 0}


def test_config_runtimes_are_merged_per_runtime() -> None:
    counts = acme(
        config(runtimes={"a": {"version": "11.0"}}),
        config(runtimes={"b": {"version": "11.0"}}),
        *(login(str(n), runtime=r, email="adam@example.com") for n, r in enumerate("aabbcc")),
    )
    assert totals(counts["runtimes"]["a"]) == (2, 0, 2)
    assert totals(counts["runtimes"]["b"]) == (2, 0, 2)
    assert totals(counts["runtimes"]["c"]) == (1, 0, 2)
    # a and b records are not eligible; c's two records are one individual
    assert totals(counts) == (5, 0, 6)


def test_domain_change_reclassifies() -> None:
    stream = [
        login("1", email="a@example.com"),
        login("2", email="b@eu.example.com"),
        login("3", email="c@gmail.com"),
        login("4", username="d"),
    ]
    assert totals(acme(*stream)) == (4, 0, 4)
    assert totals(acme(*stream, OWNED)) == (2, 2, 4)
    assert totals(acme(*stream, OWNED, config(domains=["*.example.com", "gmail.com"]))) == (3, 1, 4)
    assert totals(acme(*stream, OWNED, config(domains=[]))) == (4, 0, 4)
    counts = acme(*stream, config(runtimes={"default": {"version": "11.14.0"}}), OWNED)
    assert totals(counts["runtimes"]["default"]) == (2, 2, 4)


def test_domain_change_emits_capacity_events() -> None:
    second, cfg = login("2", email="b@gmail.com"), config(domains=["example.com"])
    document = run(config(capacity={"internal": 2, "external": 2}), login("1", email="a@gmail.com"), second, cfg)
    assert capacity_events(document) == [
        ("internal", 0, 100, "up", 2, 2, False, second["id"]),
        ("internal", 100, 0, "down", 0, 2, False, cfg["id"]),
        ("external", 0, 100, "up", 2, 2, False, cfg["id"]),
    ]


def test_runtime_version_change_regroups() -> None:
    stream = [
        login("1", runtime="prod", email="adam@gmail.com"),
        login("2", runtime="prod", email="adam@gmail.com"),
        OWNED,
    ]
    assert totals(acme(*stream)) == (0, 1, 2)
    assert totals(acme(*stream, config(runtimes={"prod": {"version": "11.10.0"}}))) == (0, 2, 2)
    assert totals(acme(*stream, config(runtimes={"prod": {"version": "11.6.0"}}))) == (2, 0, 2)
    assert totals(acme(*stream, config(runtimes={"prod": {"version": "11.6.0"}}),
                       config(runtimes={"prod": {"version": "11.12.0"}}))) == (0, 1, 2)
    assert totals(acme(*stream, config(runtimes={"prod": {"version": "11.6.0"}}),
                       config(runtimes={"prod": {}}))) == (0, 1, 2)


def test_runtime_version_change_within_the_same_policy_regroups_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = [
        config(runtimes={"prod": {"version": "11.12.0"}, "old": {"version": "11.8.0"}}),
        login("1", runtime="prod", email="adam@gmail.com"),
        login("2", runtime="prod", email="adam@gmail.com"),
        login("3", runtime="old", email="eve@gmail.com"),
        OWNED,
    ]
    replay = feed(*stream)
    before = replay.document()["subscriptions"]["acme"]

    def must_not_regroup(*args: Any) -> None:
        raise AssertionError("regrouped records for a version change that changes no record's facts")

    monkeypatch.setattr("counters.individuals.rebuild", must_not_regroup)
    monkeypatch.setattr("counters.individuals.refresh_runtimes", must_not_regroup)
    upgrades = [config(runtimes={"prod": {"version": "11.14.0"}, "old": {"version": "11.11.2"}}),
                config(runtimes={"prod": {}}), config(runtimes={"new": {"version": "11.20.1"}})]
    replay.feed_lines([orjson.dumps(e) for e in upgrades])
    assert replay.document()["subscriptions"]["acme"] == before
    assert totals(before) == (0, 2, 3)


def test_runtime_version_change_regroups_only_the_records_of_that_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = [
        login("1", runtime="prod", email="adam@gmail.com"),
        login("2", runtime="prod", email="adam@gmail.com"),
        login("3", runtime="dev", email="adam@gmail.com"),
        OWNED,
    ]
    replay = feed(*stream)
    refreshed: list[str] = []
    from counters import individuals

    def spy(state: Any, ref: str, old: Any, removing: bool = False) -> None:
        refreshed.append(state.records[ref].runtime)
        original(state, ref, old, removing)

    original = individuals.refresh
    monkeypatch.setattr("counters.individuals.refresh", spy)
    replay.feed_lines([orjson.dumps(config(runtimes={"prod": {"version": "11.10.0"}}))])
    assert refreshed == ["prod", "prod"]
    document = replay.document()["subscriptions"]["acme"]
    assert totals(document) == (0, 3, 3)  # prod's records may no longer be merged with anyone
    assert totals(document["runtimes"]["prod"]) == (0, 2, 2)
    assert totals(document["runtimes"]["dev"]) == (0, 1, 1)


def test_platform_change_regroups() -> None:
    stream = [
        login("1", tenant="t1", default_tenant=False, email="adam@example.com"),
        login("2", tenant="t2", default_tenant=False, email="adam@example.com"),
        profile("upsert", "3", email="eve@example.com"),
    ]
    assert totals(acme(*stream)) == (3, 0, 3)
    assert totals(acme(*stream, config(platform="odc"))) == (1, 0, 2)
    assert totals(acme(*stream, config(platform="odc"), config(platform="o11"))) == (3, 0, 3)
