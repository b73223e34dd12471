"""The store's ports (``counters.ports``) in memory: the reference the Redis store's tests compare
with, and the stand-in for Redis in the stage tests.

It is one worker's view: the state it loads is the committed one itself, so the engine's changes are
in it before the commit that records them, and ``forget`` only marks it as no longer cached (the
Redis store reads the committed state again). Commits check positions, fill the outbox and snapshot
the read side (counts, settings, shared identifiers) as the Redis store does; what is read back is a
fresh copy, as from Redis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from counters.domains import external_domains
from counters.ports import Position, ReadSide, Store
from counters.shared import shared_identifiers_report
from counters.state import SubscriptionState
from schemas.outputs import CapacityEvent, SharedIdentifiers


@dataclass(frozen=True, slots=True)
class _Committed:
    """The read side of a subscription's last commit, as JSON."""

    counts: bytes
    settings: bytes
    shared: bytes | None


class MemoryStore(Store):
    """States, outboxes, committed documents and audit entries kept in dicts."""

    def __init__(self) -> None:
        self.states: dict[str, SubscriptionState] = {}
        """Subscription -> its state, loaded or committed (the engine changes it in place)."""
        self._cached: set[str] = set()
        self._outboxes: dict[str, list[bytes]] = {}
        self._committed: dict[str, _Committed] = {}
        self._audits: dict[str, list[bytes]] = {}
        self.marks: dict[str, int] = {}
        """Changes partition -> the next offset processed (``ReadMarks``)."""

    # --- states -----------------------------------------------------------------------------------

    async def load(self, subscription: str) -> SubscriptionState:
        state = self.states.get(subscription)
        if state is None:
            state = self.states[subscription] = SubscriptionState(subscription)
        self._cached.add(subscription)
        return state

    async def commit(
        self, state: SubscriptionState, position: Position | None, events: Sequence[CapacityEvent],
        audits: Sequence[dict[str, Any]] = (), retried: bool = False,
    ) -> bool:
        if position is not None:
            stored = state.positions.get(position.source)
            if stored != position.expected:
                return retried and stored == position.next  # the earlier attempt landed
            state.positions[position.source] = position.next
        state.dirty.clear()
        state.extremes.clear()
        for provider, at in state.source_tally.last.items():
            state.source_last[provider] = max(at, state.source_last.get(provider, at))
        state.source_tally.clear()
        state.late_tally.clear()
        self._outboxes.setdefault(state.subscription, []).extend(event.to_bytes() for event in events)
        self._audits.setdefault(state.subscription, []).extend(orjson.dumps(entry) for entry in audits)
        report = orjson.dumps(shared_identifiers_report(state)) if state.shared_changed else self._shared(state.subscription)
        state.shared_changed = False
        counts = {**state.summary(), "external_domains": external_domains(state)}
        self._committed[state.subscription] = _Committed(
            orjson.dumps(counts), orjson.dumps(state.settings.to_dict()), report)
        return True

    def _shared(self, subscription: str) -> bytes | None:
        """The report as last committed: a commit writes it only when it changed."""
        committed = self._committed.get(subscription)
        return None if committed is None else committed.shared

    def forget(self, subscription: str) -> None:
        self._cached.discard(subscription)

    def cached(self, subscription: str) -> SubscriptionState | None:
        return self.states.get(subscription) if subscription in self._cached else None

    # --- the outbox -------------------------------------------------------------------------------

    async def outbox(self, subscription: str, kind: str = "capacity") -> list[bytes]:
        return list(self._outboxes.get(subscription if kind == "capacity" else f"{kind}:{subscription}", []))

    async def outbox_sent(self, subscription: str, entries: Sequence[bytes], kind: str = "capacity") -> None:
        pending = self._outboxes.get(subscription if kind == "capacity" else f"{kind}:{subscription}", [])
        for entry in entries:
            if entry in pending:  # another sweeper may have removed it already
                pending.remove(entry)

    # --- the read marks ---------------------------------------------------------------------------

    async def read_marks(self, sources: Sequence[str]) -> dict[str, int]:
        return {source: self.marks[source] for source in sources if source in self.marks}

    async def mark_read(self, marks: Mapping[str, int]) -> None:
        for source, offset in marks.items():
            self.marks[source] = max(offset, self.marks.get(source, offset))

    # --- the directory ----------------------------------------------------------------------------

    async def subscriptions(self) -> list[str]:
        return sorted(self._committed)

    async def sources(self, subscriptions: Sequence[str]) -> dict[str, list[str]]:
        """Positions move only in a commit, so the states' are the committed ones."""
        return {name: list(self.states[name].positions) if name in self._committed else [] for name in subscriptions}

    async def read_sides(self, subscriptions: Sequence[str]) -> dict[str, ReadSide]:
        sides = {}
        for name in subscriptions:
            counts, settings = await self.counts(name), await self.settings(name)
            if counts is not None and settings is not None:
                sides[name] = ReadSide(counts, settings, await self.shared_identifiers(name))
        return sides

    async def counts(self, subscription: str) -> dict[str, Any] | None:
        committed = self._committed.get(subscription)
        return None if committed is None else dict(orjson.loads(committed.counts))

    async def settings(self, subscription: str) -> dict[str, Any] | None:
        committed = self._committed.get(subscription)
        return None if committed is None else dict(orjson.loads(committed.settings))

    async def shared_identifiers(self, subscription: str) -> SharedIdentifiers | None:
        committed = self._shared(subscription)
        if committed is None:
            return None
        report: SharedIdentifiers = orjson.loads(committed)
        return report

    # --- the audit trail --------------------------------------------------------------------------

    async def audit(self, subscription: str, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first, like ``RedisStore.audit`` (memory keeps every entry)."""
        return [orjson.loads(entry) for entry in reversed(self._audits.get(subscription, [])[-max(1, limit) :])]
