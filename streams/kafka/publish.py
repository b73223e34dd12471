"""``endusers publish``: JSONL files to the source topics, in file order (docs/operations.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from counters import ArrivalClock
from schemas.events import parse_rfc3339
from schemas.jsonl import event_lines
from schemas.outputs import format_instant
from streams.settings import SOURCE_TOPICS, WorkerSettings, kafka_client_options
from streams.kafka.errors import translated
from streams.kafka.messages import ARRIVAL_HEADER
from streams.kafka.topics import ensure_topics
from streams.kafka.watermarks import Headers, WatermarkWriter

log = logging.getLogger(__name__)


@dataclass
class PublishResult:
    sent: Counter[str] = field(default_factory=Counter)
    unroutable: list[str] = field(default_factory=list)
    unreadable: bool = False


def route(line: bytes) -> tuple[str, bytes | None, dict[str, object]] | str:
    """The source topic (without prefix), key and parsed event of a line, or why it cannot be routed."""
    try:
        document = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return f"not JSON: {exc}"
    if not isinstance(document, dict):
        return "not a JSON object"
    topic = SOURCE_TOPICS.get(kind) if isinstance(kind := document.get("type"), str) else None
    if topic is None:
        return f"unknown type {document.get('type')!r}"
    subscription = document.get("subscription")
    return topic, subscription.encode() if isinstance(subscription, str) else None, document


async def _source_topics_exist(settings: WorkerSettings, topics: list[str] | None = None) -> None:
    """Create the source topics with the configured partitions when no worker has yet, so that the
    first send does not leave the broker to auto-create them with its default (often 1). A publisher
    without the right to create topics still publishes. In the per-subscription layout the topics
    are known only from the events: :class:`_Topics` asks for each one the first time."""
    if topics is None:
        if settings.per_subscription_topics:
            return
        topics = [settings.topic(t) for t in SOURCE_TOPICS.values()]
    try:
        for warning in await ensure_topics(settings, topics):
            log.warning(warning)
    except Exception as exc:
        log.warning("cannot check or create the source topics (%s); publishing anyway", exc)


class _Topics:
    """The full source topic of each routed event, created (when this identity may) on first use."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.known: set[str] = set()

    async def __call__(self, name: str, document: dict[str, object]) -> str | None:
        topic = self.settings.source_topic(name, document.get("subscription"))
        if topic is not None and topic not in self.known and self.settings.per_subscription_topics:
            await _source_topics_exist(self.settings, [topic])
        if topic is not None:
            self.known.add(topic)
        return topic


_NO_TOPIC = ("no topic for this subscription: ENDUSERS_TOPIC_LAYOUT=per-subscription needs a subscription "
             "made of letters, digits, '.', '_' or '-'")


