"""Durable history of the counts: per UTC day (and per hour, for the last days) the maximum, minimum
and last count of each class, and the peak of a billing period.

The store writes one entry per period in the same atomic step as the counts (streams/store/redis_store.py),
with the lowest and highest count each class passed through since the previous commit
(``SubscriptionState.extremes``, kept by the engine per event), so the maximum and minimum do not
depend on how events were batched; a period's first entry also takes in the count carried over from
before it (at 00:00 the count was yesterday's last). A
period without any commit has no entry; its figures are the last count before it, which
:func:`filled` carries forward. Pure: the store and the web only parse and fill what this says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from counters.periods import period_bounds
from counters.state import DEFAULT_BILLING_DAY

DAILY_DAYS = 400
"""Days of daily entries kept (at least): a year and a billing month on either side."""
HOURLY_DAYS = 14
"""Days of hourly entries kept."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One period's figures: (max, min, last) of internal, then of external."""

    period: str  # "2026-11-29" or "2026-11-29T13"
    internal_max: int
    internal_min: int
    internal_last: int
    external_max: int
    external_min: int
    external_last: int

    def to_dict(self) -> dict[str, object]:
        return {"period": self.period,
                "internal": {"max": self.internal_max, "min": self.internal_min, "last": self.internal_last},
                "external": {"max": self.external_max, "min": self.external_min, "last": self.external_last}}

    def to_row(self) -> list[object]:
        return [self.period, self.internal_max, self.internal_min, self.internal_last,
                self.external_max, self.external_min, self.external_last]


HISTORY_CSV_HEADER = ("period", "internal_max", "internal_min", "internal_last", "external_max", "external_min",
              "external_last")


def day_of(instant: datetime) -> str:
    return instant.astimezone(timezone.utc).strftime("%Y-%m-%d")


def hour_of(instant: datetime) -> str:
    return instant.astimezone(timezone.utc).strftime("%Y-%m-%dT%H")


def parse_entries(raw: Mapping[str, str]) -> list[Entry]:
    """Entries from the store's ``period -> "imax,imin,ilast,emax,emin,elast"`` (other fields ignored)."""
    entries = []
    for period, value in raw.items():
        if period.startswith("_"):
            continue
        numbers = [int(float(n)) for n in value.split(",")]
        entries.append(Entry(period, *numbers))
    return sorted(entries, key=lambda e: e.period)


def _periods(first: str, last: str, hourly: bool) -> Iterable[str]:
    if hourly:
        step, fmt = timedelta(hours=1), "%Y-%m-%dT%H"
    else:
        step, fmt = timedelta(days=1), "%Y-%m-%d"
    current, end = datetime.strptime(first, fmt), datetime.strptime(last, fmt)
    while current <= end:
        yield current.strftime(fmt)
        current += step


def filled(entries: Iterable[Entry], first: str, last: str, *, hourly: bool = False) -> list[Entry]:
    """One entry per period from ``first`` to ``last`` (inclusive; same format as the entries): a period
    without an entry holds the last count before it; periods before any entry are left out."""
    known = sorted(entries, key=lambda e: e.period)
    out: list[Entry] = []
    carried: Entry | None = None
    position = 0
    while position < len(known) and known[position].period < first:
        carried = known[position]
        position += 1
    for period in _periods(first, last, hourly):
        if position < len(known) and known[position].period == period:
            carried = known[position]
            out.append(carried)
            position += 1
        elif carried is not None:
            i, e = carried.internal_last, carried.external_last
            out.append(Entry(period, i, i, i, e, e, e))
    return out


def period_start(day: date, billing_day: int) -> date:
    """The first day of the billing period that contains ``day`` (``counters/periods.py``)."""
    return period_bounds(day, billing_day)[0]


def billing_peak(entries: Iterable[Entry], today: date, billing_day: int = DEFAULT_BILLING_DAY) -> dict[str, object]:
    """``{"current_period": {internal, external, start}, "previous_period": {...} | None}``: the
    largest daily maximum of each class in the billing period so far, and in the one before."""
    start = period_start(today, billing_day)
    previous_start = period_start(start - timedelta(days=1), billing_day)
    days = filled(entries, previous_start.isoformat(), today.isoformat())

    def of(first: date, last: date) -> dict[str, object] | None:
        inside = [e for e in days if first.isoformat() <= e.period <= last.isoformat()]
        if not inside:
            return None
        return {"internal": max(e.internal_max for e in inside), "external": max(e.external_max for e in inside),
                "start": first.isoformat()}

    current = of(start, today) or {"internal": 0, "external": 0, "start": start.isoformat()}
    return {"current_period": current, "previous_period": of(previous_start, start - timedelta(days=1))}
