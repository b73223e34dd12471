"""Deduplication (docs/rules.md, "Deduplication: individuals", "Runtimes and versions", "Which records
count"): which records merge into one individual on each platform and version, per runtime and for
the license, and what makes two records distinct.

Each rule is proved through the offline replay with concrete values, on events built with
``tests/fixtures/factories.py`` (which also holds the replay helpers ``run``, ``acme``, ``feed``).
Timed events use ``at(n)`` (n seconds after 2026-01-01T00:00:00Z); a test never mixes timed and
untimed events, since untimed ones get wall-clock arrival times.
"""

from __future__ import annotations

from tests.fixtures.factories import OWNED, acme, config, event, login, profile, run, totals, visit


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


# --- record keys -------------------------------------------------------------------------------------


def test_record_key_parts_cannot_run_into_each_other() -> None:
    """Tenant ``a`` + provider ``b<US>c`` and tenant ``a<US>b`` + provider ``c`` are two records, even
    though both keys read ``a<US>b<US>c`` when joined with the unit separator."""
    counts = acme(profile("upsert", "u1", tenant="a", provider="b\x1fc"),
                  profile("upsert", "u1", tenant="a\x1fb", provider="c"))
    assert counts["records"] == 2
    assert counts["providers"] == {"b\x1fc": 1, "c": 1}
