"""Silent sources: per user provider of a subscription, the time of its latest event and its events per
UTC day, so that a dead identity feed (which makes counts quietly too low) becomes loud.

The count stage adds each change it applies to the :class:`SourceTally` of its batch (a dict update per
event); the store writes the tally once per commit. :func:`sources_report` is what the HTTP API and the
dashboard show. Pure: times are microseconds since the epoch, as in every change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

DAY_US = 86_400 * 1_000_000
HOUR_US = 3_600 * 1_000_000
SOURCE_DAYS = 8
"""Days of per-day event counts kept: the 7 days the silence rule looks back, and today."""
ACTIVE_DAYS = 7
"""A provider is expected to keep sending when it sent events within this many days: one silent for
longer is taken as retired (EndUsersSourceSilent stops firing; the report still calls it silent)."""


def day_number(time_us: int) -> int:
    """The UTC day of an instant, as days since 1970-01-01 (cheaper per event than a date)."""
    return time_us // DAY_US


def day_text(number: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(days=number)).strftime("%Y-%m-%d")


@dataclass
class SourceTally:
    """One batch's events per provider: the latest event time and the events per UTC day."""

    last: dict[str, int] = field(default_factory=dict)
    days: dict[tuple[str, int], int] = field(default_factory=dict)

    def add(self, provider: str, time_us: int) -> None:
        if time_us > self.last.get(provider, -1):
            self.last[provider] = time_us
        key = (provider, time_us // DAY_US)
        self.days[key] = self.days.get(key, 0) + 1

    def capped(self, now_us: int) -> SourceTally:
        """The tally with times after ``now_us`` taken as now: an event stamped in the future (a producer's
        clock ahead) must not keep its provider looking alive for days."""
        today = now_us // DAY_US
        capped = SourceTally({p: min(t, now_us) for p, t in self.last.items()})
        for (provider, day), events in self.days.items():
            key = (provider, min(day, today))
            capped.days[key] = capped.days.get(key, 0) + events
        return capped

    def clear(self) -> None:
        self.last.clear()
        self.days.clear()

    def __bool__(self) -> bool:
        return bool(self.last)


def is_silent(last_us: int, now_us: int, silence_hours: int) -> bool:
    """Silent: no event for ``silence_hours`` (the subscription's ``source_silence``)."""
    return now_us - last_us >= silence_hours * HOUR_US


def sources_report(last: Mapping[str, int], days: Mapping[tuple[str, int], int], now_us: int,
                   silence_hours: int) -> list[dict[str, Any]]:
    """Per provider (by name): ``last_event`` (RFC 3339), ``silent_hours`` (whole hours since it),
    ``silent``, ``active`` (an event within :data:`ACTIVE_DAYS`) and ``events_per_day``: the UTC days of
    the last :data:`SOURCE_DAYS`, oldest first, each with its events (0 for a day without any)."""
    today = now_us // DAY_US
    shown = range(today - SOURCE_DAYS + 1, today + 1)
    report = []
    for provider in sorted(last):
        at = last[provider]
        report.append({
            "provider": provider,
            "last_event": datetime.fromtimestamp(at / 1e6, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "silent_hours": max(0, (now_us - at) // HOUR_US),
            "silent": is_silent(at, now_us, silence_hours),
            "active": now_us - at < ACTIVE_DAYS * DAY_US,
            "events_per_day": [{"day": day_text(day), "events": days.get((provider, day), 0)} for day in shown],
        })
    return report