def stamped(line: bytes, document: dict[str, object], clock: ArrivalClock,
            max_future: int) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The line as published and its headers. An event without ``time`` gets its publish time
    (microseconds, strictly increasing, past every explicit time before it, exactly as ``replay``
    stamps it); every event carries its place in the file's order, which ingest keeps across topics.
    A time more than ``max_future`` ahead is not one to pass: the pipeline rejects that event, and the
    untimed events after it must not inherit its far future."""
    explicit = document.get("time")
    if explicit is not None:
        try:
            instant = parse_rfc3339(explicit)
        except ValueError:
            pass  # the pipeline rejects it with the reason
        else:
            if instant - clock.now() <= max_future:
                clock.observe(instant)
    arrival = clock()
    if explicit is None:
        line = orjson.dumps({**document, "time": format_instant(arrival)})
    return line, [(ARRIVAL_HEADER, str(arrival).encode())]


Deliver = Callable[[str, bytes | None, Callable[[], tuple[bytes, Headers]]], Awaitable[Awaitable[Any]]]
"""Queues one routed event on a producer: its topic, its key and how to stamp it (called as it is
queued); returns its delivery, done once Kafka has acknowledged it."""


class _Queue:
    """Routes, stamps and queues event lines on their source topics, in order, and records in
    ``result`` what it sent and what it could not route. The one sending loop of ``endusers publish``,
    the connectors and the gateway: they differ only in how an event is queued (``deliver``: with
    watermarks, or straight onto the producer) and in what they share across runs (the arrival clock,
    the topics already created)."""

    def __init__(self, settings: WorkerSettings, clock: ArrivalClock, topic_of: _Topics, deliver: Deliver,
                 result: PublishResult) -> None:
        self.settings, self.clock, self.topic_of, self.deliver = settings, clock, topic_of, deliver
        self.result = result
        self.pending: list[Awaitable[Any]] = []

    async def send(self, line: bytes, where: str = "") -> None:
        """Send one event line; ``where`` prefixes the reason when it cannot be routed."""
        routed = route(line)
        if isinstance(routed, str):
            self.result.unroutable.append(f"{where}{routed}")
            return
        topic, key, document = routed
        full = await self.topic_of(topic, document)
        if full is None:
            self.result.unroutable.append(f"{where}{_NO_TOPIC}")
            return
        # A config event reaches the broker after everything before it and before anything after it.
        # Topics are written independently: without this, a fetch could see later logins before an
        # earlier config, which the arrival merge of a worker without watermarks (an earlier version)
        # cannot wait for, and capacity levels would move along another path than ``replay`` takes.
        # Configs are rare, so the extra round trips cost little.
        config = topic == SOURCE_TOPICS["config"]
        if config:
            await self.flush()
        stamp = lambda: stamped(line, document, self.clock, self.settings.max_future)  # noqa: E731
        self.pending.append(await self.deliver(full, key, stamp))
        self.result.sent[full] += 1
        if config or len(self.pending) >= 10_000:
            await self.flush()

    async def flush(self) -> None:
        """Wait until Kafka has acknowledged every pending send, then forget them."""
        for delivery in self.pending:
            await delivery
        self.pending.clear()


class _Sender(_Queue):
    """A :class:`_Queue` on a producer of its own that writes watermarks, for one whole publish: the
    arrival clock runs across every file, as ``replay``'s does."""

    def __init__(self, settings: WorkerSettings, result: PublishResult, **producer_options: Any) -> None:
        self.producer = AIOKafkaProducer(**kafka_client_options(settings), acks="all", enable_idempotence=True,
                                         **producer_options)
        clock = ArrivalClock()
        # ingest releases an event once every partition's watermark has passed it (docs/design.md)
        self.watermarks = WatermarkWriter(self.producer, clock, settings.watermark_interval, "publish")
        super().__init__(settings, clock, _Topics(settings), self.watermarks.send, result)

    async def __aenter__(self) -> _Sender:
        """The producer first: a broker that cannot be reached fails here, in one error, and the
        producer is closed on the way out, whatever failed. Each topic is announced (watermarks)
        before its first event."""
        try:
            await self.producer.start()
            await _source_topics_exist(self.settings)
            await self.watermarks.open()
        except BaseException:
            await self.producer.stop()
            raise
        return self

    async def __aexit__(self, kind: object, *_: object) -> None:
        try:
            if kind is None:
                await self.flush()
                await self.watermarks.close()
            else:  # closing after a failure too spares ingest the wait for a silent producer, if it can
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.watermarks.close(), 5)
        finally:
            await self.producer.stop()


