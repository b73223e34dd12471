"""The worker's stages without Kafka: a fake ``send`` and the memory store stand in for I/O."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any

import orjson

from counters.memory_store import MemoryStore
from counters import StoreUnavailable
from counters.ports import Position
from counters.state import SubscriptionState
from schemas.changes import MAX_MESSAGE_BYTES, decode_batch
from schemas.limits import MAX_STRING
from schemas.cloudevents import Headers
from schemas.outputs import CapacityEvent, format_instant
from streams.observe import metrics
from streams.kafka.messages import Inbound
from tests.fixtures.stages import Stages, stages


class Sent:
    """Kafka's producer: records what it accepts; a topic in ``refused`` fails its deliveries."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes | None, bytes, Headers | None]] = []
        self.refused: set[str] = set()

    async def __call__(self, topic: str, key: bytes | None, value: bytes, headers: Headers | None = None, /
                       ) -> Awaitable[None]:
        if topic not in self.refused:
            self.messages.append((topic, key, value, headers))

        async def delivered() -> None:
            if topic in self.refused:
                raise ConnectionError(f"{topic}: not delivered")

        return delivered()

    def on(self, topic: str) -> list[bytes]:
        return [value for name, _, value, _ in self.messages if name == topic]


def pipeline() -> tuple[Stages, Sent, MemoryStore]:
    sent, store = Sent(), MemoryStore()
    return stages(store, sent), sent, store


def inbound(values: Sequence[bytes | None], topic: str = "t.logins") -> list[Inbound]:
    return [Inbound(topic, 0, offset, 1_780_000_000_000, b"acme", value) for offset, value in enumerate(values)]


async def test_ingest_sends_one_changes_message_per_subscription_and_dead_letters_the_rest() -> None:
    stage, sent, _ = pipeline()
    good = [orjson.dumps({"type": "login", "subscription": s, "user_id": str(n)}) for n, s in enumerate("aab")]
    await stage.ingest.handle(inbound([*good, b"not json", None]))
    batches = {decode_batch(v)[0].subscription: decode_batch(v) for v in sent.on("t.changes")}
    assert {name: len(changes) for name, changes in batches.items()} == {"a": 2, "b": 1}
    letters = [orjson.loads(v) for v in sent.on("t.deadletter")]
    assert [(d["offset"], d["reason"].split(":")[0]) for d in letters] == [(3, "not JSON"), (4, "empty message (null value or tombstone)")]


async def test_count_applies_each_offset_once() -> None:
    stage, sent, store = pipeline()
    await stage.ingest.handle(inbound([orjson.dumps({"type": "login", "subscription": "a", "user_id": "1"})]))
    (batch,) = sent.on("t.changes")
    message = Inbound("t.changes", 0, 7, 0, b"a", batch)
    await stage.count.handle([message])
    await stage.count.handle([message])  # redelivered after a crash
    assert store.states["a"].summary()["records"] == 1
    assert store.states["a"].positions == {"t.changes:0": 8}


async def test_an_event_that_ingest_forwards_again_is_applied_once() -> None:
    """After a crash ingest re-reads from its last commit and forwards events again, in new messages:
    re-applying an older config would move the levels along another path than replay's."""
    stage, sent, store = pipeline()
    events = [
        {"type": "config", "subscription": "a", "domains": ["corp.example"], "capacity": {"external": 1}},
        {"type": "login", "subscription": "a", "user_id": "1", "email": "x@ext.io"},
        {"type": "config", "subscription": "a", "capacity": {"external": 10}},
    ]
    topics = ["t.config", "t.logins", "t.config"]
    offsets = [0, 0, 1]
    consumed = [Inbound(t, 0, o, 1_780_000_000_000, b"a", orjson.dumps(e)) for t, o, e in zip(topics, offsets, events)]
    await stage.ingest.handle(consumed)
    await stage.ingest.handle(consumed)  # the same source offsets again
    first, again = sent.on("t.changes")
    await stage.count.handle([Inbound("t.changes", 0, 0, 0, b"a", first), Inbound("t.changes", 0, 1, 0, b"a", again)])
    state = store.states["a"]
    assert state.settings.capacity["external"] == 10
    published = [orjson.loads(value) for value in sent.on("t.capacity")]
    assert [(e["previous_level"], e["level"]) for e in published] == [(0, 100), (100, 0)]
    assert state.ingested == {"t.config:0": 2, "t.logins:0": 1}


