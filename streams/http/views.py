"""HTTP interface of every worker (docs/operations.md): JSON API, health, metrics, a live dashboard.

The handlers are plain aiohttp handlers (Faust's web driver *is* aiohttp: ``app.web.web_app`` is the
:class:`aiohttp.web.Application`), because the dashboard needs a streaming response (Server-Sent
Events) and static files, which Faust's ``View`` does not offer. :func:`install_views` mounts them on
a Faust app; :func:`create_web_app` builds a standalone aiohttp application (tests, or serving the
dashboard from a process that is not a worker).

Routes (also described in ``streams/http/static/openapi.json``), by the module that serves them::

    api.py (any grant, for the subscriptions in its scope)
    GET /api/v1/subscriptions          {"subscriptions": [ids]}
    GET /api/v1/subscriptions/{id}     counts + "subscription" + "settings"; 404 if unknown
    GET /api/v1/subscriptions/{id}/shared-identifiers
                                       {"subscription", "threshold", "identifiers": [{"digest", "kind",
                                       "records", "runtimes"}]}: emails and logins held by more records
                                       than the threshold (digests only); 404 if unknown
    GET /api/v1/subscriptions/{id}/history  daily (or hourly) max/min/last per class; JSON or CSV

    admin.py (admins only)
    GET /api/v1/subscriptions/{id}/audit  applied config changes, newest first
    POST /api/v1/subscriptions/{id}/explain  one person's records, individual, class and rule
    POST /api/v1/subscriptions/{id}/preview  what a config change would give, applying nothing
    GET /api/v1/subscriptions/{id}/domains  external individuals per email domain

    admission.py (source and admin tokens; answered by the worker that counts the subscription)
    POST /api/v1/subscriptions/{id}/admission  would one more person add to a count and cross a
                                       threshold: {"adds", "user_class", "count_after", "capacity",
                                       "level_after", "crosses", ...}, applying nothing

    seats.py (admins only: they show the providers' user ids)
    GET /api/v1/subscriptions/{id}/dormant?days=N  counted records without a login for N days, with
                                       whether deactivating them frees a seat; JSON or CSV
    GET /api/v1/subscriptions/{id}/roster?after=&limit=  every counted person, class, rule and records,
                                       a page at a time; JSON or CSV

    live.py (the messages are described there)
    GET /api/v1/stream                 Server-Sent Events for the dashboard

    operations.py
    GET /healthz                       200 {"status": "ok"} while the process serves HTTP
    GET /readyz                        200 while Kafka and Redis answer, the partitions are assigned,
                                       every owned state is loaded and counting is not stalled;
                                       else 503 with each check and a "reason"
    GET /metrics                       Prometheus text format

    files.py
    GET /                              dashboard page
    GET /static/{file}                 dashboard assets (package data, never a CDN)
    GET /openapi.json                  OpenAPI 3.1 description of all of the above

What the views share (JSON answers, the store-unavailable answer) is in ``responses.py``.

Access (``streams/http/auth.py``): a middleware checks the Host and the bearer token and leaves the request's
grant; each view asks it for what it needs (a subscription in scope, an admin, scope ``*``), and the
stream and the lists show only the grant's subscriptions, with viewers' settings trimmed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from counters import (
    CountsReader,
    Digester,
)
from streams.http import auth, files, operations
from streams.http.admin import AdminApi
from streams.http.admission import AdmissionApi, Placement
from streams.http.api import ReadApi
from streams.http.live import DashboardStream
from streams.http.seats import SeatsApi
from streams.http.operations import Readiness

if TYPE_CHECKING:
    import faust

ROUTES: tuple[str, ...] = (
    "/",
    "/static/{file}",
    "/api/v1/subscriptions",
    "/api/v1/subscriptions/{id}",
    "/api/v1/subscriptions/{id}/audit",
    "/api/v1/subscriptions/{id}/shared-identifiers",
    "/api/v1/subscriptions/{id}/domains",
    "/api/v1/subscriptions/{id}/history",
    "/api/v1/subscriptions/{id}/sources",
    "/api/v1/subscriptions/{id}/statements",
    "/api/v1/subscriptions/{id}/preview",
    "/api/v1/subscriptions/{id}/explain",
    "/api/v1/subscriptions/{id}/dormant",
    "/api/v1/subscriptions/{id}/roster",
    "/api/v1/subscriptions/{id}/admission",
    "/api/v1/stream",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
)
"""Every path served (the OpenAPI document must describe exactly these)."""


def add_routes(app: web.Application, reader: CountsReader, readiness: Readiness, *, interval: float = 1.0,
               max_streams: int = 100, digester: Digester | None = None, max_streams_per_token: int = 5,
               stream_idle: float = 60.0, placement: Placement | None = None) -> None:
    """Every route of :data:`ROUTES`, each served by the object of its role; open streams end at shutdown.
    ``placement`` tells the admission check where the engine states are (a worker's; None: no engine)."""
    api, admin, seats = ReadApi(reader), AdminApi(reader, digester), SeatsApi(reader, digester)
    admission = AdmissionApi(reader, digester or Digester(), placement)
    live = DashboardStream(reader, interval=interval, max_streams=max_streams,
                           max_per_caller=max_streams_per_token, idle=stream_idle)
    router = app.router
    router.add_get("/", files.index)
    router.add_get("/static/{file}", files.static)
    router.add_get("/api/v1/subscriptions", api.subscriptions)
    router.add_get("/api/v1/subscriptions/{id}", api.subscription)
    router.add_get("/api/v1/subscriptions/{id}/audit", admin.audit)
    router.add_get("/api/v1/subscriptions/{id}/shared-identifiers", api.shared_identifiers)
    router.add_get("/api/v1/subscriptions/{id}/domains", admin.domains)
    router.add_get("/api/v1/subscriptions/{id}/history", api.history)
    router.add_get("/api/v1/subscriptions/{id}/sources", api.sources)
    router.add_get("/api/v1/subscriptions/{id}/statements", api.statements)
    router.add_post("/api/v1/subscriptions/{id}/preview", admin.preview)
    router.add_post("/api/v1/subscriptions/{id}/explain", admin.explain)
    router.add_get("/api/v1/subscriptions/{id}/dormant", seats.dormant)
    router.add_get("/api/v1/subscriptions/{id}/roster", seats.roster)
    router.add_post("/api/v1/subscriptions/{id}/admission", admission.admission)
    router.add_get("/api/v1/stream", live.stream)
    router.add_get("/healthz", operations.healthz)
    router.add_get("/readyz", operations.ReadinessView(readiness).readyz)
    router.add_get("/metrics", operations.metrics)
    router.add_get("/openapi.json", files.openapi)
    app.on_shutdown.append(live.close)


def create_web_app(reader: CountsReader, readiness: Readiness, *, interval: float = 1.0,
               access: auth.Access | None = None, max_streams: int = 100,
               digester: Digester | None = None, max_streams_per_token: int = 5,
               stream_idle: float = 60.0, placement: Placement | None = None) -> web.Application:
    """A standalone aiohttp application serving every route (no Faust needed)."""
    app = web.Application()
    (access or auth.Access()).install(app)
    add_routes(app, reader, readiness, interval=interval, max_streams=max_streams, digester=digester,
               max_streams_per_token=max_streams_per_token, stream_idle=stream_idle, placement=placement)
    return app


def install_views(app: faust.App, reader: CountsReader, readiness: Readiness, *, interval: float = 1.0,
                  access: auth.Access | None = None, max_streams: int = 100,
                  digester: Digester | None = None, max_streams_per_token: int = 5,
                  stream_idle: float = 60.0, placement: Placement | None = None) -> None:
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
    add_routes(web_app, reader, readiness, interval=interval, max_streams=max_streams, digester=digester,
               max_streams_per_token=max_streams_per_token, stream_idle=stream_idle, placement=placement)
