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
from datetime import datetime, timezone
from typing import Any

import orjson

from counters import DigestMismatch, LimitExceeded, Position, Store, SubscriptionState, apply
from schemas.changes import Change, decode_message
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

INTERNAL, EXTERNAL = "internal", "external"

Rewind = Callable[[str, int], Awaitable[bool]]
"""``rewind("topic:partition", offset)``: read the changes partition again from ``offset``; False when
the partition is not assigned here (any more)."""

UNKNOWN_SUBSCRIPTION = "unknown subscription"
"""The reason of an event whose subscription no config event has declared (ENDUSERS_SUBSCRIPTIONS=declared)."""

Refusal = tuple[Change, str, str]
"""A change the count stage refused: the change, the reason and its metrics category."""


class Count:
    """Counts the batches of the changes partitions assigned here (``handle``), one at a time."""

    def __init__(self, store: Store, dead_letters: DeadLetters, ownership: Ownership, outbox: OutboxPublisher,
                 live_counts: LiveCounts, rewind: Rewind | None = None, digest: str | None = None, *,
                 declared_only: bool = False) -> None:
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
        arriving were fetched before the rewind and are dropped until the re-read begins. Only while
        the partition is assigned here: a rebalance restarts every partition from Kafka's committed
        offsets, so a mark left behind would drop (and acknowledge) every later message of it."""
        self._checked: set[str] = set()
        """Changes partitions whose first batch since the assignment was compared with the store's
        read mark (``_reread_lost``)."""
        self.rereading: dict[str, tuple[int, int]] = {}
        """Changes partition -> (from, to): a range that Redis had lost and that is being read again
        (readiness)."""
        self.digest = digest
        """The fingerprint of this worker's digests (``Digester.fingerprint``): a changes message
        digested otherwise is refused. None: not checked."""
        self.level_listeners: list[Callable[[str], None]] = []
        """Told the subscription after each commit that changed a capacity level (``streams.worker.alerts``)."""
        self.batch_done: Callable[[], None] = lambda: None
        """Called after every batch (readiness: the count stage is moving)."""

    async def handle(self, messages: Sequence[Inbound]) -> None:
        """Apply a batch of changes, one atomic commit per subscription and partition."""
        started = time.perf_counter()
        kept = await self._reread_lost(self._after_rewinds(messages))
        for (subscription, source), items in (await self._grouped(kept)).items():
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
        await self._mark_read(kept)
        self.batch_done()
        metrics.BATCH_SECONDS.labels("count").observe(time.perf_counter() - started)

    async def _grouped(self, messages: Sequence[Inbound]) -> dict[tuple[str, str], list[tuple[Inbound, list[Change]]]]:
        """The batch's changes by subscription and partition; what is not a change batch of this
        worker's digests goes to the dead-letter topic."""
        groups: dict[tuple[str, str], list[tuple[Inbound, list[Change]]]] = {}
        for message in messages:
            try:
                changes, digest = decode_message(message.value or b"")
            except Exception as exc:  # not ours: never crash the stage over it
                await (await self.dead_letters.queue(message, f"not a change batch: {type(exc).__name__}: {exc}"))
                continue
            if digest is not None and self.digest is not None and digest != self.digest:
                metrics.OTHER_DIGESTS.inc()  # a worker with another secret or scope ingests: never mix them
                await (await self.dead_letters.queue(message, other_digests(digest, self.digest)))
                continue
            if changes:
                groups.setdefault((changes[0].subscription, message.source), []).append((message, changes))
        return groups

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
        state.late_tally.open_from(datetime.now(timezone.utc).date(), state.settings.billing_day)
        for _, changes in todo:
            for change in changes:
                if not first_time(state, change):
                    continue  # a source event that ingest forwarded again: applied once already
                if self.declared_only and change.kind != "config" and not state.config_times:
                    refusals.append((change, UNKNOWN_SUBSCRIPTION, "unknown_subscription"))
                    continue
                before = _late_counts(state, change)
                try:
                    events += self._apply_one(state, change, audits)
                except LimitExceeded as exceeded:
                    refusals.append((change, str(exceeded), "over_limit"))
                    continue
                _tally(state, change, before)
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
        metrics.observe_sources(subscription, state.source_last, state.settings.source_silence)
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
        await self._seek_back(back.source, back.stored, highest)

    async def _seek_back(self, source: str, offset: int, highest: int) -> bool:
        """Read ``source`` again from ``offset``, dropping what was fetched before (up to ``highest``)
        until the re-read begins. False when it cannot: then nothing is dropped, since the partition's
        next reader starts from Kafka's committed offsets."""
        if self.rewind is None:
            raise RuntimeError(f"cannot read {source} again from {offset}: this count stage cannot rewind its input")
        self._rewinding[source] = highest
        try:
            if await self.rewind(source, offset):
                return True
            log.info("%s moved to another worker before it could be read again from %d", source, offset)
        except Exception:
            log.exception("cannot read %s again from %d", source, offset)
        del self._rewinding[source]
        self.rereading.pop(source, None)
        return False

    async def _reread_lost(self, messages: list[Inbound]) -> list[Inbound]:
        """The first batch of a partition since its assignment starts at Kafka's committed offset. The
        store's read mark of the partition (``_mark_read``) is written after every batch's commits and
        before Kafka commits it, so a mark below that offset means Redis lost writes (a failover) that
        Kafka had moved past: that range is read again, and each subscription skips what it has."""
        unchecked = sorted({m.source for m in messages} - self._checked)
        if not unchecked:
            return messages
        marks = await until_store_answers(lambda _retried: self.store.read_marks(unchecked), proves_up=False)
        self._checked.update(unchecked)
        for source in unchecked:
            offsets = [m.offset for m in messages if m.source == source]
            mark, first = marks.get(source), min(offsets)
            if mark is None or first <= mark:
                continue
            topic, _, partition = source.rpartition(":")
            metrics.LOST_RANGES.labels(topic, partition).inc()
            log.error("Redis holds the changes of %s processed up to offset %d, but Kafka's committed offset "
                      "is %d: Redis lost writes (a failover?); reading offsets %d to %d again",
                      source, mark, first, mark, first - 1)
            self.rereading[source] = (mark, first)
            if not await self._seek_back(source, mark, max(offsets)):
                self._checked.discard(source)  # still lost: the next batch tries again
        return [m for m in messages if m.source not in self._rewinding]

    async def _mark_read(self, messages: list[Inbound]) -> None:
        """Tell the store how far each partition has been processed (after the batch's commits, so a
        failover that loses a commit loses this mark too), and end the re-reads that got there."""
        marks: dict[str, int] = {}
        for message in messages:
            if message.source not in self._rewinding:
                marks[message.source] = max(marks.get(message.source, 0), message.offset + 1)
        if not marks:
            return
        await until_store_answers(lambda _retried: self.store.mark_read(marks), proves_up=True)
        for source, (_, until) in list(self.rereading.items()):
            if marks.get(source, 0) >= until:
                log.warning("%s has been read again up to offset %d", source, until)
                del self.rereading[source]

    def reassigned(self) -> None:
        """After a rebalance Faust reads every assigned partition from Kafka's committed offsets: a
        rewind still pending has ended (its mark would drop every later message), and each partition's
        first batch is compared with the store's read mark again."""
        self._rewinding.clear()
        self._checked.clear()
        self.rereading.clear()


