"""Limits per subscription (counters/limits.py): what events accumulate is bounded, not only each event.

An event that would pass a limit is refused whole with a reason naming it, and the engine and the
independent reference model (tests/model.py) refuse the same events.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from counters import Replay, SubscriptionState, limits, restore
from schemas.events import parse_rfc3339
from tests.compare import comparable
from tests.fixtures.examples import REPLAY_NOW
from tests import model
from tests.model import model_replay

SMALL = 5
"""The limits the comparisons with the model run at: the model recounts every record after each event."""
MAX_RUNTIME_VERSIONS = MAX_RECORD_RUNTIMES = MAX_RECORD_PROVIDERS = SMALL


@pytest.fixture(autouse=True)
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    for engine_name, model_name in (("MAX_RUNTIME_VERSIONS", "SETTINGS_RUNTIMES_LIMIT"),
                                    ("MAX_RECORD_RUNTIMES", "RECORD_RUNTIMES_LIMIT"),
                                    ("MAX_RECORD_PROVIDERS", "RECORD_PROVIDERS_LIMIT")):
        monkeypatch.setattr(limits, engine_name, SMALL)
        monkeypatch.setattr(model, model_name, SMALL)


def line(event: dict[str, Any]) -> str:
    return orjson.dumps({"subscription": "acme", **event}).decode()


def runtimes_config(first: int, count: int, event_id: str | None = None) -> str:
    runtimes = {f"rt-{n}": {"version": "11.14.0"} for n in range(first, first + count)}
    return line({"type": "config", "id": event_id, "runtimes": runtimes})


def replayed(lines: list[str]) -> Replay:
    replay = Replay(now=parse_rfc3339(REPLAY_NOW))
    replay.feed_lines(lines)
    return replay


def agrees_with_model(lines: list[str]) -> dict[str, Any]:
    document = replayed(lines).document()
    assert comparable(document) == comparable(model_replay(lines))
    return document


def test_runtime_versions_are_bounded_per_subscription_not_only_per_config_event() -> None:
    lines = [runtimes_config(n * SMALL, SMALL) for n in range(20)]  # each within the per-event limit
    replay = replayed(lines)
    assert len(replay.states["acme"].settings.runtimes) == MAX_RUNTIME_VERSIONS
    assert len(replay.rejections) == 19
    assert "runtimes" in replay.rejections[0].reason and "5 per subscription" in replay.rejections[0].reason
    assert replay.rejections[0].line == 2
    agrees_with_model(lines)


def test_a_config_naming_only_known_runtimes_passes_at_the_limit() -> None:
    lines = [runtimes_config(0, SMALL), runtimes_config(0, SMALL), runtimes_config(SMALL - 1, 2)]
    replay = replayed(lines)
    assert [r.line for r in replay.rejections] == [3]
    agrees_with_model(lines)


def test_a_refused_config_changes_nothing_and_its_id_is_not_taken() -> None:
    lines = [runtimes_config(0, SMALL), line({"type": "config", "id": "c2", "capacity": {"internal": 1},
                                             "runtimes": {"new": {"version": "11.14.0"}}})]
    replay = replayed(lines)
    state = replay.states["acme"]
    assert state.settings.capacity["internal"] is None and "c2" not in state.config_ids
    assert "capacity.internal" not in state.config_times


def test_records_in_a_new_runtime_are_refused_once_the_subscription_has_records_in_the_limit() -> None:
    lines = [line({"type": "login", "runtime": f"r{n}", "user_id": "u"}) for n in range(MAX_RECORD_RUNTIMES + 5)]
    lines += [line({"type": "login", "runtime": "r0", "user_id": "another"}),  # a known runtime still takes records
              line({"type": "visit", "runtime": "new", "session_id": "s"})]  # anonymous: creates no record
    replay = replayed(lines)
    document = agrees_with_model(lines)
    assert len(document["subscriptions"]["acme"]["runtimes"]) == MAX_RECORD_RUNTIMES
    assert [r.line for r in replay.rejections] == list(range(MAX_RECORD_RUNTIMES + 1, MAX_RECORD_RUNTIMES + 6))
    assert "runtime: 'r5'" in replay.rejections[0].reason
    assert document["subscriptions"]["acme"]["records"] == MAX_RECORD_RUNTIMES + 1


def test_deleting_the_last_record_of_a_runtime_frees_its_place() -> None:
    lines = [line({"type": "login", "runtime": f"r{n}", "user_id": "u"}) for n in range(MAX_RECORD_RUNTIMES)]
    lines += [line({"type": "login", "runtime": "late", "user_id": "u"}),
              line({"type": "profile", "op": "delete", "runtime": "r3", "user_id": "u"}),
              line({"type": "login", "runtime": "late", "user_id": "u"})]
    replay = replayed(lines)
    assert [r.line for r in replay.rejections] == [MAX_RECORD_RUNTIMES + 1]
    assert "late" in agrees_with_model(lines)["subscriptions"]["acme"]["runtimes"]


def test_providers_are_bounded_per_subscription() -> None:
    lines = [line({"type": "profile", "op": "upsert", "provider": f"p{n}", "user_id": "u"})
             for n in range(MAX_RECORD_PROVIDERS + 1)]
    lines.append(line({"type": "profile", "op": "deactivate", "provider": "another", "user_id": "u"}))
    replay = replayed(lines)
    assert [r.line for r in replay.rejections] == [MAX_RECORD_PROVIDERS + 1, MAX_RECORD_PROVIDERS + 2]
    assert "provider: 'p5'" in replay.rejections[0].reason
    agrees_with_model(lines)


def test_the_limits_are_a_thousand_runtimes_and_providers_per_subscription(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()
    assert (limits.MAX_RUNTIME_VERSIONS, limits.MAX_RECORD_RUNTIMES, limits.MAX_RECORD_PROVIDERS) == (1000, 1000, 1000)
    assert (model.SETTINGS_RUNTIMES_LIMIT, model.RECORD_RUNTIMES_LIMIT, model.RECORD_PROVIDERS_LIMIT) == (1000, 1000, 1000)
    lines = [runtimes_config(n * 1000, 1000) for n in range(20)]  # 20,000 runtimes before
    replay = replayed(lines)
    assert len(replay.states["acme"].settings.runtimes) == 1000 and len(replay.rejections) == 19


def test_a_restored_state_keeps_counting_toward_the_limits() -> None:
    lines = [line({"type": "login", "runtime": f"r{n}", "user_id": "u"}) for n in range(MAX_RECORD_RUNTIMES)]
    loaded = SubscriptionState("acme")
    loaded.records = dict(replayed(lines).states["acme"].records)  # what a store loads: the records
    restore(loaded)
    assert len(loaded.record_runtimes) == MAX_RECORD_RUNTIMES
    assert loaded.record_providers == {"default": MAX_RECORD_RUNTIMES}
