"""The ingest stage: raw source messages -> normalized changes keyed by subscription, or dead letters.

Each batch is validated and normalized (``schemas.codec``, ``counters.to_change``), its changes are
forwarded to the ``changes`` topic grouped by subscription, and the call returns once Kafka has every
message: the source consumer commits the batch's offsets only then, so a crash repeats a batch but
never loses one. No counting happens here.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence

from counters import Digester, to_change
from schemas.changes import MAX_ROW_BYTES, Change, encode_row, join_rows, split_rows
from schemas.codec import Rejection, Source, decode, too_far_ahead
from schemas.limits import DEFAULT_MAX_FUTURE, parse_duration
from streams.kafka.messages import Inbound, Send
from streams.observe import metrics
from streams.settings import SOURCE_TOPICS
from streams.slices import SLICE_SECONDS
from streams.worker.deadletter import DeadLetters

_UNKNOWN = "\x00unknown"
"""A topic whose owner has not been asked yet (no subscription is named so: names are printable)."""


class Ingest:
    """One batch of source messages at a time (``handle``); keeps nothing between batches but caches
    of the topics it has seen."""

    def __init__(self, digest: Digester, send: Send, topic: Callable[[str], str], dead_letters: DeadLetters,
                 max_future: int = parse_duration(DEFAULT_MAX_FUTURE), clock: Callable[[], float] = time.time, *,
                 topic_subscription: Callable[[str], str | None] | None = None) -> None:
        self.digest = digest
        self.send = send
        self.changes_topic = topic("changes")
        self.dead_letters = dead_letters
        self.max_future = max_future
        """Microseconds an event's time may be ahead of the processing clock (ENDUSERS_MAX_FUTURE)."""
        self.clock = clock
        self.topic_subscription = topic_subscription or (lambda _topic: None)
        """The subscription a source topic is reserved for (per-subscription layout), else None."""
        self._owners: dict[str, str | None] = {}
        """``topic_subscription`` per topic seen: it is asked for every event."""
        self._sources = {topic(name): Source(topic(name), kind) for kind, name in SOURCE_TOPICS.items()}

    async def handle(self, messages: Sequence[Inbound]) -> None:
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
            result = self._row(message)
            if isinstance(result, Rejection):
                metrics.REJECTIONS.labels(result.category).inc()
                deliveries.append(await self.dead_letters.queue(message, result.reason))
            else:
                by_subscription.setdefault(result[0], []).append(result[1])
        for subscription, rows in by_subscription.items():
            for run in split_rows(rows):
                batch = join_rows(subscription, run, self.digest.fingerprint)
                deliveries.append(await self.send(self.changes_topic, subscription.encode(), batch))
        await asyncio.gather(*deliveries)
        metrics.BATCH_SECONDS.labels("ingest").observe(time.perf_counter() - started)

    def _row(self, message: Inbound) -> tuple[str, bytes] | Rejection:
        """The message's subscription and encoded change, or why it cannot be used. Whatever the
        message holds, it is refused rather than raised: a raise would repeat the batch forever."""
        try:
            result = self._normalize(message)
            if isinstance(result, Rejection):
                return result
            row = encode_row(result)
        except Exception as exc:  # a message the checks above missed must not stop its partition
            return Rejection(f"cannot be ingested: {type(exc).__name__}: {exc}")
        if len(row) > MAX_ROW_BYTES:
            return Rejection(f"too large once normalized: {len(row)} bytes (a change is at most {MAX_ROW_BYTES} "
                             "bytes on the changes topic)", "too_large")
        return result.subscription, row

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
        arrival = message.timestamp_ms * 1000
        future = too_far_ahead(event, self._processing_clock(message), self.max_future, arrival)
        if future is not None:  # whatever the time's source: a producer sets the record timestamp freely
            return future
        change = to_change(event, self.digest, arrival)
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
