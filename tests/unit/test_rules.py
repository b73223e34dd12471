"""One test per rule of docs/rules.md, each driven through the offline replay with concrete values.

Events are built with ``tests/fixtures/factories.py``. Timed events use ``at(n)`` (n seconds after
2026-01-01T00:00:00Z); a test never mixes timed and untimed events, since untimed ones get wall-clock
arrival times.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import orjson
import pytest

from counters.normalize import normalize_email, normalize_phone, normalize_username
from counters.replay import Replay, replay_lines
from schemas.events import parse_rfc3339
from tests.fixtures.examples import REPLAY_NOW
from tests.fixtures.factories import at, config, event, lines, login, profile, visit

# --- helpers ----------------------------------------------------------------------------------------

NOW = parse_rfc3339(REPLAY_NOW)


def run(*events: dict[str, Any] | bytes | str) -> dict[str, Any]:
    """The replay document of the events (dicts are serialized; bytes and str are raw lines)."""
    return replay_lines([e if isinstance(e, (bytes, str)) else orjson.dumps(e) for e in events], now=NOW)


def feed(*events: dict[str, Any] | bytes | str) -> Replay:
    replay = Replay(now=NOW)
    replay.feed_lines([e if isinstance(e, (bytes, str)) else orjson.dumps(e) for e in events])
    return replay


def acme(*events: dict[str, Any] | bytes | str) -> dict[str, Any]:
    """The per-subscription object of subscription ``acme``."""
    return run(*events)["subscriptions"]["acme"]


def totals(counts: dict[str, Any]) -> tuple[int, int, int]:
    """(internal, external, records) of a scope."""
    return counts["internal"], counts["external"], counts["records"]


def capacity_events(document: dict[str, Any]) -> list[tuple[str, int, int, str, int, int, bool, str | None]]:
    """Capacity events as (class, previous, level, direction, count, capacity, exceeded, trigger)."""
    return [
        (e["user_class"], e["previous_level"], e["level"], e["direction"], e["count"], e["capacity"], e["exceeded"],
         e["trigger"])
        for e in document["capacity_events"]
    ]


OWNED = config(domains=["example.com"])


# --- §3 normalization -------------------------------------------------------------------------------


def test_email_is_lowercased_and_idna_encoded() -> None:
    assert normalize_email("  Adam@Bücher.EXAMPLE. ") == "adam@xn--bcher-kva.example"
    counts = acme(
        config(domains=["xn--bcher-kva.example"]),
        login("1", email="  Adam@Bücher.EXAMPLE. "),
        login("2", email="adam@xn--bcher-kva.example"),
    )
    assert totals(counts) == (1, 0, 2)


def test_owned_domain_entries_are_normalized_like_emails() -> None:
    counts = acme(
        config(domains=["@Bücher.Example.", " @EXAMPLE.org "]),
        login("1", email="a@xn--bcher-kva.example"),
        login("2", email="b@example.org"),
        login("3", email="c@example.net"),
    )
    assert totals(counts) == (2, 1, 3)


def test_email_plus_tags_and_dots_are_not_stripped() -> None:
    assert normalize_email("first.last+tag@example.com") == "first.last+tag@example.com"
    counts = acme(
        login("1", email="first.last+tag@example.com"),
        login("2", email="firstlast@example.com"),
        login("3", email="first.last@example.com"),
    )
    assert totals(counts) == (3, 0, 3)


def test_username_is_trimmed_and_casefolded() -> None:
    assert normalize_username("  Straße ") == "strasse"
    assert normalize_username("   ") is None
    counts = acme(login("1", username="  STRASSE "), login("2", username="straße"), login("3", username=" "))
    assert totals(counts) == (2, 0, 3)


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("a@example.com", "a@example.com"),
        ('"a@b"@Example.com', '"a@b"@example.com'),
        ("a@b@example.com", None),
        ("a@localhost", None),
        ("@example.com", None),
        ("a b@example.com", None),
        ("a@example..com", None),
        ("a@.example.com", None),
        ("", None),
        ("no-at-sign.example.com", None),
    ],
)
def test_email_syntax(raw: str, normalized: str | None) -> None:
    assert normalize_email(raw) == normalized


def test_wildcard_domain_matches_subdomains_on_label_boundaries_only() -> None:
    counts = acme(
        config(domains=["*.example.com"]),
        login("1", email="a@eu.example.com"),
        login("2", email="b@x.eu.example.com"),
        login("3", email="c@example.com"),
        login("4", email="d@badexample.com"),
        login("5", email="e@example.com.evil.org"),
        login("6", email="f@eu-example.com"),
    )
    assert totals(counts) == (2, 4, 6)


def test_exact_domain_does_not_match_subdomain() -> None:
    counts = acme(OWNED, login("1", email="a@example.com"), login("2", email="b@eu.example.com"))
    assert totals(counts) == (1, 1, 2)


def test_exact_and_wildcard_entries_together_match_domain_and_subdomains() -> None:
    counts = acme(
        config(domains=["example.com", "*.example.com"]),
        login("1", email="a@example.com"),
        login("2", email="b@eu.example.com"),
        login("3", email="c@notexample.com"),
    )
    assert totals(counts) == (2, 1, 3)


# --- §4 classification ------------------------------------------------------------------------------


def test_no_owned_domains_means_everyone_internal() -> None:
    counts = acme(login("1", email="a@example.com"), login("2", email="b@gmail.com"), login("3", username="c"))
    assert totals(counts) == (3, 0, 3)


def test_user_without_classification_email_is_internal() -> None:
    counts = acme(
        OWNED,
        login("1", username="bob"),
        login("2", email="not an email", username="carol"),
        login("3"),
        login("4", email="d@gmail.com"),
    )
    assert totals(counts) == (3, 1, 4)


def test_username_that_is_an_email_classifies() -> None:
    counts = acme(
        OWNED,
        login("1", username="a@gmail.com"),
        login("2", username="b@example.com"),
        login("3", username="C@Example.COM", email="c@gmail.com"),  # the valid email wins over the username
        login("4", username="d@gmail.com", email="invalid@"),  # an invalid email: the username classifies
    )
    assert totals(counts) == (1, 3, 4)


def test_individual_is_internal_when_any_of_its_records_is_in_an_owned_domain() -> None:
    counts = acme(
        OWNED,
        login("1", email="adam@example.com", username="adam"),
        login("2", email="adam@gmail.com", username="adam"),
        login("3", email="eve@gmail.com", username="eve"),
        login("4", email="eve@yahoo.com", username="eve"),
    )
    assert totals(counts) == (1, 1, 4)


def test_individual_without_any_classification_email_is_internal() -> None:
    counts = acme(OWNED, login("1", username="adam"), login("2", username="adam", email="bad"))
    assert totals(counts) == (1, 0, 2)


# --- §4 deduplication -------------------------------------------------------------------------------


def test_records_sharing_email_or_login_merge_transitively() -> None:
    counts = acme(
        login("A", email="adam@example.com"),
        login("B", email="adam@example.com", username="adam"),
        login("C", username="ADAM"),
        login("D", username="eve"),
    )
    assert totals(counts) == (2, 0, 4)


def test_username_and_email_share_one_namespace() -> None:
    counts = acme(login("1", username="Adam@Example.com"), login("2", email="adam@example.com"))
    assert totals(counts) == (1, 0, 2)


def test_non_countable_record_never_links_others() -> None:
    stream = [
        login("A", email="adam@example.com"),
        login("B", email="adam@example.com", username="adam"),
        login("C", username="adam"),
    ]
    assert totals(acme(*stream)) == (1, 0, 3)
    assert totals(acme(*stream, profile("deactivate", "B"))) == (2, 0, 2)
    assert totals(acme(*stream, profile("deactivate", "B"), profile("activate", "B"))) == (1, 0, 3)


def test_record_not_logged_in_never_links_others_on_odc() -> None:
    counts = acme(
        config(platform="odc"),
        login("A", email="adam@example.com"),
        profile("upsert", "B", email="adam@example.com", username="adam"),
        login("C", username="adam"),
    )
    assert totals(counts) == (2, 0, 2)


def test_non_default_tenant_not_deduplicated_on_o11() -> None:
    counts = acme(
        login("1", email="adam@example.com"),
        login("2", email="adam@example.com", tenant="t2", default_tenant=False),
        login("3", email="adam@example.com", tenant="t3", default_tenant=False),
        login("4", email="adam@example.com", tenant="t4"),  # default_tenant defaults to true
    )
    assert totals(counts) == (3, 0, 4)


def test_default_tenant_flag_can_be_changed_by_upsert() -> None:
    stream = [login("1", email="adam@example.com"), login("2", email="adam@example.com", tenant="t2")]
    assert totals(acme(*stream)) == (1, 0, 2)
    assert totals(acme(*stream, profile("upsert", "2", tenant="t2", default_tenant=False))) == (2, 0, 2)


def test_o11_before_11_11_3_never_deduplicates() -> None:
    def two_records(version: str) -> tuple[int, int, int]:
        return totals(acme(
            config(runtimes={"prod": {"version": version}}),
            login("1", runtime="prod", email="adam@example.com"),
            login("2", runtime="prod", email="adam@example.com"),
        ))

    assert two_records("11.11.2") == (2, 0, 2)
    assert two_records("11.9") == (2, 0, 2)
    assert two_records("11.11.3") == (1, 0, 2)
    assert two_records("11.12") == (1, 0, 2)
    assert two_records("12") == (1, 0, 2)


def test_runtime_without_version_behaves_as_newest() -> None:
    counts = acme(
        OWNED,
        config(runtimes={"prod": {}}),
        login("1", runtime="prod", email="adam@gmail.com"),
        login("2", runtime="prod", email="adam@gmail.com"),
        login("3", runtime="other", email="eve@gmail.com"),
    )
    assert totals(counts) == (0, 2, 3)


def test_o11_before_11_7_0_counts_as_internal() -> None:
    counts = acme(
        OWNED,
        config(runtimes={"old": {"version": "11.6.9"}, "new": {"version": "11.7"}}),
        login("1", runtime="old", email="a@gmail.com"),
        login("2", runtime="new", email="b@gmail.com"),
    )
    assert totals(counts) == (1, 1, 2)
    assert totals(counts["runtimes"]["old"]) == (1, 0, 1)
    assert totals(counts["runtimes"]["new"]) == (0, 1, 1)


def test_odc_counts_only_logged_in_users() -> None:
    stream = [config(platform="odc"), profile("upsert", "1", email="a@example.com"), login("2", email="b@example.com")]
    assert totals(acme(*stream)) == (1, 0, 1)
    assert totals(acme(*stream, login("1"))) == (2, 0, 2)


def test_o11_counts_records_that_never_logged_in() -> None:
    assert totals(acme(profile("upsert", "1", email="a@example.com"), login("2"))) == (2, 0, 2)


def test_odc_ignores_tenants() -> None:
    counts = acme(
        config(platform="odc"),
        login("1", email="adam@example.com", tenant="t1", default_tenant=False),
        login("2", email="adam@example.com", tenant="t2", default_tenant=False),
    )
    assert totals(counts) == (1, 0, 2)


def test_odc_ignores_runtime_versions() -> None:
    counts = acme(
        OWNED,
        config(platform="odc", runtimes={"prod": {"version": "11.0.0"}}),
        login("1", runtime="prod", email="adam@gmail.com"),
        login("2", runtime="prod", email="adam@gmail.com"),
    )
    assert totals(counts) == (0, 1, 2)


def test_same_person_in_two_runtimes_counts_in_each_runtime_and_once_for_the_license() -> None:
    counts = acme(
        login("1", runtime="eu", email="adam@example.com"),
        login("9", runtime="us", email="ADAM@example.com"),
        login("2", runtime="us", email="eve@example.com"),
    )
    assert totals(counts) == (2, 0, 3)
    assert totals(counts["runtimes"]["eu"]) == (1, 0, 1)
    assert totals(counts["runtimes"]["us"]) == (2, 0, 2)


def test_link_through_another_runtime_does_not_merge_within_a_runtime() -> None:
    # A and C are in runtime eu, linked only through B in runtime us: one person for the license,
    # two in runtime eu.
    counts = acme(
        login("A", runtime="eu", email="adam@example.com"),
        login("B", runtime="us", email="adam@example.com", username="adam"),
        login("C", runtime="eu", username="adam"),
    )
    assert totals(counts) == (1, 0, 3)
    assert totals(counts["runtimes"]["eu"]) == (2, 0, 2)
    assert totals(counts["runtimes"]["us"]) == (1, 0, 1)


def test_null_runtime_tenant_and_provider_take_their_default() -> None:
    counts = acme(login("1", runtime=None, tenant=None, provider=None), login("1"), visit("s", name="X", runtime=None))
    assert totals(counts) == (2, 0, 2)
    assert counts["runtimes"] == {"default": {"internal": 2, "external": 0, "records": 2}}
    assert counts["providers"] == {"default": 1, "visitor": 1}


def test_subscriptions_are_counted_separately() -> None:
    document = run(login("1", email="adam@example.com"), event("login", "other", user_id="1", email="adam@example.com"))
    assert totals(document["subscriptions"]["acme"]) == (1, 0, 1)
    assert totals(document["subscriptions"]["other"]) == (1, 0, 1)


def test_providers_count_countable_records_without_deduplication() -> None:
    counts = acme(
        login("1", provider="Users", email="adam@example.com"),
        login("1", provider="AzureAD", email="adam@example.com"),
        login("2", provider="AzureAD"),
        login("3", provider="Okta"),
        profile("deactivate", "3", provider="Okta"),
    )
    assert totals(counts) == (2, 0, 3)
    assert counts["providers"] == {"AzureAD": 2, "Users": 1}


def test_record_identity_includes_runtime_tenant_and_provider() -> None:
    counts = acme(
        login("1"),
        login("1", runtime="r2"),
        login("1", tenant="t2"),
        login("1", provider="p2"),
        login("1"),
    )
    assert counts["records"] == 4


# --- §2 record lifecycle and ordering ---------------------------------------------------------------


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


# --- §2 visits --------------------------------------------------------------------------------------


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


# --- §2 config ---------------------------------------------------------------------------------------


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


# --- §5 capacity levels -----------------------------------------------------------------------------


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


# --- §2 input validation ----------------------------------------------------------------------------


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


# --- record keys --------------------------------------------------------------------------------------


def test_record_key_parts_cannot_run_into_each_other() -> None:
    """Tenant ``a`` + provider ``b<US>c`` and tenant ``a<US>b`` + provider ``c`` are two records, even
    though both keys read ``a<US>b<US>c`` when joined with the unit separator."""
    counts = acme(profile("upsert", "u1", tenant="a", provider="b\x1fc"),
                  profile("upsert", "u1", tenant="a\x1fb", provider="c"))
    assert counts["records"] == 2
    assert counts["providers"] == {"b\x1fc": 1, "c": 1}


# --- accounts that are not end users ---------------------------------------------------------------


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
