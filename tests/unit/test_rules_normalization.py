"""Normalization (docs/rules.md, "Normalization"): emails, usernames and owned-domain entries, and how
an owned domain matches.

Each rule is proved through the offline replay with concrete values, on events built with
``tests/fixtures/factories.py`` (which also holds the replay helpers ``run``, ``acme``, ``feed``).
Timed events use ``at(n)`` (n seconds after 2026-01-01T00:00:00Z); a test never mixes timed and
untimed events, since untimed ones get wall-clock arrival times.
"""

from __future__ import annotations

import pytest

from counters.normalize import normalize_email, normalize_username
from tests.fixtures.factories import OWNED, acme, config, login, totals


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
