"""Normalization (docs/rules.md, "Normalization"): emails, usernames and owned-domain entries, and how
an owned domain matches.

Each rule is proved through the offline replay with concrete values, on events built with
``tests/fixtures/factories.py`` (which also holds the replay helpers ``run``, ``acme``, ``feed``).
Timed events use ``at(n)`` (n seconds after 2026-01-01T00:00:00Z); a test never mixes timed and
untimed events, since untimed ones get wall-clock arrival times.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from counters import Digester
from counters.normalize import normalize_email, normalize_owned_domain, normalize_username
from counters.translate import _email_value
from tests import model
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


FULL_STOPS = (".", "\u3002", "\uff0e", "\uff61")
"""The full stops UTS 46 maps to ``.``: ASCII, ideographic, full-width, half-width ideographic."""


def test_other_full_stops_in_a_domain_are_dots_a_trailing_one_included() -> None:
    assert normalize_email("ann@corp.example\u3002") == "ann@corp.example"
    assert normalize_email("ann@corp\uff0eexample") == "ann@corp.example"
    assert normalize_email("ann@\uff43\uff4f\uff52\uff50\uff61example\uff0e") == "ann@corp.example"
    assert normalize_owned_domain("*\u3002corp\u3002example") == "*.corp.example"
    assert normalize_email("ann@corp.example.\u3002") is None  # two trailing dots, as with ASCII ones
    counts = acme(config(domains=["corp.example"]), login("1", email="ann@corp.example"),
                  login("2", email="ann@corp.example\u3002"), login("3", email="ann@corp\uff0eexample"))
    assert totals(counts) == (1, 0, 3)


def _full_width(text: str) -> str:
    """Printable ASCII as its full-width form (U+FF01..U+FF5E)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


LABELS = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8).filter(
    lambda label: not label.isdigit())


@st.composite
def email_forms(draw: st.DrawFn) -> tuple[str, str]:
    """An ASCII email and the same address with its domain's letters full-width here and there, its dots
    any full stop, and perhaps a trailing one."""
    local = draw(st.text("abcdefghijklmnopqrstuvwxyz0123456789.+_-", min_size=1, max_size=8))
    labels = draw(st.lists(LABELS, min_size=2, max_size=4))
    plain = f"{local}@{'.'.join(labels)}"
    widened = [_full_width(label) if draw(st.booleans()) else label for label in labels]
    dots = [draw(st.sampled_from(FULL_STOPS)) for _ in widened[1:]]
    domain = widened[0] + "".join(dot + label for dot, label in zip(dots, widened[1:]))
    trailing = draw(st.sampled_from(("", *FULL_STOPS)))
    return plain, f"{local}@{domain}{trailing}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(email_forms(), st.booleans())
def test_an_email_and_its_full_width_form_are_one_person_of_one_class(forms: tuple[str, str], owned: bool) -> None:
    plain, wide = forms
    assert normalize_email(plain) is not None
    assert normalize_email(wide) == normalize_email(plain) == model.normalize_email(wide)
    digest = Digester()
    assert _email_value(digest, wide) == _email_value(digest, plain)  # the digest and domain ingest stores
    domains = [plain.rsplit("@", 1)[1]] if owned else ["elsewhere.example"]
    counts = acme(config(domains=domains), login("1", email=plain), login("2", email=wide))
    assert totals(counts) == ((1, 0, 2) if owned else (0, 1, 2))


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
