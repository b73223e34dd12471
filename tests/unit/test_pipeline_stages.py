"""The pipeline's stages without Kafka: a fake ``send`` and the memory store stand in for I/O."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from counters.normalize import Digester
from counters.store import MemoryStore
from schemas.changes import decode_batch
from streams import metrics
from streams.pipeline import Inbound, Pipeline


class Sent:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes | None, bytes]] = []

    async def __call__(self, topic: str, key: bytes | None, value: bytes) -> Any:
        self.messages.append((topic, key, value))

        async def delivered() -> None:
            return None

        return delivered()

    def on(self, topic: str) -> list[bytes]:
        return [value for name, _, value in self.messages if name == topic]


class CountingStore(MemoryStore):
    """The memory store with what the pipeline also asks of the Redis store."""

    def __init__(self) -> None:
        super().__init__()
        self.forgotten: list[str] = []

    def cached(self, subscription: str) -> Any:
        return self.states.get(subscription)

    async def outbox(self, subscription: str) -> list[bytes]:
        return []

    async def outbox_sent(self, subscription: str, count: int) -> None:
        pass

    def forget(self, subscription: str) -> None:
        self.forgotten.append(subscription)


def pipeline() -> tuple[Pipeline, Sent, CountingStore]:
    sent, store = Sent(), CountingStore()
    return Pipeline(store, Digester(), sent, lambda name: f"t.{name}"), sent, store  # type: ignore[arg-type]


def inbound(values: Sequence[bytes | None], topic: str = "t.logins") -> list[Inbound]:
    return [Inbound(topic, 0, offset, 1_780_000_000_000, b"acme", value) for offset, value in enumerate(values)]


async def test_ingest_sends_one_changes_message_per_subscription_and_dead_letters_the_rest() -> None:
    stage, sent, _ = pipeline()
    good = [orjson.dumps({"type": "login", "subscription": s, "user_id": str(n)}) for n, s in enumerate("aab")]
    await stage.ingest(inbound([*good, b"not json", None]))
    batches = {decode_batch(v)[0].subscription: decode_batch(v) for v in sent.on("t.changes")}
    assert {name: len(changes) for name, changes in batches.items()} == {"a": 2, "b": 1}
    letters = [orjson.loads(v) for v in sent.on("t.deadletter")]
    assert [(d["offset"], d["reason"].split(":")[0]) for d in letters] == [(3, "not JSON"), (4, "empty message (null value or tombstone)")]


async def test_count_applies_each_offset_once() -> None:
    stage, sent, store = pipeline()
    await stage.ingest(inbound([orjson.dumps({"type": "login", "subscription": "a", "user_id": "1"})]))
    (batch,) = sent.on("t.changes")
    message = Inbound("t.changes", 0, 7, 0, b"a", batch)
    await stage.count([message])
    await stage.count([message])  # redelivered after a crash
    assert store.states["a"].summary()["records"] == 1
    assert store.states["a"].positions == {"t.changes:0": 8}


async def test_a_message_that_is_not_a_change_batch_is_dead_lettered_and_counting_goes_on() -> None:
    stage, sent, store = pipeline()
    await stage.count([Inbound("t.changes", 0, 0, 0, None, b"[1, 2]")])
    assert orjson.loads(sent.on("t.deadletter")[0])["reason"].startswith("not a change batch")
    assert store.states == {}


async def test_a_failure_in_the_count_stage_dead_letters_the_batch_instead_of_stopping(monkeypatch: Any) -> None:
    stage, sent, store = pipeline()
    await stage.ingest(inbound([orjson.dumps({"type": "login", "subscription": "a", "user_id": "1"})]))
    (batch,) = sent.on("t.changes")

    def broken(state: Any, change: Any) -> Any:
        raise RuntimeError("engine bug")

    monkeypatch.setattr("counters.engine.apply", broken)
    await stage.count([Inbound("t.changes", 0, 0, 0, b"a", batch)])
    (letter,) = [orjson.loads(v) for v in sent.on("t.deadletter")]
    assert letter["reason"] == "count stage failed: RuntimeError: engine bug"
    assert letter["offset"] == 0


def exported_subscriptions() -> set[str]:
    body, _ = metrics.render()
    return {line.split('subscription="')[1].split('"')[0] for line in body.decode().splitlines()
            if line.startswith("endusers_users{")}


async def test_after_a_rebalance_a_worker_lets_go_of_the_subscriptions_it_no_longer_counts() -> None:
    stage, sent, store = pipeline()
    for partition, subscription in enumerate(("gone-a", "kept-b")):
        await stage.ingest(inbound([orjson.dumps({"type": "login", "subscription": subscription, "user_id": "1"})]))
        await stage.count([Inbound("t.changes", partition, 0, 0, subscription.encode(), sent.on("t.changes")[-1])])
    assert {"gone-a", "kept-b"} <= exported_subscriptions()

    assert stage.keep_only({"t.changes:1"}) == ["gone-a"]

    assert store.forgotten == ["gone-a"]
    assert "gone-a" not in exported_subscriptions() and "kept-b" in exported_subscriptions()
    assert stage.keep_only({"t.changes:1"}) == []
