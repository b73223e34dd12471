"""Reduce a replay document (docs/events.md) to what must be equal between implementations."""

from __future__ import annotations

from typing import Any

EVENT_KEYS = (
    "subscription", "user_class", "previous_level", "level", "direction",
    "count", "capacity", "exceeded", "trigger",
)


def comparable_counts(doc: dict[str, Any]) -> dict[str, Any]:
    """Counts and levels per subscription; runtimes/providers with 0 dropped (missing = 0)."""
    out = {}
    for name, s in doc["subscriptions"].items():
        out[name] = {
            "internal": s["internal"],
            "external": s["external"],
            "records": s["records"],
            "runtimes": {
                rt: {k: c[k] for k in ("internal", "external", "records")}
                for rt, c in s.get("runtimes", {}).items()
                if any(c[k] for k in ("internal", "external", "records"))
            },
            "providers": {p: n for p, n in s.get("providers", {}).items() if n},
            "excluded": s.get("excluded", 0),  # missing = 0 (documents written before the rule)
            "levels": dict(s["levels"]),
        }
    return out


def comparable_events(doc: dict[str, Any], keys: tuple[str, ...] = EVENT_KEYS) -> list[dict[str, Any]]:
    return [{k: e.get(k) for k in keys} for e in doc["capacity_events"]]


def comparable(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "subscriptions": comparable_counts(doc),
        "capacity_events": comparable_events(doc),
        "rejected": doc["rejected"],
    }


def anonymous_sessions(doc: dict[str, Any]) -> dict[str, int]:
    return {n: s["anonymous_sessions"] for n, s in doc["subscriptions"].items()}
