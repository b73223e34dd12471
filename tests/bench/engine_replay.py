"""Engine throughput: 1,000,000 events over 200,000 records through the offline replay path.

Three figures from one run, on the same generated lines:

- baseline: ``orjson.loads`` of every line (the floor any JSON consumer pays);
- replay: ``counters.replay.Replay`` fed the raw lines (decode + validate + normalize + engine);
- engine only: the same events pre-normalized into changes, fed straight to ``counters.engine.apply``;
- memory: Python heap bytes per record that a worker keeps for the subscriptions it counts (records,
  identifier index, signature histograms), traced with ``tracemalloc`` on a separate pass.

Usage: ``.venv/bin/python -m tests.bench.engine_replay [--events N] [--records N]``
"""

from __future__ import annotations

import argparse
import gc
import random
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import orjson

from schemas.outputs import format_instant

from counters import engine
from counters import translate
from schemas.domains import normalize_domain
from counters import Digester, normalize_email, to_change
from counters.replay import Replay
from counters.state import SubscriptionState, release_users
from schemas.changes import Change
from schemas.codec import Rejection, decode
from tests.bench.heap_items import heap_items, print_items

START_US = 1_780_000_000_000_000
SUBSCRIPTIONS = 10
RUNTIMES = (("prod-eu", "11.14.0"), ("prod-us", "11.12.1"), ("legacy", "11.10.0"))
PROVIDERS = ("Users", "AzureAD", "Okta")
DOMAINS_PER_SUBSCRIPTION = 20


