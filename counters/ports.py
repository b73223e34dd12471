"""What the count pipeline asks of a store, as small ports grouped by role.

The engine works on a ``SubscriptionState`` in memory; a store loads one and commits what a batch
changed together with how far the input has been applied (the *position*) and the capacity events the
batch produced (the *outbox*), in one atomic step that refuses a replayed or stale batch. The outbox
is read and trimmed apart from that step, once Kafka has its events; the directory tells a worker what
is committed (after a rebalance it adopts subscriptions from it). The audit entries of the batch's
config changes travel in the same step: a committed setting always has its entry.

``streams.store.redis_store.RedisStore`` serves production and satisfies the ports structurally;
``counters.memory_store.MemoryStore`` is the reference the same tests run on, and stands in for Redis
in the pipeline's stage tests. Nothing here knows how a store keeps its data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from counters.state import SubscriptionState
from schemas.outputs import CapacityEvent, SharedIdentifiers


@dataclass(frozen=True, slots=True)
class Position:
    """Input applied so far from one source partition: the commit expects ``expected`` (the next
    offset stored by the previous commit, None for the first) and stores ``next``."""

    source: str
    expected: int | None
    next: int


@dataclass(frozen=True, slots=True)
class ReadSide:
    """What one commit left for readers, as JSON documents."""

    counts: dict[str, Any]
    settings: dict[str, Any]
    shared: SharedIdentifiers | None


class States(Protocol):
    """The state port: subscription states at rest, committed batch by batch."""

    async def load(self, subscription: str) -> SubscriptionState:
        """The cached state, else the committed one (a new one when unknown)."""
        ...

    async def commit(
        self, state: SubscriptionState, position: Position | None, events: Sequence[CapacityEvent],
        audits: Sequence[dict[str, Any]] = (), retried: bool = False,
    ) -> bool:
        """Persist the state's changes, the position, the events into the outbox and the audit entries
        (oldest first: who changed which settings, from where, before and after) into the audit trail
        atomically; False (and nothing written) when the stored position is not ``position.expected``.
        ``retried``: the same commit failed before with a connection error, so a stored position equal
        to ``position.next`` means that attempt landed (True, and nothing written twice)."""
        ...

    def forget(self, subscription: str) -> None:
        """Drop any cached copy: the next load reads the committed state."""
        ...

    def cached(self, subscription: str) -> SubscriptionState | None:
        """The state held in this worker's memory, if any (never a read of the committed one)."""
        ...


class Outbox(Protocol):
    """The outbox port: committed capacity events waiting for Kafka, oldest first."""

    async def outbox(self, subscription: str) -> list[bytes]:
        """The pending events, each as the bytes published (``CapacityEvent.to_bytes``)."""
        ...

    async def outbox_sent(self, subscription: str, entries: Sequence[bytes]) -> None:
        """Remove these entries, each by its value (its id is unique), never by position: several
        workers sweep the same outbox, and an entry committed after this one's read must stay."""
        ...


class CommittedReads(Protocol):
    """What is committed, read without loading a state: what the web API and the dashboard show."""

    async def subscriptions(self) -> list[str]:
        """The subscriptions with a committed state, sorted."""
        ...

    async def counts(self, subscription: str) -> dict[str, Any] | None:
        """The counts document of the last commit (None before the first)."""
        ...

    async def settings(self, subscription: str) -> dict[str, Any] | None:
        """The settings of the last commit, as JSON (None before the first)."""
        ...

    async def shared_identifiers(self, subscription: str) -> SharedIdentifiers | None:
        """The last committed shared-identifier report (None before one was committed)."""
        ...


class Directory(CommittedReads, Protocol):
    """The directory port: what is committed, with the reads a worker makes of many subscriptions at
    once after a rebalance."""

    async def sources(self, subscriptions: Sequence[str]) -> dict[str, list[str]]:
        """Per subscription, the changes partitions (``topic:partition``) it has been counted from,
        read together: an adoption asks it of every subscription after each rebalance."""
        ...

    async def read_sides(self, subscriptions: Sequence[str]) -> dict[str, ReadSide]:
        """The committed counts, settings and shared-identifier report of each subscription, read
        together; a subscription not committed yet is left out."""
        ...


class Store(States, Outbox, Directory, Protocol):
    """Everything the count pipeline asks of a store."""