async def test_a_message_that_is_not_a_change_batch_is_dead_lettered_and_counting_goes_on() -> None:
    stage, sent, store = pipeline()
    await stage.count.handle([Inbound("t.changes", 0, 0, 0, None, b"[1, 2]")])
    assert orjson.loads(sent.on("t.deadletter")[0])["reason"].startswith("not a change batch")
    assert store.states == {}


async def test_a_failure_in_the_count_stage_dead_letters_the_batch_instead_of_stopping(monkeypatch: Any) -> None:
    stage, sent, store = pipeline()
    await stage.ingest.handle(inbound([orjson.dumps({"type": "login", "subscription": "a", "user_id": "1"})]))
    (batch,) = sent.on("t.changes")

    def broken(state: Any, change: Any) -> Any:
        raise RuntimeError("engine bug")

    monkeypatch.setattr("streams.worker.count.apply", broken)
    await stage.count.handle([Inbound("t.changes", 0, 0, 0, b"a", batch)])
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
        await stage.ingest.handle(inbound([orjson.dumps({"type": "login", "subscription": subscription, "user_id": "1"})]))
        await stage.count.handle([Inbound("t.changes", partition, 0, 0, subscription.encode(), sent.on("t.changes")[-1])])
    assert {"gone-a", "kept-b"} <= exported_subscriptions()
    assert store.cached("gone-a") is not None and store.cached("kept-b") is not None

    assert stage.ownership.keep_only({"t.changes:1"}) == ["gone-a"]

    assert store.cached("gone-a") is None and store.cached("kept-b") is not None
    assert "gone-a" not in exported_subscriptions() and "kept-b" in exported_subscriptions()
    assert stage.ownership.keep_only({"t.changes:1"}) == []


EVENTS_BY_TYPE = {
    "login": {"type": "login", "subscription": "acme", "user_id": "1"},
    "profile": {"type": "profile", "subscription": "acme", "user_id": "1", "op": "upsert"},
    "visit": {"type": "visit", "subscription": "acme", "session_id": "s1"},
    "config": {"type": "config", "subscription": "acme", "capacity": {"internal": 0}},
}


async def test_each_source_topic_accepts_only_its_own_event_type() -> None:
    for name, accepted in (("logins", "login"), ("profiles", "profile"), ("visits", "visit"), ("config", "config")):
        stage, sent, _ = pipeline()
        rejected_before = metrics.REJECTIONS.labels("wrong_topic")._value.get()
        await stage.ingest.handle(inbound([orjson.dumps(e) for e in EVENTS_BY_TYPE.values()], topic=f"t.{name}"))
        changes = [c for value in sent.on("t.changes") for c in decode_batch(value)]
        assert [c.kind for c in changes] == [{"login": "login", "profile": "upsert", "visit": "anonymous",
                                              "config": "config"}[accepted]]
        letters = [orjson.loads(v) for v in sent.on("t.deadletter")]
        assert [d["reason"] for d in letters] == [f"type {kind} is not accepted on topic t.{name}"
                                                  for kind in EVENTS_BY_TYPE if kind != accepted]
        assert metrics.REJECTIONS.labels("wrong_topic")._value.get() == rejected_before + 3


async def test_a_config_on_the_logins_topic_changes_no_settings() -> None:
    stage, sent, store = pipeline()
    await stage.ingest.handle(inbound([orjson.dumps(EVENTS_BY_TYPE["config"])], topic="t.logins"))
    assert sent.on("t.changes") == []
    assert orjson.loads(sent.on("t.deadletter")[0])["reason"] == "type config is not accepted on topic t.logins"
    assert store.states == {}


