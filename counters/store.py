"""Where subscription states live between batches.

The engine works on a ``SubscriptionState`` in memory; a store loads one and commits what a batch
changed together with how far the input has been applied (the *position*) and the capacity events
the batch produced (the *outbox*), in one atomic step that refuses a replayed or stale batch.
``streams.redis_store.RedisStore`` serves production; ``MemoryStore`` is the reference the same tests run
on, and stands in for Redis in the pipeline's stage tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from counters.state import SubscriptionState
from schemas.outputs import CapacityEvent


@dataclass(frozen=True, slots=True)
class Position:
    """Input applied so far from one source partition: the commit expects ``expected`` (the next
    offset stored by the previous commit, None for the first) and stores ``next``."""

    source: str
    expected: int | None
    next: int


class Store(Protocol):
    async def load(self, subscription: str) -> SubscriptionState:
        """The subscription's current state (a new one when unknown)."""
        ...

    async def commit(
        self, state: SubscriptionState, position: Position | None, events: Sequence[CapacityEvent]
    ) -> bool:
        """Persist the state's changes, the position and the outbox atomically; False (and nothing
        written) when the stored position is not ``position.expected``."""
        ...

    def forget(self, subscription: str) -> None:
        """Drop any cached copy: the next load reads the committed state."""
        ...


class MemoryStore:
    """States kept in a dict; commits check positions like the Redis store does."""

    def __init__(self) -> None:
        self.states: dict[str, SubscriptionState] = {}
        self.outbox: list[CapacityEvent] = []

    async def load(self, subscription: str) -> SubscriptionState:
        state = self.states.get(subscription)
        if state is None:
            state = self.states[subscription] = SubscriptionState(subscription)
        return state

    async def commit(
        self, state: SubscriptionState, position: Position | None, events: Sequence[CapacityEvent]
    ) -> bool:
        if position is not None:
            if state.positions.get(position.source) != position.expected:
                return False
            state.positions[position.source] = position.next
        state.dirty.clear()
        self.outbox.extend(events)
        return True

    def forget(self, subscription: str) -> None:
        """Memory is the committed state; nothing to drop."""
