"""Input event contracts (docs/events.md) as typed msgspec structs.

The structs are the single source of truth: the JSON Schema files under ``schemas/json/`` are generated
from them (``python -m schemas.export``) and a test keeps the two in sync, so producers in other
languages read the same contract the processor enforces.

Validation is strict: no coercion of ``"true"`` into a bool or ``"12"`` into an int, because a producer
that sends the wrong type has a bug we want reported, not guessed around. Unknown fields are ignored.

msgspec rather than pydantic: it parses the JSON and validates it in one pass, without building the
generic objects that a parser followed by a validator would, and every event of the stream goes through
here. Three fields hold another value than the one sent (an RFC 3339 instant is held as microseconds, an
integer user id as its decimal string, a null scope as ``"default"``): msgspec checks what is sent (the
annotation it reads, which is also the published schema) and ``__post_init__`` converts it once per event;
type checkers read the held type from a ``TYPE_CHECKING`` branch. A field whose absence differs from null (``email``, ``username`` and every key
of a config) defaults to :data:`UNSET`, so "absent keeps the value, null clears it" stays visible.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union

from msgspec import UNSET, Meta, Struct, UnsetType
from msgspec.structs import force_setattr

from schemas.domains import normalize_owned_domain
from schemas.instants import RFC3339, parse_rfc3339
from schemas.limits import (
    MAX_DOMAINS, MAX_EMAIL, MAX_EXCLUDED_PROVIDERS, MAX_RUNTIMES, MAX_STRING, MAX_THRESHOLDS, MAX_VERSION_PART,
)

__all__ = ["UNSET", "UnsetType", "force_setattr", "parse_rfc3339"]

_INT_RANGE = (-(2**63), 2**64 - 1)
"""The integers a JSON number may carry (signed or unsigned 64 bits); a wider one is refused, as many
JSON parsers (the producers' among them) read it as a float and lose digits."""




Text = Annotated[str, Meta(max_length=MAX_STRING)]
Name = Annotated[str, Meta(min_length=1, max_length=MAX_STRING)]
EmailText = Annotated[str, Meta(max_length=MAX_EMAIL)]
VERSION_PATTERN = rf"^\d{{1,{MAX_VERSION_PART}}}(\.\d{{1,{MAX_VERSION_PART}}}){{0,3}}$"
Version = Annotated[str, Meta(pattern=VERSION_PATTERN)]
Count = Annotated[int, Meta(ge=0)]
Percentage = Annotated[int, Meta(ge=1, le=1000)]


ScopeName = Annotated[Name | None, Meta(description="null means \"default\"")]
"""``runtime``, ``tenant`` or ``provider`` on the wire; the struct holds ``"default"`` for null."""
UserId = Annotated[Name | int, Meta(description="an integer is taken as its decimal string")]
"""A user id on the wire; the struct holds an integer as its decimal string (a bool is no integer)."""
Instant = Annotated[
    Annotated[str, Meta(max_length=MAX_STRING, extra_json_schema={"format": "date-time", "pattern": RFC3339.pattern})]
    | None,
    Meta(description="RFC 3339 instant; absent = arrival order"),
]
"""An event time on the wire; the struct holds integer microseconds since the epoch."""


def _post_init(event: Any) -> None:
    """Turn the wire values msgspec checked into what the struct holds (see the ``TYPE_CHECKING`` blocks).

    One call per event, cheaper than one ``dec_hook`` call per field. A ValueError becomes msgspec's
    validation error; it names its field itself because msgspec locates it at the event.
    """
    if event.time is not None:
        try:
            force_setattr(event, "time", parse_rfc3339(event.time))
        except ValueError as exc:
            raise ValueError(f"time: {exc}") from None
    for scope in _SCOPES[type(event)]:
        if getattr(event, scope) is None:
            force_setattr(event, scope, "default")
    user_id = getattr(event, "user_id", "")
    if type(user_id) is int:
        if not _INT_RANGE[0] <= user_id <= _INT_RANGE[1]:
            raise ValueError("user_id: must be an integer of at most 64 bits")
        force_setattr(event, "user_id", str(user_id))


class _Event(Struct, frozen=True, kw_only=True, tag_field="type"):
    subscription: Name
    id: Text | None = None
    if TYPE_CHECKING:
        time: int | None = None
    else:
        time: Instant = None

    def __post_init__(self) -> None:
        _post_init(self)


class _ScopedEvent(_Event, frozen=True, kw_only=True):
    """An event of a runtime and tenant: records and visits (a config belongs to the subscription)."""

    if TYPE_CHECKING:
        runtime: str = "default"
        tenant: str = "default"
    else:
        runtime: ScopeName = "default"
        tenant: ScopeName = "default"
    default_tenant: bool | None = None


class _RecordEvent(_ScopedEvent, frozen=True, kw_only=True):
    if TYPE_CHECKING:
        provider: str = "default"
        user_id: str
    else:
        provider: ScopeName = "default"
        user_id: UserId
    username: Text | None | UnsetType = UNSET
    email: EmailText | None | UnsetType = UNSET
    phone: Text | None = None
    name: Text | None = None


class LoginEvent(_RecordEvent, frozen=True, kw_only=True, tag="login"):
    """The user authenticated: creates the record if absent and marks it logged in (sticky)."""

    type: ClassVar[str] = "login"


class ProfileEvent(_RecordEvent, frozen=True, kw_only=True, tag="profile"):
    """User administration changed a user: upsert, deactivate, activate or delete."""

    type: ClassVar[str] = "profile"
    op: Literal["upsert", "deactivate", "activate", "delete"]
    active: bool | None = None
    excluded: Annotated[bool | None, Meta(description=(
        "true: this record is not an end user (a developer, a service account) and never counts; "
        "applied by upsert, null keeps the current value"))] = None


class VisitEvent(_ScopedEvent, frozen=True, kw_only=True, tag="visit"):
    """Activity without login; anonymous unless it shares personal data."""

    type: ClassVar[str] = "visit"
    session_id: Name
    email: EmailText | None = None
    phone: Text | None = None
    name: Text | None = None


class Capacity(Struct, frozen=True, kw_only=True):
    """Licensed capacities; each key present replaces its value, null means unlimited."""

    internal: Count | None | UnsetType = UNSET
    external: Count | None | UnsetType = UNSET

    def __post_init__(self) -> None:
        # msgspec reads any integer exactly (its bounds stop at 63 bits), so the unsigned 64-bit bound is here
        for key in ("internal", "external"):
            value = getattr(self, key)
            if isinstance(value, int) and value > _INT_RANGE[1]:
                raise ValueError(f"{key}: must be an integer of at most 64 bits")


class RuntimeSetting(Struct, frozen=True, kw_only=True):
    version: Version | None = None

    def __post_init__(self) -> None:
        # Python's ``$`` also matches before a final newline; the pattern means the end of the text
        if self.version is not None and self.version.endswith("\n"):
            raise ValueError(f"version: Expected `str` matching regex {VERSION_PATTERN!r}")


class ConfigEvent(_Event, frozen=True, kw_only=True, tag="config"):
    """Subscription settings; each key present replaces the current value, absent keys keep it."""

    type: ClassVar[str] = "config"
    platform: Literal["o11", "odc"] | None | UnsetType = UNSET
    domains: Annotated[list[Text], Meta(max_length=MAX_DOMAINS)] | None | UnsetType = UNSET
    capacity: Capacity | None | UnsetType = UNSET
    thresholds: Annotated[list[Percentage], Meta(max_length=MAX_THRESHOLDS)] | None | UnsetType = UNSET
    hysteresis: Annotated[float, Meta(ge=0, le=100)] | None | UnsetType = UNSET
    runtimes: Annotated[dict[Name, RuntimeSetting], Meta(max_length=MAX_RUNTIMES)] | None | UnsetType = UNSET
    billing_day: Annotated[
        Annotated[int, Meta(ge=1, le=31)] | None | UnsetType,
        Meta(description="Day of the month (1-31; the month's last day when it has fewer) on which a billing "
                         "period starts; null: 1"),
    ] = UNSET
    statement_grace: Annotated[
        Annotated[int, Meta(ge=0, le=2160)] | None | UnsetType,
        Meta(description="Hours after a billing period ends at which its statement closes (0-2160); null: 72"),
    ] = UNSET
    source_silence: Annotated[
        Annotated[int, Meta(ge=1, le=8760)] | None | UnsetType,
        Meta(description="Hours without an event after which a user provider is silent (1-8760); null: 24"),
    ] = UNSET
    dormant_days: Annotated[
        Annotated[int, Meta(ge=1, le=3650)] | None | UnsetType,
        Meta(description="Days without a login after which a counted record is dormant (1-3650); null: 90"),
    ] = UNSET
    excluded_providers: Annotated[
        Annotated[list[Name], Meta(max_length=MAX_EXCLUDED_PROVIDERS)] | None | UnsetType,
        Meta(description="User providers whose records are not end users and never count; null: none"),
    ] = UNSET
    actor: Annotated[Text | None, Meta(description="who made the change, for the audit trail")] = None
    shared_identifier_threshold: Annotated[int, Meta(ge=1, le=1_000_000)] | None | UnsetType = UNSET
    """An email or login held by more records than this is reported as shared (null: 5)."""

    def __post_init__(self) -> None:
        """The rules a JSON Schema cannot state: every owned domain is a domain name, and thresholds,
        when given, list at least one percentage (null restores the default ones)."""
        _post_init(self)
        for position, entry in enumerate(self.domains or ()):
            if normalize_owned_domain(entry) is None:
                raise ValueError(f"domains.{position}: {entry[:60]!r} is not a domain name")
        if isinstance(self.thresholds, list) and not self.thresholds:
            raise ValueError("thresholds: must list at least one percentage")


SOURCE_TOPICS = {"login": "logins", "profile": "profiles", "visit": "visits", "config": "config"}
"""Event ``type`` -> the one source topic (without prefix) that accepts it."""

_SCOPES: dict[type, tuple[str, ...]] = {
    LoginEvent: ("runtime", "tenant", "provider"), ProfileEvent: ("runtime", "tenant", "provider"),
    VisitEvent: ("runtime", "tenant"), ConfigEvent: (),
}

InputEvent = Union[LoginEvent, ProfileEvent, VisitEvent, ConfigEvent]
