"""Okta event hooks (``data.events[]``) to our events: the mapping table is in docs/sources.md.

Okta delivers the System Log events an event hook subscribes to, up to 50 per request; each carries a
``uuid``, the instant it was ``published``, an ``eventType``, the ``actor`` who did it, the ``target``
objects it was done to and an ``outcome``. A sign-in's actor is the user; a lifecycle event's user is
its ``target`` of type ``User`` (the actor is the administrator or the system).
"""

from __future__ import annotations

from typing import Any

from streams.gateway.mapping import Batch, Ignored, Malformed, Target, Unmapped, email_of, event_id, text

PROVIDER = "okta"

LOGINS = frozenset({"user.session.start", "user.authentication.sso"})
"""Event types that are a user signing in (to Okta, or to an app through Okta)."""

LIFECYCLE = {
    "user.lifecycle.create": "upsert",
    "user.lifecycle.activate": "activate",
    "user.lifecycle.reactivate": "activate",
    "user.lifecycle.unsuspend": "activate",
    "user.lifecycle.deactivate": "deactivate",
    "user.lifecycle.suspend": "deactivate",
    "user.lifecycle.delete.initiated": "delete",
    "user.lifecycle.delete.completed": "delete",
}
"""Lifecycle event types and the ``op`` of the profile event each becomes."""


def map_hook(body: object, target: Target) -> Batch:
    """The events of one event hook request; :class:`Malformed` when it has no ``data.events`` list."""
    if not isinstance(body, dict):
        raise Malformed(f"an Okta event hook is a JSON object, not {type(body).__name__}")
    data = body.get("data")
    events = data.get("events") if isinstance(data, dict) else None
    if not isinstance(events, list):
        raise Malformed("data.events: required list missing (is this an Okta event hook?)")
    batch = Batch()
    for index, item in enumerate(events):
        batch.add(index, map_event(item, target))
    return batch


def map_event(item: object, target: Target) -> dict[str, object] | Ignored | Unmapped:
    """One System Log event: a login, a profile event, or why it is none."""
    if not isinstance(item, dict):
        return Unmapped(f"an event is a JSON object, not {type(item).__name__}", "not_object")
    kind = item.get("eventType")
    if kind not in LOGINS and kind not in LIFECYCLE:
        return Ignored("other_type")
    outcome = item.get("outcome")
    result = outcome.get("result") if isinstance(outcome, dict) else None
    if result != "SUCCESS":
        return Ignored("failure")
    identifier = event_id(PROVIDER, item.get("uuid"))
    if isinstance(identifier, Unmapped):
        return identifier
    user = item.get("actor") if kind in LOGINS else _target_user(item.get("target"))
    if not isinstance(user, dict) or user.get("type") != "User":
        return Ignored("not_a_user") if kind in LOGINS else Unmapped(f"{kind}: no target of type User", "no_user")
    event: dict[str, object] = {"type": "login" if kind in LOGINS else "profile", "id": identifier,
                                **target.scope(), "user_id": user.get("id")}
    if "provider" not in event:
        event["provider"] = PROVIDER
    if kind in LIFECYCLE:
        event["op"] = LIFECYCLE[kind]
    if kind in LOGINS or kind == "user.lifecycle.create":
        event.update(_identity(user))
    if (published := item.get("published")) is not None:
        event["time"] = published
    return event


def _target_user(targets: object) -> Any:
    if not isinstance(targets, list):
        return None
    return next((t for t in targets if isinstance(t, dict) and t.get("type") == "User"), None)


def _identity(user: dict[str, Any]) -> dict[str, object]:
    """The login (``alternateId``), the email when the login is one, and the display name."""
    fields: dict[str, object] = {}
    if (login := text(user.get("alternateId"))) is not None:
        fields["username"] = login
        if (email := email_of(login)) is not None:
            fields["email"] = email
    if (name := text(user.get("displayName"))) is not None:
        fields["name"] = name
    return fields
