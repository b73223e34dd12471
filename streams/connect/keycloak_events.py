"""Keycloak's users, events and admin events as our events: pure functions (docs/sources.md, Keycloak).

Keycloak's admin REST API serves users as ``UserRepresentation`` (``id``, ``username``, ``email``,
``enabled``), user events as ``EventRepresentation`` (``id``, ``time`` in epoch milliseconds, ``type``,
``userId``, ``details.username``) and admin events as ``AdminEventRepresentation`` (``id``, ``time``,
``operationType``, ``resourceType``, ``resourcePath`` ``users/<id>``, ``representation``: the JSON the
administrator sent, kept only when the realm includes representations). Each function returns the
events to publish, or the reason the input maps to nothing (a machine, an error, another resource).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from streams.connect.common import Mapped, Scope, content_hash, email_of, event_id, millis_instant, text

_USER_PATH = re.compile(r"users/([^/]+)")


def event_key(event: Mapping[str, Any]) -> str:
    """A stored event's identity: its ``id`` (Keycloak 22 and later), else its time and content."""
    found = text(event.get("id"))
    return found if found is not None else f"{event.get('time')}+{content_hash(event)}"


def _identity(user: Mapping[str, Any]) -> dict[str, Any]:
    return {"username": text(user.get("username")), "email": email_of(user.get("email"))}


def user_upsert(user: Mapping[str, Any], scope: Scope, realm: str, at_ms: int) -> Mapped:
    """A user of the realm's listing as it stands at ``at_ms``: an upsert with its state."""
    user_id = text(user.get("id"))
    if user_id is None:
        return "user without an id"
    if text(user.get("serviceAccountClientLink")) is not None or str(user.get("username", "")).startswith(
            "service-account-"):
        return "service account (a machine)"
    enabled = user.get("enabled")
    return [{"type": "profile", "op": "upsert", "id": event_id("keycloak", realm, "user", user_id),
             "time": millis_instant(at_ms), **scope.record(user_id, **_identity(user)),
             **({"active": enabled} if isinstance(enabled, bool) else {})}]


def user_event(event: Mapping[str, Any], scope: Scope, realm: str, emails: Mapping[str, str]) -> Mapped:
    """``LOGIN`` is a login (with the email known for that user, if any); ``REGISTER`` (self-service
    sign-up) an upsert. Other types, and events of no user or no time, map to nothing."""
    kind, user_id, when = event.get("type"), text(event.get("userId")), event.get("time")
    if kind not in ("LOGIN", "REGISTER"):
        return f"event type {kind!r} is not mapped"
    if user_id is None or not isinstance(when, int) or isinstance(when, bool):
        return f"{kind} event without a userId or a time"
    found = event.get("details")
    details: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    fields = {"username": text(details.get("username")), "email": email_of(details.get("email")) or emails.get(user_id)}
    common = {"id": event_id("keycloak", realm, event_key(event)), "time": millis_instant(when)}
    if kind == "LOGIN":
        return [{"type": "login", **common, **scope.record(user_id, **fields)}]
    return [{"type": "profile", "op": "upsert", **common, **scope.record(user_id, **fields)}]


def representation(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """The user an admin event carries (a JSON text in ``representation``), or None."""
    raw = event.get("representation")
    if not isinstance(raw, str) or not raw:
        return None
    try:
        found = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return found if isinstance(found, dict) else None


def admin_event(event: Mapping[str, Any], scope: Scope, realm: str) -> Mapped:
    """A ``USER`` ``CREATE``/``UPDATE`` with its representation is an upsert, and ``enabled`` in it a
    deactivate (false) or an activate (true); ``DELETE`` is a delete. Other resources (role mappings,
    groups, clients) and sub-resources of a user (``users/<id>/reset-password``) map to nothing."""
    operation, when = event.get("operationType"), event.get("time")
    path = str(event.get("resourcePath") or "")
    matched = _USER_PATH.fullmatch(path)
    if event.get("resourceType") != "USER" or matched is None:
        return f"admin event on {event.get('resourceType')} {path!r} is not a user's"
    if not isinstance(when, int) or isinstance(when, bool):
        return "admin event without a time"
    user_id, key = matched.group(1), event_id("keycloak", realm, event_key(event))
    common = {"time": millis_instant(when), **scope.record(user_id)}
    if operation == "DELETE":
        return [{"type": "profile", "op": "delete", "id": key, **common}]
    if operation not in ("CREATE", "UPDATE"):
        return f"admin operation {operation!r} on a user is not mapped"
    user = representation(event)
    if user is None:
        return f"{operation} of a user without its representation (the realm does not include representations)"
    events: list[dict[str, Any]] = [{"type": "profile", "op": "upsert", "id": key, **common, **scope.record(user_id, **_identity(user))}]
    if isinstance(user.get("enabled"), bool):
        op = "activate" if user["enabled"] else "deactivate"
        events.append({"type": "profile", "op": op, "id": event_id("keycloak", realm, event_key(event), op), **common})
    return events
