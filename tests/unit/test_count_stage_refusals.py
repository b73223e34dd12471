"""The count stage refuses what the state forbids: an event past a subscription limit, and, with
ENDUSERS_SUBSCRIPTIONS=declared, an event of a subscription no config event has declared. Each goes
to the dead-letter topic with its source position and reason, changes nothing, and counting goes on."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from counters import limits
from counters.memory_store import MemoryStore
from streams.kafka.messages import Inbound
from streams.worker.count import UNKNOWN_SUBSCRIPTION
from tests.fixtures.stages import Stages, stages
from tests.unit.test_pipeline_stages import Sent


_SOURCES: dict[int, list[str]] = {}
"""Per producer (``Sent``), the topic of each source event so far: the next offsets."""


def pipeline(*, declared_only: bool = False) -> tuple[Stages, Sent, MemoryStore]:
    sent, store = Sent(), MemoryStore()
    _SOURCES[id(sent)] = []
    return stages(store, sent, declared_only=declared_only), sent, store


async def run(stage: Stages, sent: Sent, events: list[dict[str, Any]], topic: str) -> None:
    """Ingest the events from ``topic`` (after those sent to it before) and count every changes
    message ingest sent so far."""
    counted, first = len(sent.on("t.changes")), sum(name == topic for name in _SOURCES[id(sent)])
    _SOURCES[id(sent)] += [topic] * len(events)
    await stage.ingest.handle([Inbound(topic, 0, offset, 1_780_000_000_000, b"k", orjson.dumps(event))
                               for offset, event in enumerate(events, first)])
    for offset, batch in enumerate(sent.on("t.changes")[counted:], counted):
        await stage.count.handle([Inbound("t.changes", 0, offset, 0, b"k", batch)])


def dead_letters(sent: Sent) -> list[dict[str, Any]]:
    return [orjson.loads(v) for v in sent.on("t.deadletter")]


async def test_a_login_in_a_runtime_past_the_subscription_limit_is_dead_lettered_and_counting_goes_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_RECORD_RUNTIMES", 2)
    stage, sent, store = pipeline()
    await run(stage, sent, [{"type": "login", "subscription": "a", "runtime": f"r{n}", "user_id": "u"}
                            for n in range(3)] + [{"type": "login", "subscription": "a", "runtime": "r0",
                                                   "user_id": "v"}], "t.logins")
    (letter,) = dead_letters(sent)
    assert (letter["topic"], letter["partition"], letter["offset"]) == ("t.logins", 0, 2)
    assert letter["reason"].startswith("runtime: 'r2' would be a new runtime") and letter["value"] is None
    counts = await store.counts("a")
    assert counts is not None and counts["records"] == 3 and set(counts["runtimes"]) == {"r0", "r1"}


async def test_a_config_past_the_runtime_limit_is_dead_lettered_and_not_audited(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_RUNTIME_VERSIONS", 3)
    stage, sent, store = pipeline()
    configs = [{"type": "config", "subscription": "a", "runtimes": {f"r{n}{i}": {"version": "11.14.0"}
                                                                  for i in range(2)}} for n in range(3)]
    await run(stage, sent, configs, "t.config")
    assert [letter["offset"] for letter in dead_letters(sent)] == [1, 2]
    assert "at most 3 per subscription" in dead_letters(sent)[0]["reason"]
    assert len(await store.audit("a")) == 1
    settings = await store.settings("a")
    assert settings is not None and sorted(settings["runtimes"]) == ["r00", "r01"]


async def test_declared_subscriptions_only_dead_letters_an_undeclared_subscription_and_stores_nothing() -> None:
    stage, sent, store = pipeline(declared_only=True)
    await run(stage, sent, [{"type": "login", "subscription": "rogue", "user_id": "u"}], "t.logins")
    (letter,) = dead_letters(sent)
    assert letter["reason"] == UNKNOWN_SUBSCRIPTION == "unknown subscription"
    assert await store.subscriptions() == [] and store.cached("rogue") is None


async def test_a_config_event_declares_its_subscription_for_the_events_after_it() -> None:
    stage, sent, store = pipeline(declared_only=True)
    login = {"type": "login", "subscription": "acme", "user_id": "u"}
    await run(stage, sent, [login], "t.logins")
    await run(stage, sent, [{"type": "config", "subscription": "acme", "capacity": {"internal": 10}}], "t.config")
    await run(stage, sent, [login | {"user_id": "v"}], "t.logins")
    assert [letter["reason"] for letter in dead_letters(sent)] == ["unknown subscription"]
    counts = await store.counts("acme")
    assert counts is not None and counts["records"] == 1
    stage2 = stages(store, sent, declared_only=True)  # another worker, or this one restarted
    store.forget("acme")
    await run(stage2, sent, [login | {"user_id": "w"}], "t.logins")
    counts = await store.counts("acme")
    assert counts is not None and counts["records"] == 2


async def test_any_subscription_is_counted_by_default() -> None:
    stage, sent, store = pipeline()
    await run(stage, sent, [{"type": "login", "subscription": "new", "user_id": "u"}], "t.logins")
    assert dead_letters(sent) == [] and await store.subscriptions() == ["new"]


def test_the_subscriptions_setting_is_any_or_declared() -> None:
    from streams.settings import SettingsError, SubscriptionsMode, WorkerSettings

    assert WorkerSettings.from_environment({}).subscriptions is SubscriptionsMode.ANY
    declared = WorkerSettings.from_environment({"ENDUSERS_SUBSCRIPTIONS": "declared"})
    assert declared.subscriptions is SubscriptionsMode.DECLARED
    with pytest.raises(SettingsError, match="ENDUSERS_SUBSCRIPTIONS"):
        WorkerSettings.from_environment({"ENDUSERS_SUBSCRIPTIONS": "some"})
