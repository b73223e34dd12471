"""A consumer of a topic written by someone else (Event Hubs' Kafka endpoint, for ``connect entra``):
batches handed to a handler, and the group's offsets committed only once the handler has returned, so
nothing is acknowledged before what it became is on our own topics (at least once)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer

from streams.kafka.errors import translated


@dataclass(frozen=True)
class Message:
    """One message: where it was read (for the reasons logged) and its bytes."""

    topic: str
    partition: int
    offset: int
    value: bytes | None

    @property
    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


@translated
async def consume(topic: str, group: str, options: dict[str, object], stop: asyncio.Event,
                  handle: Callable[[list[Message]], Awaitable[None]], max_records: int = 500) -> None:
    """Read ``topic`` as consumer group ``group`` (from its oldest message the first time) until ``stop``;
    each batch goes to ``handle``, then its offsets are committed."""
    consumer = AIOKafkaConsumer(topic, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest",
                                **options)
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=500, max_records=max_records)
            messages = [Message(r.topic, r.partition, r.offset, r.value) for records in batch.values() for r in records]
            if messages:
                await handle(messages)
                await consumer.commit({tp: records[-1].offset + 1 for tp, records in batch.items() if records})
    finally:
        await consumer.stop()
