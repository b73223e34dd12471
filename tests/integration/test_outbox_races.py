"""No capacity event is lost when several workers publish the same outbox, or when a worker dies right
after its commit: two store clients on the real Redis, interleaved deterministically."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from counters.engine import capacity_event_id
from schemas.outputs import CapacityEvent
from streams.kafka.messages import Send
from streams.worker.outbox import OutboxPublisher
from streams.store.redis_store import RedisStore
from tests.fixtures.services import Services

pytestmark = pytest.mark.integration
TEST_DB = 15  # the store tests' database (one process runs its tests one at a time)


@pytest.fixture
async def redis_url(services: Services) -> AsyncIterator[str]:
    url = services.redis_db_url(TEST_DB)
    client = Redis.from_url(url)
    await client.flushdb()
    yield url
    await client.flushdb()
    await client.aclose()


def capacity_event(sequence: int) -> CapacityEvent:
    previous, level = (sequence - 1) * 10, sequence * 10
    return CapacityEvent(capacity_event_id("acme", "internal", sequence, previous, level), "acme", "internal",
                         previous, level, "up", level, 100, False, "2026-11-01T09:00:00Z", f"ev-{sequence}")


class Kafka:
    """Records what each worker sends to the capacity topic; a worker's deliveries can be held back."""

    def __init__(self) -> None:
        self.published: list[bytes] = []

    def sender(self, gate: asyncio.Event | None = None, sending: asyncio.Event | None = None) -> Send:
        async def send(topic: str, key: bytes | None, value: bytes, headers: Any = None, /) -> Awaitable[None]:
            if sending is not None:
                sending.set()

            async def delivered() -> None:
                if gate is not None:
                    await gate.wait()
                self.published.append(value)

            return asyncio.ensure_future(delivered())

        return send


def worker(store: RedisStore, send: Send) -> OutboxPublisher:
    return OutboxPublisher(store, send, lambda name: f"t.{name}")


async def commit_event(store: RedisStore, event: CapacityEvent) -> None:
    state = await store.load("acme")
    assert await store.commit(state, None, [event])


async def test_an_outbox_entry_is_removed_by_its_identity_so_a_slower_worker_never_deletes_a_newer_one(
        redis_url: str) -> None:
    a, b = RedisStore.from_url(redis_url), RedisStore.from_url(redis_url)
    kafka = Kafka()
    gate, a_sending = asyncio.Event(), asyncio.Event()
    worker_a = worker(a, kafka.sender(gate, a_sending))
    worker_b = worker(b, kafka.sender())
    e1, e2 = capacity_event(1), capacity_event(2)
    try:
        await commit_event(b, e1)
        flushing = asyncio.create_task(worker_a.flush("acme"))  # A reads [e1] and waits for Kafka
        await a_sending.wait()
        assert await worker_b.flush("acme") == 1  # B publishes e1 and removes it ...
        await commit_event(b, e2)  # ... then commits e2
        gate.set()
        await flushing  # A's removal of what it published must leave e2 alone
        assert await b.outbox("acme") == [e2.to_bytes()]
        await worker_b.sweep()
        assert set(kafka.published) == {e1.to_bytes(), e2.to_bytes()}
        assert await b.outbox("acme") == []
    finally:
        await a.close()
        await b.close()


class Crash(Exception):
    """The worker process dies here."""


async def test_a_worker_that_dies_right_after_its_first_commit_leaves_its_events_to_the_sweep(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    dying, survivor = RedisStore.from_url(redis_url), RedisStore.from_url(redis_url)
    commit_script = dying._commit

    async def commit_then_die(*args: Any, **kwargs: Any) -> Any:
        await commit_script(*args, **kwargs)
        raise Crash()

    monkeypatch.setattr(dying, "_commit", commit_then_die)
    kafka = Kafka()
    try:
        with pytest.raises(Crash):
            await commit_event(dying, capacity_event(1))
        await worker(survivor, kafka.sender()).sweep()
        assert kafka.published == [capacity_event(1).to_bytes()]
        assert await survivor.subscriptions() == ["acme"]
    finally:
        await dying.close()
        await survivor.close()


async def test_a_subscription_registered_without_a_commit_is_invisible_to_readers(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    dying, reader = RedisStore.from_url(redis_url), RedisStore.from_url(redis_url)

    async def die(*args: Any, **kwargs: Any) -> Any:
        raise Crash()

    monkeypatch.setattr(dying, "_commit", die)
    try:
        with pytest.raises(Crash):
            await commit_event(dying, capacity_event(1))
        assert await reader.redis.sismember("endusers:subscriptions", "acme")
        assert await reader.subscriptions() == []
        assert await reader.counts("acme") is None
        kafka = Kafka()
        await worker(reader, kafka.sender()).sweep()
        assert kafka.published == []
    finally:
        await dying.close()
        await reader.close()


async def test_two_workers_closing_the_same_statement_at_once_freeze_and_publish_it_once(redis_url: str) -> None:
    """During a rebalance two workers may both count a subscription: their closers race, and the
    statement is frozen (HSETNX) and queued once; a later sweep finds nothing due."""
    from datetime import datetime, timezone

    from streams.worker.statements import StatementCloser

    a, b = RedisStore.from_url(redis_url), RedisStore.from_url(redis_url)
    state = await a.load("acme")
    state.settings.statement_grace = 0
    assert await a.commit(state, None, [])  # today's history entry, which a period needs to get a statement
    kafka = Kafka()
    later = lambda: datetime.now(timezone.utc).replace(year=datetime.now(timezone.utc).year + 1)  # noqa: E731
    closers = [StatementCloser(store, OutboxPublisher(store, kafka.sender(), lambda name: f"t.{name}",
                                                      kind="statements"), lambda: ["acme"], clock=later)
               for store in (a, b)]
    frozen = await asyncio.gather(*(closer.sweep() for closer in closers))
    assert sum(frozen) == 2  # the two periods that ended by a year from now, each frozen by one of them
    # delivery is at least once (both workers may sweep the outbox at the same moment), always with
    # the same id and the same frozen figures: two statements, however many copies
    assert len({orjson.loads(v)["id"] for v in kafka.published}) == 2 and len(set(kafka.published)) == 2
    assert await a.outbox("acme", "statements") == []
    published = len(kafka.published)
    assert await asyncio.gather(*(closer.sweep() for closer in closers)) == [0, 0]
    assert len(kafka.published) == published  # nothing is frozen or queued again
    for store in (a, b):
        await store.close()
