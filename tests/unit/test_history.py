"""History and peak (counters/history.py), the forecast as shown (streams/http/insights.py), and the
history endpoint (JSON and CSV) against the in-memory reader."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from aiohttp.test_utils import TestClient, TestServer

from counters.history import DAILY_DAYS, HOURLY_DAYS, Entry, billing_peak, filled, period_start
from streams.http.insights import forecast_sentence, forecasts
from streams.http.views import create_web_app
from tests.unit.fake_counts import sample_reader
from tests.unit.test_web_views import ready


def day(period: str, internal: int, external: int) -> Entry:
    return Entry(period, internal, internal, internal, external, external, external)


def test_days_without_a_commit_carry_the_last_count_and_days_before_any_are_left_out() -> None:
    entries = [Entry("2026-11-02", 9, 4, 5, 3, 1, 2), day("2026-11-05", 7, 1)]
    days = filled(entries, "2026-11-01", "2026-11-06")
    assert [e.period for e in days] == ["2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05", "2026-11-06"]
    assert days[1] == Entry("2026-11-03", 5, 5, 5, 2, 2, 2)
    assert days[4] == Entry("2026-11-06", 7, 7, 7, 1, 1, 1)
    assert filled(entries, "2026-11-04", "2026-11-04") == [Entry("2026-11-04", 5, 5, 5, 2, 2, 2)]
    hours = filled([Entry("2026-11-01T22", 1, 1, 1, 0, 0, 0)], "2026-11-01T23", "2026-11-02T01", hourly=True)
    assert [e.period for e in hours] == ["2026-11-01T23", "2026-11-02T00", "2026-11-02T01"]


def test_a_billing_period_starts_on_the_billing_day_of_this_or_the_previous_month() -> None:
    assert period_start(date(2026, 11, 29), 1) == date(2026, 11, 1)
    assert period_start(date(2026, 11, 14), 15) == date(2026, 10, 15)
    assert period_start(date(2026, 11, 15), 15) == date(2026, 11, 15)
    assert period_start(date(2027, 1, 3), 28) == date(2026, 12, 28)


def test_peak_is_the_largest_daily_maximum_in_the_current_and_previous_period() -> None:
    entries = [day("2026-10-10", 50, 3), Entry("2026-10-20", 70, 70, 70, 9, 2, 2), day("2026-11-03", 60, 4),
               Entry("2026-11-20", 80, 10, 10, 5, 5, 5)]
    assert billing_peak(entries, date(2026, 11, 29), billing_day=1) == {
        "current_period": {"internal": 80, "external": 5, "start": "2026-11-01"},
        "previous_period": {"internal": 70, "external": 9, "start": "2026-10-01"}}
    # billing on the 15th: Oct 15 - Nov 14 holds Oct 20 and Nov 3; the current one, the carried Nov 3 and Nov 20
    shifted = billing_peak(entries, date(2026, 11, 29), billing_day=15)
    assert shifted["current_period"] == {"internal": 80, "external": 5, "start": "2026-11-15"}
    assert shifted["previous_period"] == {"internal": 70, "external": 9, "start": "2026-10-15"}
    assert billing_peak([], date(2026, 11, 29)) == {"current_period": {"internal": 0, "external": 0, "start": "2026-11-01"},
                                            "previous_period": None}


def test_forecast_of_a_synthetic_history_with_a_known_slope() -> None:
    today = date(2026, 11, 29)
    # external grows by exactly 2 a day from 40: reaches 100 of a capacity of 100 in 30 days from 60 today
    entries = [day((today - timedelta(days=n)).isoformat(), 10, 60 - 2 * n) for n in range(20)]
    found = forecasts(entries, {"capacity": {"internal": 100, "external": 100}, "thresholds": [80, 100]}, today)
    assert found["external"]["slope_per_day"] == 2.0
    assert found["external"]["reaches"] == {"80": "2026-12-09", "100": "2026-12-19"}
    assert found["internal"]["reaches"] == {} and found["internal"]["reason"] == "the count is flat or falling"
    assert forecast_sentence("external", found["external"]) == \
        "at this rate, external reaches 80% around 2026-12-09 and 100% around 2026-12-19"
    few = forecasts(entries[:3], {"capacity": {"external": 100}}, today)["external"]
    assert few["reaches"] == {} and few["days"] == 3 and forecast_sentence("external", few) is None


async def test_history_endpoint_json_and_csv_and_peak_and_forecast_in_the_subscription() -> None:
    reader = sample_reader()
    today = datetime.now(timezone.utc).date()
    reader.days["acme"] = [day((today - timedelta(days=n)).isoformat(), 1200 + n, 56 - n) for n in (0, 1, 3)]
    reader.hours["acme"] = [Entry(f"{today.isoformat()}T00", 1, 1, 1, 2, 2, 2)]
    async with TestClient(TestServer(create_web_app(reader, ready(kafka=True, redis=True)))) as client:
        first = (today - timedelta(days=3)).isoformat()
        body = await (await client.get(f"/api/v1/subscriptions/acme/history?from={first}")).json()
        assert [e["period"] for e in body["entries"]] == [(today - timedelta(days=n)).isoformat() for n in (3, 2, 1, 0)]
        assert body["entries"][1] == {"period": (today - timedelta(days=2)).isoformat(),
                                      "internal": {"max": 1203, "min": 1203, "last": 1203},
                                      "external": {"max": 53, "min": 53, "last": 53}}
        response = await client.get(f"/api/v1/subscriptions/acme/history?from={first}", headers={"Accept": "text/csv"})
        assert response.content_type == "text/csv"
        rows = (await response.text()).splitlines()
        assert rows[0] == "period,internal_max,internal_min,internal_last,external_max,external_min,external_last"
        assert rows[-1] == f"{today.isoformat()},1200,1200,1200,56,56,56"
        hourly = await (await client.get("/api/v1/subscriptions/acme/history?resolution=hour")).json()
        assert hourly["entries"][0]["period"] == f"{today.isoformat()}T00" and hourly["resolution"] == "hour"
        assert (await client.get("/api/v1/subscriptions/acme/history?resolution=week")).status == 400
        assert (await client.get("/api/v1/subscriptions/acme/history?from=yesterday")).status == 400
        assert (await client.get("/api/v1/subscriptions/nope/history")).status == 404
        subscription = await (await client.get("/api/v1/subscriptions/acme")).json()
        assert subscription["peak"]["current_period"]["start"] == today.replace(day=1).isoformat()
        assert subscription["peak"]["current_period"]["external"] == max(
            56 - n for n in (0, 1, 3) if (today - timedelta(days=n)) >= today.replace(day=1))
        assert subscription["forecast"]["external"] == {
            "days": 4, "slope_per_day": None, "reaches": {}, "reason": "4 day(s) of history; a forecast needs 7"}


async def test_history_from_is_clamped_to_what_is_kept_so_no_request_walks_centuries() -> None:
    reader = sample_reader()
    today = datetime.now(timezone.utc).date()
    reader.days["acme"] = [day((today - timedelta(days=n)).isoformat(), 10, 5) for n in (0, 500)]
    reader.hours["acme"] = [Entry("0001-01-01T00", 1, 1, 1, 2, 2, 2)]  # older than any kept hour
    async with TestClient(TestServer(create_web_app(reader, ready(kafka=True, redis=True)))) as client:
        hourly = await (await client.get("/api/v1/subscriptions/acme/history?resolution=hour&from=0001-01-01")).json()
        assert hourly["entries"][0]["period"] == f"{(today - timedelta(days=HOURLY_DAYS - 1)).isoformat()}T00"
        assert len(hourly["entries"]) <= HOURLY_DAYS * 24
        daily = await (await client.get("/api/v1/subscriptions/acme/history?from=0001-01-01")).json()
        assert daily["entries"][0]["period"] == (today - timedelta(days=DAILY_DAYS - 1)).isoformat()
        assert len(daily["entries"]) == DAILY_DAYS
        old = await (await client.get("/api/v1/subscriptions/acme/history?from=0001-01-01&to=0002-01-01")).json()
        assert old["entries"] == []


def test_the_engine_notes_each_classes_lowest_and_highest_count_since_the_last_save() -> None:
    from counters import Replay
    from schemas.events import parse_rfc3339

    replay = Replay(now=parse_rfc3339("2026-12-01T00:00:00Z"))
    replay.feed_lines(['{"type": "login", "subscription": "a", "user_id": "1"}',
                       '{"type": "login", "subscription": "a", "user_id": "2"}',
                       '{"type": "profile", "op": "delete", "subscription": "a", "user_id": "1"}',
                       '{"type": "profile", "op": "delete", "subscription": "a", "user_id": "2"}'])
    assert replay.states["a"].extremes == {"internal": (0, 2)}
