"""The store over Redis (one server, Redis Cluster or Sentinel). Outside this package the store is
known only by its ports (``counters.ports``); this is where one is obtained."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streams.settings import WorkerSettings
    from streams.store.cursors import RedisCursors
    from streams.store.redis_store import RedisStore


def open_store(settings: WorkerSettings) -> RedisStore:
    """The store the settings name (``ENDUSERS_REDIS`` and its options); nothing is sent until the first
    read. Close it after."""
    from streams.store.redis_store import RedisStore

    return RedisStore.from_settings(settings)


def open_cursors(settings: WorkerSettings) -> RedisCursors:
    """The connectors' cursors in the store ``ENDUSERS_REDIS`` names. Close them after."""
    from streams.store.cursors import RedisCursors

    return RedisCursors.from_url(settings.redis, settings.sentinel_password())
