"""When a class's count will reach its thresholds and capacity, at the current rate.

A licensing admin asks "when do we run out?", not "what is the slope". The answer comes from the
daily maxima of the last 30 days, because a license is billed on peaks and a day's maximum is the
figure that crosses a threshold first. The trend is Theil-Sen (the median of the slopes between all
pairs of days): one burst of test accounts or one day of missing data moves it far less than a
least-squares line, and with fewer than half the points off the line it ignores them entirely.

No forecast is given with fewer than :data:`MIN_DAYS` days of history, or when the trend is flat or
falling: "never at this rate" is the honest answer then.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from statistics import median

from counters.levels import reached

__all__ = ["MIN_DAYS", "WINDOW_DAYS", "Trend", "ClassForecast", "theil_sen", "forecast_class"]

MIN_DAYS = 7
"""Fewer days than this give no forecast: a week is the shortest span that sees weekday and weekend."""
WINDOW_DAYS = 30
"""Only the last 30 days count: older growth says little about this month's onboarding."""


@dataclass(frozen=True)
class Trend:
    """A line through daily maxima: ``count(day) = intercept + slope * (day - origin).days``."""

    slope: float  # individuals per day
    intercept: float
    origin: date

    def value_on(self, day: date) -> float:
        return self.intercept + self.slope * (day - self.origin).days

    def day_reaching(self, target: int) -> date:
        """The first day on which the line is at or above ``target`` (the slope must be positive)."""
        days = math.ceil((target - self.intercept) / self.slope)
        return self.origin + timedelta(days=max(days, 0))


@dataclass(frozen=True)
class ClassForecast:
    """One class's forecast: the trend, and per threshold percent the date it is expected to be reached.

    ``reaches`` maps a percent of capacity (each threshold, and 100 for the capacity itself) to the
    expected date, or to None when the count is already at or above it. Percents the trend never
    reaches are absent, as is everything when there is no trend (``reason`` says why).
    """

    trend: Trend | None
    days: int
    reaches: dict[int, date | None] = field(default_factory=dict)
    reason: str | None = None


def theil_sen(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """(slope, intercept) of the Theil-Sen line through ``points`` (x, y); at least two distinct x."""
    slopes = [(y2 - y1) / (x2 - x1) for i, (x1, y1) in enumerate(points) for x2, y2 in points[i + 1:] if x2 != x1]
    if not slopes:
        raise ValueError("theil_sen needs at least two points with different x")
    slope = median(slopes)
    intercept = median(y - slope * x for x, y in points)
    return slope, intercept


def forecast_class(daily_maxima: Mapping[date, int] | Iterable[tuple[date, int]], capacity: int | None,
                   thresholds: Iterable[int], today: date) -> ClassForecast:
    """The forecast for one class from its daily maxima (days without data are simply absent)."""
    items = sorted(daily_maxima.items() if isinstance(daily_maxima, Mapping) else daily_maxima)
    window = [(day, count) for day, count in items if today - timedelta(days=WINDOW_DAYS) < day <= today]
    if len(window) < MIN_DAYS:
        return ClassForecast(None, len(window), reason=f"{len(window)} day(s) of history; a forecast needs {MIN_DAYS}")
    slope, intercept = theil_sen([(float((day - today).days), float(count)) for day, count in window])
    trend = Trend(slope, intercept, today)
    if slope <= 0:
        return ClassForecast(trend, len(window), reason="the count is flat or falling")
    if capacity is None:
        return ClassForecast(trend, len(window), reason="unlimited capacity")
    latest = window[-1][1]
    reaches: dict[int, date | None] = {}
    for percent in sorted({*thresholds, 100}):
        if reached(percent, latest, capacity):
            reaches[percent] = None
        else:  # the smallest count that reaches it (levels.reached: count > 0 and count * 100 >= t * capacity)
            target = max(1, math.ceil(percent * capacity / 100))
            reaches[percent] = max(trend.day_reaching(target), today)
    return ClassForecast(trend, len(window), reaches)
