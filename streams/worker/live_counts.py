"""The ``counts`` topic: each subscription's counts as this worker last committed them, at most once
per tick (``endusers worker`` ticks every second), and only for the subscriptions that changed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import orjson

from counters import States
from streams.kafka.messages import Send

log = logging.getLogger(__name__)


class LiveCounts:
    """Remembers which subscriptions a commit changed, and publishes their counts on each tick."""

    def __init__(self, store: States, send: Send, topic: Callable[[str], str]) -> None:
        self.store = store
        self.send = send
        self.counts_topic = topic("counts")
        self._changed: set[str] = set()

    def changed(self, subscription: str) -> None:
        """A commit changed the subscription's counts: publish them at the next tick."""
        self._changed.add(subscription)

    def forget(self, subscription: str) -> None:
        """The subscription is counted elsewhere now: its new owner publishes it."""
        self._changed.discard(subscription)

    async def publish(self) -> None:
        """Each changed subscription's counts, from the state held in memory, to ``counts``. The
        document is bounded (``SubscriptionState.summary`` folds runtimes and providers); a send that
        fails anyway is logged and its subscription published again at the next tick, so one document
        never stops the others, nor the timer."""
        changed, self._changed = self._changed, set()
        queued: list[tuple[str, Any]] = []
        for subscription in changed:
            state = self.store.cached(subscription)
            if state is None:
                continue
            document = orjson.dumps({"subscription": subscription, **state.summary()})
            try:
                queued.append((subscription, await self.send(self.counts_topic, subscription.encode(), document)))
            except Exception as exc:
                self._failed(subscription, exc)
        outcomes = await asyncio.gather(*(delivery for _, delivery in queued), return_exceptions=True)
        for (subscription, _), outcome in zip(queued, outcomes):
            if isinstance(outcome, Exception):
                self._failed(subscription, outcome)

    def _failed(self, subscription: str, exc: Exception) -> None:
        self._changed.add(subscription)
        log.warning("cannot publish the counts of %s (again at the next tick): %s: %s", subscription,
                    type(exc).__name__, exc)
