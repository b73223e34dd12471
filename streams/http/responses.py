"""What the views share: JSON answers that no cache keeps, the answers for a store that fails and for
an unknown subscription, and the clock (UTC dates, Unix milliseconds)."""

from __future__ import annotations

import time
from datetime import date, datetime, timezone
from typing import Any

import orjson
from aiohttp import web

from counters import StoreUnavailable
from streams.observe.outages import outage

NO_CACHE = {"Cache-Control": "no-cache"}
"""Every answer is live data (or a page that reads it): a browser or a proxy must ask again."""


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(value), status=status, content_type="application/json",
                        headers=NO_CACHE)


def store_error(exc: BaseException) -> web.Response:
    """503 while the store does not answer; the outage is logged once per 10 s, not once per request."""
    outage("Redis").failed(exc)
    return json_response({"error": store_error_text(exc)}, status=503)


def store_error_text(exc: BaseException) -> str:
    """``store unavailable: ConnectionError: ...``: the store's own error already names its cause."""
    cause = str(exc) if isinstance(exc, StoreUnavailable) else f"{type(exc).__name__}: {exc}"
    return f"store unavailable: {cause}"


def unknown_subscription(subscription: str) -> web.Response:
    return json_response({"error": f"unknown subscription {subscription!r}"}, status=404)


def today() -> date:
    return datetime.now(timezone.utc).date()


def now_ms() -> int:
    return int(time.time() * 1000)
