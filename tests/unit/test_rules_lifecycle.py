"""Records over time (docs/rules.md, "Time and order"): activation, deactivation, deletes and their
tombstones, the sticky logged-in mark, and the order of events and of single fields.

Each rule is proved through the offline replay with concrete values, on events built with
``tests/fixtures/factories.py`` (which also holds the replay helpers ``run``, ``acme``, ``feed``).
Timed events use ``at(n)`` (n seconds after 2026-01-01T00:00:00Z); a test never mixes timed and
untimed events, since untimed ones get wall-clock arrival times.
"""

from __future__ import annotations

from tests.fixtures.factories import OWNED, acme, at, capacity_events, config, login, profile, run, totals, visit


def test_deactivated_users_stop_counting() -> None:
    counts = acme(login("1", email="a@example.com"), login("2"), profile("deactivate", "1"))
    assert totals(counts) == (1, 0, 1)
    assert counts["providers"] == {"default": 1}


def test_activated_users_count_again() -> None:
    assert totals(acme(login("1"), profile("deactivate", "1"), profile("activate", "1"))) == (1, 0, 1)


def test_upsert_active_false_stops_counting() -> None:
    assert totals(acme(login("1"), profile("upsert", "1", active=False))) == (0, 0, 0)
    assert totals(acme(login("1"), profile("upsert", "1", active=False), profile("upsert", "1", active=True))) == (
        1, 0, 1)


def test_login_does_not_reactivate_a_user() -> None:
    assert totals(acme(login("1"), profile("deactivate", "1"), login("1"))) == (0, 0, 0)


def test_late_upsert_cannot_revive_deactivated_user() -> None:
    counts = acme(
        profile("deactivate", "1", time=at(20)),  # unknown record: created inactive
        profile("upsert", "1", time=at(10), active=True, email="a@example.com"),
        login("1", time=at(15)),
    )
    assert totals(counts) == (0, 0, 0)
    # an activation newer than the deactivation revives it, with the late upsert's email
    counts = acme(
        profile("deactivate", "1", time=at(20)),
        profile("upsert", "1", time=at(10), active=True, email="a@example.com"),
        profile("activate", "1", time=at(30)),
        login("2", time=at(31), email="a@example.com"),
    )
    assert totals(counts) == (1, 0, 2)


def test_deactivate_of_unknown_record_creates_it_without_identity() -> None:
    counts = acme(profile("deactivate", "1", time=at(1)), profile("activate", "1", time=at(2)))
    assert totals(counts) == (1, 0, 1)


def test_delete_removes_the_record() -> None:
    counts = acme(login("1", time=at(1)), login("2", time=at(2)), profile("delete", "1", time=at(3)))
    assert totals(counts) == (1, 0, 1)


def test_delete_leaves_tombstone_older_events_ignored() -> None:
    counts = acme(
        login("1", time=at(10), email="a@example.com"),
        profile("delete", "1", time=at(20)),
        login("1", time=at(15)),
        profile("upsert", "1", time=at(20), email="b@example.com"),  # a tie goes to the delete
        profile("activate", "1", time=at(19)),
    )
    assert totals(counts) == (0, 0, 0)
    assert counts["providers"] == {}


def test_delete_of_unknown_record_leaves_tombstone() -> None:
    counts = acme(profile("delete", "1", time=at(20)), login("1", time=at(10)))
    assert totals(counts) == (0, 0, 0)


def test_delete_older_than_the_last_change_is_ignored() -> None:
    counts = acme(login("1", time=at(10)), profile("upsert", "1", time=at(30), email="a@example.com"),
                  profile("delete", "1", time=at(20)))
    assert totals(counts) == (1, 0, 1)


def test_newer_event_recreates_deleted_record() -> None:
    stream = [
        login("1", time=at(10), email="adam@example.com"),
        profile("delete", "1", time=at(20)),
        profile("upsert", "1", time=at(30), username="someone"),
    ]
    # recreated afresh: counted again on O11, but without its old email (no merge with user 2)
    assert totals(acme(*stream, login("2", time=at(40), email="adam@example.com"))) == (2, 0, 2)
    # and without its old logged-in mark: on ODC it does not count until it logs in again
    assert totals(acme(config(platform="odc"), *stream)) == (0, 0, 0)
    assert totals(acme(config(platform="odc"), *stream, login("1", time=at(50)))) == (1, 0, 1)


