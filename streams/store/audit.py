"""The audit trail of settings: every applied config change, who sent it, from where, and what changed.

The count stage records one entry per config change it applies (``streams.worker.count``), comparing the
subscription's settings before and after the engine applied it; the engine itself knows nothing of it.
An entry keeps what changed, key by key (:func:`diff`), not the settings around it: those can be
hundreds of kilobytes (10,000 owned domains), and a trail of whole copies grew to gigabytes. Entries
are kept in Redis under the subscription's hash tag (the newest :data:`AUDIT_LENGTH`, and at most
:data:`AUDIT_BYTES` of them), logged at INFO, served to admins at ``GET /api/v1/subscriptions/{id}/audit``
and printed by ``endusers audit``. The format is in docs/security.md (audit trail).

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

AUDIT_BYTES = 1024 * 1024
"""Bytes of entries kept per subscription (the newest entry is always kept)."""

AUDIT_ENTRY_BYTES = 16 * 1024
"""Bytes one entry's ``diff`` may take: beyond, lists are cut to :data:`CUT_TO` items and, if that is
not enough, the last keys are left out (``omitted`` counts them)."""

CUT_TO = 10

SET_KEYS = ("domains", "excluded_providers")
"""Settings that are sets: their change is what was added and what was removed."""


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
        "changed": sorted(key for key in after if before.get(key) != after.get(key)),
        **bounded(diff(before, after)),
    }


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What changed between two settings: a map (``capacity``, ``runtimes``) entry by entry
    (``runtimes.prod-eu``), a set (``domains``, ``excluded_providers``) as ``added`` and ``removed``,
    any other key as ``before`` and ``after``."""
    changes: dict[str, dict[str, Any]] = {}
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            for name in sorted(set(old) | set(new)):
                if name not in old or name not in new or old[name] != new[name]:
                    changes[f"{key}.{name}"] = {"before": old.get(name), "after": new.get(name)}
        elif key in SET_KEYS and isinstance(old, list) and isinstance(new, list):
            was, now = set(old), set(new)
            added, removed = [x for x in new if x not in was], [x for x in old if x not in now]
            changes[key] = {"added": added, "removed": removed, "added_count": len(added),
                            "removed_count": len(removed)}
        else:
            changes[key] = {"before": old, "after": new}
    return changes


def bounded(changes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``{"diff": changes}`` within :data:`AUDIT_ENTRY_BYTES`: lists cut first (``cut``: true; the
    counts stay whole), then the last keys left out (``omitted``: how many)."""
    if len(orjson.dumps(changes)) <= AUDIT_ENTRY_BYTES:
        return {"diff": changes}
    cut = {key: {name: value[:CUT_TO] if isinstance(value, list) else value for name, value in change.items()}
           for key, change in changes.items()}
    kept: dict[str, dict[str, Any]] = {}
    used = 0
    for key, change in cut.items():
        used += len(orjson.dumps({key: change}))
        if used > AUDIT_ENTRY_BYTES:
            break
        kept[key] = change
    return {"diff": kept, "cut": True, "omitted": len(cut) - len(kept)}


def log_committed(subscription: str, entries: Sequence[dict[str, Any]]) -> None:
    """Log each committed entry at INFO (the commit kept them in Redis)."""
    for item in entries:
        log.info("config of %s changed %s by %s (%s[%s]@%s): %s", subscription, ",".join(item["changed"]) or "nothing",
                 item["actor"] or "an unnamed actor", item["topic"], item["partition"], item["offset"],
                 orjson.dumps(item["diff"]).decode())


async def read(redis: AsyncClient, subscription: str, limit: int = 100) -> list[dict[str, Any]]:
    """Newest first."""
    limit = max(1, min(limit, AUDIT_LENGTH))
    return [orjson.loads(raw) for raw in await redis.lrange(audit_key(subscription), 0, limit - 1)]
