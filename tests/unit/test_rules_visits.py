"""Visits (docs/rules.md, "Anonymous visitors"): anonymous sessions never count; a visit that shares
personal data makes a visitor record.

Each rule is proved through the offline replay with concrete values, on events built with
``tests/fixtures/factories.py`` (which also holds the replay helpers ``run``, ``acme``, ``feed``).
Timed events use ``at(n)`` (n seconds after 2026-01-01T00:00:00Z); a test never mixes timed and
untimed events, since untimed ones get wall-clock arrival times.
"""

from __future__ import annotations

from counters.normalize import normalize_phone
from tests.fixtures.factories import OWNED, acme, at, config, event, feed, login, run, totals, visit


def test_anonymous_visits_never_count() -> None:
    counts = acme(
        visit("s1"),
        visit("s1"),
        visit("s2", name="   "),
        visit("s3", phone="n/a"),
        visit("s4", email="not-an-email"),
        visit("s5", email=None, phone=None, name=None),
    )
    assert totals(counts) == (0, 0, 0)
    assert counts["providers"] == {}
    assert counts["anonymous_sessions"] == 5


def test_anonymous_sessions_are_counted_per_subscription() -> None:
    document = run(visit("s1"), visit("s2"), event("visit", "other", session_id="s1"))
    assert document["subscriptions"]["acme"]["anonymous_sessions"] == 2
    assert document["subscriptions"]["other"]["anonymous_sessions"] == 1


def test_visit_sharing_personal_data_creates_visitor_record() -> None:
    counts = acme(
        OWNED,
        login("1", email="adam@gmail.com"),
        visit("s1", email="ADAM@gmail.com"),  # same person as user 1
        visit("s2", email="adam@gmail.com"),  # same visitor record
        visit("s3", phone="+1 (555) 010-2030"),
        visit("s4", phone="+1 555 010 2030", runtime="eu"),  # other runtime: other record
        visit("s5", name="Eve"),
        visit("s6", name="Eve"),  # keyed by session: another record
    )
    assert totals(counts) == (4, 1, 6)
    assert counts["providers"] == {"default": 1, "visitor": 5}
    assert totals(counts["runtimes"]["eu"]) == (1, 0, 1)
    assert counts["anonymous_sessions"] == 0


def test_visitor_record_has_not_logged_in() -> None:
    counts = acme(config(platform="odc"), visit("s1", email="a@example.com"), visit("s2", name="Eve"))
    assert totals(counts) == (0, 0, 0)
    assert counts["anonymous_sessions"] == 0


def test_visitor_record_key_prefers_email_then_phone_then_session() -> None:
    counts = acme(
        visit("s1", email="a@example.com", phone="+1 555"),
        visit("s2", phone="+1555", email="A@example.com"),  # same email: same record
        visit("s3", phone="+1-555", name="X"),
        visit("s4", phone="+1 555"),  # same phone: same record
        visit("s5", name="Y"),
    )
    assert counts["records"] == 3
    assert counts["providers"] == {"visitor": 3}


def test_phone_keeps_only_digits_and_a_leading_plus() -> None:
    assert normalize_phone(" +1 (555) 010-2030 ") == "+15550102030"
    assert normalize_phone("1 555 010 2030") == "15550102030"
    assert normalize_phone("ext. -") is None


def test_invalid_email_neither_classifies_nor_deduplicates() -> None:
    replay = feed(
        OWNED,
        login("1", email="adam@gmail", username="x@gmail.com"),
        login("2", email="adam@gmail"),
        login("3", email="adam@@gmail.com"),
        login("4", email="adam@@gmail.com"),
    )
    counts = replay.document()["subscriptions"]["acme"]
    assert totals(counts) == (3, 1, 4)
    assert replay.states["acme"].invalid_emails == 4
    assert replay.rejections == []


def test_invalid_email_clears_the_previous_email() -> None:
    counts = acme(OWNED, login("1", time=at(1), email="a@gmail.com"), login("1", time=at(2), email="garbage"))
    assert totals(counts) == (1, 0, 1)
