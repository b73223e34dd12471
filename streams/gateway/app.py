"""The gateway's HTTP server: routes, tokens, publishing, probes (docs/sources.md).

Every event route needs a ``source`` or ``admin`` token whose scope holds the route's subscription (401
without a token, 403 outside the scope); a ``viewer`` token writes nothing. A request is answered 200
only after Kafka has acknowledged every event it became, so a provider that sees 200 may forget the
batch; 503 with ``Retry-After`` when Kafka cannot be reached (the provider sends it again, and the ids
of the events make the repeat harmless); 400 when the payload is not the provider's shape.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable

import orjson
from aiohttp import web

from streams.gateway import auth0, okta, own
from streams.gateway import metrics as observed
from streams.gateway.mapping import Batch, Malformed, Target, parsed
from streams.gateway.scim import ScimRoutes, scim_refusals
from streams.gateway.writers import ACK_TIMEOUT, RETRY_AFTER, writer
from streams.http.auth import ROLES, Access, Grant, TokenFileError, optional_grant, require, tokens_file_checked
from streams.kafka.errors import BrokerUnavailable
from streams.kafka.publish import Publisher
from streams.observe.metrics import render
from streams.store.scim import ScimStore
from streams.settings import MissingSecret, OpenApi, WorkerSettings

log = logging.getLogger(__name__)

MAX_BODY = 8 * 1024 * 1024
"""The largest request body (a batch of events), in bytes; larger is refused with 413."""

Mapper = Callable[[bytes, Target, Grant], Batch]


def _answer(data: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json",
                        headers={"Cache-Control": "no-cache", **(headers or {})})


class Gateway:
    """The routes of one gateway process, bound to its publisher."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher

    def routes(self) -> list[web.RouteDef]:
        events = "/v1/subscriptions/{subscription}"
        return [
            web.post(f"{events}/events", self.own_events),
            web.get(f"{events}/okta", self.okta_verification),
            web.post(f"{events}/okta", self.okta_hook),
            web.post(f"{events}/auth0", self.auth0_stream),
            web.get("/healthz", self.healthz),
            web.get("/readyz", self.readyz),
            web.get("/metrics", self.metrics),
        ]

    async def own_events(self, request: web.Request) -> web.Response:
        return await self._receive(request, "events", None,
                                   lambda body, target, grant: own.map_events(body, target, admin=grant.admin))

    async def okta_hook(self, request: web.Request) -> web.Response:
        return await self._receive(request, "okta", okta.PROVIDER,
                                   lambda body, target, _: okta.map_hook(parsed(body), target))

    async def auth0_stream(self, request: web.Request) -> web.Response:
        return await self._receive(request, "auth0", auth0.PROVIDER,
                                   lambda body, target, _: auth0.map_stream(body, target))

    async def okta_verification(self, request: web.Request) -> web.Response:
        """Okta's one-time check that this endpoint is the hook's: echo the challenge header."""
        writer(request)
        challenge = request.headers.get("X-Okta-Verification-Challenge")
        if not challenge:
            return _answer({"error": "the X-Okta-Verification-Challenge header is missing"}, 400)
        return _answer({"verification": challenge})

    async def _receive(self, request: web.Request, source: str, provider: str | None, mapper: Mapper) -> web.Response:
        grant = writer(request)
        target = Target(request.match_info["subscription"], request.query.get("runtime") or None,
                        request.query.get("provider") or provider)
        try:
            batch = mapper(await request.read(), target, grant)
        except Malformed as exc:
            observed.REFUSED.labels(source, "malformed").inc()
            return _answer({"error": f"not a valid {source} payload", "reasons": exc.reasons}, 400)
        started = time.perf_counter()
        try:
            result = await asyncio.wait_for(self.publisher.publish(batch.events), ACK_TIMEOUT)
        except (BrokerUnavailable, asyncio.TimeoutError) as exc:
            reason = str(exc) or f"no acknowledgement within {ACK_TIMEOUT:g}s"
            log.warning("gateway: %d %s events not published: %s", len(batch.events), source, reason)
            observed.REFUSED.labels(source, "unavailable").inc(len(batch.events))
            return _answer({"error": "Kafka is unavailable; send the batch again later"}, 503,
                           {"Retry-After": str(RETRY_AFTER)})
        observed.PUBLISH_SECONDS.labels(source).observe(time.perf_counter() - started)
        return self._accepted(source, batch, sum(result.sent.values()), result.unroutable)

    @staticmethod
    def _accepted(source: str, batch: Batch, sent: int, unroutable: list[str]) -> web.Response:
        observed.ACCEPTED.labels(source).inc(sent)
        for reason, count in batch.ignored.items():
            observed.IGNORED.labels(source, reason).inc(count)
        for _, item in batch.unmapped:
            observed.REFUSED.labels(source, item.category).inc()
        if unroutable:
            observed.REFUSED.labels(source, "no_topic").inc(len(unroutable))
        return _answer({
            "accepted": sent,
            "ignored": dict(batch.ignored),
            "unmapped": [{"index": index, "reason": item.reason} for index, item in batch.unmapped],
            **({"unroutable": unroutable} if unroutable else {}),
        })

    async def healthz(self, request: web.Request) -> web.Response:
        return _answer({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        """200 while a Kafka broker answers; the reason only for an admin or viewer of scope ``*``."""
        try:
            await asyncio.wait_for(self.publisher.check(), ACK_TIMEOUT)
        except (BrokerUnavailable, asyncio.TimeoutError) as exc:
            grant = optional_grant(request)
            detailed = grant is not None and grant.everything and grant.role != "source"
            reason = (str(exc) or "timed out") if detailed else "Kafka does not answer"
            return _answer({"kafka": False, "reason": reason}, 503)
        return _answer({"kafka": True})

    async def metrics(self, request: web.Request) -> web.Response:
        """For a viewer or admin token of scope ``*``, as the workers' ``/metrics``."""
        grant = require(request, everything=True)
        if grant.role == "source":
            raise web.HTTPForbidden(body=orjson.dumps({"error": "a source token reads nothing"}),
                                    content_type="application/json")
        body, content_type = render(observed.REGISTRY)
        response = web.Response(body=body, headers={"Cache-Control": "no-cache"})
        response.headers["Content-Type"] = content_type
        return response


def create_gateway(settings: WorkerSettings, tokens_file: str | None, publisher: Publisher | None = None,
                   scim_store: ScimStore | None = None) -> web.Application:
    """The gateway's application; its publisher and SCIM store are closed when it is cleaned up. The
    store is opened on ``ENDUSERS_REDIS`` unless given; nothing is sent to Redis before a SCIM request."""
    publisher = publisher or Publisher(settings, linger_ms=2)
    store = scim_store or _scim_store(settings)
    app = web.Application(client_max_size=MAX_BODY, middlewares=[scim_refusals])
    Access.configured(settings.gateway_host, tokens_file or "", settings.web_allowed_hosts, roles=ROLES).install(app)
    app.add_routes(Gateway(publisher).routes())
    if store is not None:
        app.add_routes(ScimRoutes(publisher, store).routes())

    async def stop(_: web.Application) -> None:
        await publisher.stop()
        if store is not None:
            await store.close()

    app.on_cleanup.append(stop)
    return app


def _scim_store(settings: WorkerSettings) -> ScimStore | None:
    """The SCIM resources' store; None (no SCIM routes, said loudly) without ENDUSERS_SECRET, which
    seals them: the event routes keep nothing and need no secret."""
    try:
        return ScimStore.from_settings(settings)
    except MissingSecret as exc:
        log.warning("the gateway serves no SCIM routes: %s", exc)
        return None


def run_gateway(settings: WorkerSettings | None = None) -> None:
    """``endusers gateway``: serve until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings or WorkerSettings()
    try:
        tokens_file = tokens_file_checked(settings, "gateway")
    except (OpenApi, TokenFileError) as exc:
        print(f"endusers gateway: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    web.run_app(create_gateway(settings, tokens_file), host=settings.gateway_host, port=settings.gateway_port,
                access_log=None, print=lambda text: log.info("%s", text.strip()))
