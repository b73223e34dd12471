"""Accounts that are not end users (docs/rules.md, "Accounts that are not end users"): excluded
providers and records marked excluded never count and are reported apart.

Each rule is proved through the offline replay with concrete values, on events built with
``tests/fixtures/factories.py`` (which also holds the replay helpers ``run``, ``acme``, ``feed``).
Timed events use ``at(n)`` (n seconds after 2026-01-01T00:00:00Z); a test never mixes timed and
untimed events, since untimed ones get wall-clock arrival times.
"""

from __future__ import annotations

from tests.fixtures.factories import acme, at, capacity_events, config, login, profile, run, totals


def test_records_of_an_excluded_provider_never_count_and_are_reported_apart() -> None:
    counts = acme(
        config(excluded_providers=["ITUsers"]),
        login("1", provider="ITUsers", email="dev@example.com"),
        login("2", email="ann@example.com"),
        profile("upsert", "3", provider="ITUsers", active=False),  # would not count anyway: not reported
    )
    assert totals(counts) == (1, 0, 1)
    assert counts["excluded"] == 1
    assert counts["providers"] == {"default": 1}


def test_a_record_marked_excluded_stops_counting_and_unmarked_counts_again() -> None:
    stream = [login("1", email="robot@example.com", time=at(1)), login("2", email="ann@example.com", time=at(1))]
    marked = profile("upsert", "1", excluded=True, time=at(2))
    assert (totals(acme(*stream, marked)), acme(*stream, marked)["excluded"]) == ((1, 0, 1), 1)
    unmarked = profile("upsert", "1", excluded=False, time=at(3))
    assert (totals(acme(*stream, marked, unmarked)), acme(*stream, marked, unmarked)["excluded"]) == ((2, 0, 2), 0)
    stale = profile("upsert", "1", excluded=False, time=at(1))  # older than the mark: the mark stays
    assert acme(*stream, marked, stale)["excluded"] == 1


def test_excluded_record_never_links_others() -> None:
    stream = [
        login("A", email="adam@example.com"),
        login("B", provider="ITUsers", email="adam@example.com", username="adam"),
        login("C", username="adam"),
    ]
    assert totals(acme(*stream)) == (1, 0, 3)
    assert totals(acme(config(excluded_providers=["ITUsers"]), *stream)) == (2, 0, 2)


def test_changing_excluded_providers_moves_records_out_and_back_with_levels() -> None:
    stream = [
        config(domains=["example.com"], capacity={"external": 2}),
        login("1", provider="Partners", email="a@vendor.io"),
        login("2", provider="Partners", email="b@vendor.io"),
    ]
    document = run(*stream, config(excluded_providers=["Partners"]), config(excluded_providers=None))
    assert totals(document["subscriptions"]["acme"]) == (0, 2, 2)
    assert document["subscriptions"]["acme"]["excluded"] == 0
    assert [(e[0], e[1], e[2]) for e in capacity_events(document)] == [
        ("external", 0, 100), ("external", 100, 0), ("external", 0, 100)]


def test_excluded_on_odc_reports_only_records_that_logged_in() -> None:
    counts = acme(
        config(platform="odc", excluded_providers=["ITUsers"]),
        profile("upsert", "1", provider="ITUsers", email="dev@example.com"),
        login("2", provider="ITUsers", email="ops@example.com"),
    )
    assert (totals(counts), counts["excluded"]) == ((0, 0, 0), 1)