def test_logged_in_mark_is_sticky() -> None:
    counts = acme(
        config(platform="odc"),
        login("1", time=at(10)),
        profile("upsert", "1", time=at(20), email="a@example.com"),
        profile("deactivate", "1", time=at(30)),
        profile("activate", "1", time=at(40)),
        profile("upsert", "1", time=at(5), username="late"),
    )
    assert totals(counts) == (1, 0, 1)


def test_login_arriving_late_still_marks_logged_in() -> None:
    counts = acme(config(platform="odc"), profile("upsert", "1", time=at(20)), login("1", time=at(10)))
    assert totals(counts) == (1, 0, 1)


def test_applying_same_event_twice_changes_nothing() -> None:
    stream = [
        config(domains=["example.com"], capacity={"internal": 2, "external": 1}, time=at(1)),
        login("1", time=at(2), email="a@example.com"),
        login("2", time=at(3), email="b@gmail.com"),
        login("3", time=at(4), email="c@example.com"),
        profile("upsert", "2", time=at(5), email="b@example.com"),
        profile("deactivate", "3", time=at(6)),
        profile("delete", "1", time=at(7)),
        visit("s1", time=at(8)),
        visit("s2", time=at(9), email="v@gmail.com"),
        config(capacity={"internal": 1}, time=at(10)),
    ]
    once = run(*stream)
    twice = run(*[e for e in stream for _ in (0, 1)])
    assert twice == once
    assert totals(once["subscriptions"]["acme"]) == (1, 1, 2)
    assert once["subscriptions"]["acme"]["anonymous_sessions"] == 1
    assert capacity_events(once) == [
        ("external", 0, 100, "up", 1, 1, False, stream[2]["id"]),
        ("internal", 0, 100, "up", 2, 2, False, stream[3]["id"]),
        ("external", 100, 0, "down", 0, 1, False, stream[4]["id"]),
        ("internal", 100, 0, "down", 1, 2, False, stream[6]["id"]),
        ("external", 0, 100, "up", 1, 1, False, stream[8]["id"]),
        ("internal", 0, 100, "up", 1, 1, False, stream[9]["id"]),
    ]


def test_field_null_clears_it() -> None:
    stream = [OWNED, login("1", time=at(1), email="a@gmail.com", username="adam"), login("2", time=at(2), username="adam")]
    assert totals(acme(*stream)) == (0, 1, 2)
    assert totals(acme(*stream, profile("upsert", "1", time=at(3), email=None))) == (1, 0, 2)
    assert totals(acme(*stream, profile("upsert", "1", time=at(3), username=None))) == (1, 1, 2)


def test_absent_field_keeps_its_value() -> None:
    counts = acme(OWNED, login("1", time=at(1), email="a@gmail.com"), profile("upsert", "1", time=at(2), username="x"))
    assert totals(counts) == (0, 1, 1)


def test_older_event_does_not_overwrite_newer_field() -> None:
    counts = acme(
        OWNED,
        profile("upsert", "1", time=at(20), email="a@gmail.com"),
        profile("upsert", "1", time=at(10), email="a@example.com"),
        profile("upsert", "1", time=at(10), email=None),
    )
    assert totals(counts) == (0, 1, 1)


def test_fields_are_ordered_independently() -> None:
    # the older upsert cannot change the email, but it sets the username nobody set later
    counts = acme(
        OWNED,
        profile("upsert", "1", time=at(20), email="a@gmail.com"),
        profile("upsert", "1", time=at(10), email="a@example.com", username="adam"),
        login("2", time=at(30), username="adam", email="adam@gmail.com"),
    )
    assert totals(counts) == (0, 1, 2)


def test_same_time_later_arrival_wins() -> None:
    counts = acme(
        OWNED,
        profile("upsert", "1", time=at(10), email="a@gmail.com"),
        profile("upsert", "1", time=at(10), email="a@example.com"),
    )
    assert totals(counts) == (1, 0, 1)


def test_events_without_time_are_ordered_by_arrival() -> None:
    counts = acme(
        OWNED,
        profile("upsert", "1", email="a@example.com"),
        profile("upsert", "1", email="a@gmail.com"),
        profile("deactivate", "2"),
        profile("activate", "2"),
    )
    assert totals(counts) == (1, 1, 2)
