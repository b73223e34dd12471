"""Billing periods: a period starts on the subscription's ``billing_day`` (1-31; in a shorter month, on
its last day) and ends where the next one starts; it closes ``statement_grace`` hours after it ends.
Pure date arithmetic, shared by the history's peaks and the statements."""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta, timezone


def start_in(year: int, month: int, billing_day: int) -> date:
    """The day a period starts in that month: ``billing_day``, or the month's last day when it is shorter."""
    return date(year, month, min(billing_day, calendar.monthrange(year, month)[1]))


def period_bounds(day: date, billing_day: int) -> tuple[date, date]:
    """``(start, end)`` of the billing period holding ``day``: ``end`` is the next period's start (exclusive)."""
    start = start_in(day.year, day.month, billing_day)
    if day < start:
        year, month = (day.year, day.month - 1) if day.month > 1 else (day.year - 1, 12)
        start = start_in(year, month, billing_day)
    year, month = (start.year, start.month + 1) if start.month < 12 else (start.year + 1, 1)
    return start, start_in(year, month, billing_day)


def closes_at(end: date, grace_hours: int) -> datetime:
    """The instant a period that ends on ``end`` (00:00 UTC, exclusive) closes."""
    return datetime(end.year, end.month, end.day, tzinfo=timezone.utc) + timedelta(hours=grace_hours)
