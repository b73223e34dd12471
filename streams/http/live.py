"""The dashboard's live stream, ``GET /api/v1/stream`` (Server-Sent Events).

The stream sends ``event: counts`` immediately at connect and then every ``interval`` seconds. Its
data is ``{"time": unix_ms, "full": bool, "subscriptions": {id: {...counts, "settings", "events",
"shared_identifiers", ("history" | "point")}}}``: the first message (``full: true``) carries each subscription's
``history`` (``[[unix_ms, internal, external], ...]``, oldest first, last hour); later messages carry
only ``point`` (the current ``[time, internal, external]``), which the page appends. A subscription
that appears later gets its ``history`` in the first message that includes it. ``events`` are the 10
newest capacity-change events. When the store fails, the stream sends ``event: problem`` with
``{"error": ...}`` and keeps trying. One poll loop per process feeds all connected clients, so the
store load does not grow with the number of open dashboards.

Each client sees only its grant's subscriptions (``auth.stream_view``), with viewers' settings trimmed.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from streams.http import auth
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

Message = tuple[str, dict[str, Any]]
"""``(event, data)``: ``("counts", {...})`` or ``("problem", {"time", "error"})``."""


class DashboardStream:
    """The stream's handler and the one poll loop that feeds every open stream of the process."""

    def __init__(self, reader: CountsReader, *, interval: float = 1.0, max_streams: int = 100,
                 max_per_caller: int = 5, idle: float = 60.0) -> None:
        self.reader = reader
        self.interval = interval
        self.max_streams = max_streams
        self.max_per_caller = max_per_caller
        """Streams one token may hold at a time (requests without a token share only ``max_streams``)."""
        self.idle = idle
        """Seconds a message may wait for its client to take it before the stream is closed."""
        self._streams = 0
        self._per_caller: Counter[str] = Counter()
        self._full: asyncio.Future[Message] | None = None
        self._full_at = 0.0
        self._last_settings: dict[str, Any] = {}
        """Each subscription's settings as the last poll sent them: later polls send only changes."""
        self._clients: set[asyncio.Queue[Message]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    async def close(self, _app: web.Application | None = None) -> None:
        """End open event streams (so a shutting-down server does not wait for them)."""
        self._closing.set()
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
        queue: asyncio.Queue[Message] = asyncio.Queue(maxsize=1)
        try:
            await self._write(response, b"retry: 2000\n\n")
            kind, data = await self._full_snapshot()
            data = auth.stream_view(grant, data)
            known: set[str] = set(data["subscriptions"]) if kind == "counts" else set()
            await self._write(response, _sse(kind, data))
            self._subscribe(queue)
            while (message := await self._next(queue)) is not None:
                kind, data = message[0], auth.stream_view(grant, message[1])
                if kind == "counts":
                    new = set(data["subscriptions"]) - known
                    if new:  # a subscription that appeared since: send its whole history once
                        data = await self._with_history(data, new)
                    known = set(data["subscriptions"])
                await self._write(response, _sse(kind, data))
        except (ConnectionResetError, ConnectionError, TimeoutError):
            pass  # the client went away, or stopped reading for ``idle`` seconds
        finally:
            self._unsubscribe(queue)
        return response

    async def _write(self, response: web.StreamResponse, data: bytes) -> None:
        """Send, or raise TimeoutError when the client has not taken it within ``idle`` seconds: a
        client that stops reading would otherwise hold its place (and a buffer) for ever."""
        async with asyncio.timeout(self.idle):
            await response.write(data)

    async def _next(self, queue: asyncio.Queue[Message]) -> Message | None:
        """The next message for one client, or None once the server is closing."""
        if self._closing.is_set():
            return None
        getter = asyncio.ensure_future(queue.get())
        closing = asyncio.ensure_future(self._closing.wait())
        done, _ = await asyncio.wait({getter, closing}, return_when=asyncio.FIRST_COMPLETED)
        closing.cancel()
        if getter not in done:
            getter.cancel()
            return None
        return getter.result()

    def _subscribe(self, queue: asyncio.Queue[Message]) -> None:
        self._clients.add(queue)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.ensure_future(self._poll())

    def _unsubscribe(self, queue: asyncio.Queue[Message]) -> None:
        self._clients.discard(queue)
        if not self._clients and self._poller is not None:
            self._poller.cancel()
            self._poller = None

    async def _poll(self) -> None:
        """One snapshot per interval for every connected client; a slow client gets only the newest.
        A subscription's ``settings`` (large for a subscription with many owned domains) are sent only
        when they changed since the previous poll: each client got them whole at connect."""
        while self._clients:
            await asyncio.sleep(self.interval)
            message = self._without_unchanged_settings(await self._snapshot(full_for=set()))
            for queue in list(self._clients):
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(message)

    async def _full_snapshot(self) -> Message:
        """The snapshot with every history that a new client starts from, shared by the clients that
        connect within one interval: many dashboards reconnecting at once read the store once."""
        now = time.monotonic()
        if self._full is None or now - self._full_at >= self.interval:
            self._full, self._full_at = asyncio.ensure_future(self._snapshot(full_for=None)), now
        return await asyncio.shield(self._full)

    def _without_unchanged_settings(self, message: Message) -> Message:
        kind, data = message
        if kind != "counts":
            return message
        subscriptions = {}
        for subscription, entry in data["subscriptions"].items():
            settings = entry.get("settings")
            if settings == self._last_settings.get(subscription):
                entry = {k: v for k, v in entry.items() if k != "settings"}
            else:
                self._last_settings[subscription] = settings
            subscriptions[subscription] = entry
        return kind, {**data, "subscriptions": subscriptions}

    async def _snapshot(self, full_for: set[str] | None) -> Message:
        """``("counts", data)``; history for ``full_for`` (None: every subscription); or a problem."""
        now = now_ms()
        try:
            ids = await self.reader.subscriptions()
            entries = await asyncio.gather(*(self._entry(s, now, full_for is None or s in full_for) for s in ids))
        except Exception as exc:
            outage("Redis").failed(exc)
            return "problem", {"time": now, "error": store_error_text(exc)}
        subscriptions = {s: e for s, e in zip(ids, entries, strict=True) if e is not None}
        return "counts", {"time": now, "full": full_for is None, "subscriptions": subscriptions}

    async def _entry(self, subscription: str, now: int, with_history: bool) -> dict[str, Any] | None:
        counts, settings, events, report = await asyncio.gather(
            self.reader.counts(subscription), self.reader.settings(subscription),
            self.reader.recent_capacity_events(subscription, limit=STREAM_EVENTS),
            self.reader.shared_identifiers(subscription))
        if counts is None:
            return None
        entry: dict[str, Any] = {**counts, "settings": settings, "events": list(events)[:STREAM_EVENTS],
                                 "shared_identifiers": 0 if report is None else len(report["identifiers"])}
        if isinstance(counts.get("external_domains"), dict):
            entry["external_domains"] = _shortened(counts["external_domains"], STREAM_DOMAINS)
        if with_history:
            entry["history"] = await self.reader.history(subscription)
        else:
            entry["point"] = [now, int(counts.get("internal", 0)), int(counts.get("external", 0))]
        return entry

    async def _with_history(self, data: dict[str, Any], new: set[str]) -> dict[str, Any]:
        subscriptions = dict(data["subscriptions"])
        try:
            histories = await asyncio.gather(*(self.reader.history(s) for s in sorted(new)))
        except Exception as exc:
            outage("Redis").failed(exc)
            return data
        for subscription, history in zip(sorted(new), histories, strict=True):
            entry = dict(subscriptions[subscription])
            entry.pop("point", None)
            entry["history"] = history
            subscriptions[subscription] = entry
        return {**data, "subscriptions": subscriptions}


def _caller(request: web.Request) -> str | None:
    """Whose stream it is: its token, as a hash (never kept in clear); None without one. A client
    address would not do: behind an ingress every dashboard comes from the proxy's."""
    header = request.headers.get("Authorization", "")
    return "token:" + hashlib.sha256(header.encode()).hexdigest() if header else None


def _refused(reason: str, status: int) -> web.Response:
    response = json_response({"error": reason}, status=status)
    response.headers["Retry-After"] = str(RETRY_AFTER)
    return response


def _shortened(report: dict[str, Any], limit: int) -> dict[str, Any]:
    """The ``limit`` largest domains of a report, the rest folded into the others (the dashboard shows
    a short table every second; the full report is at ``/domains``)."""
    top, rest = list(report.get("top") or [])[:limit], list(report.get("top") or [])[limit:]
    return {"top": top, "other_domains": int(report.get("other_domains", 0)) + len(rest),
            "other_individuals": int(report.get("other_individuals", 0)) + sum(int(n) for _, n in rest)}


def _sse(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
