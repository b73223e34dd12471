"""Late events: applied after the billing period of their time had ended. The count stage tallies them
per batch (the count right after each of each class it raised, attributed to the period and UTC day of
its time); the store adds
the tally to what it holds; a statement takes in those that arrived before its close, and shows the
later ones as its true-up (``counters/statements.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

from counters.periods import period_bounds

DAY_US = 86_400 * 1_000_000
EPOCH = date(1970, 1, 1)
LATE_DAYS = 400
"""How far back a late event is tallied: the history's days (older periods have no statement)."""


@dataclass
class LateTally:
    """One batch's late events: per period start (ISO date), per class the highest count right after
    one of them with the day it was first reached, and how many there were."""

    peaks: dict[str, dict[str, tuple[int, str]]] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    _open_from: int | None = None
    """Start (µs) of the period open at the last check: an event at or after it is not late."""

    today: date = EPOCH
    _day: tuple[int, str, str] = (-1, "", "")
    """The last late event's day number, its period start and the day (ISO): a backfill sends many
    events of one day in a row, so the period is computed once a day, not once an event."""

    def open_from(self, now: date, billing_day: int) -> int:
        """Cache the start of the period open on ``now`` (the count stage calls this once per batch,
        and again after a config change, which may move the billing day)."""
        self.today = now
        self._day = (-1, "", "")  # the billing day may have moved
        start, _ = period_bounds(now, billing_day)
        self._open_from = (start - EPOCH).days * DAY_US
        return self._open_from

    def is_late(self, time_us: int) -> bool:
        """Whether an event at this time is late: before the open period, within :data:`LATE_DAYS` of it."""
        return self._open_from is not None and self._open_from - LATE_DAYS * DAY_US <= time_us < self._open_from

    def add(self, time_us: int, counts: Mapping[str, int], billing_day: int) -> None:
        """A late event (``is_late``) applied, with the count right after it of each class it raised."""
        number = time_us // DAY_US
        if number != self._day[0]:
            day = EPOCH + timedelta(days=number)
            self._day = (number, period_bounds(day, billing_day)[0].isoformat(), day.isoformat())
        _, start, day_text = self._day
        self.events[start] = self.events.get(start, 0) + 1
        if not counts:
            return
        peaks = self.peaks.setdefault(start, {})
        for user_class, count in counts.items():
            if user_class not in peaks or count > peaks[user_class][0]:
                peaks[user_class] = (count, day_text)

    def clear(self) -> None:
        self.peaks.clear()
        self.events.clear()

    def __bool__(self) -> bool:
        return bool(self.events)
