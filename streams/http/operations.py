"""The routes for operators and their tools: ``/healthz`` (the process serves HTTP), ``/readyz`` (the
worker can count: Kafka and Redis answer, partitions assigned, states loaded, counting not stalled)
and ``/metrics`` (Prometheus text format, for a grant of scope ``*``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from streams.http import auth
from streams.http.responses import NO_CACHE, json_response
from streams.observe import metrics as observed

Readiness = Callable[[], Awaitable[dict[str, bool | str]]]
"""Each check: True when it passes, else False or the reason (``"loading acme: 420 of 1,000 records"``)."""

READINESS_TIMEOUT = 5.0
"""Seconds the checks may take before ``/readyz`` answers 503."""


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
        try:
            checks = dict(await asyncio.wait_for(self.readiness(), READINESS_TIMEOUT))
        except Exception as exc:
            return json_response({"error": f"readiness check failed: {type(exc).__name__}: {exc}"}, status=503)
        failing = {name: value for name, value in checks.items() if value is not True}
        if checks and not failing:
            return json_response(checks)
        reasons = [value if isinstance(value, str) else f"{name} does not answer" for name, value in failing.items()]
        return json_response({**checks, "reason": "; ".join(reasons) or "no check ran"}, status=503)
