"""Redelivered events change nothing, configs included: a config event is last-writer-wins by time per
key and an exact repeat (same id) is ignored, in the engine (``counters.replay``) and, written
independently, in the reference model (tests/model.py)."""

from __future__ import annotations

import json

from hypothesis import given

from counters.replay import replay_lines
from tests.compare import comparable_counts, comparable_events
from tests.model import model_replay
from tests.strategies import MODEL_EXAMPLES, properties, streams_with_redeliveries


@properties(0.5)
@given(streams_with_redeliveries())
def test_engine_redelivered_events_change_no_count_and_no_capacity_event(pair: tuple[list[str], list[str]]) -> None:
    once, again = (replay_lines(list(lines)) for lines in pair)
    assert comparable_counts(again) == comparable_counts(once)
    assert comparable_events(again) == comparable_events(once)


@properties(examples=MODEL_EXAMPLES)
@given(streams_with_redeliveries())
def test_model_redelivered_events_change_no_count_and_no_capacity_event(pair: tuple[list[str], list[str]]) -> None:
    once, again = (model_replay(lines) for lines in pair)
    assert comparable_counts(again) == comparable_counts(once)
    assert again["capacity_events"] == once["capacity_events"]


def _config(**fields: object) -> str:
    return json.dumps({"type": "config", "subscription": "acme", **fields})


def _logins(n: int) -> list[str]:
    return [json.dumps({"type": "login", "subscription": "acme", "user_id": str(i), "email": f"u{i}@x.io"})
            for i in range(n)]


def test_an_older_config_does_not_undo_a_newer_one() -> None:
    """The issue's example: an old capacity appended again moved the levels from 100 to 150."""
    lines = [_config(id="c1", time="2026-11-01T09:00:00Z", capacity={"internal": 2}),
             _config(id="c2", time="2026-11-01T10:00:00Z", capacity={"internal": 3}), *_logins(3),
             _config(id="c3", time="2026-11-01T09:30:00Z", capacity={"internal": 2})]
    for replay in (replay_lines, model_replay):
        document = replay(lines)
        assert document["subscriptions"]["acme"]["levels"]["internal"] == 100, replay
        settings_kept = [e for e in document["capacity_events"] if e["trigger"] == "c3"]
        assert settings_kept == [], replay


def test_an_exact_duplicate_config_is_ignored_even_when_untimed() -> None:
    lines = [_config(id="c1", capacity={"internal": 10}), _config(id="c2", capacity={"internal": 3}), *_logins(3),
             _config(id="c1", capacity={"internal": 10})]
    for replay in (replay_lines, model_replay):
        document = replay(lines)
        assert [e["level"] for e in document["capacity_events"]] == [100], replay


def test_each_capacity_class_and_runtime_is_a_key_of_its_own() -> None:
    lines = [_config(id="c1", time="2026-11-01T10:00:00Z", capacity={"internal": 5}, runtimes={"r1": {"version": "11.14.0"}}),
             _config(id="c2", time="2026-11-01T09:00:00Z", capacity={"internal": 9, "external": 7},
                     runtimes={"r1": {"version": "11.6.0"}, "r2": {"version": "11.6.0"}})]
    from counters.replay import Replay

    replay = Replay()
    replay.feed_lines(lines)
    settings_now = replay.states["acme"].settings
    assert settings_now.capacity == {"internal": 5, "external": 7}
    assert settings_now.runtimes == {"r1": [11, 14, 0], "r2": [11, 6, 0]}


def _profile(op: str, time: str, **fields: object) -> str:
    return json.dumps({"type": "profile", "op": op, "subscription": "acme", "user_id": "7", "time": time, **fields})


def _login(time: str) -> str:
    return json.dumps({"type": "login", "subscription": "acme", "user_id": "7", "email": "ann@corp.example",
                       "time": time})


def test_an_event_from_before_a_delete_redelivered_after_the_record_came_back_changes_nothing() -> None:
    """The record's tombstone stays with the record created afresh: an event timed before the delete
    was meant for the deleted record, and must not turn the new one off (found by the property test
    above: engine and model both applied it field by field)."""
    stream = [_login("2026-11-01T10:00:00Z"), _profile("deactivate", "2026-11-01T10:02:00Z"),
              _profile("delete", "2026-11-01T10:11:00Z"), _login("2026-11-01T10:43:00Z")]
    late = [_profile("deactivate", "2026-11-01T10:02:00Z"), _login("2026-11-01T10:00:00Z"),
            _profile("upsert", "2026-11-01T10:05:00Z", email="bob@corp.example", active=False),
            _profile("delete", "2026-11-01T10:11:00Z")]
    for replay in (replay_lines, model_replay):
        once, again = replay(stream), replay(stream + late)
        assert comparable_counts(once)["acme"]["records"] == 1, replay
        assert comparable_counts(again) == comparable_counts(once), replay
