"""Personal data out of dead letters: a rejected value keeps its shape, not the people in it.

A dead letter is read by whoever debugs the pipeline, and the topic keeps it for days; the reason and
the position are what that reader needs. So by default the fields that name a person (emails,
usernames, phones, names) become ``"<field: N chars>"``, and so does any other string that holds an
``@`` (an email under another name). A value that is not JSON cannot be searched for them and is
replaced whole by its size. ``ENDUSERS_DEADLETTER_RAW=1`` keeps values as they came, for debugging.
"""

from __future__ import annotations

from typing import Any

import orjson

PERSONAL_FIELDS = frozenset({"email", "username", "phone", "name"})


def redact(document: Any, field: str | None = None) -> Any:
    """``document`` with personal strings replaced by their field name and length."""
    if isinstance(document, dict):
        return {key: redact(value, key if isinstance(key, str) else None) for key, value in document.items()}
    if isinstance(document, list):
        return [redact(item, field) for item in document]
    if isinstance(document, str) and (field in PERSONAL_FIELDS or "@" in document):
        return f"<{field or 'value'}: {len(document)} chars>"
    return document


def redacted_value(raw: bytes) -> bytes:
    """The redacted JSON text of a rejected message's value."""
    try:
        document = orjson.loads(raw)
    except Exception:
        return f"<not JSON: {len(raw)} bytes>".encode()
    return orjson.dumps(redact(document))
