"""What the mappings share: the bounded, deterministic event ids and the instants of the wire."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from schemas.limits import MAX_STRING
from schemas.outputs import format_instant

Mapped = list[dict[str, Any]] | str
"""The events an input maps to, or why it maps to none."""


@dataclass(frozen=True)
class Scope:
    """Where a source's events are counted: the subscription, the provider name of its records and the
    runtime."""

    subscription: str
    provider: str
    runtime: str = "default"

    def record(self, user_id: str, **fields: Any) -> dict[str, Any]:
        return {"subscription": self.subscription, "runtime": self.runtime, "provider": self.provider,
                "user_id": user_id, **{k: v for k, v in fields.items() if v is not None}}


def event_id(*parts: str) -> str:
    """``parts`` joined by ``:``; one that would pass the contract's 256 characters keeps its head and
    a hash of the whole, so the id stays deterministic and bounded whatever a provider sends."""
    whole = ":".join(parts)
    if len(whole) <= MAX_STRING:
        return whole
    return f"{whole[:MAX_STRING - 33]}~{hashlib.sha256(whole.encode()).hexdigest()[:32]}"


def content_hash(document: Any) -> str:
    """A short hash of a JSON document (sorted keys): the id of an event that has none."""
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def millis_instant(milliseconds: int) -> str:
    """Keycloak's epoch milliseconds as an RFC 3339 instant."""
    return format_instant(milliseconds * 1000)


def text(value: Any) -> str | None:
    """A non-empty string, else None (providers send null, "" or numbers where they have nothing)."""
    return value if isinstance(value, str) and value.strip() else None


def email_of(value: Any) -> str | None:
    """``value`` when it looks like an email (the worker checks it properly and counts bad ones)."""
    candidate = text(value)
    return candidate if candidate is not None and "@" in candidate else None
