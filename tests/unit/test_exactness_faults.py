"""The count stage under faults, with fakes for Kafka and Redis: a rewind that cannot happen or that a
rebalance ends leaves nothing behind; a range Redis lost across a restart is read again; changes
digested with other settings are refused."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import orjson

from counters import Digester
from counters.memory_store import MemoryStore
from counters.ports import Position
from counters.state import SubscriptionState
from schemas.changes import decode_batch, decode_message, encode_batch
from schemas.outputs import CapacityEvent
from streams.kafka.messages import Inbound
from streams.observe import metrics
from streams.observe.readiness import Readiness
from tests.fixtures.stages import Stages, stages
from tests.unit.test_pipeline_stages import Sent

SOURCE = "t.changes:0"


class RollingBackStore(MemoryStore):
    """Redis after a failover that lost commits: ``roll_back(n)`` makes the next commit find the
    subscription's position at ``n`` instead of where the worker's copy had it."""

    def __init__(self) -> None:
        super().__init__()
        self._back: int | None = None

    def roll_back(self, position: int) -> None:
        self._back = position

    async def commit(self, state: SubscriptionState, position: Position | None, events: Sequence[CapacityEvent],
                     audits: Sequence[dict[str, Any]] = (), retried: bool = False) -> bool:
        if self._back is not None and position is not None:
            state.positions[position.source] = self._back  # what the promoted replica holds
            self._back = None
            return False
        return await super().commit(state, position, events, audits, retried)


class FakeRewind:
    """The consumer's seek: records each request; ``assigned`` says whether the partition is still here."""

    def __init__(self, assigned: bool) -> None:
        self.assigned = assigned
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, source: str, offset: int) -> bool:
        self.calls.append((source, offset))
        return self.assigned


async def changes_of(stage: Stages, sent: Sent, *users: str, subscription: str = "a") -> bytes:
    """One changes message with a login of each user, as ingest makes it."""
    before = len(sent.on("t.changes"))
    await stage.ingest.handle([Inbound("t.logins", 0, int(user), 1_780_000_000_000, subscription.encode(),
                                       orjson.dumps({"type": "login", "subscription": subscription, "user_id": user}))
                               for user in users])
    (message,) = sent.on("t.changes")[before:]
    return message


def at(offset: int, value: bytes) -> Inbound:
    return Inbound("t.changes", 0, offset, 0, b"a", value)


async def test_a_rewind_of_a_partition_that_moved_away_drops_nothing_later() -> None:
    store, sent, rewind = RollingBackStore(), Sent(), FakeRewind(assigned=False)
    stage = stages(store, sent, rewind=rewind)
    await stage.count.handle([at(0, await changes_of(stage, sent, "1"))])
    store.roll_back(0)
    await stage.count.handle([at(1, await changes_of(stage, sent, "2"))])  # refused: Redis went back in time
    assert rewind.calls == [(SOURCE, 0)]

    await stage.count.handle([at(2, await changes_of(stage, sent, "3"))])  # the partition, later

    assert store.states["a"].positions == {SOURCE: 3}, "a later message of the partition must be counted"
    assert store.states["a"].summary()["records"] == 3  # (the memory store keeps what its refused commit applied)


async def test_a_rebalance_ends_a_rewind_and_the_range_is_read_again_from_the_read_mark() -> None:
    store, sent, rewind = RollingBackStore(), Sent(), FakeRewind(assigned=True)
    stage = stages(store, sent, rewind=rewind)
    await stage.count.handle([at(0, await changes_of(stage, sent, "1"))])
    store.roll_back(0)
    second = await changes_of(stage, sent, "2")
    await stage.count.handle([at(1, second)])
    assert rewind.calls == [(SOURCE, 0)]

    stage.count.reassigned()  # Faust now reads the partition from Kafka's committed offset, 2
    await stage.count.handle([at(2, await changes_of(stage, sent, "3"))])
    assert rewind.calls == [(SOURCE, 0), (SOURCE, 1)], "read again from where the store's mark stands"
    await stage.count.handle([at(1, second), at(2, sent.on("t.changes")[-1])])

    assert store.states["a"].summary()["records"] == 3
    assert store.states["a"].positions == {SOURCE: 3}


