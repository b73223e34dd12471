"""The audit trail of settings: every applied config change, who sent it, from where, before and after.

The count stage records one entry per config change it applies (``streams.worker.count``), comparing the
subscription's settings before and after the engine applied it; the engine itself knows nothing of it.
Entries are kept in Redis under the subscription's hash tag (the newest :data:`AUDIT_LENGTH`), logged at
INFO, served to admins at ``GET /api/v1/subscriptions/{id}/audit`` and printed by ``endusers audit``.

They are written by the batch's commit itself (``RedisStore.commit``, in the same script as the settings,
the position and the outbox): a committed setting always has its entry, a refused or replayed batch
writes none, and a retried commit whose first attempt landed writes none again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import orjson

from schemas.changes import Change
from schemas.outputs import format_instant
from streams.store.connect import AsyncClient

log = logging.getLogger(__name__)

AUDIT_LENGTH = 1000
"""Entries kept per subscription."""


def audit_key(subscription: str) -> str:
    return "endusers:{%s}:audit" % subscription


def entry(change: Change, before: dict[str, Any], after: dict[str, Any], applied_ms: int | None = None) -> dict[str, Any]:
    """One audit entry for a config change that was applied to ``before`` and gave ``after``."""
    topic, partition, offset, actor = (change.origin or [None, None, None, None])[:4]
    return {
        "applied": format_instant((applied_ms if applied_ms is not None else int(time.time() * 1000)) * 1000),
        "subscription": change.subscription,
        "event_id": change.event_id,
        "event_time": format_instant(change.time),
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "actor": actor,
        "before": before,
        "after": after,
        "changed": sorted(key for key in after if before.get(key) != after.get(key)),
    }


def log_committed(subscription: str, entries: Sequence[dict[str, Any]]) -> None:
    """Log each committed entry at INFO (the commit kept them in Redis)."""
    for item in entries:
        log.info("config of %s changed %s by %s (%s[%s]@%s): %s", subscription, ",".join(item["changed"]) or "nothing",
                 item["actor"] or "an unnamed actor", item["topic"], item["partition"], item["offset"],
                 orjson.dumps({k: item["after"].get(k) for k in item["changed"]}).decode())


async def read(redis: AsyncClient, subscription: str, limit: int = 100) -> list[dict[str, Any]]:
    """Newest first."""
    limit = max(1, min(limit, AUDIT_LENGTH))
    return [orjson.loads(raw) for raw in await redis.lrange(audit_key(subscription), 0, limit - 1)]
