"""The live pipeline's stages, apart from Faust wiring: ingest, count, outbox and counts publishing.

Ingest turns raw source messages into normalized changes keyed by subscription, or dead letters; the
count stage applies changes with the engine and commits each subscription's batch atomically with its
position and its capacity events (the outbox); the outbox is published to Kafka and only then
trimmed, so a crash repeats a capacity event (same id) but never loses one. No counting rule lives here.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

import msgspec
import orjson
from redis.exceptions import RedisError

from counters import DigestMismatch, Digester, Position, Store, SubscriptionState, apply, to_change
from schemas.changes import Change, decode_batch, encode_row, join_rows
from schemas.cloudevents import Headers, capacity_headers
from schemas.codec import Rejection, Source, decode, too_far_ahead
from schemas.limits import DEFAULT_MAX_FUTURE, parse_duration
from schemas.outputs import CapacityEvent
from streams.observe import metrics
from streams.store import audit
from streams.observe.outages import outage
from streams.worker.redact import redacted_value
from streams.settings import SOURCE_TOPICS
from streams.store.redis_store import SLICE_SECONDS

log = logging.getLogger(__name__)
T = TypeVar("T")

DEAD_LETTER_VALUE_LIMIT = 64 * 1024
"""Raw bytes kept in a dead letter: enough to diagnose, small enough to stay under Kafka's limits."""

CHANGES_PER_MESSAGE = 500
"""Changes of one subscription per message on the changes topic (about 100 KB at most)."""


class Send(Protocol):
    """``send(topic, key, value, headers)`` queues a message and returns an awaitable of its delivery."""

    def __call__(self, topic: str, key: bytes | None, value: bytes, headers: Headers | None = None, /
                 ) -> Awaitable[Any]: ...

Rewind = Callable[[str, int], Awaitable[None]]
"""``rewind("topic:partition", offset)``: read the changes partition again from ``offset``."""


class Inbound(msgspec.Struct, frozen=True, gc=False):
    """One consumed Kafka message, whatever the client library.

    A frozen msgspec struct rather than a frozen dataclass: ingest builds one per source message, and
    a frozen dataclass's ``__init__`` sets each field through ``object.__setattr__`` (0.68 against
    0.13 µs per message). ``gc=False``: it holds no reference cycle.
    """

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    arrival_us: int = 0
    """Publish order (the ``endusers-arrival`` header, else the timestamp): ingest merges by it."""


_UNKNOWN = "\x00unknown"
"""A topic whose owner has not been asked yet (no subscription is named so: names are printable)."""


