"""Consuming the source topics for ingest, in batches, at least once.

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
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from streams import metrics
from streams.pipeline import Inbound
from streams.settings import SOURCE_TOPICS, Settings, kafka_client_options

log = logging.getLogger(__name__)

ARRIVAL_HEADER = "endusers-arrival"
"""Header with the publish order in microseconds (set by ``endusers publish``); ingest keeps it."""


def ingest_group(settings: Settings) -> str:
    return f"{settings.app_id}-ingest"


def inbound(record: ConsumerRecord) -> Inbound:  # type: ignore[type-arg]
    arrival = record.timestamp * 1000
    for name, value in record.headers or ():
        if name == ARRIVAL_HEADER:
            try:
                arrival = int(value)
            except (TypeError, ValueError):
                pass
    return Inbound(record.topic, record.partition, record.offset, record.timestamp, record.key, record.value, arrival)


async def consume_sources(settings: Settings, handle: Callable[[Sequence[Inbound]], Awaitable[None]]) -> None:
    """Forever: take a batch from the source topics, hand it over, commit its offsets."""
    topics = [settings.topic(name) for name in SOURCE_TOPICS.values()]
    attempt = 0
    while True:
        consumer = AIOKafkaConsumer(
            *topics,
            group_id=ingest_group(settings),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=settings.batch_size,
            session_timeout_ms=int(settings.session_timeout * 1000),
            heartbeat_interval_ms=int(max(1.0, settings.session_timeout / 10) * 1000),
            **kafka_client_options(settings),  # type: ignore[arg-type]
        )
        try:
            await consumer.start()
            attempt = 0
            while True:
                fetched = await consumer.getmany(timeout_ms=int(settings.batch_within * 1000),
                                                 max_records=settings.batch_size)
                batch = [inbound(r) for records in fetched.values() for r in records]
                if batch:
                    await handle(batch)
                    await consumer.commit()
                    _observe_lag(consumer, fetched)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Kafka away or a rebalance error: start over from committed offsets
            attempt += 1
            log.warning("ingest consumer failed (%s: %s); restarting", type(exc).__name__, exc)
            await asyncio.sleep(min(5.0, 0.2 * 2**attempt))
        finally:
            await consumer.stop()


def _observe_lag(consumer: AIOKafkaConsumer, fetched: dict[TopicPartition, list[ConsumerRecord]]) -> None:  # type: ignore[type-arg]
    """Records left behind the batch just read, per partition that had any."""
    for tp, records in fetched.items():
        highwater = consumer.highwater(tp)
        if highwater is not None and records:
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - records[-1].offset - 1))
