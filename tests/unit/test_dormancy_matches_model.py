"""Property tests: dormant records, reclaimable people and the seats they free, as the engine reports
them (counters/dormancy.py), agree with the reference model (tests/model.py), which recounts the
subscription without each person's dormant records instead of reasoning about individuals."""

from __future__ import annotations

from hypothesis import given, strategies as st

from counters import Replay, dormant
from counters.dormancy import DAY
from schemas.events import parse_rfc3339
from tests.fixtures.examples import REPLAY_NOW
from tests.model import Sub, dormancy, model_replay, parse_time
from tests.strategies import event_streams, properties


def _engine(lines: list[str], now: int, days: int) -> tuple[Replay, dict[str, dict]]:
    replay = Replay(now=parse_rfc3339(REPLAY_NOW))
    replay.feed_lines(lines)
    return replay, {name: dormant(state, now, days) for name, state in replay.states.items()}


def _model(lines: list[str], now: str, days: int, replay: Replay) -> dict[str, dict]:
    """The model's report with its record keys as the engine's digests."""
    subs: dict[str, Sub] = {}
    model_replay(lines, states=subs)
    reports = {}
    for name, sub in subs.items():
        report = dormancy(sub, parse_time(now), days)
        digest = replay.digest.for_subscription(name)
        reports[name] = {"records": {digest(*key): flag for key, flag in report["records"].items()},
                         "freed": report["freed"]}
    return reports


@properties(0.5)
@given(event_streams(), st.integers(0, 40), st.sampled_from([1, 30]))
def test_dormant_records_and_reclaimable_people_match_the_model(lines: list[str], minute: int, days: int) -> None:
    # the cutoff lands among the generated event times (2026-11-01T09:00Z + 0..39 minutes)
    now = f"{'2026-11-02' if days == 1 else '2026-12-01'}T09:{minute:02d}:00Z"
    now_us = parse_rfc3339(now)
    assert now_us - days * DAY == parse_rfc3339(f"2026-11-01T09:{minute:02d}:00Z")
    replay, got = _engine(lines, now_us, days)
    want = _model(lines, now, days, replay)
    for name in set(got) | set(want):
        engine_report = got.get(name, {"records": [], "freed": {"internal": 0, "external": 0}})
        model_report = want.get(name, {"records": {}, "freed": {"internal": 0, "external": 0}})
        assert {row["record"]: row["reclaimable"] for row in engine_report["records"]} == model_report["records"]
        assert engine_report["freed"] == model_report["freed"]
