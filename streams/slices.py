"""Long CPU work in slices, so that one event loop keeps serving everything else.

A worker runs its stages, its heartbeats, its timers and its HTTP side on one event loop. Work that
can take seconds (a batch of 5,000 events, a takeover loading a million records) yields to the loop
whenever a slice of ``SLICE_SECONDS`` has passed. Both the stages (``streams.worker``) and the store's
loads (``streams.store``) slice their work, with this one budget.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

SLICE_SECONDS = 0.05
"""Longest stretch of work between two yields to the event loop."""


async def yielding(steps: Iterator[object], budget: float = SLICE_SECONDS) -> None:
    """Run a generator of work to its end, yielding to the event loop whenever a slice has taken
    ``budget`` seconds."""
    started = time.perf_counter()
    for _ in steps:
        if time.perf_counter() - started >= budget:
            await asyncio.sleep(0)
            started = time.perf_counter()
