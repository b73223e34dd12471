"""What the worker, the web, the alerts and the CLI ask of a store, as small ports grouped by role.

The engine works on a ``SubscriptionState`` in memory; a store loads one and commits what a batch
changed together with how far the input has been applied (the *position*) and the capacity events the
batch produced (the *outbox*), in one atomic step that refuses a replayed or stale batch. The outbox
is read and trimmed apart from that step, once Kafka has its events; the directory tells a worker what
is committed (after a rebalance it adopts subscriptions from it). The audit entries of the batch's
config changes travel in the same step: a committed setting always has its entry.

Readers ask less: the web, the alerts and the CLI each name the ports they read through
(:class:`CountsReader`, :class:`CommittedCounts`, :class:`OperatorReads`), so none depends on the
store's class. A store that cannot be reached raises :class:`StoreUnavailable`, whatever its client
library says, so that callers can wait for it without knowing that library.

``streams.store.redis_store.RedisStore`` serves production and satisfies the ports structurally;
``counters.memory_store.MemoryStore`` is the reference the same tests run on, and stands in for Redis
in the stage tests. Nothing here knows how a store keeps its data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from counters.history import Entry
from counters.statements import Late
from counters.state import SubscriptionState
from schemas.outputs import CapacityEvent, SharedIdentifiers


class StoreUnavailable(Exception):
    """The store did not answer (connection lost, timed out, too few replicas confirmed a commit):
    nothing is known to have changed, and the same call may be tried again later. The message names
    the underlying error, e.g. ``ConnectionError: Connection refused``."""


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
    sources: dict[str, int] = field(default_factory=dict)
    """Each user provider's latest event time (µs; ``counters/sources.py``)."""


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

    async def outbox(self, subscription: str, kind: str = "capacity") -> list[bytes]:
        """The pending events, each as the bytes published (``CapacityEvent.to_bytes``; ``kind``
        ``statements``: the closed statements, ``counters/statements.py``)."""
        ...

    async def outbox_sent(self, subscription: str, entries: Sequence[bytes], kind: str = "capacity") -> None:
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


class CommittedCounts(Protocol):
    """The committed read sides of many subscriptions at once: what the alerts compare levels with."""

    async def read_sides(self, subscriptions: Sequence[str]) -> dict[str, ReadSide]:
        """The committed counts, settings and shared-identifier report of each subscription, read
        together; a subscription not committed yet is left out."""
        ...


class Directory(CommittedReads, CommittedCounts, Protocol):
    """The directory port: what is committed, with the reads a worker makes of many subscriptions at
    once after a rebalance."""

    async def sources(self, subscriptions: Sequence[str]) -> dict[str, list[str]]:
        """Per subscription, the changes partitions (``topic:partition``) it has been counted from,
        read together: an adoption asks it of every subscription after each rebalance."""
        ...


class ReadMarks(Protocol):
    """How far each changes partition has been processed, kept where the states are: after a restart
    the worker compares it with Kafka's committed offset, and a mark behind it shows writes the
    store lost (a failover) that Kafka had already moved past."""

    async def read_marks(self, sources: Sequence[str]) -> dict[str, int]:
        """Source (``topic:partition``) -> the next offset processed; a source never marked is left out."""
        ...

    async def mark_read(self, marks: Mapping[str, int]) -> None:
        """Record these next offsets; a mark never moves back (a re-read below it leaves it)."""
        ...


class Store(States, Outbox, Directory, ReadMarks, Protocol):
    """Everything the count stage asks of a store, and what it counts after a rebalance."""


class LoadProgress(Protocol):
    """How far the loads running now have got: what readiness reports while a takeover loads."""

    @property
    def progress(self) -> Mapping[str, tuple[int, int]]:
        """Subscription -> (records loaded, records to load), for each load running."""
        ...


class DigestCheck(Protocol):
    """The digests a state must have been built with: a worker sets its own, and a load that finds
    state built with others raises ``DigestMismatch`` instead of mixing two kinds of digests."""

    fingerprint: str | None
    """``Digester.fingerprint`` of the worker; None: not checked."""


class History(Protocol):
    """The counts over time and the capacity events that marked them."""

    async def recent_capacity_events(self, subscription: str, limit: int = 20) -> list[dict[str, Any]]:
        """Newest first, as ``CapacityEvent.to_dict()``."""
        ...

    async def history(self, subscription: str) -> list[list[int]]:
        """``[[unix_ms, internal, external], ...]`` oldest first, the last hour."""
        ...

    async def daily(self, subscription: str) -> list[Entry]:
        """Stored daily history entries (``counters.history``), oldest first; days without a commit
        are absent."""
        ...

    async def source_activity(self, subscription: str) -> tuple[dict[str, int], dict[tuple[str, int], int]]:
        """Each user provider's latest event time (µs), and its events per UTC day number (the last
        ``SOURCE_DAYS``): ``counters.sources_report`` reads them."""
        ...

    async def statement_data(self, subscription: str) -> tuple[dict[str, dict[str, Any]], dict[str, Late]]:
        """The frozen statements by period start, and the late events of each period (``counters/statements.py``)."""
        ...

    async def hourly(self, subscription: str) -> list[Entry]:
        """Stored hourly history entries, oldest first (the last 14 days)."""
        ...


class AuditTrail(Protocol):
    """The applied config changes: who changed which settings, from where, before and after."""

    async def audit(self, subscription: str, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first."""
        ...


class CommittedStates(Protocol):
    """Whole committed states, read anew for a what-if or an explanation."""

    async def fresh_state(self, subscription: str) -> SubscriptionState | None:
        """A new copy of the subscription's committed state (never a worker's live one), the caller's
        to change; None if unknown. O(records)."""
        ...


class CountsReader(CommittedReads, History, AuditTrail, CommittedStates, Protocol):
    """What the web API and the dashboard read.

    ``settings`` is ``{"platform", "domains", "capacity": {"internal", "external"}, "thresholds",
    "hysteresis", "runtimes", ...}``, and ``counts`` the document of docs/events.md."""


class StoredDigests(Protocol):
    """Which digests a subscription's state was built with."""

    async def stored_fingerprint(self, subscription: str) -> str | None:
        """The fingerprint recorded with the last commit (None: not recorded)."""
        ...


class OperatorReads(CountsReader, StoredDigests, Protocol):
    """What the command line reads, one store per command."""

    async def close(self) -> None:
        """Release the store's connections."""
        ...


class Cursors(Protocol):
    """Where a connector keeps how far it has read an identity source (``streams/connect``): one small
    JSON document per subscription and source, written after the events it covers are on Kafka, so a
    restarted connector resumes where the last one stopped."""

    async def cursor(self, subscription: str, source: str) -> dict[str, Any] | None:
        """The document last saved, or None before the first save."""

    async def save_cursor(self, subscription: str, source: str, cursor: dict[str, Any]) -> None:
        """Replace the document."""

    async def close(self) -> None:
        """Release the connections."""
