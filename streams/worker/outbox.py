"""The outbox publisher: committed capacity events -> the ``capacity`` topic, at least once.

The count stage commits a batch's capacity events into the subscription's outbox in the same atomic
step as its state; they are published from there, and removed only once Kafka has them. A crash in
between publishes an event again (same id), never loses one; the sweep publishes what a worker
committed but died before publishing.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from typing import Protocol

from counters import CommittedReads, Outbox
from schemas.cloudevents import Headers, capacity_headers, statement_headers
from streams.kafka.messages import Send


class OutboxStore(Outbox, CommittedReads, Protocol):
    """What the publisher reads: the outboxes, and the subscriptions that may have one."""


class OutboxPublisher:
    """Publishes a subscription's outbox after its commit (``flush``), and every outbox on a timer
    (``sweep``)."""

    def __init__(self, store: OutboxStore, send: Send, topic: Callable[[str], str], kind: str = "capacity") -> None:
        self.store = store
        self.send = send
        self.kind = kind
        """``capacity``: capacity events; ``statements``: closed billing statements (each to its topic)."""
        self.capacity_topic = topic(kind)
        self.headers: Callable[[bytes], Headers] = statement_headers if kind == "statements" else capacity_headers
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        """One publisher per subscription at a time in this worker (after a commit, and the sweep)."""

    async def flush(self, subscription: str) -> int:
        """Publish the committed capacity events in order, then remove (by identity) what Kafka
        acknowledged; return how many.

        Each record carries the CloudEvents headers of its event (``schemas.cloudevents``); its key and
        value are the subscription and the event's JSON.
        """
        async with self._locks[subscription]:
            pending = await self.store.outbox(subscription, self.kind)
            if not pending:
                return 0
            deliveries = [await self.send(self.capacity_topic, subscription.encode(), e, self.headers(e))
                          for e in pending]
            await asyncio.gather(*deliveries)
            await self.store.outbox_sent(subscription, pending, self.kind)
            return len(pending)

    async def sweep(self) -> None:
        """Publish what a worker committed but died before publishing."""
        for subscription in await self.store.subscriptions():
            await self.flush(subscription)