HOUR_MS = 3_600_000


def at(ms: int) -> str:
    return format_instant(ms * 1000)


async def test_an_event_timed_beyond_max_future_of_the_processing_clock_is_dead_lettered() -> None:
    stage, sent, _ = pipeline()  # 24h; the record timestamps are 1_780_000_000_000 ms (2026-05-28)
    stamp = 1_780_000_000_000
    rejected_before = metrics.REJECTIONS.labels("future_time")._value.get()
    await stage.ingest.handle(inbound([
        orjson.dumps({"type": "profile", "op": "delete", "subscription": "acme", "user_id": "1",
                      "time": "9999-01-01T00:00:00Z"}),
        orjson.dumps({"type": "login", "subscription": "acme", "user_id": "2", "time": at(stamp + 23 * HOUR_MS)}),
        orjson.dumps({"type": "login", "subscription": "acme", "user_id": "3", "time": at(stamp + 25 * HOUR_MS)}),
    ]))
    letters = [orjson.loads(v) for v in sent.on("t.deadletter")]
    assert [(d["offset"], d["reason"]) for d in letters] == [
        (0, "type profile is not accepted on topic t.logins"),
        (2, f"time is in the future: {at(stamp + 25 * HOUR_MS)} is more than 24h ahead of {at(stamp)}"),
    ]
    assert [c.record is not None for v in sent.on("t.changes") for c in decode_batch(v)] == [True]
    assert metrics.REJECTIONS.labels("future_time")._value.get() == rejected_before + 1

    stage, sent, _ = pipeline()
    await stage.ingest.handle(inbound([orjson.dumps({"type": "profile", "op": "delete", "subscription": "acme",
                                              "user_id": "1", "time": "9999-01-01T00:00:00Z"})], topic="t.profiles"))
    assert orjson.loads(sent.on("t.deadletter")[0])["reason"].startswith("time is in the future: 9999-01-01T00:00:00Z")
    assert sent.on("t.changes") == []


async def test_an_untimed_event_whose_record_timestamp_is_beyond_max_future_is_dead_lettered() -> None:
    """The record timestamp is the time an untimed event takes, and a producer sets it freely: a delete
    or a config stamped 9999 would otherwise block every later event of its record or keys."""
    now = 1_780_000_000.0  # the worker's clock, in seconds
    sent = Sent()
    stage = stages(MemoryStore(), sent, clock=lambda: now)
    forged = 253_402_214_400_000  # 9999-12-31T00:00:00Z, in ms
    ahead = int(now * 1000) + 23 * HOUR_MS  # a producer's clock a little ahead is still within 24h
    untimed = [({"type": "profile", "op": "delete", "subscription": "acme", "user_id": "1"}, "t.profiles", forged),
               ({"type": "config", "subscription": "acme", "capacity": {"internal": 1}}, "t.config", forged),
               ({"type": "login", "subscription": "acme", "user_id": "2"}, "t.logins", ahead)]
    await stage.ingest.handle([Inbound(topic, 0, offset, stamp, b"acme", orjson.dumps(event))
                               for offset, (event, topic, stamp) in enumerate(untimed)])
    reasons = [orjson.loads(v)["reason"] for v in sent.on("t.deadletter")]
    assert reasons == [f"the record timestamp (the event has no time) is in the future: 9999-12-31T00:00:00Z is "
                       f"more than 24h ahead of {at(int(now * 1000))}"] * 2
    [change] = [c for v in sent.on("t.changes") for c in decode_batch(v)]
    assert change.kind == "login" and change.time == ahead * 1000


