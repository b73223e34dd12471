"""counters/forecast.py: Theil-Sen over daily maxima, on synthetic histories with known slopes."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from counters.forecast import MIN_DAYS, forecast_class, theil_sen

TODAY = date(2026, 11, 29)


def history(slope: float, start: int, days: int = 30, noise: dict[int, int] | None = None) -> dict[date, int]:
    """``days`` daily maxima ending today, on a line with ``slope`` per day; ``noise`` overrides some days."""
    series = {TODAY - timedelta(days=days - 1 - i): round(start + slope * i) for i in range(days)}
    for offset, value in (noise or {}).items():
        series[TODAY - timedelta(days=offset)] = value
    return series


def test_theil_sen_recovers_a_known_line() -> None:
    slope, intercept = theil_sen([(x, 3.0 * x + 7) for x in range(10)])
    assert slope == pytest.approx(3.0) and intercept == pytest.approx(7.0)


def test_theil_sen_ignores_a_few_outliers() -> None:
    """One burst of test accounts does not bend the trend (least squares would)."""
    points = [(float(x), 2.0 * x) for x in range(20)]
    points[5] = (5.0, 500.0)
    points[12] = (12.0, -300.0)
    slope, _ = theil_sen(points)
    assert slope == pytest.approx(2.0)


def test_expected_dates_follow_the_slope() -> None:
    """10 a day from 500 today: 800 (80% of 1000) in 30 days, 1000 in 50."""
    result = forecast_class(history(10, 210), capacity=1000, thresholds=[80, 90, 100], today=TODAY)
    assert result.trend is not None and result.trend.slope == pytest.approx(10)
    assert result.reaches == {80: TODAY + timedelta(days=30), 90: TODAY + timedelta(days=40),
                              100: TODAY + timedelta(days=50)}


def test_thresholds_already_reached_have_no_date() -> None:
    result = forecast_class(history(5, 700), capacity=1000, thresholds=[80, 90, 100], today=TODAY)
    latest = 700 + 5 * 29
    assert latest >= 800
    assert result.reaches[80] is None and result.reaches[90] == TODAY + timedelta(days=11)


def test_a_bad_day_does_not_move_the_date() -> None:
    noisy = forecast_class(history(10, 210, noise={3: 5000, 10: 0}), 1000, [100], TODAY)
    assert noisy.reaches == {100: TODAY + timedelta(days=50)}


@pytest.mark.parametrize("slope", [0, -4])
def test_no_forecast_when_flat_or_falling(slope: float) -> None:
    result = forecast_class(history(slope, 400), 1000, [80, 100], TODAY)
    assert result.reaches == {} and result.reason == "the count is flat or falling"


def test_no_forecast_with_less_than_a_week() -> None:
    result = forecast_class(history(10, 100, days=MIN_DAYS - 1), 1000, [100], TODAY)
    assert result.trend is None and result.reaches == {}
    assert result.reason == f"{MIN_DAYS - 1} day(s) of history; a forecast needs {MIN_DAYS}"


def test_only_the_last_30_days_count() -> None:
    """A steep start two months ago, then 2 a day: the forecast follows the recent rate."""
    series = history(2, 600, days=30)
    series.update({TODAY - timedelta(days=60 + i): 100 * i for i in range(20)})
    result = forecast_class(series, 1000, [100], TODAY)
    assert result.days == 30 and result.trend is not None and result.trend.slope == pytest.approx(2, abs=0.1)


def test_missing_days_are_skipped_not_zero() -> None:
    series = {day: count for i, (day, count) in enumerate(sorted(history(10, 210).items())) if i % 3 != 1}
    result = forecast_class(series, 1000, [100], TODAY)
    assert result.reaches == {100: TODAY + timedelta(days=50)}
