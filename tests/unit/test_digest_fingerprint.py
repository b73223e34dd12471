"""The fingerprint a subscription's state records of how its digests are made (counters.digest)."""

from __future__ import annotations

from types import SimpleNamespace

from counters import DEVELOPMENT_SECRET, DigestMismatch, Digester, fingerprint
from streams.observe.readiness import Readiness


def test_same_secret_and_scope_give_the_same_fingerprint() -> None:
    assert fingerprint(b"s3cret", "subscription") == fingerprint(b"s3cret", "subscription")
    assert Digester(b"s3cret").fingerprint == fingerprint(b"s3cret", "subscription")
    assert Digester(b"s3cret", per_subscription=False).fingerprint == fingerprint(b"s3cret", "shared")


def test_a_scoped_digester_keeps_its_parents_fingerprint() -> None:
    """The pipeline digests through ``for_subscription``: its fingerprint is still the configured one."""
    parent = Digester(b"s3cret")
    assert parent.for_subscription("acme").fingerprint == parent.fingerprint


def test_another_secret_or_scope_gives_another_fingerprint() -> None:
    base = fingerprint(b"s3cret", "subscription")
    assert fingerprint(b"s3cret", "shared") != base
    assert fingerprint(b"s3cret2", "subscription") != base
    assert fingerprint(DEVELOPMENT_SECRET, "subscription") != base


def test_the_fingerprint_never_contains_the_secret() -> None:
    for secret in (b"abcd", b"s3cret", DEVELOPMENT_SECRET, bytes.fromhex("deadbeef")):
        made = fingerprint(secret, "subscription")
        scope, _, key = made.partition(":")
        assert scope == "subscription" and len(key) == 8 and int(key, 16) >= 0
        assert secret.decode("latin-1") not in made and secret.hex() not in made


def test_a_mismatch_names_the_subscription_both_scopes_and_what_to_do() -> None:
    message = str(DigestMismatch("acme", fingerprint(b"k", "subscription"), fingerprint(b"k", "shared")))
    assert "'acme'" in message and "ENDUSERS_DIGEST_SCOPE=subscription, configured shared" in message
    assert "docs/operations.md" in message
    other_secret = str(DigestMismatch("acme", fingerprint(b"k", "shared"), fingerprint(b"j", "shared")))
    assert "another ENDUSERS_SECRET" in other_secret


def test_readiness_says_which_subscription_is_refused() -> None:
    health = Readiness(30, SimpleNamespace(progress={}))
    health.assignment_received()
    health.listing = False
    assert health.checks()["state"] is True
    health.refused = {"acme": "refusing acme: stored digests subscription:1, configured shared:1"}
    assert health.checks()["state"] == "refusing acme: stored digests subscription:1, configured shared:1"
