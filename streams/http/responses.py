"""What the views share: JSON answers that no cache keeps, the answers for a store that fails and for
an unknown subscription, and the clock (UTC dates, Unix milliseconds)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from counters import StoreUnavailable
from streams.observe.outages import outage

if TYPE_CHECKING:
    from counters import CountsReader, SubscriptionState

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
    """``store unavailable: ConnectionError (...)``: the kind of error only. Its text names internal
    hosts and addresses (``Error 111 connecting to redis-0.internal:6379``), which are for the worker's
    log (``outage``, which every caller feeds), not for whoever asks over HTTP."""
    cause = exc.__cause__ if isinstance(exc, StoreUnavailable) and exc.__cause__ is not None else exc
    return f"store unavailable: {type(cause).__name__} (the worker's log has the details)"


async def json_object(request: web.Request) -> dict[str, Any] | None:
    """The request's body as a JSON object; None when it is not one (the caller says what it wanted)."""
    try:
        body = await request.json(loads=orjson.loads)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def unknown_subscription(subscription: str) -> web.Response:
    return json_response({"error": f"unknown subscription {subscription!r}"}, status=404)


async def known(subscription: str, *reads: Awaitable[Any]) -> list[Any] | web.Response:
    """The results of ``reads`` of one subscription, read together; the first one is None when the
    store does not know the subscription. Or the answer every route gives instead: 503 while the
    store does not answer, 404 for an unknown subscription."""
    try:
        results = await asyncio.gather(*reads)
    except Exception as exc:
        return store_error(exc)
    return unknown_subscription(subscription) if results[0] is None else results


async def committed_state(reader: CountsReader, subscription: str) -> SubscriptionState | web.Response:
    """The subscription's committed state, read anew (never a worker's live copy: the admin tools
    change theirs), or the answer to give instead (``known``)."""
    read = await known(subscription, reader.fresh_state(subscription))
    return read if isinstance(read, web.Response) else read[0]


def today() -> date:
    return datetime.now(timezone.utc).date()


def now_ms() -> int:
    return int(time.time() * 1000)
