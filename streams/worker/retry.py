"""Waiting for the store: a call retried with backoff while the store is unavailable."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from counters import StoreUnavailable
from streams.observe.outages import outage

T = TypeVar("T")


async def until_store_answers(call: Callable[[bool], Awaitable[T]], *, proves_up: bool) -> T:
    """``call(retried)`` again and again while the store is unavailable (backing off from 0.2 s to
    5 s), with ``retried`` true after a failed attempt. ``proves_up``: a first success also ends a
    Redis outage (a call that may not reach Redis, like a cached load, proves it only after a failure)."""
    attempt = 0
    while True:
        try:
            result = await call(attempt > 0)
        except StoreUnavailable as exc:
            attempt += 1
            outage("Redis").failed(str(exc))
            await asyncio.sleep(min(5.0, 0.1 * 2**attempt))
            continue
        if attempt or proves_up:
            outage("Redis").recovered()
        return result
