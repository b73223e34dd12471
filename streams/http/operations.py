"""The routes for operators and their tools: ``/healthz`` (the process serves HTTP), ``/readyz`` (the
worker can count: Kafka and Redis answer, partitions assigned, states loaded, counting not stalled)
and ``/metrics`` (Prometheus text format, for a grant of scope ``*``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from streams.http import auth
from streams.http.responses import NO_CACHE, json_response
from streams.observe import metrics as observed

Readiness = Callable[[], Awaitable[dict[str, bool | str]]]
"""Each check: True when it passes, else False or the reason (``"loading acme: 420 of 1,000 records"``)."""

READINESS_TIMEOUT = 5.0
"""Seconds the checks may take before ``/readyz`` answers 503."""

CATEGORIES = {"assignment": "waiting for assignment", "progress": "stalled"}
"""What a failing check says to a caller without a token of scope ``*`` (``state`` says ``loading``
or ``refusing``; any other check ``failing``): the kind of problem, never a subscription's name."""

log = logging.getLogger(__name__)


def _category(name: str, value: bool | str) -> bool | str:
    if isinstance(value, bool):
        return value
    if name == "state":
        return "refusing a subscription" if value.startswith("refusing") else "loading"
    return CATEGORIES.get(name, "failing")


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    auth.require(request, everything=True)
    body, content_type = observed.render()
    response = web.Response(body=body, headers=NO_CACHE)
    response.headers["Content-Type"] = content_type
    return response


class ReadinessView:
    """``/readyz``, bound to the worker's readiness probe."""

    def __init__(self, readiness: Readiness) -> None:
        self.readiness = readiness

    async def readyz(self, request: web.Request) -> web.Response:
        """Up or down and why, for everyone; the reasons in full (they name subscriptions and their
        sizes, and errors name internal hosts) only for a token whose scope is ``*``."""
        grant = auth.optional_grant(request)
        detailed = grant is not None and grant.everything
        try:
            checks = dict(await asyncio.wait_for(self.readiness(), READINESS_TIMEOUT))
        except Exception as exc:
            log.warning("readiness check failed: %s: %s", type(exc).__name__, exc)
            detail = f": {exc}" if detailed else ""
            return json_response({"error": f"readiness check failed: {type(exc).__name__}{detail}"}, status=503)
        if not detailed:
            checks = {name: _category(name, value) for name, value in checks.items()}
        failing = {name: value for name, value in checks.items() if value is not True}
        if checks and not failing:
            return json_response(checks)
        reasons = [value if isinstance(value, str) else f"{name} does not answer" for name, value in failing.items()]
        return json_response({**checks, "reason": "; ".join(reasons) or "no check ran"}, status=503)
