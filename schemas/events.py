"""Input event contracts (docs/events.md) as typed models.

The models are the single source of truth: the JSON Schema files under ``schemas/json/`` are generated
from them (``python -m schemas.export``) and a test keeps the two in sync, so producers in other
languages read the same contract the processor enforces.

Validation is strict: no coercion of ``"true"`` into a bool or ``"12"`` into an int, because a producer
that sends the wrong type has a bug we want reported, not guessed around. Unknown fields are ignored.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, WithJsonSchema

from schemas.limits import MAX_DOMAINS, MAX_EMAIL, MAX_EXCLUDED_PROVIDERS, MAX_RUNTIMES, MAX_STRING, MAX_THRESHOLDS, MAX_VERSION_PART

_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


def parse_rfc3339(value: object) -> int:
    """An RFC 3339 instant as integer microseconds since the epoch.

    An offset is required: a local time without one is not an instant, and guessing a zone would
    silently reorder a producer's events.
    """
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 string")
    if len(value) > MAX_STRING:
        raise ValueError(f"String should have at most {MAX_STRING} characters")
    match = _RFC3339.match(value)
    if match is None:
        raise ValueError("not an RFC 3339 instant (e.g. 2026-11-01T09:00:00Z)")
    date, clock, fraction, offset = match.groups()
    fraction = (fraction or ".0")[:7].ljust(7, "0")
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        instant = datetime.fromisoformat(f"{date}T{clock}{fraction}{offset}").astimezone(timezone.utc)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"not a valid date or time: {exc}") from None
    if not 1 <= instant.year <= 9999:
        raise ValueError("outside the years 0001-9999 in UTC")
    return int(instant.timestamp()) * 1_000_000 + instant.microsecond


def _user_id(value: object) -> object:
    """An integer user id is taken as its decimal string (bool is not an integer)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _default_when_null(value: object) -> object:
    """``runtime``, ``tenant`` and ``provider`` given as null take their default, like absent ones."""
    return "default" if value is None else value


Text = Annotated[str, StringConstraints(max_length=MAX_STRING)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_STRING)]
EmailText = Annotated[str, StringConstraints(max_length=MAX_EMAIL)]
Instant = Annotated[
    int,
    BeforeValidator(parse_rfc3339),
    # what producers send (the model holds microseconds since the epoch)
    WithJsonSchema({"type": "string", "format": "date-time", "maxLength": MAX_STRING, "pattern": _RFC3339.pattern}),
]
UserId = Annotated[
    Name,
    BeforeValidator(_user_id),
    WithJsonSchema({"anyOf": [{"type": "string", "minLength": 1, "maxLength": MAX_STRING}, {"type": "integer"}]}),
]
Scope = Annotated[
    Name,
    BeforeValidator(_default_when_null),
    WithJsonSchema({"anyOf": [{"type": "string", "minLength": 1, "maxLength": MAX_STRING}, {"type": "null"}],
                    "description": "null means \"default\""}),
]
Version = Annotated[str, StringConstraints(
    pattern=rf"^\d{{1,{MAX_VERSION_PART}}}(\.\d{{1,{MAX_VERSION_PART}}}){{0,3}}$")]


class _Event(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    subscription: Name
    id: Text | None = None
    time: Instant | None = Field(default=None, description="RFC 3339 instant; absent = arrival order")


class _RecordEvent(_Event):
    runtime: Scope = "default"
    tenant: Scope = "default"
    default_tenant: bool | None = None
    provider: Scope = "default"
    user_id: UserId
    username: Text | None = None
    email: EmailText | None = None
    phone: Text | None = None
    name: Text | None = None


class LoginEvent(_RecordEvent):
    """The user authenticated: creates the record if absent and marks it logged in (sticky)."""

    type: Literal["login"]


class ProfileEvent(_RecordEvent):
    """User administration changed a user: upsert, deactivate, activate or delete."""

    type: Literal["profile"]
    op: Literal["upsert", "deactivate", "activate", "delete"]
    active: bool | None = None
    excluded: bool | None = Field(default=None, description=(
        "true: this record is not an end user (a developer, a service account) and never counts; "
        "applied by upsert, null keeps the current value"))


class VisitEvent(_Event):
    """Activity without login; anonymous unless it shares personal data."""

    type: Literal["visit"]
    runtime: Scope = "default"
    tenant: Scope = "default"
    default_tenant: bool | None = None
    session_id: Name
    email: EmailText | None = None
    phone: Text | None = None
    name: Text | None = None


class Capacity(BaseModel):
    """Licensed capacities; each key present replaces its value, null means unlimited."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    internal: Annotated[int, Field(ge=0)] | None = None
    external: Annotated[int, Field(ge=0)] | None = None


class RuntimeSetting(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    version: Version | None = None


class ConfigEvent(_Event):
    """Subscription settings; each key present replaces the current value, absent keys keep it."""

    type: Literal["config"]
    platform: Literal["o11", "odc"] | None = None
    domains: Annotated[list[Text], Field(max_length=MAX_DOMAINS)] | None = None
    capacity: Capacity | None = None
    thresholds: Annotated[list[Annotated[int, Field(ge=1, le=1000)]], Field(max_length=MAX_THRESHOLDS)] | None = None
    hysteresis: Annotated[float, Field(ge=0, le=100)] | None = None
    runtimes: Annotated[dict[Name, RuntimeSetting], Field(max_length=MAX_RUNTIMES)] | None = None
    billing_day: Annotated[int, Field(ge=1, le=28)] | None = Field(
        default=None, description="Day of the month (1-28) on which a billing period starts; null: 1")
    excluded_providers: Annotated[list[Name], Field(max_length=MAX_EXCLUDED_PROVIDERS)] | None = Field(
        default=None, description="User providers whose records are not end users and never count; null: none")
    actor: Text | None = Field(default=None, description="who made the change, for the audit trail")
    shared_identifier_threshold: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    """An email or login held by more records than this is reported as shared (null: 5)."""


SOURCE_TOPICS = {"login": "logins", "profile": "profiles", "visit": "visits", "config": "config"}
"""Event ``type`` -> the one source topic (without prefix) that accepts it."""

InputEvent = Annotated[
    Union[LoginEvent, ProfileEvent, VisitEvent, ConfigEvent], Field(discriminator="type")
]
RecordEvent = LoginEvent | ProfileEvent
