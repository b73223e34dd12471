"""Classes (docs/rules.md, "Classes: internal and external"): an individual is internal when any of
its records has an email in an owned domain, or no classifying email at all.

Each rule is proved through the offline replay with concrete values, on events built with
``tests/fixtures/factories.py`` (which also holds the replay helpers ``run``, ``acme``, ``feed``).
Timed events use ``at(n)`` (n seconds after 2026-01-01T00:00:00Z); a test never mixes timed and
untimed events, since untimed ones get wall-clock arrival times.
"""

from __future__ import annotations

from tests.fixtures.factories import OWNED, acme, login, totals


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
