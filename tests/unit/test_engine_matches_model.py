"""Property tests: the engine (counters.replay) agrees with the naive reference model (tests/model.py).

Counts, levels, the number of rejected lines and the capacity-change events (in order, without the
engine's own `id` and `time`) must be equal; anonymous sessions may be an estimate within 2%.
Set ENDUSERS_PROPERTY_EXAMPLES to run more or fewer examples (default 500).
"""

from __future__ import annotations

import functools

import pytest
from hypothesis import given

from counters import Replay, SubscriptionState, restore
from schemas.events import parse_rfc3339
from tests.compare import anonymous_sessions, comparable, comparable_counts, comparable_events
from tests.fixtures.examples import REPLAY_NOW
from tests.model import model_replay
from tests.strategies import event_streams, order_free_streams, properties

replay = pytest.importorskip("counters.replay")
replay_lines = functools.partial(replay.replay_lines, now=parse_rfc3339(REPLAY_NOW))


def _sessions_close(got: dict, want: dict) -> bool:
    g, w = anonymous_sessions(got), anonymous_sessions(want)
    return g.keys() == w.keys() and all(abs(g[k] - w[k]) <= max(1, 0.02 * w[k]) for k in w)


@properties()
@given(event_streams())
def test_engine_matches_model(lines: list[str]) -> None:
    want = model_replay(lines)
    got = replay_lines(list(lines))
    assert comparable(got) == comparable(want)
    assert _sessions_close(got, want)


def doubled(lines: list[str]) -> list[str]:
    return [line for line in lines for _ in (0, 1)]


@properties(0.5)
@given(event_streams())
def test_engine_duplicate_delivery_changes_nothing(lines: list[str]) -> None:
    once = replay_lines(list(lines))
    twice = replay_lines(doubled(lines))
    assert comparable_counts(twice) == comparable_counts(once)
    assert comparable_events(twice) == comparable_events(once)
    assert twice["rejected"] == 2 * once["rejected"]
    assert _sessions_close(twice, once)


@properties(0.5)
@given(order_free_streams())
def test_engine_final_counts_do_not_depend_on_arrival_order(pair: tuple[list[str], list[str]]) -> None:
    a, b = pair
    ca, cb = comparable_counts(replay_lines(a)), comparable_counts(replay_lines(b))
    for s in (ca, cb):
        for v in s.values():
            v.pop("levels")
    assert ca == cb


@properties(0.5)
@given(event_streams())
def test_a_state_restored_from_its_persisted_part_counts_as_the_engine_kept_it(lines: list[str]) -> None:
    """What a store does on load: only the persisted part survives, ``restore`` derives the rest
    (groups, class totals under the loaded owned domains, counts, shared identifiers) with no
    further step."""
    run = Replay(now=parse_rfc3339(REPLAY_NOW))
    run.feed_lines(lines)
    for name, kept in run.states.items():
        summary, shared = kept.summary(), set(kept.shared)
        loaded = SubscriptionState(name, kept.sessions)
        loaded.settings, loaded.records, loaded.tombstones = kept.settings, kept.records, kept.tombstones
        loaded.levels, loaded.sequence, loaded.invalid_emails = kept.levels, kept.sequence, kept.invalid_emails
        restore(loaded)
        assert loaded.summary() == summary
        assert loaded.shared == shared
