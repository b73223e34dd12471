"""The new owner's part of a takeover, in one process: load a subscription of N records from Redis
and rebuild its index (``RedisStore`` read path), against reading the same hash raw in the same run.

``tests/bench/run.py --takeover-records N`` measures the whole takeover through Kafka (session
expiry, rebalance, worker start, load, count); this script isolates the load so that it can be
profiled and compared step by step. Needs ``deploy/local/services up`` (ENDUSERS_REDIS; it uses
database 13 and flushes it).

    .venv/bin/python -m tests.bench.takeover_load --records 1000000 [--repeat 3] [--profile out.txt] [--listed]

Figures (seconds, best of ``--repeat``):
- ``raw_hscan_s``: HSCAN of the records hash, nothing decoded (the floor of any load);
- ``load_cpu_s``: the CPU time of this process during that load (on a shared machine, the part of
  the wall clock that is the load's own cost);
- ``load_s``: the whole ``RedisStore`` read (meta, records, tombstones, rebuild, reclassify), the
  subscription counted exactly afterwards (its counts are checked against the engine's);
- ``redis_bytes_per_record``: Redis ``used_memory`` after the commit of the N records (each with its
  sealed id, as ingest seals it) less before it, over N, in an emptied database.

``--listed`` then rewrites every record as the version before the compact layout stored it
(``tests.fixtures.older_records``: 16-item lists, ids sealed with AES-GCM) and measures the same:
``listed_bytes_per_record`` and ``listed_load_s`` (``unpack_record`` reads both), the baseline of the
same run.

``--hash-only`` writes the records hash alone, each record as the store packs it but made without
the engine (``at_rest``; its bytes are checked against committed ones), so that 10,000,000 records
need no 6 GB state: ``redis_bytes_per_record`` (and with ``--listed`` the previous layout's), no load.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import itertools
import os
import time
from collections.abc import Iterator
from typing import Any

import msgspec
import orjson

from counters import engine
from counters import ACTIVE, DEFAULT_TENANT, LOGGED_IN, UNNAMED, Digester, to_change
from counters.state import Record, SubscriptionState
from schemas.changes import Change
from schemas.codec import decode
from streams.store.connect import AsyncClient
from streams.store.keys import Keys
from streams.store.redis_store import LOAD_CHUNK, RedisStore, pack_record
from tests.fixtures.older_records import pack_listed, seal_gcm

SUBSCRIPTION = "bench-load"


def build(records: int) -> SubscriptionState:
    """The state the takeover bench builds: logins of distinct users, each with an email; every 50th
    user shares an email with the one before it (so groups exist), three domains, one of them owned."""
    state = SubscriptionState(SUBSCRIPTION)
    digest = Digester()
    config = decode(orjson.dumps({"type": "config", "subscription": SUBSCRIPTION, "domains": ["corp.example"],
                                  "time": "2026-01-01T00:00:00Z"}))
    change = to_change(config, digest, 0)  # type: ignore[arg-type]
    assert isinstance(change, Change)
    engine.apply(state, change)
    digest = digest.for_subscription(SUBSCRIPTION)
    for user in range(records):
        who = user - 1 if user % 50 == 49 else user
        domain = ("corp.example", "partner.example", "mail.example")[who % 3]
        # the change ingest would forward for a login with this email (normalize.to_change), built
        # directly: decoding a million events would take longer than the load it prepares
        record = digest("default", "default", "default", str(user))
        engine.apply(state, Change(kind="login", time=1_780_000_000_000_000 + user, record=record,
                                   runtime="default", provider="default", subscription=SUBSCRIPTION,
                                   fields={"email": [digest(f"user{who}@{domain}"), domain],
                                           "user": digest.sealer.seal(record, "default", str(user))}))
    return state


def at_rest(records: int, listed: bool) -> Iterator[tuple[bytes, bytes]]:
    """Each record of ``build(records)`` as the store writes it, key and value (``listed``: as the
    version before the compact layout did), made without the engine: for sizes whose state would not
    fit in this process (``--hash-only``). The same bytes as the committed records (checked)."""
    digest = Digester().for_subscription(SUBSCRIPTION)
    for user in range(records):
        who = user - 1 if user % 50 == 49 else user
        domain = ("corp.example", "partner.example", "mail.example")[who % 3]
        ref, time = digest("default", "default", "default", str(user)), 1_780_000_000_000_000 + user
        record = Record(UNNAMED, UNNAMED, time, digest(f"user{who}@{domain}"), domain, time,
                        flags=ACTIVE | DEFAULT_TENANT | LOGGED_IN, last_login=time)
        if listed:
            record.user = seal_gcm(digest.sealer, ref, UNNAMED, str(user))
            yield bytes.fromhex(ref), pack_listed(record)
        else:
            record.user = base64.b64decode(digest.sealer.seal(ref, UNNAMED, str(user)))
            yield bytes.fromhex(ref), pack_record(record)


async def hash_only(store: RedisStore, records: int, listed: bool) -> float:
    """Bytes per record of the records hash alone, written by pipelines into an emptied database."""
    assert sorted(at_rest(2_000, False)) == sorted(
        (bytes.fromhex(ref), pack_record(record)) for ref, record in build(2_000).records.items())
    await emptied(store.redis)
    before, items = await used_memory(store.redis), at_rest(records, listed)
    while chunk := list(itertools.islice(items, LOAD_CHUNK)):
        pipe = store.redis.pipeline(transaction=False)
        for key, value in chunk:
            pipe.hset(Keys(SUBSCRIPTION).records, key, value)
        await pipe.execute()
    used = await used_memory(store.redis) - before
    print(f"{'listed' if listed else 'compact'}: {used} bytes for {records} records ({used / records:.1f} B/record)")
    await emptied(store.redis)
    return round(used / records, 1)


async def emptied(redis: AsyncClient) -> None:
    """The database emptied in the background (a synchronous FLUSHDB of 10M fields outlasts the
    client's 5-second timeout), and its memory freed before anything is measured again."""
    await redis.flushdb(asynchronous=True)
    while int((await redis.info("memory"))["lazyfree_pending_objects"]):
        await asyncio.sleep(0.2)


async def used_memory(redis: AsyncClient) -> int:
    """Redis's ``used_memory``: the bytes its allocator holds for data, without fragmentation."""
    return int((await redis.info("memory"))["used_memory"])


async def commit_in_slices(store: RedisStore, state: SubscriptionState, size: int = 100_000) -> None:
    """Every record of ``state`` committed by the store, ``size`` records a commit: one script over a
    million records outlasts the client's 5-second read timeout on a busy machine."""
    dirty = sorted(state.dirty)
    for first in range(0, len(dirty), size):
        state.dirty = set(dirty[first:first + size])
        assert await store.commit(state, None, [])


async def write_listed(redis: AsyncClient, records: dict[str, Record], users: dict[str, bytes | None]) -> None:
    """Every record rewritten as the version before the compact layout stored it (``users``: the
    sealed ids as ingest sealed them, which a commit releases from the records)."""
    sealer, items = Digester().sealer, list(records.items())
    for first in range(0, len(items), LOAD_CHUNK):
        pipe = redis.pipeline(transaction=False)
        for ref, record in items[first:first + LOAD_CHUNK]:
            sealed = users[ref]
            user = sealer.open(ref, sealed) if sealed else None
            listed = msgspec.structs.replace(record, user=None if user is None else seal_gcm(sealer, ref, *user))
            pipe.hset(Keys(SUBSCRIPTION).records, bytes.fromhex(ref), pack_listed(listed))
        await pipe.execute()


async def load_times(store: RedisStore, expected: Any, repeat: int) -> tuple[list[float], list[float], list[float]]:
    """HSCAN alone, then the whole load (its CPU too), ``repeat`` times each; the counts checked."""
    raw, load, load_cpu = [], [], []
    for _ in range(repeat):
        started = time.perf_counter()
        async for _ref, _packed in store.redis.hscan_iter(Keys(SUBSCRIPTION).records, count=LOAD_CHUNK):
            pass
        raw.append(time.perf_counter() - started)
        started, cpu = time.perf_counter(), time.process_time()
        loaded = await store.fresh_state(SUBSCRIPTION)
        load.append(time.perf_counter() - started)
        load_cpu.append(time.process_time() - cpu)
        assert loaded is not None
        got = loaded.summary()
        assert got == expected, (got, expected)
        del loaded
    return raw, load, load_cpu


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reuse", action="store_true", help="keep the records already written (same N)")
    parser.add_argument("--listed", action="store_true", help="then the same records as stored before the compact layout")
    parser.add_argument("--hash-only", action="store_true",
                        help="only the bytes per record of the records hash, written without the engine (10M and up)")
    args = parser.parse_args()
    gc.set_threshold(100_000, 50, 1000)  # the worker's setting (streams/worker/app.py)
    url = os.environ.get("ENDUSERS_REDIS", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0] + "/13"
    store = RedisStore.from_url(url)
    results: dict[str, Any] = {"records": args.records}
    if args.hash_only:
        results["redis_bytes_per_record"] = await hash_only(store, args.records, False)
        if args.listed:
            results["listed_bytes_per_record"] = await hash_only(store, args.records, True)
        print(orjson.dumps(results).decode())
        return await store.close()
    started = time.perf_counter()
    state = build(args.records)
    expected = state.summary()
    print(f"built {len(state.records)} records in {time.perf_counter() - started:.1f}s: {expected}")
    users = {ref: record.user for ref, record in state.records.items()}
    if not args.reuse or await store.redis.hlen(Keys(SUBSCRIPTION).records) != len(state.records):
        await emptied(store.redis)
        before, started = await used_memory(store.redis), time.perf_counter()
        await commit_in_slices(store, state)
        print(f"committed in {time.perf_counter() - started:.1f}s")
        results["redis_bytes_per_record"] = round((await used_memory(store.redis) - before) / args.records, 1)
    raw, load, load_cpu = await load_times(store, expected, args.repeat)
    results["raw_hscan_s"] = round(min(raw), 2)
    results["load_s"] = round(min(load), 2)
    results["load_cpu_s"] = round(min(load_cpu), 2)
    results["load_over_raw"] = round(min(load) / min(raw), 2)
    results["load_s_all"] = [round(x, 2) for x in load]
    if args.listed and "redis_bytes_per_record" in results:
        await write_listed(store.redis, state.records, users)
        results["listed_bytes_per_record"] = round((await used_memory(store.redis) - before) / args.records, 1)
        results["listed_load_s"] = round(min((await load_times(store, expected, args.repeat))[1]), 2)
    results["load_average"] = os.getloadavg()[0]
    print(orjson.dumps(results).decode())
    await store.close()


if __name__ == "__main__":
    asyncio.run(main())
