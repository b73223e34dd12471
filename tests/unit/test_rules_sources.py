"""Silent sources (counters/sources.py): a batch's tally per provider, future times taken as now, the
silence rule and the report's days; and the gauge's label cap (streams/observe/metrics.py)."""

from __future__ import annotations

from datetime import datetime, timezone

from counters import DAY_US, SourceTally, is_silent, sources_report
from streams.observe import metrics

HOUR = 3_600 * 1_000_000


def _us(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1_000_000)


def test_a_tally_keeps_the_latest_time_and_the_events_per_utc_day() -> None:
    tally = SourceTally()
    for at in ("2026-12-05T23:59:59", "2026-12-06T00:00:00", "2026-12-06T10:00:00", "2026-12-01T08:00:00"):
        tally.add("okta", _us(at))
    tally.add("entra", _us("2026-12-06T09:00:00"))
    assert tally.last == {"okta": _us("2026-12-06T10:00:00"), "entra": _us("2026-12-06T09:00:00")}
    day = _us("2026-12-06T00:00:00") // DAY_US
    assert tally.days == {("okta", day - 1): 1, ("okta", day): 2, ("okta", day - 5): 1, ("entra", day): 1}


def test_an_event_stamped_in_the_future_counts_as_now() -> None:
    """A producer's clock ahead must not keep its provider looking alive (nor count on a later day)."""
    now = _us("2026-12-06T22:00:00")
    tally = SourceTally()
    tally.add("okta", _us("2026-12-07T01:00:00"))
    tally.add("okta", _us("2026-12-06T21:00:00"))
    capped = tally.capped(now)
    assert capped.last == {"okta": now}
    assert capped.days == {("okta", now // DAY_US): 2}


def test_a_provider_is_silent_after_source_silence_hours_without_an_event() -> None:
    now = _us("2026-12-06T12:00:00")
    assert not is_silent(now - 24 * HOUR + 1, now, 24)
    assert is_silent(now - 24 * HOUR, now, 24)
    assert not is_silent(now - 30 * HOUR, now, 48)


def test_the_report_shows_eight_days_oldest_first_and_who_is_silent_or_retired() -> None:
    now = _us("2026-12-06T12:00:00")
    today = now // DAY_US
    report = sources_report({"okta": now - 30 * HOUR, "entra": now - HOUR, "legacy": now - 10 * 24 * HOUR},
                            {("okta", today - 1): 7, ("entra", today): 3, ("okta", today - 9): 99}, now, 24)
    assert [(p["provider"], p["silent"], p["active"], p["silent_hours"]) for p in report] == [
        ("entra", False, True, 1), ("legacy", True, False, 240), ("okta", True, True, 30)]
    okta = report[2]
    assert okta["last_event"] == "2026-12-05T06:00:00Z"
    assert [d["day"] for d in okta["events_per_day"]][::7] == ["2026-11-29", "2026-12-06"]
    assert [d["events"] for d in okta["events_per_day"]] == [0, 0, 0, 0, 0, 0, 7, 0]  # day -9 is not shown


def test_the_gauge_exports_at_most_the_label_cap_with_the_rest_as_other() -> None:
    metrics.cap_labels(2)
    try:
        day = 86_400_000_000
        last = {"a": 10 * day, "b": 9 * day, "c": 8 * day, "d": 1 * day}  # d: retired, long before the rest
        metrics.observe_sources("capped", last, 24)
        exported = {s.labels["provider"]: s.value for f in metrics.SOURCE_LAST_EVENT.collect() for s in f.samples
                    if s.labels["subscription"] == "capped"}
        assert exported == {"a": 10 * 86_400.0, "b": 9 * 86_400.0, "other": 8 * 86_400.0}  # c, the oldest recent one
        metrics.observe_sources("capped", {"a": 10 * day}, 24)
        assert [s.labels["provider"] for f in metrics.SOURCE_LAST_EVENT.collect() for s in f.samples
                if s.labels["subscription"] == "capped"] == ["a"]
        metrics.forget_subscription("capped")
        assert not [s for f in metrics.SOURCE_SILENCE.collect() for s in f.samples
                    if s.labels["subscription"] == "capped"]
    finally:
        metrics.cap_labels(50)
