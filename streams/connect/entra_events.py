"""Entra ID diagnostic log records as our events: pure functions (docs/sources.md, Entra ID).

A diagnostic setting streams each log category to an Event Hub as batches ``{"records": [...]}``; each
record has ``category``, ``time`` and the Microsoft Graph resource in ``properties``. Sign-ins
(``SignInLogs``, ``NonInteractiveUserSignInLogs``) carry ``id``, ``createdDateTime``, ``userId``,
``userPrincipalName`` and ``status.errorCode`` (0: success); audit records (``AuditLogs``) carry
``id``, ``activityDisplayName``, ``activityDateTime``, ``result`` and ``targetResources``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from streams.connect.common import Mapped, Scope, content_hash, email_of, event_id, text

USER_SIGN_INS = frozenset({"SignInLogs", "NonInteractiveUserSignInLogs"})
MACHINE_SIGN_INS = frozenset({"ServicePrincipalSignInLogs", "ManagedIdentitySignInLogs"})
_MACHINE_TYPES = frozenset({"servicePrincipal", "managedIdentity"})

AUDIT_OPERATIONS = {"Add user": "upsert", "Delete user": "delete", "Hard delete user": "delete",
                    "Disable account": "deactivate", "Enable account": "activate", "Restore user": "activate"}
"""``activityDisplayName`` of a directory audit record -> the profile operation it is."""


def records(body: bytes) -> list[Any] | str:
    """The records of one Event Hubs message, or why there are none."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return f"not JSON: {exc}"
    found = document.get("records") if isinstance(document, dict) else None
    return found if isinstance(found, list) else 'not a {"records": [...]} batch'


def record(item: Any, scope: Scope) -> Mapped:
    """One record of any category."""
    if not isinstance(item, Mapping) or not isinstance(item.get("properties"), Mapping):
        return "record without properties"
    category = item.get("category")
    if category in USER_SIGN_INS:
        return sign_in(item["properties"], scope, item.get("time"))
    if category in MACHINE_SIGN_INS:
        return f"{category}: sign-ins of machines"
    if category == "AuditLogs":
        return audit(item["properties"], scope, item.get("time"))
    return f"category {category!r} is not mapped"


def _machine(properties: Mapping[str, Any]) -> bool:
    kinds = properties.get("signInEventTypes")
    kinds = kinds if isinstance(kinds, list) else []
    return bool(_MACHINE_TYPES.intersection(kinds)) or properties.get("isServicePrincipal") is True or \
        text(properties.get("servicePrincipalId")) is not None and text(properties.get("userId")) is None


def sign_in(properties: Mapping[str, Any], scope: Scope, fallback_time: Any = None) -> Mapped:
    """A successful user sign-in (``status.errorCode`` 0) is a login; a failure, or a sign-in of a
    service principal or a managed identity, maps to nothing."""
    if _machine(properties):
        return "sign-in of a service principal or managed identity (a machine)"
    found = properties.get("status")
    status: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    code = status.get("errorCode")
    if code != 0:
        return f"failed sign-in (errorCode {code!r})"
    user_id = text(properties.get("userId"))
    when = text(properties.get("createdDateTime")) or text(fallback_time)
    if user_id is None or when is None:
        return "sign-in without a userId or a createdDateTime"
    principal = text(properties.get("userPrincipalName"))
    key = text(properties.get("id")) or content_hash(properties)
    return [{"type": "login", "id": event_id("entra", key), "time": when,
             **scope.record(user_id, username=principal, email=email_of(principal))}]


def _account_enabled(target: Mapping[str, Any]) -> bool | None:
    """The new ``AccountEnabled`` of an ``Update user`` (``"[false]"``), if it changed."""
    for change in target.get("modifiedProperties") or []:
        if isinstance(change, Mapping) and change.get("displayName") == "AccountEnabled":
            value = str(change.get("newValue", "")).strip("[]\" ").lower()
            return {"true": True, "false": False}.get(value)
    return None


def audit(properties: Mapping[str, Any], scope: Scope, fallback_time: Any = None) -> Mapped:
    """A successful user addition, deletion, disabling or enabling of the directory."""
    activity = properties.get("activityDisplayName")
    op = AUDIT_OPERATIONS.get(activity) if isinstance(activity, str) else None
    targets = [t for t in properties.get("targetResources") or [] if isinstance(t, Mapping) and t.get("type") == "User"]
    if op is None and activity == "Update user" and targets:
        enabled = _account_enabled(targets[0])
        op = None if enabled is None else ("activate" if enabled else "deactivate")
    if op is None:
        return f"audit activity {activity!r} is not mapped"
    if properties.get("result") != "success":
        return f"{activity}: result {properties.get('result')!r}"
    when = text(properties.get("activityDateTime")) or text(fallback_time)
    user_id = text(targets[0].get("id")) if targets else None
    if user_id is None or when is None:
        return f"{activity} without a target user or a time"
    key = text(properties.get("id")) or content_hash(properties)
    principal = text(targets[0].get("userPrincipalName")) if op == "upsert" else None
    return [{"type": "profile", "op": op, "id": event_id("entra", key), "time": when,
             **scope.record(user_id, username=principal, email=email_of(principal))}]
