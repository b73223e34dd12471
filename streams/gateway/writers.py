"""Who may write through the gateway, and how long a write waits for Kafka: shared by its event routes
(:mod:`streams.gateway.app`) and its SCIM routes (:mod:`streams.gateway.scim`)."""

from __future__ import annotations

import orjson
from aiohttp import web

from streams.http.auth import Grant, require

ACK_TIMEOUT = 10.0
"""Seconds a request waits for Kafka's acknowledgement before it is answered 503."""
RETRY_AFTER = 10
"""Seconds a provider is asked to wait after a 503."""
WRITERS = ("source", "admin")
"""The roles that may write events."""


def writer(request: web.Request) -> Grant:
    """The request's grant when it may write for the route's subscription; 403 otherwise."""
    grant = require(request, request.match_info["subscription"])
    if grant.role not in WRITERS:
        raise web.HTTPForbidden(body=orjson.dumps({"error": f"a {grant.role} token cannot write events"}),
                                content_type="application/json")
    return grant
