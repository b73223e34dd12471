"""``POST /api/v1/subscriptions/{id}/admission``: would one more person add to a count, and cross a
threshold? (``counters/admission.py`` decides; nothing is applied.)

A registration flow calls it inline, so it is answered from the engine state in the memory of the
worker that counts the subscription, never by reading the state from Redis. Any worker may be asked:
one that does not hold the state forwards the request to the one that does, found as Faust finds the
worker holding a table's key (the changes partition of the subscription, and the URL its owner
announced to the group: ``Placement``). A forwarded request is never forwarded again: a worker that
receives one and does not hold the state either (a rebalance is moving it) answers 503 with
``Retry-After``. ``source`` and ``admin`` tokens may call it, within their scope (``auth.SOURCE_PATHS``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
from aiohttp import web

from counters import NotAnIdentifier, SubscriptionState, admission, candidate
from schemas.limits import MAX_STRING
from streams.http import auth
from streams.http.responses import NO_CACHE, committed_state, json_object, json_response, known

if TYPE_CHECKING:
    from counters import CountsReader, Digester

log = logging.getLogger(__name__)

ROLES: tuple[auth.Role, ...] = ("source", "admin")
FORWARDED = "X-Endusers-Forwarded"
"""Set on a request one worker forwards to another: the receiver answers it or says 503, never forwards it."""
FORWARD_TIMEOUT = aiohttp.ClientTimeout(total=2.0)
RETRY_AFTER = "1"
_TEXT = ("email", "username", "runtime", "tenant", "provider")


class Placement(Protocol):
    """Where a subscription's engine state is: what a worker tells its HTTP side."""

    def local(self, subscription: str) -> SubscriptionState | None:
        """The state in this worker's memory, when this worker counts the subscription and has loaded it."""
        ...

    def owner(self, subscription: str) -> str | None:
        """The base URL of the worker that counts the subscription, when it is another one and known."""
        ...

    def session(self) -> aiohttp.ClientSession:
        """The client session forwarded requests go through."""
        ...


class AdmissionApi:
    """The admission route. Without a :class:`Placement` (a standalone web app, no engine in the
    process) the committed state is loaded from the store instead: correct, but O(records)."""

    def __init__(self, reader: CountsReader, digester: Digester, placement: Placement | None = None) -> None:
        self.reader = reader
        self.digester = digester
        self.placement = placement

    async def admission(self, request: web.Request) -> web.StreamResponse:
        subscription = request.match_info["id"]
        auth.require(request, subscription, roles=ROLES)
        body = await json_object(request)
        if body is None:
            return json_response({"error": "the body must be a JSON object: email, username, or user_id "
                                           "(with runtime, tenant, provider)"}, status=400)
        try:
            person = candidate(self.digester, subscription, **_request_fields(body))
        except (NotAnIdentifier, TypeError) as exc:
            return json_response({"error": str(exc)}, status=400)
        state = await self._state(subscription)
        if isinstance(state, SubscriptionState):
            return json_response(admission(state, person))
        if state is not None:
            return state
        if FORWARDED not in request.headers and self.placement is not None:
            url = self.placement.owner(subscription)
            if url is not None:
                return await self._forward(url, request, body)
        return await self._not_here(subscription)

    async def _state(self, subscription: str) -> SubscriptionState | web.Response | None:
        """The state to answer from: this worker's own (None when it does not hold it), or without a
        placement the committed one (or the answer to give instead)."""
        if self.placement is not None:
            return self.placement.local(subscription)
        return await committed_state(self.reader, subscription)

    async def _forward(self, url: str, request: web.Request, body: dict[str, Any]) -> web.Response:
        """The owner's answer, as it gave it (status and body); 503 when it does not answer in time."""
        assert self.placement is not None
        headers = {FORWARDED: "1"}
        if "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
        try:
            async with self.placement.session().post(url.rstrip("/") + request.rel_url.path, json=body,
                                                     headers=headers, timeout=FORWARD_TIMEOUT) as answer:
                return web.Response(body=await answer.read(), status=answer.status,
                                    content_type="application/json", headers=NO_CACHE)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("cannot forward an admission check to %s: %s", url, type(exc).__name__)
            return _unavailable("the worker that counts this subscription does not answer; try again")

    async def _not_here(self, subscription: str) -> web.Response:
        """404 for a subscription nobody counts; else 503: its state is loading or moving."""
        read = await known(subscription, self.reader.counts(subscription))
        if isinstance(read, web.Response):
            return read
        return _unavailable("the state of this subscription is loading or moving to another worker; try again")


def _request_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The candidate's keyword arguments from the body; TypeError with the reason for a wrong type."""
    fields: dict[str, Any] = {}
    for key in _TEXT:
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or len(value) > MAX_STRING:
            raise TypeError(f"{key} must be a string of at most {MAX_STRING} characters")
        fields[key] = value
    user_id = body.get("user_id")
    if user_id is not None:
        if isinstance(user_id, bool) or not isinstance(user_id, (str, int)) or len(str(user_id)) > MAX_STRING:
            raise TypeError(f"user_id must be a string or a whole number of at most {MAX_STRING} characters")
        fields["user_id"] = str(user_id)
    default_tenant = body.get("default_tenant")
    if default_tenant is not None:
        if not isinstance(default_tenant, bool):
            raise TypeError("default_tenant must be true or false")
        fields["default_tenant"] = default_tenant
    return fields


def _unavailable(message: str) -> web.Response:
    response = json_response({"error": message}, status=503)
    response.headers["Retry-After"] = RETRY_AFTER
    return response
