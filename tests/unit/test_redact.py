"""Dead-letter redaction (streams/worker/redact.py): people's data out, the shape and the cause kept."""

from __future__ import annotations

import orjson

from streams.worker.redact import redact, redacted_value


def test_personal_fields_become_their_name_and_length_at_any_depth() -> None:
    document = {"type": "profile", "user_id": "u-1", "email": "ann@example.com", "name": "Ann",
                "items": [{"phone": "+32 2 123", "username": "ann.smith"}], "active": True, "phone": None}
    assert redact(document) == {"type": "profile", "user_id": "u-1", "email": "<email: 15 chars>",
                                "name": "<name: 3 chars>",
                                "items": [{"phone": "<phone: 9 chars>", "username": "<username: 9 chars>"}],
                                "active": True, "phone": None}


def test_an_email_under_another_name_is_redacted_too() -> None:
    assert redact({"user_id": "bob@example.com", "note": ["x", "c@d.e"]}) == \
        {"user_id": "<user_id: 15 chars>", "note": ["x", "<note: 5 chars>"]}
    assert redact("carol@example.com") == "<value: 17 chars>"


def test_a_value_that_is_not_json_is_replaced_by_its_size() -> None:
    assert redacted_value(b"\xff\xfe dave@example.com") == b"<not JSON: 19 bytes>"
    assert orjson.loads(redacted_value(b'{"email": "e@x.io", "user_id": 7}')) == \
        {"email": "<email: 6 chars>", "user_id": 7}
