"""Auth0 log streams (a custom webhook) to our events: the mapping table is in docs/sources.md.

A log stream POSTs batches of tenant log events, as a JSON array or JSON lines (the stream's content
format); each item is ``{"log_id": ..., "data": {...}}`` where ``data.type`` is one of Auth0's log event
type codes, ``data.date`` the instant, ``data.user_id`` / ``data.user_name`` the user.
"""

from __future__ import annotations

from typing import Any

from streams.gateway.mapping import Batch, Ignored, Target, Unmapped, email_of, event_id, json_items, text

PROVIDER = "auth0"

LOGINS = frozenset({
    "s",        # Success Login
    "ssa",      # Success Silent Auth
    "scoa",     # Success cross-origin authentication
    "sens",     # Success Exchange: Native Social Login
    "seacft",   # Success Exchange: authorization code for Access Token
    "sede",     # Success Exchange: device code for Access Token
    "seoobft",  # Success Exchange: Password and OOB Challenge for Access Token
    "seotpft",  # Success Exchange: Password and OTP Challenge for Access Token
    "sepft",    # Success Exchange: Password for Access Token
    "sercft",   # Success Exchange: Password and MFA Recovery code for Access Token
    "sertft",   # Success Exchange: Refresh Token for Access Token
})
"""Codes of an end user's successful authentication or token exchange: a login."""

MACHINES = frozenset({"seccft"})
"""Client credentials exchanges: an application authenticates as itself, no person is involved."""

PROFILE = {"ss": "upsert", "sdu": "delete"}
"""Success Signup and Success User Deletion, and the ``op`` of the profile event each becomes."""


def map_stream(body: bytes, target: Target) -> Batch:
    """The events of one log stream request; :class:`Malformed` when the body is not JSON."""
    batch = Batch()
    for index, item in enumerate(json_items(body)):
        batch.add(index, map_log(item, target))
    return batch


def map_log(item: object, target: Target) -> dict[str, object] | Ignored | Unmapped:
    """One tenant log event: a login, a profile event, or why it is none."""
    if isinstance(item, Unmapped):
        return item
    if not isinstance(item, dict) or not isinstance(data := item.get("data"), dict):
        return Unmapped("a log event is a JSON object with a data object", "not_object")
    code = data.get("type")
    if not isinstance(code, str):
        return Unmapped("data.type: the log event type code is missing", "missing_type")
    if code in MACHINES:
        return Ignored("machine")
    if code not in LOGINS and code not in PROFILE:
        return Ignored("failure" if code.startswith("f") or code.endswith("_failed") else "other_type")
    identifier = event_id(PROVIDER, item.get("log_id") or data.get("log_id"))
    if isinstance(identifier, Unmapped):
        return identifier
    user_id = text(data.get("user_id"))
    if user_id is None:
        return Unmapped(f"data.user_id: required for a {code!r} event", "no_user")
    event: dict[str, object] = {"type": "login" if code in LOGINS else "profile", "id": identifier,
                                **target.scope(), "user_id": user_id}
    if "provider" not in event:
        event["provider"] = PROVIDER
    if code in PROFILE:
        event["op"] = PROFILE[code]
    if code != "sdu":
        event.update(_identity(data))
    if (date := data.get("date")) is not None:
        event["time"] = date
    return event


def _identity(data: dict[str, Any]) -> dict[str, object]:
    """The login (``user_name``), and the email when the login is one or the signup names it."""
    fields: dict[str, object] = {}
    if (login := text(data.get("user_name"))) is not None:
        fields["username"] = login
    details = data.get("details")
    body = details.get("body") if isinstance(details, dict) else None
    email = email_of(login) or (email_of(body.get("email")) if isinstance(body, dict) else None)
    if email is not None:
        fields["email"] = email
    return fields