class Pipeline:
    def __init__(self, store: Store, digest: Digester, send: Send, topic: Callable[[str], str],
                 max_future: int = parse_duration(DEFAULT_MAX_FUTURE),
                 clock: Callable[[], float] = time.time, *, raw_dead_letters: bool = False,
                 topic_subscription: Callable[[str], str | None] | None = None,
                 rewind: Rewind | None = None) -> None:
        self.store = store
        self.topic_subscription = topic_subscription or (lambda _topic: None)
        """The subscription a source topic is reserved for (per-subscription layout), else None."""
        self._owners: dict[str, str | None] = {}
        """``topic_subscription`` per topic seen: it is asked for every event."""
        self.raw_dead_letters = raw_dead_letters
        """Keep rejected values as they came (ENDUSERS_DEADLETTER_RAW=1), personal data included."""
        self.digest = digest
        self.send = send
        self.topic = topic
        self.max_future = max_future
        """Microseconds an event's time may be ahead of the processing clock (ENDUSERS_MAX_FUTURE)."""
        self.clock = clock
        self._sources = {topic(name): Source(topic(name), kind) for kind, name in SOURCE_TOPICS.items()}
        self.rewind = rewind
        self._rewinding: dict[str, int] = {}
        """Changes partition -> the highest offset read before it was rewound: later offsets still
        arriving were fetched before the rewind and are dropped until the re-read begins."""
        self._changed: set[str] = set()
        self._counted_from: dict[str, str] = {}
        """Subscription -> the changes partition (``topic:partition``) this worker last counted it from."""
        self._outbox_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.level_listeners: list[Callable[[str], None]] = []
        """Told the subscription after each commit that changed a capacity level (``streams.worker.alerts``)."""
        self.batch_done: Callable[[], None] = lambda: None
        """Called after every count batch (readiness: the count stage is moving)."""
        self.refused: dict[str, str] = {}
        """Subscription -> why it is not counted: its state was built with other digests (readiness)."""

    # --- ingest -----------------------------------------------------------------------------------

    async def ingest(self, messages: Sequence[Inbound]) -> None:
        """Validate and normalize a batch; forward changes in order, dead-letter the rest; return once
        Kafka has every message (the batch is acknowledged only then: at least once).

        Messages come in arrival order (``streams.kafka.consumer.ArrivalMerge``) and keep it.
        """
        started = time.perf_counter()
        deliveries = []
        by_subscription: dict[str, list[bytes]] = {}
        """Each change encoded as soon as it is made (``encode_row``): read and freed while in cache."""
        for topic, consumed in Counter(m.topic for m in messages).items():
            metrics.EVENTS.labels(topic).inc(consumed)
        sliced = time.perf_counter()
        for message in messages:
            if time.perf_counter() - sliced >= SLICE_SECONDS:  # a big batch: let the loop breathe
                await asyncio.sleep(0)
                sliced = time.perf_counter()
            result = self._normalize(message)
            if isinstance(result, Rejection):
                metrics.REJECTIONS.labels(result.category).inc()
                deliveries.append(await self._dead_letter(message, result.reason))
            else:
                by_subscription.setdefault(result.subscription, []).append(encode_row(result))
        for subscription, rows in by_subscription.items():
            for start in range(0, len(rows), CHANGES_PER_MESSAGE):
                batch = join_rows(subscription, rows[start : start + CHANGES_PER_MESSAGE])
                deliveries.append(await self.send(self.topic("changes"), subscription.encode(), batch))
        await asyncio.gather(*deliveries)
        metrics.BATCH_SECONDS.labels("ingest").observe(time.perf_counter() - started)

    def _normalize(self, message: Inbound) -> Change | Rejection:
        if message.value is None:
            return Rejection("empty message (null value or tombstone)")
        event = decode(message.value, self._source(message.topic))
        if isinstance(event, Rejection):
            return event
        owner = self._owners.get(message.topic, _UNKNOWN)
        if owner is _UNKNOWN:
            owner = self._owners[message.topic] = self.topic_subscription(message.topic)
        if owner is not None and event.subscription != owner:  # the broker's ACLs let its producer write here
            return Rejection(f"subscription: {event.subscription!r} does not belong on topic {message.topic} "
                             f"(ENDUSERS_TOPIC_LAYOUT=per-subscription: only {owner!r})", "wrong_topic")
        future = too_far_ahead(event, self._processing_clock(message), self.max_future)
        if future is not None:
            return future
        change = to_change(event, self.digest, message.timestamp_ms * 1000)
        # where it came from: to apply it once, and for the audit trail
        actor = getattr(event, "actor", None) if change.kind == "config" else None
        change.origin = [message.topic, message.partition, message.offset, actor]
        return change

    def _source(self, topic: str) -> Source:
        """The topic and the one event type it accepts; a per-subscription topic (``<prefix>.logins.acme``)
        accepts what its shared name (``<prefix>.logins``) does. Any other topic accepts nothing."""
        source = self._sources.get(topic)
        if source is None:
            owner = self.topic_subscription(topic)
            shared = self._sources.get(topic[: -len(owner) - 1]) if owner is not None else None
            source = self._sources[topic] = Source(topic, shared.accepts if shared is not None else "")
        return source

    def _processing_clock(self, message: Inbound) -> int:
        """When Kafka took the message (its record timestamp, which also times untimed events), but
        never later than this worker's clock: the same message gets the same verdict when it is read
        again after a crash, a rebalance or from a new consumer group, however late that is."""
        now = int(self.clock() * 1_000_000)
        return now if message.timestamp_ms <= 0 else min(message.timestamp_ms * 1000, now)

    # --- count ------------------------------------------------------------------------------------

    async def count(self, messages: Sequence[Inbound]) -> None:
        """Apply a batch of changes, one atomic commit per subscription and partition."""
        started = time.perf_counter()
        groups: dict[tuple[str, str], list[tuple[Inbound, list[Change]]]] = {}
        for message in self._after_rewinds(messages):
            try:
                changes = decode_batch(message.value or b"")
            except Exception as exc:  # not ours: never crash the stage over it
                await (await self._dead_letter(message, f"not a change batch: {type(exc).__name__}: {exc}"))
                continue
            if changes:
                source = f"{message.topic}:{message.partition}"
                groups.setdefault((changes[0].subscription, source), []).append((message, changes))
        for (subscription, source), items in groups.items():
            if source in self._rewinding:
                continue  # rewound by an earlier group of this batch: these come again
            try:
                await self._count_subscription(subscription, source, [(m.offset, c) for m, c in items])
            except RolledBack as back:
                await self._rewind(back, max(m.offset for m in messages if f"{m.topic}:{m.partition}" == source))
                continue
            except DigestMismatch as mismatch:  # nothing applied nor committed: the stored counts stand
                self._refuse(mismatch)
                for message, _ in items:
                    await (await self._dead_letter(message, f"not counted: {mismatch}"))
                continue
            except Exception as exc:  # a bug, not bad input (ingest validated it): never stop counting
                log.exception("cannot count a batch of %s; it goes to the dead-letter topic", subscription)
                self.store.forget(subscription)
                for message, _ in items:
                    await (await self._dead_letter(message, f"count stage failed: {type(exc).__name__}: {exc}"))
        self.batch_done()
        metrics.BATCH_SECONDS.labels("count").observe(time.perf_counter() - started)

    async def _count_subscription(self, subscription: str, source: str, items: list[tuple[int, list[Change]]]) -> None:
        refused: int | None = None
        """The position this worker's copy had when Redis last refused its commit."""
        while True:
            state = await self._load(subscription)
            expected = state.positions.get(source)
            if refused is not None and (expected or 0) < refused:
                raise RolledBack(subscription, source, expected or 0, refused)
            todo = [(offset, c) for offset, c in items if expected is None or offset >= expected]
            if not todo:
                return  # already applied (redelivery after a crash or a rebalance)
            events, audits = await self._apply(state, todo)
            if await self._commit(state, Position(source, expected, todo[-1][0] + 1), events, audits):
                audit.log_committed(subscription, audits)
                break
            # Another worker moved on: reload, then skip what it did. Or Redis went back in time.
            refused = expected or 0
            self.store.forget(subscription)
        await self._after_commit(state, source, events)

    async def _apply(self, state: SubscriptionState, todo: list[tuple[int, list[Change]]]
                     ) -> tuple[list[CapacityEvent], list[dict[str, Any]]]:
        """Apply the batch's changes not applied yet: the capacity events they raise and the audit
        entries of their config changes."""
        events: list[CapacityEvent] = []
        audits: list[dict[str, Any]] = []
        started = time.perf_counter()
        for _, changes in todo:
            for change in changes:
                if not _first_time(state, change):
                    continue  # a source event that ingest forwarded again: applied once already
                if change.kind == "config":  # rare: compare the settings around it for the audit trail
                    before = orjson.loads(orjson.dumps(state.settings.to_dict()))  # a copy
                    events += apply(state, change)
                    after = orjson.loads(orjson.dumps(state.settings.to_dict()))
                    audits.append(audit.entry(change, before, after))
                else:
                    events += apply(state, change)
                if time.perf_counter() - started >= SLICE_SECONDS:  # a big batch: let the loop breathe
                    await asyncio.sleep(0)
                    started = time.perf_counter()
        return events, audits

    async def _after_commit(self, state: SubscriptionState, source: str, events: list[CapacityEvent]) -> None:
        """After a commit: the subscription is counted here now; export its gauges, tell the level
        listeners and publish its capacity events."""
        subscription = state.subscription
        self._changed.add(subscription)
        self._counted_from[subscription] = source
        metrics.observe_counts(subscription, dict(state.summary()), state.settings.capacity, len(state.shared))
        metrics.INVALID_EMAILS.labels(subscription).set(state.invalid_emails)
        if not events:
            return
        for listener in self.level_listeners:
            listener(subscription)
        for event in events:
            metrics.CAPACITY_EVENTS.labels(event.subscription, event.user_class, event.direction).inc()
        try:
            await self.flush_outbox(subscription)
        except Exception as exc:  # committed and safe in the outbox: the sweep publishes it later
            log.warning("capacity events of %s wait in the outbox (%s)", subscription, exc)

    async def _load(self, subscription: str) -> SubscriptionState:
        """The state; Redis errors are retried with backoff (nothing is applied yet). A cached state
        proves nothing about Redis, so only a retried load ends an outage."""
        return await _until_redis_answers(lambda _retried: self.store.load(subscription), proves_up=False)

    async def _commit(self, state: SubscriptionState, position: Position, events: list[CapacityEvent],
                      audits: list[dict[str, Any]]) -> bool:
        """Commit, retrying the same commit with backoff on a Redis error: the applied state stays
        cached, because the batch cannot be applied twice (a capacity event would be lost to the
        already-raised level). False only when the position check says another writer moved on."""
        return await _until_redis_answers(
            lambda retried: self.store.commit(state, position, events, audits, retried=retried), proves_up=True)

    def _after_rewinds(self, messages: Sequence[Inbound]) -> list[Inbound]:
        """Drop what a rewound partition delivers from before its rewind; its re-read starts with an
        offset at or below the highest one read before, which ends the rewind."""
        if not self._rewinding:
            return list(messages)
        kept = []
        for message in messages:
            source = f"{message.topic}:{message.partition}"
            mark = self._rewinding.get(source)
            if mark is not None:
                if message.offset > mark:
                    continue
                del self._rewinding[source]
            kept.append(message)
        return kept

    async def _rewind(self, back: RolledBack, highest: int) -> None:
        """Redis holds an older position than the copy this worker counted from: a failover lost
        commits that Kafka's offsets had already moved past. Counting on would skip those changes for
        good, so the partition is read again from the stored position; every other subscription on it
        skips what it already has (its own position)."""
        log.warning("Redis holds position %d of %s for %s but this worker had committed up to %d (lost "
                    "in a failover?): reading the partition again from %d", back.stored, back.source,
                    back.subscription, back.had, back.stored)
        self.store.forget(back.subscription)
        if self.rewind is None:
            raise RuntimeError("Redis went back in time and this pipeline cannot rewind its input") from back
        self._rewinding[back.source] = highest
        try:
            await self.rewind(back.source, back.stored)
        except Exception:  # e.g. the partition moved in a rebalance: its new reader starts from Kafka's offsets
            del self._rewinding[back.source]
            log.exception("cannot read %s again from %d", back.source, back.stored)

    def keep_only(self, assigned: set[str]) -> list[str]:
        """After a rebalance: let go of the subscriptions whose changes partition (``topic:partition``)
        is no longer assigned here, and return them.

        Another worker counts them now. Their cached state would only hold memory (a commit from it
        would be refused anyway), and their gauges would go on exporting numbers nobody updates.
        """
        released = [s for s, source in self._counted_from.items() if source not in assigned]
        for subscription in set(self.refused) - set(self._counted_from):
            self.refused.pop(subscription)  # refused before counting here: the next owner decides
        for subscription in released:
            self.refused.pop(subscription, None)
            del self._counted_from[subscription]
            self._changed.discard(subscription)
            self.store.forget(subscription)
            metrics.forget_subscription(subscription)
        return released

    def owned(self) -> set[str]:
        """The subscriptions this worker counts now (by its last batch or adoption after a rebalance)."""
        return set(self._counted_from)

    async def adopt(self, assigned: set[str]) -> tuple[list[str], list[str]]:
        """After a rebalance: export the gauges of the subscriptions now counted here, from their
        committed counts, so that a scrape of this worker does not wait for their next event; and
        return them with every owned subscription whose state is not in memory yet (to load now, so
        that the first event after a takeover does not wait for it, and readiness can say when all
        are loaded)."""
        names = await self.store.subscriptions()
        owned = {name: mine for name, sources in (await self.store.sources(names)).items()
                 if (mine := [source for source in sources if source in assigned])}
        unloaded = [name for name in owned if self.store.cached(name) is None]
        sides = await self.store.read_sides([name for name in owned if name not in self._counted_from])
        adopted = []
        for subscription, side in sides.items():
            if subscription in self._counted_from:
                continue  # counted (more freshly) while we read
            self._counted_from[subscription] = owned[subscription][0]
            shared = 0 if side.shared is None else len(side.shared["identifiers"])
            metrics.observe_counts(subscription, side.counts, side.settings["capacity"], shared)
            adopted.append(subscription)
        return adopted, unloaded

    async def preload(self, subscription: str) -> None:
        """Load an owned subscription's state ahead of its next batch (in slices: see the store)."""
        try:
            await self._load(subscription)
        except DigestMismatch as mismatch:
            self._refuse(mismatch)

    def _refuse(self, mismatch: DigestMismatch) -> None:
        """Log a refused subscription once (its every batch is refused) and tell readiness."""
        if mismatch.subscription not in self.refused:
            log.error("%s", mismatch)
        self.refused[mismatch.subscription] = (f"refusing {mismatch.subscription}: stored digests "
                                               f"{mismatch.stored}, configured {mismatch.configured}")

    # --- outputs ----------------------------------------------------------------------------------

    async def flush_outbox(self, subscription: str) -> int:
        """Publish the committed capacity events in order, then remove (by identity) what Kafka
        acknowledged.

        Each record carries the CloudEvents headers of its event (``schemas.cloudevents``); its key and
        value are the subscription and the event's JSON, as they were before the headers.
        """
        async with self._outbox_locks[subscription]:
            pending = await self.store.outbox(subscription)
            if not pending:
                return 0
            deliveries = [await self.send(self.topic("capacity"), subscription.encode(), e, capacity_headers(e))
                          for e in pending]
            await asyncio.gather(*deliveries)
            await self.store.outbox_sent(subscription, pending)
            return len(pending)

    async def sweep_outboxes(self) -> None:
        """Publish what a worker committed but died before publishing."""
        for subscription in await self.store.subscriptions():
            await self.flush_outbox(subscription)

    async def publish_counts(self) -> None:
        """At most once per call (a 1 s timer): each changed subscription's counts to ``counts``."""
        changed, self._changed = self._changed, set()
        deliveries = []
        for subscription in changed:
            state = self.store.cached(subscription)
            if state is not None:
                document = {"subscription": subscription, **state.summary()}
                deliveries.append(await self.send(self.topic("counts"), subscription.encode(), orjson.dumps(document)))
        await asyncio.gather(*deliveries)

    async def _dead_letter(self, message: Inbound, reason: str) -> Awaitable[Any]:
        """Queue the message on the dead-letter topic; the result resolves once Kafka has it."""
        metrics.DEAD_LETTERS.inc()
        letter = dead_letter(message, reason, raw=self.raw_dead_letters)
        delivery: Awaitable[Any] = await self.send(self.topic("deadletter"), message.key, letter)
        return delivery


