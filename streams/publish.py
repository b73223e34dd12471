"""``endusers publish``: JSONL files to the source topics, in file order (SPEC §7)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from streams.settings import SOURCE_TOPICS, Settings


class PublishClock:
    """Strictly increasing Kafka timestamps (ms), so an event without ``time`` keeps its place in the
    file's order even when its neighbours go to other topics."""

    def __init__(self) -> None:
        self._last = 0

    def __call__(self) -> int:
        self._last = max(time.time_ns() // 1_000_000, self._last + 1)
        return self._last


@dataclass
class PublishResult:
    sent: Counter[str] = field(default_factory=Counter)
    unroutable: list[str] = field(default_factory=list)
    unreadable: bool = False


def route(line: bytes) -> tuple[str, bytes | None] | str:
    """The source topic (without prefix) and key of a line, or why it cannot be routed."""
    try:
        document = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return f"not JSON: {exc}"
    if not isinstance(document, dict):
        return "not a JSON object"
    topic = SOURCE_TOPICS.get(document.get("type"))  # type: ignore[arg-type]
    if topic is None:
        return f"unknown type {document.get('type')!r}"
    subscription = document.get("subscription")
    return topic, subscription.encode() if isinstance(subscription, str) else None


async def publish_files(files: list[Path], settings: Settings | None = None, progress: bool = False) -> PublishResult:
    settings = settings or Settings()
    result = PublishResult()
    clock = PublishClock()
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=5,
                                max_batch_size=1024 * 1024, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        bar = _progress(files) if progress else None
        for path in files:
            try:
                lines = path.read_bytes().splitlines()
            except OSError as exc:
                result.unroutable.append(f"{path}: cannot read: {exc.strerror or exc}")
                result.unreadable = True
                continue
            pending = []
            for number, line in enumerate(lines, start=1):
                stripped = line.strip()
                if not stripped or stripped.startswith(b"#"):
                    continue
                routed = route(stripped)
                if isinstance(routed, str):
                    result.unroutable.append(f"{path}:{number}: not routed: {routed}")
                    continue
                topic, key = routed
                pending.append(await producer.send(settings.topic(topic), stripped, key=key, timestamp_ms=clock()))
                result.sent[settings.topic(topic)] += 1
                if bar is not None:
                    bar.update(len(line) + 1)
                if len(pending) >= 10_000:
                    for delivery in pending:
                        await delivery
                    pending.clear()
            for delivery in pending:
                await delivery
        if bar is not None:
            bar.close()
    finally:
        await producer.stop()
    return result


async def publish_documents(documents: list[dict[str, object]], settings: Settings | None = None) -> PublishResult:
    """Send already validated events (``config set``, ``import-users``) to their source topics."""
    settings = settings or Settings()
    result = PublishResult()
    clock = PublishClock()
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        deliveries = []
        for document in documents:
            routed = route(orjson.dumps(document))
            if isinstance(routed, str):
                result.unroutable.append(routed)
                continue
            topic, key = routed
            deliveries.append(await producer.send(settings.topic(topic), orjson.dumps(document), key=key,
                                                  timestamp_ms=clock()))
            result.sent[settings.topic(topic)] += 1
        for delivery in deliveries:
            await delivery
    finally:
        await producer.stop()
    return result


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
