"""The new owner's part of a takeover, in one process: load a subscription of N records from Redis
and rebuild its index (``RedisStore`` read path), against reading the same hash raw in the same run.

``tests/bench/run.py --takeover-records N`` measures the whole takeover through Kafka (session
expiry, rebalance, worker start, load, count); this script isolates the load so that it can be
profiled and compared step by step. Needs ``deploy/local/services up`` (ENDUSERS_REDIS; it uses
database 13 and flushes it).

    .venv/bin/python -m tests.bench.takeover_load --records 1000000 [--repeat 3] [--profile out.txt]

Figures (seconds, best of ``--repeat``):
- ``raw_hscan_s``: HSCAN of the records hash, nothing decoded (the floor of any load);
- ``load_cpu_s``: the CPU time of this process during that load (on a shared machine, the part of
  the wall clock that is the load's own cost);
- ``load_s``: the whole ``RedisStore`` read (meta, records, tombstones, rebuild, reclassify), the
  subscription counted exactly afterwards (its counts are checked against the engine's).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import time
from typing import Any

import orjson

from counters import engine
from counters import Digester, to_change
from counters.state import SubscriptionState
from schemas.changes import Change
from schemas.codec import decode
from streams.store.keys import Keys
from streams.store.redis_store import LOAD_CHUNK, RedisStore

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
        engine.apply(state, Change(kind="login", time=1_780_000_000_000_000 + user, record=digest(
            "default", "default", "default", str(user)), runtime="default", provider="default",
            fields={"email": [digest(f"user{who}@{domain}"), domain]}, subscription=SUBSCRIPTION))
    return state


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reuse", action="store_true", help="keep the records already written (same N)")
    args = parser.parse_args()
    gc.set_threshold(100_000, 50, 1000)  # the worker's setting (streams/worker/app.py)
    url = os.environ.get("ENDUSERS_REDIS", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0] + "/13"
    store = RedisStore.from_url(url)
    redis = store.redis
    keys = Keys(SUBSCRIPTION)
    started = time.perf_counter()
    state = build(args.records)
    expected = state.summary()
    print(f"built {len(state.records)} records in {time.perf_counter() - started:.1f}s: {expected}")
    if not args.reuse or await redis.hlen(keys.records) != len(state.records):
        await redis.flushdb()
        started = time.perf_counter()
        assert await store.commit(state, None, [])
        print(f"committed in {time.perf_counter() - started:.1f}s")
    del state
    results: dict[str, Any] = {"records": args.records}
    raw, load, load_cpu = [], [], []
    for _ in range(args.repeat):
        started = time.perf_counter()
        n = 0
        async for _ref, _packed in redis.hscan_iter(keys.records, count=LOAD_CHUNK):
            n += 1
        raw.append(time.perf_counter() - started)
        started, cpu = time.perf_counter(), time.process_time()
        loaded = await store.fresh_state(SUBSCRIPTION)
        load.append(time.perf_counter() - started)
        load_cpu.append(time.process_time() - cpu)
        assert loaded is not None
        got = loaded.summary()
        assert got == expected, (got, expected)
        del loaded
    results["raw_hscan_s"] = round(min(raw), 2)
    results["load_s"] = round(min(load), 2)
    results["load_cpu_s"] = round(min(load_cpu), 2)
    results["load_over_raw"] = round(min(load) / min(raw), 2)
    results["load_s_all"] = [round(x, 2) for x in load]
    results["load_average"] = os.getloadavg()[0]
    print(orjson.dumps(results).decode())
    await store.close()


if __name__ == "__main__":
    asyncio.run(main())