async def test_the_processing_clock_is_the_record_timestamp_but_never_later_than_the_workers_clock() -> None:
    sent, store = Sent(), MemoryStore()
    worker_now_ms = 1_780_000_000_000
    stage = stages(store, sent, max_future=HOUR_MS * 1000, clock=lambda: worker_now_ms / 1000)
    event = {"type": "login", "subscription": "acme", "user_id": "1", "time": at(worker_now_ms + 2 * HOUR_MS)}
    # a producer's record timestamp set far ahead moves nothing: the worker's clock caps it
    await stage.ingest.handle([Inbound("t.logins", 0, 0, worker_now_ms + 10 * HOUR_MS, None, orjson.dumps(event))])
    # an earlier record timestamp (a backlog read late) gives the verdict it had when it was written:
    # 2 hours ahead of its timestamp, although in the past of the worker's clock by now
    written = worker_now_ms - 3 * HOUR_MS
    await stage.ingest.handle([Inbound("t.logins", 0, 1, written, None, orjson.dumps({**event, "time": at(written + HOUR_MS)})),
                        Inbound("t.logins", 0, 2, written, None,
                                orjson.dumps({**event, "time": at(written + 2 * HOUR_MS)}))])
    assert [orjson.loads(v)["offset"] for v in sent.on("t.deadletter")] == [0, 2]
    assert len([c for v in sent.on("t.changes") for c in decode_batch(v)]) == 1


async def test_each_applied_config_change_is_audited_with_its_source_actor_and_settings_before_and_after() -> None:
    stage, sent, store = pipeline()
    configs = [orjson.dumps({"type": "config", "subscription": "a", "actor": "alice", "id": "c1",
                             "capacity": {"internal": 10}}),
               orjson.dumps({"type": "login", "subscription": "a", "user_id": "1"}),
               orjson.dumps({"type": "config", "subscription": "a", "domains": ["example.com"]})]
    await stage.ingest.handle(inbound(configs, topic="t.config"))
    (batch,) = sent.on("t.changes")
    await stage.count.handle([Inbound("t.changes", 0, 0, 0, b"a", batch)])
    second, first = await store.audit("a")  # newest first
    assert (first["topic"], first["partition"], first["offset"], first["actor"], first["event_id"]) == \
        ("t.config", 0, 0, "alice", "c1")
    assert first["diff"] == {"capacity.internal": {"before": None, "after": 10}}
    assert first["changed"] == ["capacity"]
    assert (second["offset"], second["actor"], second["changed"]) == (2, None, ["domains"])
    assert second["diff"] == {"domains": {"added": ["example.com"], "removed": [], "added_count": 1,
                                          "removed_count": 0}}
    await stage.count.handle([Inbound("t.changes", 0, 0, 0, b"a", batch)])  # redelivered: applied once, audited once
    assert len(await store.audit("a")) == 2


async def test_dead_letters_keep_reason_and_position_but_not_personal_data() -> None:
    stage, sent, _ = pipeline()
    bad = orjson.dumps({"type": "login", "subscription": "a", "user_id": {"x": 1}, "email": "ann@example.com",
                        "username": "ann", "phone": "+3212345678", "name": "Ann Smith"})
    await stage.ingest.handle(inbound([bad, b"not json with bob@example.com"]))
    letter, garbage = [orjson.loads(v) for v in sent.on("t.deadletter")]
    assert letter["reason"].startswith("user_id") and (letter["topic"], letter["offset"]) == ("t.logins", 0)
    value = orjson.loads(letter["value"])
    assert value == {"type": "login", "subscription": "a", "user_id": "<user_id: object of 1 fields>",
                     "email": "<email: 15 chars>", "username": "<username: 3 chars>", "phone": "<phone: 11 chars>",
                     "name": "<name: 9 chars>"}
    assert letter["redacted"] is True and letter["value_size"] == len(bad) and letter["key"] == "<key: 4 bytes>"
    assert {key for topic, key, _, _ in sent.messages if topic == "t.deadletter"} == {b"t.logins:0"}
    assert "bob" not in garbage["value"] and garbage["value"] == "<not JSON: 29 bytes>"


