"""The read API (``/api/v1/subscriptions...``) that any grant may call for the subscriptions in its
scope: the list, one subscription's counts, its history, its shared identifiers. The admin routes are
in :mod:`streams.http.admin`; access is checked as in :mod:`streams.http.auth`."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING

from aiohttp import web

from counters import (
    DAILY_DAYS,
    DEFAULT_SHARED_IDENTIFIER_THRESHOLD,
    DEFAULT_SOURCE_SILENCE,
    HISTORY_CSV_HEADER,
    HOURLY_DAYS,
    Entry,
    billing_peak,
    filled,
    hour_of,
    sources_report,
    statements_document,
)
from streams.http import auth, insights
from streams.http.responses import NO_CACHE, json_response, known, now_ms, store_error, today

if TYPE_CHECKING:
    from counters import CountsReader


class ReadApi:
    """The read-only JSON routes, bound to one reader."""

    def __init__(self, reader: CountsReader) -> None:
        self.reader = reader

    async def subscriptions(self, request: web.Request) -> web.Response:
        try:
            ids = await self.reader.subscriptions()
        except Exception as exc:
            return store_error(exc)
        return json_response({"subscriptions": auth.grant_of(request).visible(ids)})

    async def subscription(self, request: web.Request) -> web.Response:
        subscription = request.match_info["id"]
        grant = auth.require(request, subscription)
        read = await known(subscription, self.reader.counts(subscription), self.reader.settings(subscription),
                           self.reader.daily(subscription))
        if isinstance(read, web.Response):
            return read
        counts, settings, daily = read
        day = today()
        settings = settings or {}
        return json_response({**grant.counts(counts), "subscription": subscription,
                              "settings": grant.settings(settings),
                              "peak": billing_peak(daily, day, int(settings.get("billing_day", 1))),
                              "forecast": insights.forecasts(daily, settings, day)})

    async def history(self, request: web.Request) -> web.Response:
        """Daily (or hourly) max/min/last per class from ``from`` to ``to`` (UTC dates, inclusive);
        CSV when the client accepts ``text/csv``."""
        subscription = request.match_info["id"]
        auth.require(request, subscription)
        span = _history_span(request)
        if isinstance(span, web.Response):
            return span
        first, last, hourly = span
        read = await known(subscription, self.reader.counts(subscription),
                           self.reader.hourly(subscription) if hourly else self.reader.daily(subscription))
        if isinstance(read, web.Response):
            return read
        stored = read[1]
        entries = _entries(stored, first, last, hourly)
        if "text/csv" in request.headers.get("Accept", ""):
            return _csv(subscription, entries)
        return json_response({"subscription": subscription, "resolution": "hour" if hourly else "day",
                              "entries": [e.to_dict() for e in entries]})

    async def shared_identifiers(self, request: web.Request) -> web.Response:
        subscription = request.match_info["id"]
        auth.require(request, subscription)
        read = await known(subscription, self.reader.counts(subscription),
                           self.reader.shared_identifiers(subscription))
        if isinstance(read, web.Response):
            return read
        report = read[1]
        if report is None:  # committed before the report existed; the next commit writes it
            report = {"threshold": DEFAULT_SHARED_IDENTIFIER_THRESHOLD, "identifiers": []}
        return json_response({"subscription": subscription, **report})

    async def sources(self, request: web.Request) -> web.Response:
        """Per user provider, the latest event and the events per day, and whether it is silent (no
        event for the subscription's ``source_silence`` hours): a dead identity feed makes counts quietly
        too low (``counters/sources.py``)."""
        subscription = request.match_info["id"]
        auth.require(request, subscription)
        read = await known(subscription, self.reader.counts(subscription), self.reader.settings(subscription),
                           self.reader.source_activity(subscription))
        if isinstance(read, web.Response):
            return read
        _, settings, (last, days) = read
        silence = int((settings or {}).get("source_silence", DEFAULT_SOURCE_SILENCE))
        providers = sources_report(last, days, now_ms() * 1000, silence)
        return json_response({"subscription": subscription, "source_silence_hours": silence,
                              "silent": sum(1 for p in providers if p["silent"]), "providers": providers})

    async def statements(self, request: web.Request) -> web.Response:
        """The billing statements: the open period (``closed: false``) and the frozen ones, each with
        its true-up of late events (``counters/statements.py``)."""
        subscription = request.match_info["id"]
        auth.require(request, subscription)
        read = await known(subscription, self.reader.counts(subscription), self.reader.settings(subscription),
                           self.reader.daily(subscription), self.reader.statement_data(subscription))
        if isinstance(read, web.Response):
            return read
        _, settings, daily, (frozen, late) = read
        return json_response(statements_document(subscription, settings or {}, daily, frozen, late,
                                                 datetime.now(timezone.utc)))


def _history_span(request: web.Request) -> tuple[date, date, bool] | web.Response:
    """``(from, to, hourly)`` from the query (a year of days, or the stored hours, up to today by
    default), or the 400 answer for a query that does not parse. Both ends are clamped to what the
    store keeps (``to`` no later than today, ``from`` no earlier than the oldest day or hour kept):
    the answer is filled period by period, so an unclamped ``from=0001-01-01`` would walk millions
    of hours in the event loop that also heartbeats and commits."""
    resolution = request.query.get("resolution", "day")
    if resolution not in ("day", "hour"):
        return json_response({"error": "resolution must be day or hour"}, status=400)
    hourly = resolution == "hour"
    day = today()
    try:
        last = date.fromisoformat(request.query.get("to", day.isoformat()))
        first = date.fromisoformat(request.query.get(
            "from", (day - timedelta(days=HOURLY_DAYS - 1 if hourly else 365)).isoformat()))
    except ValueError:
        return json_response({"error": "from and to must be dates like 2026-11-01"}, status=400)
    if first > last:
        return json_response({"error": "from must not be after to"}, status=400)
    oldest = day - timedelta(days=(HOURLY_DAYS if hourly else DAILY_DAYS) - 1)
    return max(first, oldest), min(last, day), hourly


def _entries(stored: list[Entry], first: date, last: date, hourly: bool) -> list[Entry]:
    """Every day (or hour) from ``first`` to ``last``, gaps filled; none when ``first`` is after ``last``
    (a range wholly in the future). Hours stop at the current one."""
    if first > last:
        return []
    if hourly:
        end = min(f"{last.isoformat()}T23", hour_of(datetime.now(timezone.utc)))
        return filled(stored, f"{first.isoformat()}T00", end, hourly=True)
    return filled(stored, first.isoformat(), last.isoformat())


def _csv(subscription: str, entries: list[Entry]) -> web.Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HISTORY_CSV_HEADER)
    writer.writerows(e.to_row() for e in entries)
    return web.Response(text=buffer.getvalue(), content_type="text/csv", headers={
        **NO_CACHE, "Content-Disposition": f'attachment; filename="{subscription}-history.csv"'})
