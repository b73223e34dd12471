"""The committed read side in Redis: what the web API, the dashboard, the alerts, the adoption after a
rebalance and the CLI read, without loading a state (``counters.ports``: ``CountsReader``,
``CommittedCounts``, ``Directory``, ``OperatorReads``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from counters import Entry, Late, ReadSide, parse_entries
from schemas.outputs import SharedIdentifiers
from streams.store import audit
from streams.store.connect import AsyncClient
from streams.store.errors import translated
from streams.store.keys import POSITION, SUBSCRIPTIONS_KEY, Keys, fix_empty, text


class RedisReads:
    """Reads of what commits left; every Redis error comes out as ``StoreUnavailable``."""

    def __init__(self, redis: AsyncClient) -> None:
        self.redis = redis

    async def close(self) -> None:
        await self.redis.aclose()

    @translated
    async def subscriptions(self) -> list[str]:
        """The subscriptions with a committed state. A subscription is registered just before its
        first commit, so a crash (or a refused commit) in between leaves a name without state: it is
        left out here, and so by every reader."""
        names = sorted(text(m) for m in await self.redis.smembers(SUBSCRIPTIONS_KEY))
        if not names:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.exists(Keys(name).meta)
            committed = await pipe.execute()
        return [name for name, found in zip(names, committed, strict=True) if found]

    @translated
    async def sources(self, subscriptions: Sequence[str]) -> dict[str, list[str]]:
        """The names of each subscription's ``position:`` fields, without their values (the meta hash
        also holds the settings, hundreds of KB with thousands of domains), in one pipelined round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in subscriptions:
                pipe.hkeys(Keys(name).meta)
            found = await pipe.execute()
        return {name: [field[len(POSITION):] for field in map(text, fields) if field.startswith(POSITION)]
                for name, fields in zip(subscriptions, found)}

    @translated
    async def read_sides(self, subscriptions: Sequence[str]) -> dict[str, ReadSide]:
        """Counts, settings and report of each subscription in one pipelined round trip (an adoption
        reads every subscription it takes over)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in subscriptions:
                keys = Keys(name)
                pipe.get(keys.counts)
                pipe.hget(keys.meta, "settings")
                pipe.get(keys.shared)
                pipe.hgetall(keys.sources)
            found = await pipe.execute()
        sides = {}
        for index, name in enumerate(subscriptions):
            counts, settings, shared, sources = found[4 * index: 4 * index + 4]
            if counts is not None and settings is not None:
                sides[name] = ReadSide(fix_empty(orjson.loads(counts)), dict(orjson.loads(settings)),
                                       None if shared is None else orjson.loads(shared),
                                       {text(provider): int(at) for provider, at in sources.items()})
        return sides

    @translated
    async def shared_identifiers(self, subscription: str) -> SharedIdentifiers | None:
        """The last committed shared-identifier report (None before the subscription's first commit)."""
        raw = await self.redis.get(Keys(subscription).shared)
        return None if raw is None else orjson.loads(raw)

    @translated
    async def counts(self, subscription: str) -> dict[str, Any] | None:
        raw = await self.redis.get(Keys(subscription).counts)
        return None if raw is None else fix_empty(orjson.loads(raw))

    @translated
    async def stored_fingerprint(self, subscription: str) -> str | None:
        """The fingerprint of the digests the subscription's state was built with (None: not recorded)."""
        raw = await self.redis.hget(Keys(subscription).meta, "digest")
        return None if raw is None else text(raw)

    @translated
    async def settings(self, subscription: str) -> dict[str, Any] | None:
        raw = await self.redis.hget(Keys(subscription).meta, "settings")
        return None if raw is None else dict(orjson.loads(raw))

    @translated
    async def recent_capacity_events(self, subscription: str, limit: int = 20) -> list[dict[str, Any]]:
        return [orjson.loads(e) for e in await self.redis.lrange(Keys(subscription).recent, 0, limit - 1)]

    @translated
    async def history(self, subscription: str) -> list[list[int]]:
        return [orjson.loads(e) for e in await self.redis.lrange(Keys(subscription).history, 0, -1)]

    @translated
    async def audit(self, subscription: str, limit: int = 100) -> list[dict[str, Any]]:
        return await audit.read(self.redis, subscription, limit)

    @translated
    async def daily(self, subscription: str) -> list[Entry]:
        """The stored daily entries (``counters.history``), oldest first; days without a commit are absent."""
        return parse_entries({text(k): text(v) for k, v in (await self.redis.hgetall(Keys(subscription).daily)).items()})

    @translated
    async def source_activity(self, subscription: str) -> tuple[dict[str, int], dict[tuple[str, int], int]]:
        keys = Keys(subscription)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.sources)
            pipe.hgetall(keys.source_days)
            last, per_day = await pipe.execute()
        days = {}
        for name, events in per_day.items():
            _, day, provider = text(name).split(":", 2)  # d:<day number>:<provider>
            days[(provider, int(day))] = int(events)
        return {text(provider): int(at) for provider, at in last.items()}, days

    @translated
    async def statement_data(self, subscription: str) -> tuple[dict[str, dict[str, Any]], dict[str, Late]]:
        keys = Keys(subscription)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.statements)
            pipe.hgetall(keys.periods)
            frozen, periods = await pipe.execute()
        events: dict[str, int] = {}
        peaks: dict[str, dict[str, tuple[int, str]]] = {}
        for name, value in periods.items():
            start, _, what = text(name).partition(":")
            if what == "late":
                events[start] = int(value)
            else:
                count, _, day = text(value).partition(",")
                peaks.setdefault(start, {})[what] = (int(count), day)
        return ({text(start): orjson.loads(statement) for start, statement in frozen.items()},
                {start: Late(peaks.get(start, {}), count) for start, count in events.items()})

    @translated
    async def hourly(self, subscription: str) -> list[Entry]:
        return parse_entries({text(k): text(v) for k, v in (await self.redis.hgetall(Keys(subscription).hourly)).items()})

    @translated
    async def ping(self) -> bool:
        return bool(await self.redis.ping())