async def test_raw_dead_letters_keep_the_value_as_it_came() -> None:
    sent, store = Sent(), MemoryStore()
    stage = stages(store, sent, raw_dead_letters=True)
    bad = orjson.dumps({"type": "login", "subscription": "a", "user_id": {"x": 1}, "email": "ann@example.com"})
    await stage.ingest.handle(inbound([bad]))
    (letter,) = [orjson.loads(v) for v in sent.on("t.deadletter")]
    assert letter["value"] == bad.decode() and letter["redacted"] is False


def test_per_subscription_topics_are_named_and_owned_by_their_subscription() -> None:
    from streams.settings import WorkerSettings

    shared = WorkerSettings(topic_prefix="p")
    assert shared.source_topic("logins", "acme") == "p.logins" and shared.topic_subscription("p.logins") is None
    layout = WorkerSettings(topic_prefix="p", topic_layout="per-subscription")
    assert layout.source_topic("logins", "acme") == "p.logins.acme"
    assert layout.source_topic("logins", "a b") is None and layout.source_topic("logins", None) is None
    assert layout.topic_subscription("p.config.acme.eu") == "acme.eu"
    assert layout.topic_subscription("p.changes") is None and layout.topic_subscription("q.logins.acme") is None


async def test_an_event_on_another_subscriptions_topic_is_dead_lettered() -> None:
    from streams.settings import WorkerSettings

    layout = WorkerSettings(topic_prefix="t", topic_layout="per-subscription")
    sent, store = Sent(), MemoryStore()
    stage = stages(store, sent, topic_subscription=layout.topic_subscription)
    events = [orjson.dumps({"type": "login", "subscription": s, "user_id": "1"}) for s in ("acme", "globex")]
    wrong_topic = metrics.REJECTIONS.labels("wrong_topic")._value.get()
    await stage.ingest.handle(inbound(events, topic="t.logins.acme"))
    assert metrics.REJECTIONS.labels("wrong_topic")._value.get() == wrong_topic + 1
    assert [decode_batch(v)[0].subscription for v in sent.on("t.changes")] == ["acme"]
    (letter,) = [orjson.loads(v) for v in sent.on("t.deadletter")]
    assert letter["offset"] == 1 and "'globex' does not belong on topic t.logins.acme" in letter["reason"]


async def test_a_store_error_during_a_commit_retries_the_same_commit_and_keeps_the_applied_state() -> None:
    """Dropping the state would force a reload (seconds for a large subscription); re-applying the
    batch to a reloaded state is right, but re-applying it to the applied state would lose the
    capacity event that the first application raised."""

    class FlakyStore(MemoryStore):
        """Its first commit fails on the way to Redis; it remembers what it was told to forget."""

        def __init__(self) -> None:
            super().__init__()
            self.attempts: list[bool] = []
            self.forgotten: list[str] = []

        async def commit(self, state: SubscriptionState, position: Position | None, events: Sequence[CapacityEvent],
                         audits: Sequence[dict[str, Any]] = (), retried: bool = False) -> bool:
            self.attempts.append(retried)
            if len(self.attempts) == 1:
                raise StoreUnavailable("ConnectionError: Too many connections")
            return await super().commit(state, position, events, audits, retried)

        def forget(self, subscription: str) -> None:
            self.forgotten.append(subscription)
            super().forget(subscription)

    sent, store = Sent(), FlakyStore()
    stage = stages(store, sent)
    await stage.ingest.handle(inbound([orjson.dumps({"type": "config", "subscription": "a", "capacity": {"internal": 1}})],
                               topic="t.config"))
    await stage.ingest.handle(inbound([orjson.dumps({"type": "login", "subscription": "a", "user_id": "1"})]))
    await stage.count.handle([Inbound("t.changes", 0, offset, 0, b"a", batch)
                       for offset, batch in enumerate(sent.on("t.changes"))])
    assert store.attempts == [False, True]
    assert store.forgotten == []
    assert [(orjson.loads(e)["level"], orjson.loads(e)["direction"]) for e in sent.on("t.capacity")] == [(100, "up")]
    assert store.states["a"].summary()["records"] == 1
    assert [entry["changed"] for entry in await store.audit("a")] == [["capacity"]]  # in the retried commit, once


