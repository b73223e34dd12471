"""The dashboard's live stream, ``GET /api/v1/stream`` (Server-Sent Events; the format is in
docs/http.md#the-live-stream).

At connect a client gets one ``snapshot`` of its scope; after that only ``change`` messages, each with
the field groups of the subscriptions that changed (:mod:`streams.http.fleet`), and at rest a comment
line every ``heartbeat`` seconds. Every snapshot and change carries an ``id:``, so a client that
reconnects with ``Last-Event-ID`` gets only what it missed. One poll loop per process reads the store
for every connected client, and each change is serialized once, whatever the number of dashboards.

Each client sees only its grant's subscriptions, with viewers' settings and counts trimmed.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from counters import filled, hour_of
from streams.http import auth
from streams.http.fleet import Fleet, view_key
from streams.http.responses import json_response, now_ms, store_error_text
from streams.observe.outages import outage

if TYPE_CHECKING:
    from counters import CountsReader

STREAM_EVENTS = 10
"""Capacity-change events per subscription in each message."""
STREAM_DOMAINS = 10
"""External domains per subscription in each message (the full report is at ``/domains``)."""
RETRY_AFTER = 10
"""Seconds a dashboard refused for too many streams is told to wait (``Retry-After``)."""
TREND_EVERY = 300.0
"""Seconds between reads of the hourly history behind each subscription's one-day trend."""
TREND_HOURS = 24
HEARTBEAT = b":\n\n"


class DashboardStream:
    """The stream's handler and the one poll loop that feeds every open stream of the process."""

    def __init__(self, reader: CountsReader, *, interval: float = 1.0, max_streams: int = 100,
                 heartbeat: float = 2.0, ring: int = 600, max_per_caller: int = 5, idle: float = 60.0) -> None:
        self.reader = reader
        self.interval = interval
        self.max_streams = max_streams
        self.max_per_caller = max_per_caller
        """Streams one token may hold at a time (requests without a token share only ``max_streams``)."""
        self.idle = idle
        """Seconds a message may wait for its client to take it before the stream is closed."""
        self._per_caller: Counter[str] = Counter()
        self.heartbeat = heartbeat
        """Seconds between comments on a quiet stream: keeps proxies from closing it, and lets the
        server notice a client that went away (a write fails) and give its slot back."""
        self.fleet = Fleet(ring)
        self._streams = 0
        self._clients = 0
        self._fresh = False
        """Whether the fleet holds a poll made since the loop last started (a snapshot waits for one)."""
        self._problem: str | None = None
        self._problems = 0
        """Counts the store's changes of state (failing, recovered): each stream reports them once."""
        self._trend_at: float | None = None
        self._wake = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        self._closing = False

    async def close(self, _app: web.Application | None = None) -> None:
        """End open event streams (so a shutting-down server does not wait for them)."""
        self._closing = True
        self._notify()
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """Capped at ``max_streams`` at a time: each open stream holds a connection and a share of the
        poll's work; beyond the cap, 503 with ``Retry-After`` (the page's EventSource retries). One
        caller holds at most ``max_per_caller`` of them (429 beyond), so that one token cannot take
        every place."""
        caller = _caller(request)
        if self._streams >= self.max_streams:
            return _refused(f"too many open streams (at most {self.max_streams})", 503)
        if caller is not None and self._per_caller[caller] >= self.max_per_caller:
            return _refused(f"too many open streams for this token (at most {self.max_per_caller})", 429)
        self._streams += 1
        if caller is not None:
            self._per_caller[caller] += 1
        try:
            return await self._stream(request)
        except ConnectionError:
            return web.StreamResponse()  # the client went away (while connecting): nothing to say
        finally:
            self._streams -= 1
            if caller is not None:
                self._per_caller[caller] -= 1
                if self._per_caller[caller] <= 0:
                    del self._per_caller[caller]

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        grant = auth.grant_of(request)
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # tell nginx-like proxies not to buffer
        })
        await response.prepare(request)
        self._subscribe()
        try:
            await self._write(response, b"retry: 2000\n\n")
            await self._serve(response, grant, request.headers.get("Last-Event-ID"))
        except (ConnectionResetError, ConnectionError, TimeoutError):
            pass  # the client went away, or stopped reading for ``idle`` seconds
        finally:
            self._unsubscribe()
        return response

    async def _serve(self, response: web.StreamResponse, grant: auth.Grant, last_event_id: str | None) -> None:
        """Snapshot (unless resuming), then each change in scope; a heartbeat when nothing happens."""
        key = view_key(grant)
        seq = self.fleet.resumable(last_event_id)
        problems = self._problems if self._problem is None else -1
        while not self._closing:
            wake = self._wake
            if problems != self._problems:
                problems = self._problems
                await self._write(response, _sse("problem", orjson.dumps({"time": now_ms(), "error": self._problem})))
            if self._fresh:
                if seq is None or not self.fleet.covers(seq):
                    seq = self.fleet.seq
                    await self._write(response, _sse("snapshot", self.fleet.snapshot(key), self.fleet.event_id(seq)))
                for tick in self.fleet.after(seq):
                    seq = tick.seq
                    data = tick.message(key)
                    if data is not None:
                        await self._write(response, _sse("change", data, self.fleet.event_id(seq)))
            if wake is not self._wake:
                continue  # a poll finished while writing
            try:
                await asyncio.wait_for(wake.wait(), self.heartbeat)
            except TimeoutError:
                await self._write(response, HEARTBEAT)

    async def _write(self, response: web.StreamResponse, data: bytes) -> None:
        """Send, or raise TimeoutError when the client has not taken it within ``idle`` seconds: a
        client that stops reading would otherwise hold its place (and a buffer) for ever."""
        async with asyncio.timeout(self.idle):
            await response.write(data)

    def _notify(self) -> None:
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()

    def _subscribe(self) -> None:
        self._clients += 1
        if self._poller is None or self._poller.done():
            self._fresh = False
            self._trend_at = None
            self._poller = asyncio.ensure_future(self._poll())

    def _unsubscribe(self) -> None:
        self._clients -= 1
        if self._clients <= 0 and self._poller is not None:
            self._poller.cancel()
            self._poller = None

    async def _poll(self) -> None:
        """Read the store, fold what changed into the fleet and wake the streams; once per interval."""
        while self._clients > 0:
            started = time.monotonic()
            await self._poll_once()
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    async def _poll_once(self) -> None:
        now = now_ms()
        with_trend = self._trend_at is None or time.monotonic() - self._trend_at >= TREND_EVERY
        try:
            ids = await self.reader.subscriptions()
            read = await asyncio.gather(*(self._groups(s, now, with_trend) for s in ids))
        except Exception as exc:
            outage("Redis").failed(exc)
            self._set_problem(store_error_text(exc))
            return
        if with_trend:
            self._trend_at = time.monotonic()
        current = {s: groups for s, (groups, _) in zip(ids, read, strict=True) if groups is not None}
        histories = {s: history for s, (_, history) in zip(ids, read, strict=True) if history is not None}
        changed = self.fleet.update(now, current, histories) is not None or not self._fresh
        self._fresh = True
        self._set_problem(None)
        if changed:
            self._notify()

    def _set_problem(self, problem: str | None) -> None:
        if problem != self._problem:
            self._problem = problem
            self._problems += 1
            self._notify()

    async def _groups(self, subscription: str, now: int, with_trend: bool) -> tuple[
            dict[str, dict[str, Any]] | None, list[list[int]] | None]:
        """One subscription's field groups (the trend only when due), and its last hour of history the
        first time it is seen."""
        counts, settings, events, report = await asyncio.gather(
            self.reader.counts(subscription), self.reader.settings(subscription),
            self.reader.recent_capacity_events(subscription, limit=STREAM_EVENTS),
            self.reader.shared_identifiers(subscription))
        if counts is None:
            return None, None
        fields = {k: v for k, v in counts.items() if k != "levels"}
        fields["shared_identifiers"] = 0 if report is None else len(report["identifiers"])
        if isinstance(counts.get("external_domains"), dict):
            fields["external_domains"] = _shortened(counts["external_domains"], STREAM_DOMAINS)
        groups: dict[str, dict[str, Any]] = {
            "counts": fields, "levels": {"levels": counts.get("levels") or {}},
            "settings": {"settings": settings}, "events": {"events": list(events)[:STREAM_EVENTS]}}
        if with_trend or subscription not in self.fleet.pieces:
            groups["trend"] = {"trend": _trend(await self.reader.hourly(subscription), now)}
        history = None if subscription in self.fleet.pieces else await self.reader.history(subscription)
        return groups, history


