"""The statement closer: freezes each billing period's statement once it has closed, and hands it to
the statements outbox (``enduser.statements``, CloudEvent ``io.endusers.statement.closed.v1``).

Every worker sweeps the subscriptions it counts each ``ENDUSERS_STATEMENT_SWEEP`` seconds, with their
settings from the state it holds in memory (read from Redis only for one not loaded yet: the settings
can weigh 150 KB). The freeze writes the statement only if none is stored for that period and queues it
in the same Redis step (``close_statement``), so however many workers race (both may count a
subscription for a moment during a rebalance), and however often one restarts, each period is frozen
and published once: its id is
``uuid5(subscription, period start)``, the same if a crash makes the outbox publish it again. The
rules (which periods are due, what a statement holds) are the engine's: ``counters/statements.py``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any, Protocol

import orjson

from counters import (
    DEFAULT_STATEMENT_GRACE,
    NO_LATE,
    CommittedReads,
    History,
    SubscriptionState,
    due_periods,
    freeze,
)
from streams.worker.outbox import OutboxPublisher

log = logging.getLogger(__name__)

NAMESPACE = uuid.UUID("6f1c0b5e-3f0e-4f7e-9a55-0b1d1e5a7c31")
"""Of the statements' ids: uuid5(NAMESPACE, "subscription/period start")."""


class StatementStore(CommittedReads, History, Protocol):
    """What the closer reads, and the one write it makes."""

    async def close_statement(self, subscription: str, start: str, statement: bytes) -> bool: ...

    def cached(self, subscription: str) -> SubscriptionState | None: ...


def statement_id(subscription: str, start: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{subscription}/{start}"))


class StatementCloser:
    """``sweep``: freeze the due statements of every subscription, then publish them."""

    def __init__(self, store: StatementStore, outbox: OutboxPublisher, counted: Callable[[], Iterable[str]],
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.store = store
        self.outbox = outbox
        self.counted = counted
        """The subscriptions this worker counts (``Ownership.owned``)."""
        self.clock = clock

    async def sweep(self) -> int:
        """How many statements this worker froze (another worker may have frozen others)."""
        closed = 0
        for subscription in sorted(self.counted()):
            closed += await self.close_due(subscription)
        return closed

    async def _settings(self, subscription: str) -> dict[str, Any]:
        state = self.store.cached(subscription)
        if state is not None:  # the keys a statement reads, without copying the owned domains
            settings = state.settings
            return {"billing_day": settings.billing_day, "statement_grace": settings.statement_grace,
                    "capacity": dict(settings.capacity)}
        return await self.store.settings(subscription) or {}

    async def close_due(self, subscription: str) -> int:
        settings = await self._settings(subscription)
        frozen, late = await self.store.statement_data(subscription)
        now = self.clock()
        grace = int(settings.get("statement_grace", DEFAULT_STATEMENT_GRACE))
        periods = due_periods(now, int(settings.get("billing_day", 1)), grace, frozen)
        closed = 0
        daily = await self.store.daily(subscription) if periods else []
        for start, end in periods:
            if start.isoformat() not in late and not any(entry.period < end.isoformat() for entry in daily):
                continue  # nothing was counted by then (a subscription that began later): no statement
            counts = await self.store.counts(subscription) or {}
            statement = freeze(subscription, start, end, grace, daily, late.get(start.isoformat(), NO_LATE),
                               settings.get("capacity") or {}, counts, now)
            statement = {"id": statement_id(subscription, start.isoformat()), **statement}
            if await self.store.close_statement(subscription, start.isoformat(), orjson.dumps(statement)):
                log.info("%s: the statement of %s to %s is closed", subscription, statement["period_start"],
                         statement["period_end"])
                closed += 1
        if periods:
            await self.outbox.flush(subscription)
        return closed
