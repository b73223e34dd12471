"""The forecast as the API, the dashboard and ``endusers counts`` show it (counters/forecast.py does the
arithmetic; this module only picks the history and the settings it needs and writes dates as text)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from typing import Any

from counters import CLASSES, WINDOW_DAYS, Entry, filled, forecast_class


def forecasts(daily: Iterable[Entry], settings: Mapping[str, Any], today: date) -> dict[str, dict[str, Any]]:
    """Per class: ``{"days", "slope_per_day", "reaches": {percent: "YYYY-MM-DD" | None}, "reason"}``
    from the daily maxima of the last 30 days (days without a commit carry the last count)."""
    days = filled(daily, (today - timedelta(days=WINDOW_DAYS - 1)).isoformat(), today.isoformat())
    capacity = settings.get("capacity") or {}
    thresholds = settings.get("thresholds") or (80, 90, 100)
    out: dict[str, dict[str, Any]] = {}
    for user_class in CLASSES:
        maxima = {date.fromisoformat(e.period): getattr(e, f"{user_class}_max") for e in days}
        result = forecast_class(maxima, capacity.get(user_class), thresholds, today)
        out[user_class] = {
            "days": result.days,
            "slope_per_day": None if result.trend is None else round(result.trend.slope, 3),
            "reaches": {str(p): None if d is None else d.isoformat() for p, d in result.reaches.items()},
            "reason": result.reason,
        }
    return out


def forecast_sentence(user_class: str, forecast: Mapping[str, Any]) -> str | None:
    """"at this rate, external reaches 100% around 2027-02-10", or None when there is nothing to say."""
    reaches = forecast.get("reaches") or {}
    ahead = [(int(p), d) for p, d in reaches.items() if d is not None]
    if not ahead:
        return None
    percent, when = min(ahead, key=lambda item: item[1])
    full = reaches.get("100")
    text = f"at this rate, {user_class} reaches {percent}% around {when}"
    if full is not None and percent != 100:
        text += f" and 100% around {full}"
    return text
