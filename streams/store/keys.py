"""Where a subscription's data lives in Redis: its keys, all under the hash tag ``{subscription}``, so
that the commit script's keys sit in one slot and the step stays atomic on Redis Cluster."""

from __future__ import annotations

from typing import Any

from streams.store import audit

SUBSCRIPTIONS_KEY = "endusers:subscriptions"
"""The registry of subscriptions (no hash tag: it spans them all)."""
READ_MARKS_KEY = "endusers:changes-read"
"""Changes partition (``topic:partition``) -> the next offset the count stage processed (no hash tag:
it spans every subscription; written after each batch's commits)."""
POSITION = "position:"
"""Prefix of the meta fields that hold a changes partition's next offset."""
INGESTED = "ingested:"
"""Prefix of the meta fields that hold a source partition's next offset applied."""


class Keys:
    """The keys of one subscription, all under its hash tag."""

    __slots__ = ("meta", "records", "tombstones", "outbox", "sessions", "counts", "recent", "history", "shared",
                 "daily", "hourly", "audit", "sources", "source_days",
                 "periods", "statements", "statement_outbox")

    def __init__(self, subscription: str) -> None:
        base = "endusers:{%s}:" % subscription
        self.meta = base + "meta"
        self.records = base + "records"
        self.tombstones = base + "tombstones"
        self.outbox = base + "outbox"
        self.sessions = base + "sessions"
        self.counts = base + "counts"
        self.recent = base + "recent"
        self.history = base + "history"
        self.shared = base + "shared"
        self.daily = base + "daily"
        self.hourly = base + "hourly"
        self.audit = audit.audit_key(subscription)
        self.sources = base + "sources"
        """User provider -> the time (µs) of its latest event (``counters/sources.py``)."""
        self.source_days = base + "source-days"
        """``d:<day number>:<provider>`` -> the provider's events that UTC day (the last SOURCE_DAYS)."""
        self.periods = base + "periods"
        """The late events per billing period: ``<start>:late`` -> how many, ``<start>:<class>`` ->
        ``count,day``, the highest count right after one of them (``counters/late.py``)."""
        self.statements = base + "statements"
        """Period start -> its frozen statement (JSON, the CloudEvent's value), written once."""
        self.statement_outbox = base + "statement-outbox"
        """Frozen statements waiting for Kafka (``enduser.statements``)."""

    def outbox_of(self, kind: str) -> str:
        """The outbox of capacity events (``capacity``) or of closed statements (``statements``)."""
        return self.statement_outbox if kind == "statements" else self.outbox

    def commit_keys(self) -> list[str]:
        return [self.meta, self.records, self.tombstones, self.outbox, self.sessions, self.counts,
                self.recent, self.history, self.shared, self.daily, self.hourly, self.audit, self.sources,
                self.source_days, self.periods]


def text(value: bytes | str) -> str:
    """Redis answers bytes (this client does not decode responses)."""
    return value.decode() if isinstance(value, bytes) else value


def fix_empty(document: dict[str, Any]) -> dict[str, Any]:
    """Lua's cjson writes an empty object as ``[]``; the contract says ``{}``."""
    for key in ("runtimes", "providers"):
        if document.get(key) == []:
            document[key] = {}
    domains = document.get("external_domains")
    if isinstance(domains, dict) and domains.get("top") == {}:
        domains["top"] = []
    return document
