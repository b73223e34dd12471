"""HTTP interface of every worker (docs/operations.md): JSON API, health, metrics, a live dashboard.

The handlers are plain aiohttp handlers (Faust's web driver *is* aiohttp: ``app.web.web_app`` is the
:class:`aiohttp.web.Application`), because the dashboard needs a streaming response (Server-Sent
Events) and static files, which Faust's ``View`` does not offer. :func:`install_views` mounts them on
a Faust app; :func:`create_web_app` builds a standalone aiohttp application (tests, or serving the
dashboard from a process that is not a worker).

Routes (also described in ``streams/http/static/openapi.json``)::

    GET /                              dashboard page
    GET /static/{file}                 dashboard assets (package data, never a CDN)
    GET /api/v1/subscriptions          {"subscriptions": [ids]}
    GET /api/v1/subscriptions/{id}     counts + "subscription" + "settings"; 404 if unknown
    GET /api/v1/subscriptions/{id}/audit  applied config changes, newest first (admins only)
    GET /api/v1/subscriptions/{id}/shared-identifiers
                                       {"subscription", "threshold", "identifiers": [{"digest", "kind",
                                       "records", "runtimes"}]}: emails and logins held by more records
                                       than the threshold (digests only); 404 if unknown
    GET /api/v1/subscriptions/{id}/history  daily (or hourly) max/min/last per class; JSON or CSV
    POST /api/v1/subscriptions/{id}/explain  one person's records, individual, class and rule (admins)
    POST /api/v1/subscriptions/{id}/preview  what a config change would give, applying nothing (admins)
    GET /api/v1/subscriptions/{id}/domains  external individuals per email domain (admins only)
    GET /api/v1/stream                 Server-Sent Events, see below
    GET /healthz                       200 {"status": "ok"} while the process serves HTTP
    GET /readyz                        200 while Kafka and Redis answer, the partitions are assigned,
                                       every owned state is loaded and counting is not stalled;
                                       else 503 with each check and a "reason"
    GET /metrics                       Prometheus text format
    GET /openapi.json                  OpenAPI 3.1 description of all of the above

The stream sends ``event: counts`` immediately at connect and then every ``interval`` seconds. Its
data is ``{"time": unix_ms, "full": bool, "subscriptions": {id: {...counts, "settings", "events",
"shared_identifiers", ("history" | "point")}}}``: the first message (``full: true``) carries each subscription's
``history`` (``[[unix_ms, internal, external], ...]``, oldest first, last hour); later messages carry
only ``point`` (the current ``[time, internal, external]``), which the page appends. A subscription
that appears later gets its ``history`` in the first message that includes it. ``events`` are the 10
newest capacity-change events. When the store fails, the stream sends ``event: problem`` with
``{"error": ...}`` and keeps trying. One poll loop per process feeds all connected clients, so the
store load does not grow with the number of open dashboards.

Access (``streams/http/auth.py``): a middleware checks the Host and the bearer token and leaves the request's
grant; each view asks it for what it needs (a subscription in scope, an admin, scope ``*``), and the
stream and the lists show only the grant's subscriptions, with viewers' settings trimmed.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from counters import (
    DEFAULT_SHARED_IDENTIFIER_THRESHOLD,
    HISTORY_CSV_HEADER,
    HOURLY_DAYS,
    CountsReader,
    Digester,
    NotAnIdentifier,
    SubscriptionState,
    billing_peak,
    digests_of,
    explanation,
    filled,
    hour_of,
    preview,
    record_digest,
    to_change,
)
from schemas.codec import Rejection, decode
from streams.http import auth, insights
from streams.observe import metrics
from streams.observe.outages import outage

if TYPE_CHECKING:
    import faust

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
STREAM_EVENTS = 10
STREAM_DOMAINS = 10
READINESS_TIMEOUT = 5.0

Readiness = Callable[[], Awaitable[dict[str, bool | str]]]
"""Each check: True when it passes, else False or the reason (``"loading acme: 420 of 1,000 records"``)."""

RETRY_AFTER = 10
"""Seconds a dashboard refused for too many streams is told to wait (``Retry-After``)."""


ROUTES: tuple[str, ...] = (
    "/",
    "/static/{file}",
    "/api/v1/subscriptions",
    "/api/v1/subscriptions/{id}",
    "/api/v1/subscriptions/{id}/audit",
    "/api/v1/subscriptions/{id}/shared-identifiers",
    "/api/v1/subscriptions/{id}/domains",
    "/api/v1/subscriptions/{id}/history",
    "/api/v1/subscriptions/{id}/preview",
    "/api/v1/subscriptions/{id}/explain",
    "/api/v1/stream",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
)
"""Every path served (the OpenAPI document must describe exactly these)."""

_NO_CACHE = {"Cache-Control": "no-cache"}


def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(value), status=status, content_type="application/json",
                        headers=_NO_CACHE)


def _today() -> date:
    return datetime.now(timezone.utc).date()


def _now_ms() -> int:
    return int(time.time() * 1000)


class Views:
    """The handlers, bound to one reader and one readiness probe."""

    def __init__(self, reader: CountsReader, readiness: Readiness, *, interval: float = 1.0,
                 max_streams: int = 100, digester: Digester | None = None) -> None:
        self.reader = reader
        self.digester = digester or Digester()
        """The worker's digester: ``explain`` digests an identifier as ingest does."""
        self.readiness = readiness
        self.interval = interval
        self.max_streams = max_streams
        self._streams = 0
        self._full: asyncio.Future[tuple[str, dict[str, Any]]] | None = None
        self._full_at = 0.0
        self._last_settings: dict[str, Any] = {}
        """Each subscription's settings as the last poll sent them: later polls send only changes."""
        self._clients: set[asyncio.Queue[tuple[str, dict[str, Any]]]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    # --- mounting ---------------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        router = app.router
        router.add_get("/", self.index)
        router.add_get("/static/{file}", self.static)
        router.add_get("/api/v1/subscriptions", self.subscriptions)
        router.add_get("/api/v1/subscriptions/{id}", self.subscription)
        router.add_get("/api/v1/subscriptions/{id}/audit", self.audit)
        router.add_get("/api/v1/subscriptions/{id}/shared-identifiers", self.shared_identifiers)
        router.add_get("/api/v1/subscriptions/{id}/domains", self.domains)
        router.add_get("/api/v1/subscriptions/{id}/history", self.history)
        router.add_post("/api/v1/subscriptions/{id}/preview", self.preview)
        router.add_post("/api/v1/subscriptions/{id}/explain", self.explain)
        router.add_get("/api/v1/stream", self.stream)
        router.add_get("/healthz", self.healthz)
        router.add_get("/readyz", self.readyz)
        router.add_get("/metrics", self.metrics)
        router.add_get("/openapi.json", self.openapi)
        app.on_shutdown.append(self.close)

    async def close(self, _app: web.Application | None = None) -> None:
        """End open event streams (so a shutting-down server does not wait for them)."""
        self._closing.set()
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None

    # --- JSON API ---------------------------------------------------------------------------------

    async def subscriptions(self, request: web.Request) -> web.Response:
        try:
            ids = await self.reader.subscriptions()
        except Exception as exc:
            return self._store_error(exc)
        return _json({"subscriptions": auth.grant_of(request).visible(ids)})

    async def subscription(self, request: web.Request) -> web.Response:
        subscription = request.match_info["id"]
        grant = auth.require(request, subscription)
        try:
            counts, settings, daily = await asyncio.gather(self.reader.counts(subscription),
                                                           self.reader.settings(subscription),
                                                           self.reader.daily(subscription))
        except Exception as exc:
            return self._store_error(exc)
        if counts is None:
            return _json({"error": f"unknown subscription {subscription!r}"}, status=404)
        today = _today()
        settings = settings or {}
        return _json({**grant.counts(counts), "subscription": subscription, "settings": grant.settings(settings),
                      "peak": billing_peak(daily, today, int(settings.get("billing_day", 1))),
                      "forecast": insights.forecasts(daily, settings, today)})

    async def preview(self, request: web.Request) -> web.Response:
        """What-if (``counters/whatif.py``): the body holds config keys as in a config event; the
        committed state is loaded afresh and the change applied to that copy. Admins only: the
        answer reveals settings."""
        subscription = request.match_info["id"]
        auth.require(request, subscription, admin=True)
        try:
            body = await request.json(loads=orjson.loads)
        except ValueError:
            return _json({"error": "the body must be a JSON object of config keys"}, status=400)
        if not isinstance(body, dict):
            return _json({"error": "the body must be a JSON object of config keys"}, status=400)
        event = decode(orjson.dumps({**body, "type": "config", "subscription": subscription}))
        if isinstance(event, Rejection):
            return _json({"error": event.reason}, status=400)
        change = to_change(event, Digester(), _now_ms() * 1000)
        state = await self._fresh_state(subscription)
        if isinstance(state, web.Response):
            return state
        return _json({"subscription": subscription, "change": change.config.to_dict() if change.config is not None else {},
                      **preview(state, change)})

    async def explain(self, request: web.Request) -> web.Response:
        """Explain one person (``counters/explain.py``). The body names them: ``{"email"}``,
        ``{"username"}``, or ``{"runtime", "tenant", "provider", "user_id"}`` (POST, so no identifier
        lands in a URL or an access log). Admins only."""
        subscription = request.match_info["id"]
        auth.require(request, subscription, admin=True)
        try:
            body = await request.json(loads=orjson.loads)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _json({"error": "the body must be a JSON object: email, username, or user_id (with "
                                   "runtime, tenant, provider)"}, status=400)
        digest = self.digester.for_subscription(subscription)
        try:
            if isinstance(body.get("user_id"), (str, int)) and not isinstance(body.get("user_id"), bool):
                runtime, tenant, provider = (str(body.get(k) or "default") for k in ("runtime", "tenant", "provider"))
                query: dict[str, str] = {
                    "record": record_digest(digest, runtime, tenant, provider, str(body["user_id"]))}
            elif isinstance(body.get("email"), str):
                query = {"identifier": digests_of(digest, email=body["email"])}
            elif isinstance(body.get("username"), str):
                query = {"identifier": digests_of(digest, username=body["username"])}
            else:
                return _json({"error": "give email, username, or user_id"}, status=400)
        except NotAnIdentifier as exc:
            return _json({"error": str(exc)}, status=400)
        state = await self._fresh_state(subscription)
        if isinstance(state, web.Response):
            return state
        return _json(explanation(state, **query))

    async def history(self, request: web.Request) -> web.Response:
        """Daily (or hourly) max/min/last per class from ``from`` to ``to`` (UTC dates, inclusive);
        CSV when the client accepts ``text/csv``."""
        subscription = request.match_info["id"]
        auth.require(request, subscription)
        hourly = request.query.get("resolution", "day") == "hour"
        if request.query.get("resolution", "day") not in ("day", "hour"):
            return _json({"error": "resolution must be day or hour"}, status=400)
        today = _today()
        try:
            last = date.fromisoformat(request.query.get("to", today.isoformat()))
            first = date.fromisoformat(request.query.get(
                "from", (today - timedelta(days=HOURLY_DAYS - 1 if hourly else 365)).isoformat()))
        except ValueError:
            return _json({"error": "from and to must be dates like 2026-11-01"}, status=400)
        if first > last:
            return _json({"error": "from must not be after to"}, status=400)
        try:
            counts = await self.reader.counts(subscription)
            stored = await (self.reader.hourly(subscription) if hourly else self.reader.daily(subscription))
        except Exception as exc:
            return self._store_error(exc)
        if counts is None:
            return _json({"error": f"unknown subscription {subscription!r}"}, status=404)
        last = min(last, today)
        if hourly:
            now_hour = hour_of(datetime.now(timezone.utc))
            end = min(f"{last.isoformat()}T23", now_hour)
            entries = filled(stored, f"{first.isoformat()}T00", end, hourly=True) if first <= last else []
        else:
            entries = filled(stored, first.isoformat(), last.isoformat()) if first <= last else []
        if "text/csv" in request.headers.get("Accept", ""):
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(HISTORY_CSV_HEADER)
            writer.writerows(e.to_row() for e in entries)
            return web.Response(text=buffer.getvalue(), content_type="text/csv", headers={
                **_NO_CACHE, "Content-Disposition": f'attachment; filename="{subscription}-history.csv"'})
        return _json({"subscription": subscription, "resolution": "hour" if hourly else "day",
                      "entries": [e.to_dict() for e in entries]})

    async def audit(self, request: web.Request) -> web.Response:
        subscription = request.match_info["id"]
        auth.require(request, subscription, admin=True)
        try:
            entries = await self.reader.audit(subscription, limit=int(request.query.get("limit", "100")))
        except ValueError:
            return _json({"error": "limit must be a whole number"}, status=400)
        except Exception as exc:
            return self._store_error(exc)
        return _json({"subscription": subscription, "changes": entries})

    async def shared_identifiers(self, request: web.Request) -> web.Response:
        subscription = request.match_info["id"]
        auth.require(request, subscription)
        try:
            counts, report = await asyncio.gather(self.reader.counts(subscription),
                                                  self.reader.shared_identifiers(subscription))
        except Exception as exc:
            return self._store_error(exc)
        if counts is None:
            return _json({"error": f"unknown subscription {subscription!r}"}, status=404)
        if report is None:  # committed before the report existed; the next commit writes it
            report = {"threshold": DEFAULT_SHARED_IDENTIFIER_THRESHOLD, "identifiers": []}
        return _json({"subscription": subscription, **report})

    async def domains(self, request: web.Request) -> web.Response:
        """Where external users come from: the worker keeps the report in the counts document. Admins
        only (``auth.ADMIN_COUNTS``)."""
        subscription = request.match_info["id"]
        auth.require(request, subscription, admin=True)
        try:
            counts = await self.reader.counts(subscription)
        except Exception as exc:
            return self._store_error(exc)
        if counts is None:
            return _json({"error": f"unknown subscription {subscription!r}"}, status=404)
        report = counts.get("external_domains") or {"top": [], "other_domains": 0, "other_individuals": 0}
        return _json({"subscription": subscription, "external": counts.get("external", 0),
                      "domains": [{"domain": d, "external": n} for d, n in report["top"]],
                      "other_domains": report["other_domains"], "other_individuals": report["other_individuals"]})

    async def _fresh_state(self, subscription: str) -> SubscriptionState | web.Response:
        """The subscription's committed state, read anew (the admin tools change their copy), or the
        answer to give instead: 503 while the store is unavailable, 404 for an unknown subscription."""
        try:
            state = await self.reader.fresh_state(subscription)
        except Exception as exc:
            return self._store_error(exc)
        if state is None:
            return _json({"error": f"unknown subscription {subscription!r}"}, status=404)
        return state

    def _store_error(self, exc: BaseException) -> web.Response:
        outage("Redis").failed(exc)  # one line per 10 s, not one per request
        return _json({"error": f"store unavailable: {type(exc).__name__}: {exc}"}, status=503)

    # --- operations -------------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        try:
            checks = dict(await asyncio.wait_for(self.readiness(), READINESS_TIMEOUT))
        except Exception as exc:
            return _json({"error": f"readiness check failed: {type(exc).__name__}: {exc}"}, status=503)
        failing = {name: value for name, value in checks.items() if value is not True}
        if checks and not failing:
            return _json(checks)
        reasons = [value if isinstance(value, str) else f"{name} does not answer" for name, value in failing.items()]
        return _json({**checks, "reason": "; ".join(reasons) or "no check ran"}, status=503)

    async def metrics(self, request: web.Request) -> web.Response:
        auth.require(request, everything=True)
        body, content_type = metrics.render()
        response = web.Response(body=body, headers=_NO_CACHE)
        response.headers["Content-Type"] = content_type
        return response

    # --- files ------------------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.StreamResponse:
        return self._file(STATIC_DIR / "index.html")

    async def openapi(self, request: web.Request) -> web.StreamResponse:
        return self._file(STATIC_DIR / "openapi.json")

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["file"]
        try:
            path = (STATIC_DIR / name).resolve()
            found = not name.startswith(".") and path.parent == STATIC_DIR and path.is_file()
        except (ValueError, OSError):  # a NUL byte, a name too long: not a file of ours either
            found = False
        if not found:
            return _json({"error": f"no such file {name[:100]!r}"}, status=404)
        return self._file(path)

    @staticmethod
    def _file(path: Path) -> web.StreamResponse:
        return web.FileResponse(path, headers=_NO_CACHE)

    # --- live stream ------------------------------------------------------------------------------

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """Capped at ``max_streams`` at a time: each open stream holds a connection and a share of the
        poll's work; beyond the cap, 503 with ``Retry-After`` (the page's EventSource retries)."""
        if self._streams >= self.max_streams:
            response = _json({"error": f"too many open streams (at most {self.max_streams})"}, status=503)
            response.headers["Retry-After"] = str(RETRY_AFTER)
            return response
        self._streams += 1
        try:
            return await self._stream(request)
        except ConnectionError:
            return web.StreamResponse()  # the client went away (while connecting): nothing to say
        finally:
            self._streams -= 1

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        grant = auth.grant_of(request)
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # tell nginx-like proxies not to buffer
        })
        await response.prepare(request)
        queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(maxsize=1)
        known: set[str] = set()
        try:
            await response.write(b"retry: 2000\n\n")
            kind, data = await self._full_snapshot()
            data = auth.stream_view(grant, data)
            if kind == "counts":
                known = set(data["subscriptions"])
            await response.write(_sse(kind, data))
            self._subscribe(queue)
            while not self._closing.is_set():
                getter = asyncio.ensure_future(queue.get())
                closing = asyncio.ensure_future(self._closing.wait())
                done, _ = await asyncio.wait({getter, closing}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    closing.cancel()
                    break
                closing.cancel()
                kind, data = getter.result()
                data = auth.stream_view(grant, data)
                if kind == "counts":
                    new = set(data["subscriptions"]) - known
                    if new:  # a subscription that appeared since: send its whole history once
                        data = await self._with_history(data, new)
                    known = set(data["subscriptions"])
                await response.write(_sse(kind, data))
        except (ConnectionResetError, ConnectionError):
            pass  # the client went away
        finally:
            self._unsubscribe(queue)
        return response

    def _subscribe(self, queue: asyncio.Queue[tuple[str, dict[str, Any]]]) -> None:
        self._clients.add(queue)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.ensure_future(self._poll())

    def _unsubscribe(self, queue: asyncio.Queue[tuple[str, dict[str, Any]]]) -> None:
        self._clients.discard(queue)
        if not self._clients and self._poller is not None:
            self._poller.cancel()
            self._poller = None

    async def _poll(self) -> None:
        """One snapshot per interval for every connected client; a slow client gets only the newest.
        A subscription's ``settings`` (157 KB with 10,000 owned domains) are sent only when they
        changed since the previous poll: each client got them whole at connect."""
        while self._clients:
            await asyncio.sleep(self.interval)
            message = self._without_unchanged_settings(await self._snapshot(full_for=set()))
            for queue in list(self._clients):
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(message)

    async def _full_snapshot(self) -> tuple[str, dict[str, Any]]:
        """The snapshot with every history that a new client starts from, shared by the clients that
        connect within one interval: 150 dashboards reconnecting at once read the store once."""
        now = time.monotonic()
        if self._full is None or now - self._full_at >= self.interval:
            self._full, self._full_at = asyncio.ensure_future(self._snapshot(full_for=None)), now
        return await asyncio.shield(self._full)

    def _without_unchanged_settings(self, message: tuple[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
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

    async def _snapshot(self, full_for: set[str] | None) -> tuple[str, dict[str, Any]]:
        """``("counts", data)``; history for ``full_for`` (None: every subscription); or a problem."""
        now = _now_ms()
        try:
            ids = await self.reader.subscriptions()
            entries = await asyncio.gather(*(self._entry(s, now, full_for is None or s in full_for) for s in ids))
        except Exception as exc:
            outage("Redis").failed(exc)
            return "problem", {"time": now, "error": f"store unavailable: {type(exc).__name__}: {exc}"}
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


def _shortened(report: dict[str, Any], limit: int) -> dict[str, Any]:
    """The ``limit`` largest domains of a report, the rest folded into the others (the dashboard shows
    a short table every second; the full report is at ``/domains``)."""
    top, rest = list(report.get("top") or [])[:limit], list(report.get("top") or [])[limit:]
    return {"top": top, "other_domains": int(report.get("other_domains", 0)) + len(rest),
            "other_individuals": int(report.get("other_individuals", 0)) + sum(int(n) for _, n in rest)}


def _sse(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def create_web_app(reader: CountsReader, readiness: Readiness, *, interval: float = 1.0,
               access: auth.Access | None = None, max_streams: int = 100,
               digester: Digester | None = None) -> web.Application:
    """A standalone aiohttp application serving every route (no Faust needed)."""
    app = web.Application()
    (access or auth.Access()).install(app)
    Views(reader, readiness, interval=interval, max_streams=max_streams, digester=digester).add_routes(app)
    return app


def install_views(app: faust.App, reader: CountsReader, readiness: Readiness, *, interval: float = 1.0,
                  access: auth.Access | None = None, max_streams: int = 100,
                  digester: Digester | None = None) -> None:
    """Mount every route on a Faust app's web server. Call before the worker starts.

    Faust's own blueprints (its index at ``/``, ``/router/`` and ``/table/``) are dropped: the dashboard
    is served at ``/``, and only the routes listed in :data:`ROUTES` exist. The handlers run in
    the worker's event loop, so the reader may share the worker's Redis client; keep ``web_in_thread``
    off (the default), or give the reader its own client.
    """
    faust_web = app.web
    web_app = getattr(faust_web, "web_app", None)
    if not isinstance(web_app, web.Application):
        raise TypeError(f"install_views needs Faust's aiohttp web driver (web={app.conf.web!s})")
    blueprints = faust_web.blueprints
    if blueprints.applied:
        raise RuntimeError("install_views must be called before the web server starts")
    blueprints._enabled = []
    (access or auth.Access()).install(web_app)
    Views(reader, readiness, interval=interval, max_streams=max_streams, digester=digester).add_routes(web_app)