def _caller(request: web.Request) -> str | None:
    """Whose stream it is: its token, as a hash (never kept in clear); None without one. A client
    address would not do: behind an ingress every dashboard comes from the proxy's."""
    header = request.headers.get("Authorization", "")
    return "token:" + hashlib.sha256(header.encode()).hexdigest() if header else None


def _refused(reason: str, status: int) -> web.Response:
    response = json_response({"error": reason}, status=status)
    response.headers["Retry-After"] = str(RETRY_AFTER)
    return response


def _trend(entries: Any, now: int) -> dict[str, Any]:
    """The last day per hour: ``{"from": unix_ms of the first hour, "internal": [max, ...],
    "external": [...]}``, an hour without a commit holding the count before it; hours before any
    entry are left out."""
    last = datetime.fromtimestamp(now / 1000, timezone.utc)
    first = last - timedelta(hours=TREND_HOURS - 1)
    hours = filled(entries, hour_of(first), hour_of(last), hourly=True)
    start = None
    if hours:
        start = int(datetime.strptime(hours[0].period, "%Y-%m-%dT%H").replace(tzinfo=timezone.utc).timestamp() * 1000)
    return {"from": start, "internal": [h.internal_max for h in hours], "external": [h.external_max for h in hours]}


def _shortened(report: dict[str, Any], limit: int) -> dict[str, Any]:
    """The ``limit`` largest domains of a report, the rest folded into the others (the dashboard shows
    a short table; the full report is at ``/domains``)."""
    top, rest = list(report.get("top") or [])[:limit], list(report.get("top") or [])[limit:]
    return {"top": top, "other_domains": int(report.get("other_domains", 0)) + len(rest),
            "other_individuals": int(report.get("other_individuals", 0)) + sum(int(n) for _, n in rest)}


def _sse(event: str, data: bytes, event_id: str | None = None) -> bytes:
    head = b"" if event_id is None else b"id: " + event_id.encode() + b"\n"
    return head + b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