def configs(records: int) -> list[dict[str, Any]]:
    per_subscription = records // SUBSCRIPTIONS
    return [
        {
            "type": "config", "id": f"cfg-{s}", "subscription": f"client-{s}",
            "platform": "odc" if s % 5 == 4 else "o11",
            "domains": [f"d0.client{s}.example", "*.owned.example"] + [f"d{d}.client{s}.example" for d in range(1, 8)],
            "capacity": {"internal": per_subscription // 2, "external": per_subscription // 3},
            "runtimes": {name: {"version": version} for name, version in RUNTIMES},
            "time": format_instant(START_US - 1),
        }
        for s in range(SUBSCRIPTIONS)
    ]


def events(count: int, records: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """About 90% logins, the rest profile changes; every record is touched once before any repeats.

    Record ``r`` belongs to subscription ``r % 10``; one record in four shares its person's email with the
    record before it (same person in another runtime or provider), so deduplication has work to do.
    """
    rng = random.Random(seed)
    for n in range(count):
        r = n if n < records else rng.randrange(records)
        sub = r % SUBSCRIPTIONS
        person = r - SUBSCRIPTIONS if r % 4 == 0 and r >= SUBSCRIPTIONS else r
        domain = f"d{person % DOMAINS_PER_SUBSCRIPTION}.client{sub}.example"
        base = {
            "subscription": f"client-{sub}", "id": f"ev-{n}", "time": format_instant(START_US + n * 1000),
            "runtime": RUNTIMES[(r // SUBSCRIPTIONS) % len(RUNTIMES)][0],
            "provider": PROVIDERS[(r // 7) % len(PROVIDERS)], "user_id": str(r),
        }
        roll = rng.random() if n >= records else 0.0
        if roll < 0.90:
            yield {"type": "login", **base, "username": f"user{person}", "email": f"User{person}@{domain}"}
        elif roll < 0.96:
            new_domain = f"d{rng.randrange(DOMAINS_PER_SUBSCRIPTION)}.client{sub}.example"
            yield {"type": "profile", "op": "upsert", **base, "email": f"user{person}@{new_domain}"}
        elif roll < 0.98:
            yield {"type": "profile", "op": "deactivate", **base}
        elif roll < 0.995:
            yield {"type": "profile", "op": "activate", **base}
        else:
            yield {"type": "profile", "op": "delete", **base}


def generate(count: int, records: int) -> list[bytes]:
    return [orjson.dumps(e) for e in configs(records)] + [orjson.dumps(e) for e in events(count, records)]


def bench_loads(lines: list[bytes]) -> float:
    loads = orjson.loads
    started = time.perf_counter()
    for line in lines:
        loads(line)
    return time.perf_counter() - started


def bench_replay(lines: list[bytes]) -> tuple[float, Replay]:
    replay = Replay()
    started = time.perf_counter()
    replay.feed_lines(lines)
    return time.perf_counter() - started, replay


def bench_engine(lines: list[bytes], chunk: int = 50_000) -> tuple[float, float, int]:
    """Normalize in chunks (untimed), then time ``engine.apply`` alone over each chunk.

    Then the common case alone: the logins of the last chunk of lines applied once more to the final states, each a
    repeated login of a known, logged-in record with unchanged fields. Returns both times and that
    number of logins.
    """
    digest, states, elapsed = Digester(), {}, 0.0
    apply = engine.apply
    for start in range(0, len(lines), chunk):
        changes: list[Change] = []
        for line in lines[start : start + chunk]:
            event = decode(line)
            if isinstance(event, Rejection):
                continue
            change = to_change(event, digest, 0)
            if isinstance(change, Change):
                changes.append(change)
        started = time.perf_counter()
        for change in changes:
            state = states.get(change.subscription)
            if state is None:
                state = states[change.subscription] = SubscriptionState(change.subscription)
            apply(state, change)
        elapsed += time.perf_counter() - started
    logins = []
    for line in lines[-chunk:]:
        decoded = decode(line)
        repeat = None if isinstance(decoded, Rejection) else to_change(decoded, digest, 0)
        if isinstance(repeat, Change) and repeat.kind == "login":
            logins.append(repeat)
    started = time.perf_counter()
    for change in logins:
        apply(states[change.subscription], change)
    return elapsed, time.perf_counter() - started, len(logins)


def states_heap_bytes(lines: list[bytes]) -> tuple[int, int]:
    """Heap bytes still allocated once every line is applied (states only: the bounded memos are
    cleared and garbage collected), and the number of records they hold."""
    heap, states = states_heap(lines)
    return heap, sum(len(s.records) for s in states.values())


def states_heap(lines: list[bytes]) -> tuple[int, dict[str, SubscriptionState]]:
    """``states_heap_bytes``, with the states (``tests.bench.heap_items`` itemises them)."""
    gc.collect()
    tracemalloc.start()
    digest = Digester()
    states: dict[str, SubscriptionState] = {}
    for line in lines:
        event = decode(line)
        if isinstance(event, Rejection):
            continue
        change = to_change(event, digest, 0)
        if isinstance(change, Change):
            state = states.get(change.subscription)
            if state is None:
                state = states[change.subscription] = SubscriptionState(change.subscription)
            engine.apply(state, change)
            release_users(state)  # what a commit to Redis does (counters.state.STORED)
            state.dirty.clear()
    # the memos of recent digests, emails, domains and identifier values are bounded (about 95 MB at most), not per record
    del event, change, digest
    normalize_email.cache_clear()
    normalize_domain.cache_clear()
    translate._email_value.cache_clear()
    translate._username_value.cache_clear()
    gc.collect()
    heap = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return heap, states


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--records", type=int, default=200_000)
    args = parser.parse_args()

    started = time.perf_counter()
    lines = generate(args.events, args.records)
    kinds: dict[str, int] = {}
    for line in lines:
        document = orjson.loads(line)
        kind = document["type"] if document["type"] != "profile" else f"profile/{document['op']}"
        kinds[kind] = kinds.get(kind, 0) + 1
    size = sum(len(line) for line in lines)
    print(f"generated {len(lines):,} lines ({size / len(lines):.0f} bytes each on average) "
          f"in {time.perf_counter() - started:.1f} s: "
          + ", ".join(f"{k} {v / len(lines):.1%}" for k, v in sorted(kinds.items())))

    gc.collect()
    loads_s = bench_loads(lines)
    gc.collect()
    replay_s, replay = bench_replay(lines)
    records = sum(len(s.records) for s in replay.states.values())
    internal = sum(s.count("internal") for s in replay.states.values())
    external = sum(s.count("external") for s in replay.states.values())
    rejected = len(replay.rejections)
    capacity_events = len(replay.capacity_events)
    del replay
    gc.collect()
    engine_s, repeats_s, repeats = bench_engine(lines)
    gc.collect()
    # every record exists after the first `records` events; a second pass of repeats adds no record
    heap, states = states_heap(lines[: len(configs(args.records)) + 2 * args.records])
    traced_records = sum(len(s.records) for s in states.values())
    items = heap_items(states.values())
    del states

    n = len(lines)
    print(f"result: {records:,} records, {internal:,} internal + {external:,} external individuals, "
          f"{capacity_events} capacity events, {rejected} rejected")
    print(f"{'orjson.loads (baseline)':<44}{n / loads_s:>12,.0f} events/s  {loads_s:7.2f} s")
    print(f"{'replay (decode+validate+normalize+engine)':<44}{n / replay_s:>12,.0f} events/s  {replay_s:7.2f} s"
          f"  {replay_s / loads_s:6.1f}x the baseline time")
    print(f"{'engine.apply only (pre-normalized)':<44}{n / engine_s:>12,.0f} events/s  {engine_s:7.2f} s"
          f"  {engine_s / loads_s:6.1f}x the baseline time")
    print(f"{'engine.apply, repeated unchanged logins':<44}{repeats / repeats_s:>12,.0f} events/s  "
          f"{repeats_s / repeats * 1e6:7.2f} µs/event ({repeats:,} logins)")
    print(f"{'worker memory (Python heap of the states)':<44}{heap / traced_records:>12,.0f} bytes/record"
          f"  {heap / 2**20:7.1f} MiB for {traced_records:,} records")
    print_items(items, traced_records, heap)


if __name__ == "__main__":
    main()