async def _until_redis_answers(call: Callable[[bool], Awaitable[T]], *, proves_up: bool) -> T:
    """``call(retried)`` again and again while Redis errors (backing off from 0.2 s to 5 s), with
    ``retried`` true after a failed attempt. ``proves_up``: a first success also ends a Redis outage
    (a call that may not reach Redis, like a cached load, proves it only after a failure)."""
    attempt = 0
    while True:
        try:
            result = await call(attempt > 0)
        except (RedisError, OSError) as exc:
            attempt += 1
            outage("Redis").failed(exc)
            await asyncio.sleep(min(5.0, 0.1 * 2**attempt))
            continue
        if attempt or proves_up:
            outage("Redis").recovered()
        return result


def _first_time(state: SubscriptionState, change: Change) -> bool:
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
    """Redis refused a commit and holds an older position than the worker's copy was built from."""

    def __init__(self, subscription: str, source: str, stored: int, had: int) -> None:
        super().__init__(f"{subscription}: stored position {stored} of {source} < {had}")
        self.subscription, self.source, self.stored, self.had = subscription, source, stored, had


def dead_letter(message: Inbound, reason: str, *, raw: bool = False) -> bytes:
    """The rejected message with where it came from and why (docs/events.md, dead letters); its value
    with personal data redacted (``streams.worker.redact``) unless ``raw``."""
    value = message.value or b""
    if not raw and message.value is not None:
        redacted, value = True, redacted_value(message.value)
    else:
        redacted = False
    document: dict[str, Any] = {
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "timestamp": message.timestamp_ms,
        "reason": reason,
        "key": None if message.key is None else message.key.decode("utf-8", "replace"),
        "value_size": None if message.value is None else len(message.value),
        "truncated": len(value) > DEAD_LETTER_VALUE_LIMIT,
        "redacted": redacted,
    }
    kept = value[:DEAD_LETTER_VALUE_LIMIT]
    try:
        document["value"] = None if message.value is None else kept.decode("utf-8")
    except UnicodeDecodeError:
        document["value_base64"] = base64.b64encode(kept).decode("ascii")
    return orjson.dumps(document)
