"""The count stage: change batches -> the engine -> one atomic commit per subscription and partition.

Each commit stores the subscription's changed state with its position on the changes partition and
the capacity events the batch raised (the outbox), so a replayed batch is refused and a commit never
loses an event; the events are then handed to the outbox publisher. A batch that cannot be counted
goes to the dead-letter topic: counting never stops. The counting rules are the engine's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson

from counters import DigestMismatch, LimitExceeded, Position, Store, SubscriptionState, apply
from schemas.changes import Change, decode_batch
from schemas.outputs import CapacityEvent
from streams.kafka.messages import Inbound
from streams.observe import metrics
from streams.slices import SLICE_SECONDS
from streams.store import audit
from streams.worker.deadletter import DeadLetters
from streams.worker.live_counts import LiveCounts
from streams.worker.outbox import OutboxPublisher
from streams.worker.ownership import Ownership
from streams.worker.retry import until_store_answers

log = logging.getLogger(__name__)

Rewind = Callable[[str, int], Awaitable[None]]
"""``rewind("topic:partition", offset)``: read the changes partition again from ``offset``."""

UNKNOWN_SUBSCRIPTION = "unknown subscription"
"""The reason of an event whose subscription no config event has declared (ENDUSERS_SUBSCRIPTIONS=declared)."""

Refusal = tuple[Change, str, str]
"""A change the count stage refused: the change, the reason and its metrics category."""


class Count:
    """Counts the batches of the changes partitions assigned here (``handle``), one at a time."""

    def __init__(self, store: Store, dead_letters: DeadLetters, ownership: Ownership, outbox: OutboxPublisher,
                 live_counts: LiveCounts, rewind: Rewind | None = None, *, declared_only: bool = False) -> None:
        self.store = store
        self.declared_only = declared_only
        """Refuse the events of a subscription whose settings no config event has set
        (ENDUSERS_SUBSCRIPTIONS=declared): the stored settings say so, the same on every worker."""
        self.dead_letters = dead_letters
        self.ownership = ownership
        self.outbox = outbox
        self.live_counts = live_counts
        self.rewind = rewind
        self._rewinding: dict[str, int] = {}
        """Changes partition -> the highest offset read before it was rewound: later offsets still
        arriving were fetched before the rewind and are dropped until the re-read begins."""
        self.level_listeners: list[Callable[[str], None]] = []
        """Told the subscription after each commit that changed a capacity level (``streams.worker.alerts``)."""
        self.batch_done: Callable[[], None] = lambda: None
        """Called after every batch (readiness: the count stage is moving)."""

    async def handle(self, messages: Sequence[Inbound]) -> None:
        """Apply a batch of changes, one atomic commit per subscription and partition."""
        started = time.perf_counter()
        groups: dict[tuple[str, str], list[tuple[Inbound, list[Change]]]] = {}
        for message in self._after_rewinds(messages):
            try:
                changes = decode_batch(message.value or b"")
            except Exception as exc:  # not ours: never crash the stage over it
                await (await self.dead_letters.queue(message, f"not a change batch: {type(exc).__name__}: {exc}"))
                continue
            if changes:
                groups.setdefault((changes[0].subscription, message.source), []).append((message, changes))
        for (subscription, source), items in groups.items():
            if source in self._rewinding:
                continue  # rewound by an earlier group of this batch: these come again
            try:
                await self._count_subscription(subscription, source, [(m.offset, c) for m, c in items])
            except RolledBack as back:
                await self._rewind(back, max(m.offset for m in messages if m.source == source))
            except DigestMismatch as mismatch:  # nothing applied nor committed: the stored counts stand
                self.ownership.refuse(mismatch)
                await self._dead_letter_all(items, f"not counted: {mismatch}")
            except Exception as exc:  # a bug, not bad input (ingest validated it): never stop counting
                log.exception("cannot count a batch of %s; it goes to the dead-letter topic", subscription)
                self.store.forget(subscription)
                await self._dead_letter_all(items, f"count stage failed: {type(exc).__name__}: {exc}")
        self.batch_done()
        metrics.BATCH_SECONDS.labels("count").observe(time.perf_counter() - started)

    async def _dead_letter_all(self, items: list[tuple[Inbound, list[Change]]], reason: str) -> None:
        for message, _ in items:
            await (await self.dead_letters.queue(message, reason))

    async def _count_subscription(self, subscription: str, source: str, items: list[tuple[int, list[Change]]]) -> None:
        refused: int | None = None
        """The position this worker's copy had when the store last refused its commit."""
        while True:
            state = await self._load(subscription)
            expected = state.positions.get(source)
            if refused is not None and (expected or 0) < refused:
                raise RolledBack(subscription, source, expected or 0, refused)
            todo = [(offset, c) for offset, c in items if expected is None or offset >= expected]
            if not todo:
                return  # already applied (redelivery after a crash or a rebalance)
            events, audits, refusals = await self._apply(state, todo)
            if self.declared_only and not state.config_times:
                self.store.forget(subscription)  # never declared: nothing of it is stored or kept
                break
            if await self._commit(state, Position(source, expected, todo[-1][0] + 1), events, audits):
                audit.log_committed(subscription, audits)
                break
            # Another worker moved on: reload, then skip what it did. Or Redis went back in time.
            refused = expected or 0
            self.store.forget(subscription)
        await self._dead_letter_refused(subscription, refusals)
        if state.config_times or not self.declared_only:
            await self._after_commit(state, source, events)

    async def _apply(self, state: SubscriptionState, todo: list[tuple[int, list[Change]]]
                     ) -> tuple[list[CapacityEvent], list[dict[str, Any]], list[Refusal]]:
        """Apply the batch's changes not applied yet: the capacity events they raise, the audit
        entries of their config changes, and the changes refused (a subscription limit, or an
        undeclared subscription), which change nothing."""
        events: list[CapacityEvent] = []
        audits: list[dict[str, Any]] = []
        refusals: list[Refusal] = []
        started = time.perf_counter()
        for _, changes in todo:
            for change in changes:
                if not first_time(state, change):
                    continue  # a source event that ingest forwarded again: applied once already
                if self.declared_only and change.kind != "config" and not state.config_times:
                    refusals.append((change, UNKNOWN_SUBSCRIPTION, "unknown_subscription"))
                    continue
                try:
                    events += self._apply_one(state, change, audits)
                except LimitExceeded as exceeded:
                    refusals.append((change, str(exceeded), "over_limit"))
                if time.perf_counter() - started >= SLICE_SECONDS:  # a big batch: let the loop breathe
                    await asyncio.sleep(0)
                    started = time.perf_counter()
        return events, audits, refusals

    @staticmethod
    def _apply_one(state: SubscriptionState, change: Change, audits: list[dict[str, Any]]) -> list[CapacityEvent]:
        if change.kind != "config":
            return apply(state, change)
        # rare: compare the settings around it for the audit trail
        before = orjson.loads(orjson.dumps(state.settings.to_dict()))  # a copy
        events = apply(state, change)
        audits.append(audit.entry(change, before, orjson.loads(orjson.dumps(state.settings.to_dict()))))
        return events

    async def _dead_letter_refused(self, subscription: str, refusals: list[Refusal]) -> None:
        """The refused source events on the dead-letter topic, named by their source position. Their
        value is not at hand (ingest turned it into digests), so the dead letter carries none."""
        deliveries = []
        for change, reason, category in refusals:
            topic, partition, offset = (change.origin or ["", -1, -1])[:3]
            metrics.REJECTIONS.labels(category).inc()
            source = Inbound(topic, partition, offset, change.time // 1000, subscription.encode(), None)
            deliveries.append(await self.dead_letters.queue(source, reason))
        await asyncio.gather(*deliveries)

    async def _after_commit(self, state: SubscriptionState, source: str, events: list[CapacityEvent]) -> None:
        """After a commit: the subscription is counted here now; export its gauges, tell the level
        listeners and publish its capacity events."""
        subscription = state.subscription
        self.live_counts.changed(subscription)
        self.ownership.counted(subscription, source)
        metrics.observe_counts(subscription, dict(state.summary()), state.settings.capacity, len(state.shared))
        metrics.INVALID_EMAILS.labels(subscription).set(state.invalid_emails)
        if not events:
            return
        for listener in self.level_listeners:
            listener(subscription)
        for event in events:
            metrics.CAPACITY_EVENTS.labels(event.subscription, event.user_class, event.direction).inc()
        try:
            await self.outbox.flush(subscription)
        except Exception as exc:  # committed and safe in the outbox: the sweep publishes it later
            log.warning("capacity events of %s wait in the outbox (%s)", subscription, exc)

    async def _load(self, subscription: str) -> SubscriptionState:
        """The state, retried with backoff while the store is unavailable (nothing is applied yet). A
        cached state proves nothing about the store, so only a retried load ends an outage."""
        return await until_store_answers(lambda _retried: self.store.load(subscription), proves_up=False)

    async def _commit(self, state: SubscriptionState, position: Position, events: list[CapacityEvent],
                      audits: list[dict[str, Any]]) -> bool:
        """Commit, retrying the same commit with backoff while the store is unavailable: the applied
        state stays cached, because the batch cannot be applied twice (a capacity event would be lost
        to the already-raised level). False only when the position check says another writer moved on."""
        return await until_store_answers(
            lambda retried: self.store.commit(state, position, events, audits, retried=retried), proves_up=True)

    def _after_rewinds(self, messages: Sequence[Inbound]) -> list[Inbound]:
        """Drop what a rewound partition delivers from before its rewind; its re-read starts with an
        offset at or below the highest one read before, which ends the rewind."""
        if not self._rewinding:
            return list(messages)
        kept = []
        for message in messages:
            source = message.source
            mark = self._rewinding.get(source)
            if mark is not None:
                if message.offset > mark:
                    continue
                del self._rewinding[source]
            kept.append(message)
        return kept

    async def _rewind(self, back: RolledBack, highest: int) -> None:
        """The store holds an older position than the copy this worker counted from: a failover lost
        commits that Kafka's offsets had already moved past. Counting on would skip those changes for
        good, so the partition is read again from the stored position; every other subscription on it
        skips what it already has (its own position)."""
        log.warning("Redis holds position %d of %s for %s but this worker had committed up to %d (lost "
                    "in a failover?): reading the partition again from %d", back.stored, back.source,
                    back.subscription, back.had, back.stored)
        self.store.forget(back.subscription)
        if self.rewind is None:
            raise RuntimeError("Redis went back in time and this count stage cannot rewind its input") from back
        self._rewinding[back.source] = highest
        try:
            await self.rewind(back.source, back.stored)
        except Exception:  # e.g. the partition moved in a rebalance: its new reader starts from Kafka's offsets
            del self._rewinding[back.source]
            log.exception("cannot read %s again from %d", back.source, back.stored)


def first_time(state: SubscriptionState, change: Change) -> bool:
    """Whether the change's source event is new to the state, which then counts it as applied.

    Ingest forwards a batch again when it crashed or lost its partitions before committing the source
    offsets. Applying those events a second time would leave the final fields as they were, but on the
    way it would replay older configs and tied field writes, and so move capacity levels along
    another path than ``replay`` takes. Within one source partition a subscription's events reach the
    count stage in offset order, so one offset per partition tells what was already applied.
    """
    origin = change.origin
    if origin is None:
        return True
    source, offset = f"{origin[0]}:{origin[1]}", origin[2]
    if offset < state.ingested.get(source, 0):
        return False
    state.ingested[source] = offset + 1
    return True


class RolledBack(Exception):
    """The store refused a commit and holds an older position than the worker's copy was built from."""

    def __init__(self, subscription: str, source: str, stored: int, had: int) -> None:
        super().__init__(f"{subscription}: stored position {stored} of {source} < {had}")
        self.subscription, self.source, self.stored, self.had = subscription, source, stored, had