def other_digests(message: str, configured: str) -> str:
    """Why a changes message is not counted: its ingest digested with other settings."""
    return (f"not counted: digested with other settings (changes fingerprint {message}, this worker and its "
            f"state {configured}): the worker that ingested it has another ENDUSERS_SECRET or "
            f"ENDUSERS_DIGEST_SCOPE")


def _late_counts(state: SubscriptionState, change: Change) -> tuple[int, int] | None:
    """The counts (internal, external) before a late change (its time lies in an ended billing period);
    None for the others (one comparison)."""
    return (state.count(INTERNAL), state.count(EXTERNAL)) if state.late_tally.is_late(change.time) else None


def _tally(state: SubscriptionState, change: Change, before: tuple[int, int] | None) -> None:
    """What an applied change adds to the batch's silent-sources tally (a dict update) and, when late,
    to its period's late events: with the count of each class it raised (a late login must not bring
    the other class's later count into its period)."""
    if change.kind != "config":
        state.source_tally.add(change.provider, change.time)
    else:
        state.late_tally.open_from(state.late_tally.today, state.settings.billing_day)
    if before is not None:
        internal, external = state.count(INTERNAL), state.count(EXTERNAL)
        raised = {**({INTERNAL: internal} if internal > before[0] else {}),
                  **({EXTERNAL: external} if external > before[1] else {})}
        state.late_tally.add(change.time, raised, state.settings.billing_day)


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
