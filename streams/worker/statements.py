"""The statement closer: freezes each billing period's statement once it has closed, and hands it to
the statements outbox (``enduser.statements``, CloudEvent ``io.endusers.statement.closed.v1``).

Every worker sweeps every subscription each minute. The freeze writes the statement only if none is
stored for that period and queues it in the same Redis step (``close_statement``), so however many
workers race, and however often one restarts, each period is frozen and published once: its id is
``uuid5(subscription, period start)``, the same if a crash makes the outbox publish it again. The
rules (which periods are due, what a statement holds) are the engine's: ``counters/statements.py``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Protocol

import orjson

from counters import (
    DEFAULT_STATEMENT_GRACE,
    NO_LATE,
    CommittedReads,
    History,
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


def statement_id(subscription: str, start: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{subscription}/{start}"))


class StatementCloser:
    """``sweep``: freeze the due statements of every subscription, then publish them."""

    def __init__(self, store: StatementStore, outbox: OutboxPublisher,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.store = store
        self.outbox = outbox
        self.clock = clock

    async def sweep(self) -> int:
        """How many statements this worker froze (another worker may have frozen others)."""
        closed = 0
        for subscription in await self.store.subscriptions():
            closed += await self.close_due(subscription)
        return closed

    async def close_due(self, subscription: str) -> int:
        settings = await self.store.settings(subscription) or {}
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
