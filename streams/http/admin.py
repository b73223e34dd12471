"""The admin routes (``auth.require(..., admin=True)``): what reveals settings, identifiers' digests or
where external users come from. ``audit`` and ``domains`` read the store; ``preview`` and ``explain``
load the committed state afresh and work on that copy, changing nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from counters import (
    Digester,
    NotAnIdentifier,
    digests_of,
    explanation,
    preview,
    record_digest,
    to_change,
)
from schemas.codec import Rejection, decode
from streams.http import auth
from streams.http.responses import committed_state, json_object, json_response, known, now_ms, store_error

if TYPE_CHECKING:
    from counters import CountsReader

_EXPLAIN_BODY = "the body must be a JSON object: email, username, or user_id (with runtime, tenant, provider)"


class AdminApi:
    """The admin-only JSON routes, bound to one reader and the worker's digester (``explain`` digests
    an identifier as ingest does)."""

    def __init__(self, reader: CountsReader, digester: Digester | None = None) -> None:
        self.reader = reader
        self.digester = digester or Digester()

    async def audit(self, request: web.Request) -> web.Response:
        subscription = request.match_info["id"]
        auth.require(request, subscription, admin=True)
        try:
            entries = await self.reader.audit(subscription, limit=int(request.query.get("limit", "100")))
        except ValueError:
            return json_response({"error": "limit must be a whole number"}, status=400)
        except Exception as exc:
            return store_error(exc)
        return json_response({"subscription": subscription, "changes": entries})

    async def domains(self, request: web.Request) -> web.Response:
        """Where external users come from: the worker keeps the report in the counts document. Admins
        only (``auth.ADMIN_COUNTS``)."""
        subscription = request.match_info["id"]
        auth.require(request, subscription, admin=True)
        read = await known(subscription, self.reader.counts(subscription))
        if isinstance(read, web.Response):
            return read
        counts = read[0]
        report = counts.get("external_domains") or {"top": [], "other_domains": 0, "other_individuals": 0}
        return json_response({"subscription": subscription, "external": counts.get("external", 0),
                              "domains": [{"domain": d, "external": n} for d, n in report["top"]],
                              "other_domains": report["other_domains"],
                              "other_individuals": report["other_individuals"]})

    async def preview(self, request: web.Request) -> web.Response:
        """What-if (``counters/whatif.py``): the body holds config keys as in a config event; the
        committed state is loaded afresh and the change applied to that copy. Admins only: the
        answer reveals settings."""
        subscription = request.match_info["id"]
        auth.require(request, subscription, admin=True)
        body = await json_object(request)
        if body is None:
            return json_response({"error": "the body must be a JSON object of config keys"}, status=400)
        event = decode(orjson.dumps({**body, "type": "config", "subscription": subscription}))
        if isinstance(event, Rejection):
            return json_response({"error": event.reason}, status=400)
        change = to_change(event, Digester(), now_ms() * 1000)
        state = await committed_state(self.reader, subscription)
        if isinstance(state, web.Response):
            return state
        return json_response({"subscription": subscription,
                              "change": change.config.to_dict() if change.config is not None else {},
                              **preview(state, change)})

    async def explain(self, request: web.Request) -> web.Response:
        """Explain one person (``counters/explain.py``). The body names them: ``{"email"}``,
        ``{"username"}``, or ``{"runtime", "tenant", "provider", "user_id"}`` (POST, so no identifier
        lands in a URL or an access log). Admins only."""
        subscription = request.match_info["id"]
        auth.require(request, subscription, admin=True)
        body = await json_object(request)
        if body is None:
            return json_response({"error": _EXPLAIN_BODY}, status=400)
        try:
            query = self._person(subscription, body)
        except NotAnIdentifier as exc:
            return json_response({"error": str(exc)}, status=400)
        if query is None:
            return json_response({"error": "give email, username, or user_id"}, status=400)
        state = await committed_state(self.reader, subscription)
        if isinstance(state, web.Response):
            return state
        return json_response(explanation(state, **query))

    def _person(self, subscription: str, body: dict[str, Any]) -> dict[str, str] | None:
        """The digest that ``explanation`` looks for: ``{"record": ...}`` for a user id, ``{"identifier":
        ...}`` for an email or a username; None when the body names nobody."""
        digest = self.digester.for_subscription(subscription)
        user_id = body.get("user_id")
        if isinstance(user_id, (str, int)) and not isinstance(user_id, bool):
            runtime, tenant, provider = (str(body.get(k) or "default") for k in ("runtime", "tenant", "provider"))
            return {"record": record_digest(digest, runtime, tenant, provider, str(user_id))}
        if isinstance(body.get("email"), str):
            return {"identifier": digests_of(digest, email=body["email"])}
        if isinstance(body.get("username"), str):
            return {"identifier": digests_of(digest, username=body["username"])}
        return None