@translated
async def publish_files(files: list[Path], settings: WorkerSettings | None = None, progress: bool = False,
                        skip: Mapping[Path, AbstractSet[int]] | None = None) -> PublishResult:
    """Send the event lines of JSONL ``files`` (schemas/jsonl.py) to their source topics, in file order,
    but for the line numbers ``skip`` holds for a file (lines found invalid before sending)."""
    result = PublishResult()
    bar = _progress(files) if progress else None
    async with _Sender(settings or WorkerSettings(), result, linger_ms=5, max_batch_size=1024 * 1024) as sender:
        for path in files:
            try:
                lines = path.read_bytes().splitlines()
            except OSError as exc:
                result.unroutable.append(f"{path}: cannot read: {exc.strerror or exc}")
                result.unreadable = True
                continue
            skipped = (skip or {}).get(path, frozenset())
            for number, line in event_lines(lines):
                if number not in skipped:
                    await sender.send(line.strip(), f"{path}:{number}: not routed: ")
                if bar is not None:
                    bar.update(len(line) + 1)
            await sender.flush()
    if bar is not None:
        bar.close()
    return result


@translated
async def publish_documents(documents: list[dict[str, object]], settings: WorkerSettings | None = None) -> PublishResult:
    """Send already validated events (``config set``, ``import-users``) to their source topics."""
    result = PublishResult()
    async with _Sender(settings or WorkerSettings(), result) as sender:
        for document in documents:
            await sender.send(orjson.dumps(document))
    return result


def sender(settings: WorkerSettings, result: PublishResult | None = None) -> _Sender:
    """A long-lived sender for a connector (``async with``): ``send`` encoded events, then ``flush``
    to wait until Kafka has acknowledged them, with the producer guarantees of ``endusers publish``."""
    return _Sender(settings, result or PublishResult(), linger_ms=5)


class _Bar:
    def __init__(self, total: int) -> None:
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

        self._progress = Progress("publishing", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                                  TimeRemainingColumn(), transient=False)
        self._task = self._progress.add_task("publish", total=total)
        self._progress.start()

    def update(self, amount: int) -> None:
        self._progress.advance(self._task, amount)

    def close(self) -> None:
        self._progress.stop()


def _progress(files: list[Path]) -> _Bar:
    return _Bar(sum(p.stat().st_size for p in files if p.exists()))


class Publisher:
    """A producer a server keeps open (``endusers gateway``): each :meth:`publish` sends a batch of
    validated events to their source topics and returns only once Kafka has acknowledged every one,
    with the guarantees of ``endusers publish`` (acks=all, idempotent, the arrival header). It starts
    on first use and again after a failed start, so a server whose broker is down at start still
    answers, and recovers when the broker comes back.

    It writes no watermarks: a server is never done, so its beats would keep every source partition
    busy at rest. Its events are ordered by arrival, as any producer's without watermarks
    (docs/design.md, ordering across source topics)."""

    def __init__(self, settings: WorkerSettings, **producer_options: Any) -> None:
        self.settings, self.options = settings, producer_options
        self.clock = ArrivalClock()
        self.topic_of = _Topics(settings)
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()

    async def _started(self) -> AIOKafkaProducer:
        async with self._starting:
            if self._producer is None:
                producer = AIOKafkaProducer(**kafka_client_options(self.settings), acks="all",
                                            enable_idempotence=True, **self.options)
                try:
                    await producer.start()
                    await _source_topics_exist(self.settings)
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    @translated
    async def publish(self, documents: list[dict[str, object]]) -> PublishResult:
        """Send ``documents`` in order and wait for Kafka's acknowledgement of all of them;
        :class:`BrokerUnavailable` when Kafka cannot be reached or does not acknowledge."""
        producer = await self._started()

        async def deliver(topic: str, key: bytes | None, stamp: Callable[[], tuple[bytes, Headers]]) -> Any:
            value, headers = stamp()
            return await producer.send(topic, value, key=key, headers=headers)

        queue = _Queue(self.settings, self.clock, self.topic_of, deliver, PublishResult())
        for document in documents:
            await queue.send(orjson.dumps(document))
        await queue.flush()
        return queue.result

    @translated
    async def check(self) -> None:
        """Raise :class:`BrokerUnavailable` unless a broker answers a metadata request now."""
        producer = await self._started()
        await producer.client.fetch_all_metadata()

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()
