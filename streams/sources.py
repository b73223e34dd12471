"""Consuming the source topics for ingest, in batches, in arrival order, at least once.

Ingest reads the four source topics with its own aiokafka consumer (group ``<app id>-ingest``)
rather than through a Faust stream: the benchmarks showed Faust's per-message stream machinery
(fetcher thread, channel queues, per-event acks) costing about two thirds of the worker's time on
this stage, for a stage that needs none of it. Each batch is forwarded and acknowledged by Kafka
before its offsets are committed, so a crash repeats a batch (harmless: the engine is idempotent)
and never loses one. The count stage, which owns the state, stays a Faust agent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord

from streams import metrics
from streams.outages import outage
from streams.pipeline import Inbound
from streams.settings import SOURCE_TOPICS, Settings, kafka_client_options

log = logging.getLogger(__name__)

PATTERN_REFRESH_MS = 5000
"""How soon ingest reads a per-subscription source topic created while it runs."""

ARRIVAL_HEADER = "endusers-arrival"
"""Header with the publish order in microseconds (set by ``endusers publish``); ingest keeps it."""


def ingest_group(settings: Settings) -> str:
    return f"{settings.app_id}-ingest"


def inbound(record: ConsumerRecord) -> Inbound:
    arrival = record.timestamp * 1000
    for name, value in record.headers or ():
        if name == ARRIVAL_HEADER:
            try:
                arrival = int(value)
            except (TypeError, ValueError):
                pass
    return Inbound(record.topic, record.partition, record.offset, record.timestamp, record.key, record.value, arrival)


class ArrivalMerge:
    """Merges the source partitions into one stream in arrival order (the ``endusers-arrival`` header,
    else the record timestamp), so events published in sequence across topics reach the count stage
    in that sequence, whatever the fetch order.

    A fetched message is released once every assigned partition has shown a later arrival or has been
    read to its end (caught up), or once it has waited ``max_hold`` seconds: a stalled partition
    delays the others by at most that much. Offsets are committed only up to what was released, so a
    crash or a rebalance re-reads what was held (at least once; the engine is idempotent).
    """

    def __init__(self, max_hold: float = 1.0) -> None:
        self.max_hold = max_hold
        self._pending: dict[TopicPartition, deque[tuple[float, Inbound]]] = {}
        self._seen: dict[TopicPartition, int] = {}
        self._released: dict[TopicPartition, int] = {}

    def add(self, tp: TopicPartition, messages: Sequence[Inbound], now: float) -> None:
        if messages:
            self._pending.setdefault(tp, deque()).extend((now, m) for m in messages)
            self._seen[tp] = max(self._seen.get(tp, messages[-1].arrival_us), messages[-1].arrival_us)

    def release(self, assigned: Iterable[TopicPartition], caught_up: Callable[[TopicPartition], bool],
                now: float) -> list[Inbound]:
        """The messages that can go now, in arrival order."""
        watermark = min((self._watermark(tp, caught_up) for tp in assigned), default=_NEVER_BEHIND)
        released: list[Inbound] = []
        for tp, queue in self._pending.items():
            while queue and (queue[0][1].arrival_us <= watermark or now - queue[0][0] >= self.max_hold):
                message = queue.popleft()[1]
                released.append(message)
                self._released[tp] = message.offset + 1
        released.sort(key=_arrival_order)
        return released

    def commits(self) -> dict[TopicPartition, int]:
        """Per partition, the next offset not yet released: safe to commit."""
        return dict(self._released)

    def committed(self, offsets: dict[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            if self._released.get(tp) == offset:
                del self._released[tp]

    def drop(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions that moved to another worker: it re-reads whatever was held here."""
        for tp in partitions:
            self._pending.pop(tp, None)
            self._seen.pop(tp, None)
            self._released.pop(tp, None)

    def _watermark(self, tp: TopicPartition, caught_up: Callable[[TopicPartition], bool]) -> int:
        """Every message of ``tp`` up to this arrival has been fetched (all of them once caught up)."""
        if caught_up(tp):
            return _NEVER_BEHIND
        return self._seen.get(tp, -1)


_NEVER_BEHIND = 1 << 62


def _arrival_order(message: Inbound) -> tuple[int, str, int, int]:
    return message.arrival_us, message.topic, message.partition, message.offset


class _DropRevoked(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, merge: ArrivalMerge, topics: list[str]) -> None:
        self.merge = merge
        self.topics = set(topics)

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self.merge.drop(revoked)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        assigned = list(assigned)
        self.topics |= {tp.topic for tp in assigned}  # a pattern subscription finds its topics as it goes
        metrics.keep_lag_of(self.topics, [(tp.topic, tp.partition) for tp in assigned])


def ingest_consumer(settings: Settings) -> AIOKafkaConsumer:
    """The source topics' consumer; with ENDUSERS_INSTANCE_ID it is a static member of its group."""
    return AIOKafkaConsumer(
        group_id=ingest_group(settings),
        group_instance_id=settings.instance_id or None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=settings.batch_size,
        session_timeout_ms=int(settings.session_timeout * 1000),
        heartbeat_interval_ms=int(settings.heartbeat_interval * 1000),
        # a pattern subscription (per-subscription topics) sees a new licensee's topics at the next refresh
        metadata_max_age_ms=PATTERN_REFRESH_MS if settings.per_subscription_topics else 300_000,
        **kafka_client_options(settings),
    )


async def consume_sources(settings: Settings, handle: Callable[[Sequence[Inbound]], Awaitable[None]]) -> None:
    """Forever: fetch from the source topics, release in arrival order, hand over, commit."""
    pattern = settings.source_pattern() if settings.per_subscription_topics else None
    topics = [] if pattern else [settings.topic(name) for name in SOURCE_TOPICS.values()]
    attempt = 0
    while True:
        merge = ArrivalMerge()
        consumer = ingest_consumer(settings)
        if pattern:
            consumer.subscribe(pattern=pattern, listener=_DropRevoked(merge, topics))
        else:
            consumer.subscribe(topics, listener=_DropRevoked(merge, topics))
        try:
            await consumer.start()
            attempt = 0
            while True:
                fetched = await consumer.getmany(timeout_ms=int(settings.batch_within * 1000),
                                                 max_records=settings.batch_size)
                now = time.monotonic()
                for tp, records in fetched.items():
                    merge.add(tp, [inbound(r) for r in records], now)
                assigned = consumer.assignment()
                positions = {tp: await consumer.position(tp) for tp in assigned}

                def caught_up(tp: TopicPartition) -> bool:
                    highwater = consumer.highwater(tp)
                    return highwater is not None and positions[tp] >= highwater

                batch = merge.release(assigned, caught_up, now)
                if batch:
                    await handle(batch)
                    offsets = merge.commits()
                    await consumer.commit(offsets)
                    merge.committed(offsets)
                    _observe_lag(consumer, fetched)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Kafka away or a rebalance error: start over from committed offsets
            attempt += 1
            outage("Kafka").failed(f"ingest consumer: {type(exc).__name__}: {exc}")
            await asyncio.sleep(min(5.0, 0.2 * 2**attempt))
        finally:
            await consumer.stop()


def _observe_lag(consumer: AIOKafkaConsumer, fetched: dict[TopicPartition, list[ConsumerRecord]]) -> None:
    """Records left behind the batch just read, per partition that had any."""
    for tp, records in fetched.items():
        highwater = consumer.highwater(tp)
        if highwater is not None and records:
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - records[-1].offset - 1))
