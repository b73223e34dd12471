"""Records at rest (``pack_record`` / ``unpack_record``): the compact layout round-trips every field,
every earlier layout still loads, and a typical record fits Redis's 80-byte size class."""

from __future__ import annotations

import base64
from msgspec.structs import astuple

import pytest

from counters import ACTIVE, DEFAULT_TENANT, EXCLUDED, LOGGED_IN, NEVER, UNNAMED, Record, Sealer
from streams.store.redis_store import pack_record, unpack_record
from tests.fixtures.older_records import LISTED_LENGTHS, pack_listed, seal_gcm

FLAGS = (ACTIVE, DEFAULT_TENANT, LOGGED_IN, EXCLUDED)


def full(flags: int, runtime: str = "prod-eu", provider: str = "Okta") -> Record:
    """A record with every field set, its times at distances 0 and not, its flags ``flags``."""
    return Record(runtime, provider, 9_000_000, "0123456789abcdef", "example.com", 9_000_000, "fedcba9876543210",
                  None, 8_000_000, 7_000_000, NEVER, 6_000_000, flags, 9_000_000, b"\x02sealed")


@pytest.mark.parametrize("flags", range(16))
def test_the_compact_layout_keeps_every_field_and_each_combination_of_the_four_flags(flags: int) -> None:
    bits = sum(flag for n, flag in enumerate(FLAGS) if flags >> n & 1)
    record = full(bits)
    assert astuple(unpack_record(pack_record(record))) == astuple(record)


def test_the_unnamed_runtime_and_provider_are_left_out_and_come_back() -> None:
    record = full(ACTIVE, UNNAMED, UNNAMED)
    assert b"default" not in pack_record(record)
    assert astuple(unpack_record(pack_record(record))) == astuple(record)
    assert unpack_record(pack_record(Record("default-eu", "", 5))).runtime == "default-eu"


def test_the_compact_layout_is_pinned_byte_for_byte() -> None:
    """The bytes at rest: a change here needs ``unpack_record`` to read the old ones too."""
    record = Record(UNNAMED, "Okta", 1_000, "0123456789abcdef", "example.com", 1_000, flags=ACTIVE | LOGGED_IN,
                    last_login=900, user=b"\x02id")
    assert pack_record(record) == (b"\x9d\x05\xc0\xa4Okta\x92\xc4\x08\x01\x23\x45\x67\x89\xab\xcd\xef\xabexample.com"
                                   b"\x00\xc0\xc0\xc0\xc0\xcd\x03\xe8\xc0\x64\xc4\x03\x02id")


@pytest.mark.parametrize("items", LISTED_LENGTHS)
def test_records_stored_in_each_earlier_layout_load_with_defaults_for_what_they_lacked(items: int) -> None:
    record = full(ACTIVE | LOGGED_IN | EXCLUDED)
    loaded = unpack_record(pack_listed(record, items))
    expected = Record(*astuple(record)[:13])
    if items < 14:  # before ``excluded``
        expected.flags &= ~EXCLUDED
        expected.excluded_t = NEVER
    if items == 16:
        expected.last_login, expected.user = record.last_login, record.user
    assert astuple(loaded) == astuple(expected)


def test_a_record_of_the_bench_fits_the_80_byte_size_class_where_the_listed_layout_took_128() -> None:
    """Redis stores a value as an sds, 4 bytes more than the value, in a jemalloc size class: 80 holds
    a record of ``tests/bench/run.py --takeover-records`` (default runtime, provider and tenant, a
    seven-digit user id, one email), 128 held it before (docs/benchmarks.md, Redis memory)."""
    sealer, ref = Sealer(b"s" * 32), "0123456789abcdef"
    record = Record(UNNAMED, UNNAMED, 1_780_000_000_000_000, "fedcba9876543210", "takeover.example",
                    1_780_000_000_000_000, flags=ACTIVE | DEFAULT_TENANT | LOGGED_IN, last_login=1_780_000_000_000_000,
                    user=base64.b64decode(sealer.seal(ref, UNNAMED, "9999999")))
    assert len(pack_record(record)) + 4 <= 80
    record.user = seal_gcm(sealer, ref, UNNAMED, "9999999")
    assert 112 < len(pack_listed(record)) + 4 <= 128
