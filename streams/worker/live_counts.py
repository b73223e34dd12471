"""The ``counts`` topic: each subscription's counts as this worker last committed them, at most once
per tick (``endusers worker`` ticks every second), and only for the subscriptions that changed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson

from counters import States
from streams.kafka.messages import Send


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
        """Each changed subscription's counts, from the state held in memory, to ``counts``."""
        changed, self._changed = self._changed, set()
        deliveries = []
        for subscription in changed:
            state = self.store.cached(subscription)
            if state is not None:
                document = {"subscription": subscription, **state.summary()}
                deliveries.append(await self.send(self.counts_topic, subscription.encode(), orjson.dumps(document)))
        await asyncio.gather(*deliveries)
