"""Sealed user ids (docs/security.md, user ids at rest): AES-SIV without a stored nonce, format 1
(AES-GCM) still opening, and bound to their record."""

from __future__ import annotations

import base64

from counters import UNNAMED, Sealer, engine
from counters.sealing import SEALED_SIV, SEALED_VERSION
from counters.state import SubscriptionState
from schemas.changes import Change
from tests.fixtures.older_records import seal_gcm

SECRET = b"s" * 32
RECORD, OTHER = "0123456789abcdef", "fedcba9876543210"


def sealed(sealer: Sealer, record: str, tenant: str, user_id: str) -> bytes:
    return base64.b64decode(sealer.seal(record, tenant, user_id))


def test_an_id_sealed_now_opens_to_its_tenant_and_user_id_in_either_tenant_form() -> None:
    sealer = Sealer(SECRET)
    for tenant in (UNNAMED, "acme", "", "ünïcode"):
        kept = sealed(sealer, RECORD, tenant, "u-42")
        assert kept[:1] == SEALED_SIV and b"u-42" not in kept
        assert Sealer(SECRET).open(RECORD, kept) == (tenant, "u-42")  # a new process, the same secret


def test_the_default_tenant_costs_no_bytes_and_no_nonce_is_stored() -> None:
    """Format byte, 16-byte synthetic IV, msgpack of the user id alone: 24 bytes for a six-digit id,
    where format 1 took 49 (a 12-byte nonce and JSON ``["default","123456"]``)."""
    sealer = Sealer(SECRET)
    assert len(sealed(sealer, RECORD, UNNAMED, "123456")) == 1 + 16 + 7
    assert len(seal_gcm(sealer, RECORD, UNNAMED, "123456")) == 49


def test_the_same_id_of_the_same_record_seals_to_the_same_bytes_and_of_another_record_not() -> None:
    """Deterministic: what it reveals is that a record's id is its id, which its key says already."""
    first, again = Sealer(SECRET), Sealer(SECRET)
    assert sealed(first, RECORD, "t", "u") == sealed(again, RECORD, "t", "u")
    assert sealed(first, RECORD, "t", "u") != sealed(first, OTHER, "t", "u")


def test_an_id_opens_only_for_its_own_record_under_its_own_secret() -> None:
    sealer = Sealer(SECRET)
    kept = sealed(sealer, RECORD, "t", "u")
    assert sealer.open(OTHER, kept) is None
    assert Sealer(b"another secret").open(RECORD, kept) is None
    assert Sealer(SECRET, b"another purpose").open(RECORD, kept) is None


def test_a_tampered_truncated_or_unknown_sealed_id_opens_to_none_not_an_error() -> None:
    sealer = Sealer(SECRET)
    kept = sealed(sealer, RECORD, "t", "u")
    flipped = kept[:-1] + bytes([kept[-1] ^ 1])
    for bad in (flipped, kept[:10], SEALED_SIV, b"", b"\x09" + kept[1:], seal_gcm(sealer, RECORD, "t", "u")[:20]):
        assert sealer.open(RECORD, bad) is None


def test_an_id_sealed_in_format_1_by_an_earlier_version_still_opens_for_its_record_only() -> None:
    sealer = Sealer(SECRET)
    old = seal_gcm(sealer, RECORD, "acme", "u-7")
    assert old[:1] == SEALED_VERSION
    assert sealer.open(RECORD, old) == ("acme", "u-7")
    assert sealer.open(OTHER, old) is None
    assert sealer.open(RECORD, seal_gcm(sealer, RECORD, UNNAMED, "u-8")) == (UNNAMED, "u-8")


def test_documents_sealed_with_seal_bytes_stay_randomized() -> None:
    """Only user ids are sealed deterministically: a SCIM document sealed twice differs."""
    sealer = Sealer(SECRET, b"purpose")
    assert sealer.seal_bytes(b"a", b"doc") != sealer.seal_bytes(b"a", b"doc")
    assert sealer.open_bytes(b"a", sealer.seal_bytes(b"a", b"doc")) == b"doc"


def test_the_count_stage_keeps_an_id_of_either_format_from_a_change_during_a_rolling_upgrade() -> None:
    """A change's ``user`` field is base64 of the sealed bytes in both formats: a count stage keeps
    it as it comes (an earlier one never opens it), and this version opens both."""
    sealer = Sealer(SECRET)
    state = SubscriptionState("acme")
    for record, kept in ((RECORD, seal_gcm(sealer, RECORD, "t", "old")), (OTHER, sealed(sealer, OTHER, "t", "new"))):
        engine.apply(state, Change(kind="login", subscription="acme", time=1, record=record, runtime=UNNAMED,
                                   provider=UNNAMED, fields={"user": base64.b64encode(kept).decode()}))
    opened = {ref: sealer.open(ref, record.user) for ref, record in state.records.items() if record.user}
    assert opened == {RECORD: ("t", "old"), OTHER: ("t", "new")}