async def test_a_range_redis_lost_across_a_restart_is_read_again_and_readiness_says_so() -> None:
    store, sent, rewind = MemoryStore(), Sent(), FakeRewind(assigned=True)
    stage = stages(store, sent, rewind=rewind)
    messages = [at(offset, await changes_of(stage, sent, str(offset))) for offset in range(6)]
    # the worker counted offsets 0 to 2 and Kafka committed 3; a failover kept only the first commit
    await stage.count.handle(messages[:1])
    assert store.marks == {SOURCE: 1}
    lost_before = metrics.LOST_RANGES.labels("t.changes", "0")._value.get()

    restarted = stages(store, sent, rewind=rewind)
    health = Readiness(30, SimpleNamespace(progress={}))
    health.rereading = restarted.count.rereading
    await restarted.count.handle(messages[3:])  # from Kafka's committed offset

    assert rewind.calls == [(SOURCE, 1)]
    assert metrics.LOST_RANGES.labels("t.changes", "0")._value.get() == lost_before + 1
    assert health.checks()["progress"] == "reading t.changes:0 again from offset 1 to 2: Redis lost those commits"
    await restarted.count.handle(messages[1:])
    assert store.states["a"].summary()["records"] == 6
    assert health.checks()["progress"] is True
    assert store.marks == {SOURCE: 6}


async def test_a_mark_at_or_past_the_first_offset_is_an_ordinary_restart() -> None:
    store, sent, rewind = MemoryStore(), Sent(), FakeRewind(assigned=True)
    stage = stages(store, sent, rewind=rewind)
    messages = [at(offset, await changes_of(stage, sent, str(offset))) for offset in range(3)]
    await stage.count.handle(messages)
    stage.count.reassigned()
    await stage.count.handle(messages[1:])  # Kafka had committed less than the store: redelivery
    assert rewind.calls == [] and store.states["a"].summary()["records"] == 3


async def test_changes_digested_with_another_secret_are_dead_lettered_and_counted_nowhere() -> None:
    store, sent = MemoryStore(), Sent()
    stage = stages(store, sent)
    other = stages(MemoryStore(), sent, digest=Digester(b"another secret"))
    refused_before = metrics.OTHER_DIGESTS._value.get()
    await stage.count.handle([at(0, await changes_of(stage, sent, "1"))])
    foreign = await changes_of(other, sent, "1")
    assert decode_message(foreign)[1] == Digester(b"another secret").fingerprint

    await stage.count.handle([at(1, foreign)])

    assert store.states["a"].summary()["records"] == 1, "the same person must not count twice"
    (letter,) = [orjson.loads(v) for v in sent.on("t.deadletter")]
    assert letter["offset"] == 1 and letter["reason"] == (
        f"not counted: digested with other settings (changes fingerprint {Digester(b'another secret').fingerprint}, "
        f"this worker and its state {Digester().fingerprint}): the worker that ingested it has another "
        f"ENDUSERS_SECRET or ENDUSERS_DIGEST_SCOPE")
    assert metrics.OTHER_DIGESTS._value.get() == refused_before + 1


async def test_a_changes_message_without_a_fingerprint_is_still_read() -> None:
    """Messages written before they carried one, by workers of an earlier version during an upgrade."""
    store, sent = MemoryStore(), Sent()
    stage = stages(store, sent)
    stamped = await changes_of(stage, sent, "1")
    changes, digest = decode_message(stamped)
    assert digest == Digester().fingerprint
    unstamped = encode_batch("a", changes)
    assert decode_message(unstamped) == (decode_batch(stamped), None)
    await stage.count.handle([at(0, unstamped)])
    assert store.states["a"].summary()["records"] == 1 and sent.on("t.deadletter") == []
