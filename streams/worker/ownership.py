"""Which subscriptions this worker counts: those whose changes partitions Kafka assigned to it.

The count stage reports each subscription it commits (and from which partition); after a rebalance
the worker lets go of those whose partition moved away, and adopts the committed ones whose
partition came here: their gauges at once, their states loaded ahead of their next batch, so that
readiness can say when all are in memory.
"""

from __future__ import annotations

import logging

from counters import DigestMismatch, Store
from streams.observe import metrics
from streams.worker.live_counts import LiveCounts
from streams.worker.retry import until_store_answers

log = logging.getLogger(__name__)


class Ownership:
    """The subscriptions this worker counts, and why any of them is refused."""

    def __init__(self, store: Store, live_counts: LiveCounts) -> None:
        self.store = store
        self.live_counts = live_counts
        self._counted_from: dict[str, str] = {}
        """Subscription -> the changes partition (``topic:partition``) this worker last counted it from."""
        self.refused: dict[str, str] = {}
        """Subscription -> why it is not counted: its state was built with other digests (readiness)."""

    def counted(self, subscription: str, source: str) -> None:
        """The count stage committed the subscription from this changes partition."""
        self._counted_from[subscription] = source

    def owned(self) -> set[str]:
        """The subscriptions this worker counts now (by its last batch or adoption after a rebalance)."""
        return set(self._counted_from)

    def keep_only(self, assigned: set[str]) -> list[str]:
        """After a rebalance: let go of the subscriptions whose changes partition (``topic:partition``)
        is no longer assigned here, and return them.

        Another worker counts them now. Their cached state would only hold memory (a commit from it
        would be refused anyway), and their gauges would go on exporting numbers nobody updates.
        """
        released = [s for s, source in self._counted_from.items() if source not in assigned]
        for subscription in set(self.refused) - set(self._counted_from):
            self.refused.pop(subscription)  # refused before counting here: the next owner decides
        for subscription in released:
            self.refused.pop(subscription, None)
            del self._counted_from[subscription]
            self.live_counts.forget(subscription)
            self.store.forget(subscription)
            metrics.forget_subscription(subscription)
        return released

    async def adopt(self, assigned: set[str]) -> tuple[list[str], list[str]]:
        """After a rebalance: export the gauges of the subscriptions now counted here, from their
        committed counts, so that a scrape of this worker does not wait for their next event; and
        return them with every owned subscription whose state is not in memory yet (to load now, so
        that the first event after a takeover does not wait for it, and readiness can say when all
        are loaded)."""
        names = await self.store.subscriptions()
        owned = {name: mine for name, sources in (await self.store.sources(names)).items()
                 if (mine := [source for source in sources if source in assigned])}
        unloaded = [name for name in owned if self.store.cached(name) is None]
        sides = await self.store.read_sides([name for name in owned if name not in self._counted_from])
        adopted = []
        for subscription, side in sides.items():
            if subscription in self._counted_from:
                continue  # counted (more freshly) while we read
            self._counted_from[subscription] = owned[subscription][0]
            shared = 0 if side.shared is None else len(side.shared["identifiers"])
            metrics.observe_counts(subscription, side.counts, side.settings["capacity"], shared)
            metrics.observe_sources(subscription, side.sources, int(side.settings.get("source_silence", 24)))
            adopted.append(subscription)
        return adopted, unloaded

    async def preload(self, subscription: str) -> None:
        """Load an owned subscription's state ahead of its next batch (in slices: see the store)."""
        try:
            await until_store_answers(lambda _retried: self.store.load(subscription), proves_up=False)
        except DigestMismatch as mismatch:
            self.refuse(mismatch)

    def refuse(self, mismatch: DigestMismatch) -> None:
        """Log a refused subscription once (its every batch is refused) and tell readiness."""
        if mismatch.subscription not in self.refused:
            log.error("%s", mismatch)
        self.refused[mismatch.subscription] = (f"refusing {mismatch.subscription}: stored digests "
                                               f"{mismatch.stored}, configured {mismatch.configured}")
