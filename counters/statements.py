"""Billing statements: the rules of a billing period, and what its statement holds once it is frozen.

A period starts on the subscription's ``billing_day`` (1-31; in a shorter month, its last day) and ends
where the next one starts. It **closes** ``statement_grace`` hours after it ends; its statement is then
frozen: the peak per class with the first day it was reached, the capacity, the overage and the counts
at close.

The peak is the largest daily maximum of the period's days in the durable history
(``counters/history.py``: the counts as they were committed, whatever the batching) and of the **late
events**: events whose time lies in the period but which arrived after it ended. The count stage tallies
those (``counters/late.py``: the count right after each, of each class it raised, attributed to the
period and UTC day of its time; so a late event counts with everyone counted when it arrives). Late events that arrive before
the close (in the grace) are part of the frozen statement; those after it change nothing frozen, and
show as the statement's ``true_up``: the peak as it would be with them, and how many there were.

Pure: dates and microseconds in, dicts out. The store keeps the tally and the frozen statements; the
worker freezes each period once (streams/worker/statements.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from counters.classify import CLASSES
from counters.history import Entry, filled
from counters.periods import closes_at, period_bounds
from counters.state import DEFAULT_STATEMENT_GRACE

DUE_PERIODS = 2
"""Ended periods the closer looks at: the last two (a statement is frozen within a minute of its
close while any worker runs; after an upgrade the last two ended periods are frozen at once, and
earlier ones get no statement)."""


def due_periods(now: datetime, billing_day: int, grace_hours: int, frozen: Iterable[str]) -> list[tuple[date, date]]:
    """The ended periods (the last :data:`DUE_PERIODS`) that have closed by ``now`` and are not frozen yet."""
    done, periods = set(frozen), []
    start, _ = period_bounds(now.astimezone(timezone.utc).date(), billing_day)
    for _ in range(DUE_PERIODS):
        start, end = period_bounds(start - timedelta(days=1), billing_day)
        if closes_at(end, grace_hours) <= now and start.isoformat() not in done:
            periods.append((start, end))
    return sorted(periods)


@dataclass(frozen=True)
class Late:
    """The late events of one period as stored: per class (count, day), and how many events."""

    peaks: dict[str, tuple[int, str]]
    events: int


NO_LATE = Late({}, 0)


def figures(start: date, end: date, daily: Iterable[Entry], late: Late) -> dict[str, Any]:
    """The period's peak per class, ``{"count", "day"}`` (the first day it was reached; null without
    history), from the daily history of its days and its late events."""
    days = filled(daily, start.isoformat(), (end - timedelta(days=1)).isoformat())
    peak: dict[str, Any] = {}
    for user_class in CLASSES:
        best: tuple[int, str] | None = None
        for entry in days:
            value = entry.internal_max if user_class == "internal" else entry.external_max
            if best is None or value > best[0]:
                best = (value, entry.period)
        found = late.peaks.get(user_class)
        if found is not None and (best is None or found[0] > best[0] or (found[0] == best[0] and found[1] < best[1])):
            best = found
        peak[user_class] = None if best is None else {"count": best[0], "day": best[1]}
    return peak


def overage(peak: Mapping[str, Any], capacity: Mapping[str, int | None]) -> dict[str, int | None]:
    """Per class, how far the peak went over the capacity (0 within it; null when unlimited or no peak)."""
    return {c: None if capacity.get(c) is None or peak.get(c) is None else max(0, peak[c]["count"] - capacity[c])
            for c in CLASSES}


def freeze(subscription: str, start: date, end: date, grace_hours: int, daily: Iterable[Entry], late: Late,
           capacity: Mapping[str, int | None], counts: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The frozen statement of a period that has closed; ``late_events``: the late events it took in."""
    peak = figures(start, end, daily, late)
    capacity = {c: capacity.get(c) for c in CLASSES}
    return {"subscription": subscription, "period_start": start.isoformat(),
            "period_end": (end - timedelta(days=1)).isoformat(), "closes_at": _instant(closes_at(end, grace_hours)),
            "closed": True, "closed_at": _instant(now), "peak": peak, "capacity": capacity,
            "overage": overage(peak, capacity), "counts_at_close": {c: int(counts.get(c) or 0) for c in CLASSES},
            "late_events": late.events}


def true_up(frozen: Mapping[str, Any], daily: Iterable[Entry], late: Late) -> dict[str, Any] | None:
    """What the late events that arrived after the close would change (None when none did): the peak
    and overage with them, and how many there were. The frozen figures stay as they are."""
    after = late.events - int(frozen.get("late_events", 0))
    if after <= 0:
        return None
    start, end = date.fromisoformat(frozen["period_start"]), date.fromisoformat(frozen["period_end"])
    peak = figures(start, end + timedelta(days=1), daily, late)
    return {"events": after, "peak": peak, "overage": overage(peak, frozen["capacity"])}


def open_statement(start: date, end: date, grace_hours: int, daily: Iterable[Entry], late: Late,
                   capacity: Mapping[str, int | None]) -> dict[str, Any]:
    """A period not closed yet: its figures so far (``closed: false``; they may still change)."""
    peak = figures(start, end, daily, late)
    capacity = {c: capacity.get(c) for c in CLASSES}
    return {"period_start": start.isoformat(), "period_end": (end - timedelta(days=1)).isoformat(),
            "closes_at": _instant(closes_at(end, grace_hours)), "closed": False, "peak": peak,
            "capacity": capacity, "overage": overage(peak, capacity)}


def statements_report(now: datetime, billing_day: int, grace_hours: int, daily: list[Entry],
               frozen: Mapping[str, dict[str, Any]], late: Mapping[str, Late],
               capacity: Mapping[str, int | None]) -> list[dict[str, Any]]:
    """Every statement, newest period first: the open period and any ended one not closed yet
    (``closed: false``), then the frozen ones, each with its ``true_up`` (null without late events
    after its close)."""
    shown: list[dict[str, Any]] = []
    start, end = period_bounds(now.astimezone(timezone.utc).date(), billing_day)
    for _ in range(DUE_PERIODS + 1):
        if start.isoformat() not in frozen and (not shown or closes_at(end, grace_hours) > now or _any(daily, end)):
            shown.append(open_statement(start, end, grace_hours, daily, late.get(start.isoformat(), NO_LATE), capacity))
        start, end = period_bounds(start - timedelta(days=1), billing_day)
    for key in sorted(frozen, reverse=True):
        statement = dict(frozen[key])
        statement.pop("subscription", None)
        statement["true_up"] = true_up(statement, daily, late.get(key, NO_LATE))
        shown.append(statement)
    return sorted(shown, key=lambda s: s["period_start"], reverse=True)


def _any(daily: Iterable[Entry], end: date) -> bool:
    """Whether the history holds a count for the period (an entry in it, or one carried into it)."""
    return any(e.period < end.isoformat() for e in daily)


def _instant(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def statements_document(subscription: str, settings: Mapping[str, Any], daily: list[Entry],
                        frozen: Mapping[str, dict[str, Any]], late: Mapping[str, Late], now: datetime) -> dict[str, Any]:
    """What the API and the command line show: the settings that shape the periods, and every statement
    (:func:`statements_report`) under the subscription's stored settings."""
    billing_day = int(settings.get("billing_day", 1))
    grace = int(settings.get("statement_grace", DEFAULT_STATEMENT_GRACE))
    return {"subscription": subscription, "billing_day": billing_day, "statement_grace_hours": grace,
            "statements": statements_report(now, billing_day, grace, daily, frozen, late,
                                            settings.get("capacity") or {})}
