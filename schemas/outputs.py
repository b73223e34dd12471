"""Output contracts: capacity-change events (``<prefix>.capacity``) and counts (docs/events.md)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Literal, TypedDict

import orjson


def format_instant(microseconds: int) -> str:
    """Integer microseconds since the epoch as an RFC 3339 UTC instant."""
    instant = datetime.fromtimestamp(microseconds / 1_000_000, tz=timezone.utc).replace(
        microsecond=microseconds % 1_000_000
    )
    text = f"{instant.year:04d}" + instant.strftime("-%m-%dT%H:%M:%S")
    if instant.microsecond:
        text += f".{instant.microsecond:06d}".rstrip("0")
    return text + "Z"


UserClass = Literal["internal", "external"]
"""The two classes an individual is counted in (docs/rules.md, classes)."""


@dataclass(frozen=True, slots=True)
class CapacityEvent:
    """A level change of one class of one subscription; ``id`` is the same whenever the change is."""

    id: str
    subscription: str
    user_class: UserClass
    previous_level: int
    level: int
    direction: Literal["up", "down"]
    count: int
    capacity: int
    exceeded: bool
    time: str
    trigger: str | None

    def to_bytes(self) -> bytes:
        return orjson.dumps(self)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # every field is a JSON value already: what to_bytes writes, as a dict


class ScopeCounts(TypedDict):
    internal: int
    external: int
    records: int


class SubscriptionCounts(TypedDict):
    """The counts of one subscription (docs/events.md, counts)."""

    internal: int
    external: int
    records: int
    runtimes: dict[str, ScopeCounts]
    providers: dict[str, int]
    excluded: int
    anonymous_sessions: int
    levels: dict[str, int]


class SharedIdentifier(TypedDict):
    """An email or login held by more countable, dedup-eligible records than the threshold."""

    digest: str
    kind: Literal["email", "username"]
    records: int
    runtimes: dict[str, int]


class SharedIdentifiers(TypedDict):
    """A subscription's shared-identifier report (``GET /api/v1/subscriptions/{id}/shared-identifiers``)."""

    threshold: int
    identifiers: list[SharedIdentifier]
