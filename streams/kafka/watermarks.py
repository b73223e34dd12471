"""Watermarks: how far one of our producers has written, per source partition (docs/events.md#watermarks).

A producer of source events (``endusers publish``, a gateway) stamps each event with its arrival (the
``endusers-arrival`` header) and its producer id (``endusers-producer``). :class:`WatermarkWriter`
adds watermark records: on every partition of every source topic it writes to, a record saying "my
next event on this partition is stamped after T". Kafka keeps a partition's order (the producer is
idempotent), so once ingest has read such a record it knows nothing earlier can still arrive there
from this producer, and its arrival merge releases an event only when every partition has said so
(``streams.kafka.consumer.ArrivalMerge``). A closing record says the producer writes no more.

The public surface is :class:`WatermarkWriter` (``open``, ``send``, ``close``) and the header names;
the reading side uses :func:`control_of` and :func:`encode_marks`/:func:`decode_marks`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from counters import ArrivalClock
from streams.kafka.messages import ARRIVAL_HEADER, PRODUCER_HEADER, WATERMARK_HEADER

log = logging.getLogger(__name__)

OPEN = "open"
"""``endusers-watermark`` value: the producer announces itself on this partition (before any event of
it on the topic); its next record here is stamped after this one."""
PROGRESS = "progress"
"""``endusers-watermark`` value: the producer's next event on this partition is stamped after this one."""
CLOSED = "closed"
"""``endusers-watermark`` value: the producer writes nothing more to this partition."""

Headers = list[tuple[str, bytes]]


def control_of(value: bytes) -> str:
    """The watermark kind a header value names (an unknown value counts as progress: it still passes)."""
    return {b"open": OPEN, b"closed": CLOSED}.get(value, PROGRESS)


def encode_marks(marks: dict[str, int], limit: int = 64) -> str:
    """A partition's open producers and their watermarks, as committed with ingest's offset (Kafka
    allows 4 KiB of commit metadata by default: the ``limit`` latest producers fit)."""
    latest = sorted(marks.items(), key=lambda item: item[1])[-limit:]
    return orjson.dumps({"watermarks": dict(latest)}).decode()


def decode_marks(metadata: str | None) -> dict[str, int]:
    """What :func:`encode_marks` wrote; anything else (an older commit, another tool's) is no state."""
    try:
        document = orjson.loads(metadata or "{}")
    except orjson.JSONDecodeError:
        return {}
    marks = document.get("watermarks") if isinstance(document, dict) else None
    if not isinstance(marks, dict):
        return {}
    return {str(k): v for k, v in marks.items() if isinstance(v, int) and not isinstance(v, bool)}


class WatermarkWriter:
    """Sends one producer's source events with watermarks.

    ``send`` stamps and queues an event under a lock that the watermark beat also takes, so a
    watermark never overtakes an event stamped before it. Every ``interval`` seconds (and at
    ``close``) each partition of every topic written gets a watermark record ``T = max(latest stamp,
    wall clock)``; the clock then observes ``T``, so every later stamp is newer. An idle producer keeps
    beating, so ingest never waits for it longer than about ``interval``. Before the first event to a
    topic, every partition of it (and every partition written so far) gets an ``open`` watermark and
    Kafka acknowledges them: ingest learns of this producer on a partition before any of its events
    there can matter. Topics are announced as they are first written, so a producer needs no right on
    a topic it never writes (Kafka ACLs).
    """

    def __init__(self, producer: AIOKafkaProducer, clock: ArrivalClock, interval: float = 0.2,
                 name: str = "producer") -> None:
        self.producer = producer
        self.clock = clock
        self.interval = interval
        self.id = f"{name}-{secrets.token_hex(6)}"
        """Unique per run: a restarted producer is a new one (its predecessor's watermarks stay valid)."""
        self._lock = asyncio.Lock()
        self._partitions: dict[str, list[int]] = {}
        self._latest = 0
        self._beats: list[Awaitable[Any]] = []
        self._beating: asyncio.Task[None] | None = None

    async def open(self, topics: Iterable[str] = ()) -> None:
        """Announce this producer on every partition of ``topics`` (more are announced on first use)
        and start the beat."""
        async with self._lock:
            await self._announce([t for t in topics if t not in self._partitions])
        if self._beating is None:
            self._beating = asyncio.create_task(self._beat_forever(), name=f"watermarks {self.id}")

    async def send(self, topic: str, key: bytes | None, stamp: Callable[[], tuple[bytes, Headers]],
                   partition: int | None = None) -> Awaitable[Any]:
        """Stamp one event (``stamp`` returns its value and headers, the ``endusers-arrival`` one
        included) and queue it; returns its delivery."""
        async with self._lock:
            if topic not in self._partitions:
                await self._announce([topic])
            value, headers = stamp()
            arrival = next((int(v) for k, v in headers if k == ARRIVAL_HEADER), None)
            if arrival is not None:
                self._latest = max(self._latest, arrival)
            delivery = await self.producer.send(topic, value, key=key, partition=partition,
                                                headers=[*headers, (PRODUCER_HEADER, self.id.encode())])
        return delivery  # type: ignore[no-any-return]  # aiokafka has no types

    async def close(self) -> None:
        """Stop the beat and tell every partition written that this producer is done (acknowledged)."""
        if self._beating is not None:
            self._beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beating
            self._beating = None
        async with self._lock:
            await self._mark(CLOSED)
            await self._settle()

    async def _announce(self, topics: Sequence[str]) -> None:
        """Announce on the new topics' partitions, and again on every partition already written: a
        reader that sees this producer's next record after an announcement asks for every partition's
        end, which then includes the new topics' announcements."""
        for topic in topics:
            self._partitions[topic] = sorted(await self.producer.partitions_for(topic))
        if topics:
            await self._mark(OPEN)
            await self._settle()

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                async with self._lock:
                    await self._settle(done_only=True)
                    await self._mark(PROGRESS)
            except Exception as exc:  # the producer's own sends report Kafka's state; keep beating
                log.warning("watermark not sent (%s: %s)", type(exc).__name__, exc)

    async def _mark(self, kind: str, topics: Iterable[str] | None = None) -> None:
        mark = max(self._latest, time.time_ns() // 1000)
        self.clock.observe(mark)
        self._latest = mark
        value = orjson.dumps({"producer": self.id, "watermark": mark, "state": kind})
        headers = [(ARRIVAL_HEADER, str(mark).encode()), (PRODUCER_HEADER, self.id.encode()),
                   (WATERMARK_HEADER, kind.encode())]
        for topic in self._partitions if topics is None else topics:
            for partition in self._partitions[topic]:
                self._beats.append(await self.producer.send(topic, value, partition=partition, headers=headers))

    async def _settle(self, done_only: bool = False) -> None:
        """Wait for the watermarks' acknowledgements (``done_only``: collect the finished ones)."""
        waiting = [b for b in self._beats if not (done_only and not _done(b))]
        self._beats = [b for b in self._beats if done_only and not _done(b)]
        for delivery in waiting:
            await delivery


def _done(delivery: Awaitable[Any]) -> bool:
    return isinstance(delivery, asyncio.Future) and delivery.done()