async def test_a_capacity_event_is_published_from_the_outbox_and_only_then_trimmed() -> None:
    """The commit puts the event in the outbox; it leaves only once Kafka has it, so a publish that
    fails keeps it for the sweep (the same event, the same id)."""
    stage, sent, store = pipeline()
    await stage.ingest.handle(inbound([orjson.dumps({"type": "config", "subscription": "a", "capacity": {"internal": 2},
                                              "thresholds": [50, 100]})], topic="t.config"))
    for offset in range(2):
        login = {"type": "login", "subscription": "a", "user_id": str(offset)}
        await stage.ingest.handle([Inbound("t.logins", 0, offset, 1_780_000_000_000, b"a", orjson.dumps(login))])
    first, second, third = [Inbound("t.changes", 0, offset, 0, b"a", batch)
                            for offset, batch in enumerate(sent.on("t.changes"))]
    await stage.count.handle([first, second])
    (up,) = sent.on("t.capacity")
    assert (orjson.loads(up)["level"], orjson.loads(up)["direction"]) == (50, "up")
    assert await store.outbox("a") == []

    sent.refused.add("t.capacity")  # Kafka does not take the next one
    await stage.count.handle([third])
    (pending,) = await store.outbox("a")
    assert orjson.loads(pending)["level"] == 100 and sent.on("t.capacity") == [up]

    sent.refused.clear()
    await stage.outbox.sweep()
    assert sent.on("t.capacity") == [up, pending]
    assert await store.outbox("a") == []
    headers = dict(sent.messages[-1][3] or [])
    assert headers["ce_id"] == orjson.loads(pending)["id"].encode()


async def test_ingest_dead_letters_a_deeply_nested_value_and_counts_the_rest_of_the_batch() -> None:
    stage, sent, _ = pipeline()
    login = orjson.dumps({"type": "login", "subscription": "acme", "user_id": "1"})
    await stage.ingest.handle(inbound([b"[" * 255 + b"]" * 255, login]))
    assert [orjson.loads(v)["reason"] for v in sent.on("t.deadletter")] == ["not a JSON object (got list)"]
    assert [len(decode_batch(v)) for v in sent.on("t.changes")] == [1]


async def test_changes_messages_are_split_by_encoded_size_not_by_count() -> None:
    stage, sent, _ = pipeline()
    wide = "\U0001f600" * MAX_STRING  # 256 four-byte characters: every string field at its limit
    logins = [orjson.dumps({"type": "login", "subscription": "acme", "user_id": f"{n:0>256}", "runtime": wide,
                            "tenant": wide, "provider": wide[:-1] + str(n % 10), "id": f"{n:0>256}"})
              for n in range(500)]
    await stage.ingest.handle(inbound(logins))
    messages = sent.on("t.changes")
    assert len(messages) > 1 and all(len(m) <= MAX_MESSAGE_BYTES for m in messages)
    assert sum(len(decode_batch(m)) for m in messages) == 500
    assert [c.origin[2] for m in messages for c in decode_batch(m) if c.origin] == list(range(500))


async def test_a_change_too_large_for_the_changes_topic_is_dead_lettered() -> None:
    stage, sent, _ = pipeline()
    config = orjson.dumps({"type": "config", "subscription": "acme",
                           "domains": [f"{n:0>60}.{'d' * 60}.{'e' * 60}.example" for n in range(3000)]})
    await stage.ingest.handle(inbound([config], topic="t.config"))
    assert sent.on("t.changes") == []
    assert orjson.loads(sent.on("t.deadletter")[0])["reason"].startswith("too large once normalized: ")
