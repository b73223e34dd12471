"""Dead-letter redaction (streams/worker/redact.py): people's data out, the shape and the cause kept."""

from __future__ import annotations

import orjson

from streams.kafka.messages import Inbound
from streams.worker.deadletter import DEAD_LETTER_TEXT_LIMIT, DEAD_LETTER_VALUE_LIMIT, dead_letter
from streams.worker.redact import redact, redacted_value


def test_only_allow_listed_fields_are_kept_whatever_their_name_or_type() -> None:
    document = {"type": "profile", "op": "upsert", "subscription": "acme", "runtime": "prod", "user_id": "u-1",
                "email": "ann@example.com", "name": "Ann", "Name": "Ann Smith", "displayName": "Ann",
                "phone": 5551234567, "items": [{"phone": "+32 2 123"}], "active": True, "session_id": None}
    assert redact(document) == {"type": "profile", "op": "upsert", "subscription": "acme", "runtime": "prod",
                                "user_id": "<user_id: 3 chars>", "email": "<email: 15 chars>",
                                "name": "<name: 3 chars>", "Name": "<Name: 9 chars>",
                                "displayName": "<displayName: 3 chars>", "phone": "<phone: int>",
                                "items": "<items: list of 1 items>", "active": True,
                                "session_id": "<session_id: null>"}


def test_config_keys_are_kept_in_their_shape_and_nothing_else_inside_them() -> None:
    document = {"type": "config", "subscription": "acme", "domains": ["corp.example"], "thresholds": [80, 100],
                "capacity": {"internal": 5, "owner": "Ann"}, "runtimes": {"prod": {"version": "11.1", "by": "Bo"}},
                "actor": "ann.smith"}
    assert redact(document) == {"type": "config", "subscription": "acme", "domains": ["corp.example"],
                                "thresholds": [80, 100], "capacity": {"internal": 5, "owner": "<owner: 3 chars>"},
                                "runtimes": {"prod": {"version": "11.1", "by": "<by: 2 chars>"}},
                                "actor": "<actor: 9 chars>"}


def test_an_email_in_a_kept_field_or_in_a_field_name_is_redacted_too() -> None:
    assert redact({"subscription": "bob@example.com", "runtimes": {"c@d.e": {"version": "1"}}, "x@y.z": 1}) == \
        {"subscription": "<subscription: 15 chars>", "runtimes": {"<field 0: 5 chars>": {"version": "1"}},
         "<field 2: 5 chars>": "<<field 2: 5 chars>: int>"}
    assert redact("carol@example.com") == "<value: 17 chars>"


def test_a_value_that_is_not_json_is_replaced_by_its_size() -> None:
    assert redacted_value(b"\xff\xfe dave@example.com") == b"<not JSON: 19 bytes>"
    assert orjson.loads(redacted_value(b'{"email": "e@x.io", "subscription": "acme"}')) == \
        {"email": "<email: 6 chars>", "subscription": "acme"}


def test_a_deeply_nested_value_is_dead_lettered_without_recursing_into_it() -> None:
    nested = b"[" * 255 + b"]" * 255
    letter = orjson.loads(dead_letter(Inbound("t.logins", 0, 7, 1, b"acme", nested), "not a JSON object (got list)"))
    assert letter["value"] == '"<value: list of 1 items>"' and letter["redacted"] is True
    deeper = b'{"subscription": "acme", "capacity": ' + b"[" * 5000 + b"]" * 5000 + b"}"  # past orjson's own limit
    letter = orjson.loads(dead_letter(Inbound("t.logins", 0, 8, 1, None, deeper), "not JSON"))
    assert letter["value"] == f"<not JSON: {len(deeper)} bytes>"


def test_a_dead_letter_is_bounded_and_names_neither_the_key_nor_its_people() -> None:
    key = b"ann@example.com" * 100_000
    value = orjson.dumps({"subscription": "acme", "domains": ["d.example"] * 100_000})
    letter = dead_letter(Inbound("t.config", 2, 9, 1, key, value), "x" * 1_000_000)
    # JSON escapes at most six bytes per byte kept: always far below the producer's 1,000,000-byte requests
    assert len(letter) < 6 * DEAD_LETTER_VALUE_LIMIT + 12 * DEAD_LETTER_TEXT_LIMIT + 1024 < 500_000
    document = orjson.loads(letter)
    assert document["key"] == f"<key: {len(key)} bytes>" and "ann@" not in letter.decode()
    assert document["truncated"] is True and len(document["reason"]) == DEAD_LETTER_TEXT_LIMIT
    raw = orjson.loads(dead_letter(Inbound("t.config", 2, 9, 1, key, value), "r", raw=True))
    assert len(raw["key"]) == DEAD_LETTER_TEXT_LIMIT
