"""Connectors' cursors in Redis: one JSON document per subscription and identity source, under the
subscription's hash tag (``endusers:{acme}:connect:keycloak:master``) beside its other keys."""

from __future__ import annotations

from typing import Any

import orjson

from streams.store.connect import AsyncClient, connect
from streams.store.errors import translated


def cursor_key(subscription: str, source: str) -> str:
    return "endusers:{%s}:connect:%s" % (subscription, source)


class RedisCursors:
    """:class:`counters.Cursors` over Redis (one server, Cluster or Sentinel alike: single-key commands)."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    @classmethod
    def from_url(cls, url: str, sentinel_password: str | None = None) -> RedisCursors:
        return cls(connect(url, sentinel_password))

    @translated
    async def cursor(self, subscription: str, source: str) -> dict[str, Any] | None:
        raw = await self.client.get(cursor_key(subscription, source))
        if raw is None:
            return None
        document = orjson.loads(raw)
        return document if isinstance(document, dict) else None

    @translated
    async def save_cursor(self, subscription: str, source: str, cursor: dict[str, Any]) -> None:
        await self.client.set(cursor_key(subscription, source), orjson.dumps(cursor))

    async def close(self) -> None:
        await self.client.aclose()
